"""The CLI's contract with users and scripts: --help everywhere, --json, one-line errors, exit codes, dirs."""
import json
import os
import pathlib
import pwd
import subprocess

import pytest

from conftest import CCMULTI, for_other_users, wait_for

SUBCOMMANDS = ["show", "names", "expand", "get", "dirs"]


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_on_every_subcommand(env, sub):
    out = env.run(sub, "--help", check=True)
    assert f"ccmulti {sub}" in out.stdout


def test_help_and_version(env):
    assert "Subcommands:" in env.run("--help", check=True).stdout
    assert env.run("--version", check=True).stdout.startswith("ccmulti ")


def test_unknown_subcommand_is_usage_error(env):
    out = env.run("frobnicate")
    assert out.returncode == 2
    assert out.stderr.startswith("ccmulti: error:")


def test_no_color_respected(env):
    # Not a terminal and NO_COLOR set: no escape sequences anywhere.
    out = env.run("get", "nope", "w1")
    assert "\x1b[" not in out.stderr


def test_dirs_creates_private_dirs_and_reports_origin(env):
    out = env.run("dirs", "--json", check=True)
    dirs = {d["kind"]: d for d in json.loads(out.stdout)["dirs"]}
    assert dirs["run"]["path"] == str(env.run_dir)
    assert dirs["run"]["from"] == "$CCMULTI_RUN_DIR"
    assert dirs["run"]["state"] == "created"
    for kind in ("run", "log", "state"):
        assert (pathlib.Path(dirs[kind]["path"]).stat().st_mode & 0o777) == 0o700
    again = json.loads(env.run("dirs", "--json", check=True).stdout)
    assert all(d["state"] == "ok" for d in again["dirs"])


def test_dirs_flag_beats_environment(env):
    target = env.root / "flagged"
    out = env.run("dirs", "--json", "--run-dir", target, check=True)
    run = json.loads(out.stdout)["dirs"][0]
    assert run["path"] == str(target) and run["from"] == "--run-dir"


def test_symlinked_run_dir_is_refused(env):
    real = env.root / "real"
    real.mkdir()
    (env.root / "link").symlink_to(real)
    out = env.run("dirs", "--run-dir", env.root / "link")
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert "symlink" in line and "--run-dir DIR or CCMULTI_RUN_DIR" in line


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def as_nobody(env, *args, extra_env=None):
    child_env = dict(env.env, HOME="/nonexistent", **(extra_env or {}))
    for key in ("CCMULTI_RUN_DIR", "CCMULTI_LOG_DIR", "CCMULTI_STATE_DIR", "XDG_RUNTIME_DIR"):
        child_env.pop(key, None)
    child_env["XDG_STATE_HOME"] = str(env.root / "nobody-state")
    os.chmod(env.root, 0o777)
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", for_other_users(CCMULTI), *map(str, args)],
        capture_output=True, text=True, env=child_env, cwd="/", timeout=30,
    )


@needs_root
def test_foreign_owned_run_dir_is_refused(env):
    foreign = env.root / "foreign"
    foreign.mkdir()
    os.chown(foreign, pwd.getpwnam("nobody").pw_uid, -1)
    out = env.run("dirs", "--run-dir", foreign)
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert "owned by nobody, not by you (root)" in line


@needs_root
def test_celery_style_pidfile_for_normal_user_names_path_and_fix(env):
    out = as_nobody(env, "dirs", "w1", "--pidfile=/var/run/celery/%n.pid")
    assert out.returncode == 1, out
    [line] = out.stderr.splitlines()
    assert "--pidfile /var/run/celery/w1.pid" in line
    assert "nobody" in line
    assert "--run-dir DIR or CCMULTI_RUN_DIR" in line
    assert "Traceback" not in out.stderr


@needs_root
def test_normal_user_defaults_are_usable(env):
    nobody = pwd.getpwnam("nobody").pw_uid
    out = as_nobody(env, "dirs", "--json")
    assert out.returncode == 0, out.stderr
    dirs = {d["kind"]: d for d in json.loads(out.stdout)["dirs"]}
    assert dirs["run"]["path"] == f"/tmp/ccmulti-{nobody}"
    assert dirs["state"]["path"] == str(env.root / "nobody-state" / "ccmulti")
    subprocess.run(["rm", "-rf", f"/tmp/ccmulti-{nobody}"], check=False)


RECORDER = """\
import os, signal
with open(os.path.join(os.environ["RECORD_DIR"], os.environ["CCMULTI_NODE"] + ".argv"), "wb") as out:
    out.write(open("/proc/self/cmdline", "rb").read())
signal.pause()
"""


@pytest.mark.parametrize("kind", ["exec", "celery"])
def test_show_and_get_print_what_start_runs(env, kind):
    """`show`/`get` print the argv `start` executes: compared with the /proc cmdline of the started program."""
    recorder = env.root / "record.py"
    recorder.write_text(RECORDER)
    env.env["RECORD_DIR"] = str(env.root)
    if kind == "exec":
        args = ["w1", "w2", "-c", "2", "--exec", f"/usr/bin/python3 {recorder} %n 'two words' -i %i"]
    else:  # -A: a Celery worker, its program replaced by the recorder (--celery)
        args = ["w1", "w2", "-A", "proj", "-c", "2", "--result-backend", "redis://127.0.0.1:1/1",
                "--celery", f"/usr/bin/python3 {recorder}"]
    shown = {node["name"].split("@")[0]: node["argv"] for node in json.loads(env.run("show", "--json", *args,
                                                                                      check=True).stdout)}
    text = env.run("show", *args, check=True).stdout.splitlines()
    got = json.loads(env.run("get", "--json", "w2", *args, check=True).stdout)["argv"]
    assert got == shown["w2"]
    assert text[1] == env.run("get", "w2", *args, check=True).stdout.strip()
    if kind == "celery":
        assert shown["w1"][2:] == ["-A", "proj", "--result-backend=redis://127.0.0.1:1/1", "worker", "-c", "2", "-n",
                                   f"w1@{os.uname().nodename}", "--pidfile="]
    try:
        env.run("start", *args, "--start-secs", "0.2", check=True, timeout=60)
        for short in ("w1", "w2"):
            host = json.loads(env.run("names", "--json", *args, check=True).stdout)[0].split("@")[1]
            path = env.root / f"{short}@{host}.argv"
            wait_for(path.exists, timeout=10, what=f"{short}'s program to record its argv")
            ran = path.read_bytes().rstrip(b"\0").split(b"\0")
            assert [a.decode() for a in ran] == shown[short]
    finally:
        env.run("kill", timeout=30)


def test_show_prints_the_native_worker_line_start_runs(env):
    out = json.loads(env.run("show", "--json", "w1", "-c", "3", "--result-backend", "redis://h:6379/1",
                             check=True).stdout)
    [argv] = [node["argv"] for node in out]
    assert argv[0] == CCMULTI or os.path.realpath(argv[0]) == os.path.realpath(CCMULTI)
    assert argv[1:argv.index("worker")] == ["--run-dir", str(env.run_dir), "--log-dir", str(env.log_dir),
                                             "--state-dir", str(env.state_dir)]
    after = argv[argv.index("worker") + 1:]
    assert "-c" in after and "--result-backend=redis://h:6379/1" in after
    assert not any(a.startswith("--pidfile") or a.startswith("--logfile") for a in after)  # the shim's, not passed
