"""celery multi's command lines as deployments write them: the `multi` word and Celery's global options, plain pid
files, one master per pid-file directory, pid/log dirs created or a fix named, no $HOME needed, nodes run as
--uid, SIGHUP as a warm restart, stopwait without a deadline, restart with the command line given.

The whole drop-in (Celery's own systemd unit lines and init script, real Celery workers) is test_dropin.py."""
import json
import os
import pathlib
import pwd
import re
import signal
import subprocess

import pytest

from conftest import CCMULTI, for_other_users, wait_for
from test_supervisor import FAKE, HOST, IS_ROOT, alive, make_sup

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (another user, chown)")


@pytest.fixture
def sup():
    yield from make_sup(None)


def pid_of(path: pathlib.Path) -> int:
    text = path.read_text()
    assert re.fullmatch(r"[1-9][0-9]*\n", text), f"a pid file holds the pid and a newline, not {text!r}"
    return int(text)


def status(sup, *args):
    proc = sup.run("status", "--json", *args)
    return json.loads(proc.stdout)


# --- the words in front of the subcommand ---------------------------------------------------------------------


def test_multi_word_and_celery_globals_before_it(sup):
    """`celery -A proj multi start ...` (Celery's systemd unit): -A goes to every node, as celery multi does."""
    env = dict(sup.env, C_FAKEFORK="1")
    proc = subprocess.run([CCMULTI, "-A", "proj", "--workdir", str(sup.root), "multi", "--verbose", "start", "w1",
                           "w2", "--loglevel=INFO"], capture_output=True, text=True, env=env, cwd=sup.root, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # A dry run (the init script's dryrun): each node's command line, and nothing started.
    w1 = next(line for line in lines if line.startswith(f"> w1@{HOST}: "))
    assert re.search(r"-m celery -A proj --workdir[= ]\S+ worker ", w1), w1
    assert "--loglevel=INFO" in w1
    assert any(line.startswith(f"> w2@{HOST}: ") for line in lines)
    assert "nothing started" in lines[-1]
    assert not (sup.run_dir / "master.pid").exists()


def test_quiet_and_reserved_flags_anywhere(sup):
    quiet = sup.run("multi", "start", "w1", "-q", "--nosplash", "--no-color", "--exec", sup.fake("--notify"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""  # -q: errors only
    assert alive(sup.pid("w1"))
    loud = sup.run("-q", "multi", "stopwait", "w1")
    assert loud.returncode == 0 and loud.stdout == ""
    assert not (sup.run_dir / "w1.pid").exists()


def test_unknown_global_option_is_a_usage_error(sup):
    proc = sup.run("--frobnicate", "multi", "start", "w1")
    assert proc.returncode == 2
    assert "--frobnicate" in proc.stderr


# --- pid files and groups ---------------------------------------------------------------------------------------


def test_groups_with_pid_files_in_different_dirs_are_independent(sup):
    a, b = sup.root / "a" / "run", sup.root / "b" / "run"
    start_a = sup.check("multi", "start", "w1", "--pidfile", f"{a}/%n.pid", "--exec", sup.fake("--notify"))
    start_b = sup.check("multi", "start", "w1", "w2", "--pidfile", f"{b}/%n.pid", "--exec", sup.fake("--notify"))
    assert "ready" in start_a.stdout and start_b.stdout.count("ready") == 2
    # Missing pid dirs were created (0755, as celery multi's), each with its own master beside the pid files.
    assert oct(a.stat().st_mode & 0o777) == "0o755"
    master_a, master_b = pid_of(a / "master.pid"), pid_of(b / "master.pid")
    assert master_a != master_b and alive(master_a) and alive(master_b)
    node_a = pid_of(a / "w1.pid")
    os.kill(node_a, 0)  # `kill -0 $(cat w1.pid)` works
    # Stopping group A leaves group B alone.
    sup.check("multi", "stopwait", "w1", "--pidfile", f"{a}/%n.pid")
    wait_for(lambda: not alive(master_a), timeout=10, what="group A's master to exit")
    assert alive(master_b) and alive(pid_of(b / "w1.pid")) and alive(pid_of(b / "w2.pid"))
    listed = status(sup, "w1", "w2", "--pidfile", f"{b}/%n.pid")
    assert [n["state"] for n in listed["nodes"]] == ["ready", "ready"]
    sup.check("multi", "stopwait", "w1", "w2", "--pidfile", f"{b}/%n.pid")
    wait_for(lambda: not alive(master_b), timeout=10, what="group B's master to exit")


def test_missing_log_dir_is_created_and_holds_the_masters_log(sup):
    logs = sup.root / "var" / "log" / "celery"
    sup.check("start", "w1", "--logfile", f"{logs}/%n%I.log", "--exec", sup.fake("--notify"))
    assert (logs / "w1.log").exists() and (logs / "master.log").exists()
    sup.check("stopwait")


@needs_root
def test_pid_dir_a_user_cannot_create_names_the_fixes_then_dirs_create_fixes_it(sup):
    nobody = pwd.getpwnam("nobody")
    base = sup.root / "var-run"
    base.mkdir(mode=0o755)  # root's, like /var/run
    pidfile = f"{base}/celery/%n.pid"
    env = {k: v for k, v in sup.env.items() if not k.startswith("CCMULTI_") or k == "CCMULTI_BIN"}
    env.update(HOME="/nonexistent", CCMULTI_LOG_DIR=str(sup.root / "nobody-log"))
    os.chmod(sup.root, 0o777)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", for_other_users(CCMULTI)]
    fake = for_other_users(FAKE)

    def run(*args):
        return subprocess.run(as_nobody + list(args), capture_output=True, text=True, env=env, cwd=sup.root,
                              timeout=30)

    failed = run("multi", "start", "w1", f"--pidfile={pidfile}", "--exec", f"{fake} --notify")
    assert failed.returncode == 1
    [line] = failed.stderr.splitlines()
    assert f"{base}/celery does not exist and nobody cannot create it ({base} is not writable)" in line
    assert f"the tmpfiles.d line 'd {base}/celery 0755 nobody nobody -'" in line
    fix = f"ccmulti dirs --create --owner nobody w1@{HOST} --pidfile={base}/celery/w1.pid"
    assert fix in line
    # The fix, run once as root, as the message says.
    sup.check("dirs", "--create", "--owner", "nobody", f"w1@{HOST}", f"--pidfile={base}/celery/w1.pid")
    assert (base / "celery").stat().st_uid == nobody.pw_uid
    started = run("multi", "start", "w1", f"--pidfile={pidfile}", "--exec", f"{fake} --notify")
    assert started.returncode == 0, started.stderr
    assert alive(pid_of(base / "celery" / "w1.pid"))
    assert run("multi", "stopwait", "w1", f"--pidfile={pidfile}").returncode == 0
    assert not (base / "celery" / "w1.pid").exists()


@needs_root
def test_a_system_user_without_a_home_needs_none(sup):
    user = pwd.getpwnam("nobody")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           for_other_users(CCMULTI), "dirs", "--json"], capture_output=True, text=True, env=env, cwd="/", timeout=30)
    assert proc.returncode == 0, proc.stderr
    dirs = {d["kind"]: d for d in json.loads(proc.stdout)["dirs"]}
    assert dirs["log"]["path"] == f"/var/tmp/ccmulti-{user.pw_uid}/log"
    assert dirs["state"]["path"] == f"/var/tmp/ccmulti-{user.pw_uid}"
    assert "not writable" in dirs["log"]["from"]


@needs_root
def test_root_runs_nodes_as_the_uid_given_and_gives_it_their_dirs(sup):
    nobody = pwd.getpwnam("nobody")
    pids = sup.root / "celery-run"
    sup.check("multi", "start", "w1", "--uid", "nobody", "--pidfile", f"{pids}/%n.pid", "--exec",
              f"{for_other_users(FAKE)} --notify --record {sup.root}/w1.rec")
    shim = pid_of(pids / "w1.pid")
    program = int(subprocess.run(["pgrep", "-P", str(shim)], capture_output=True, text=True).stdout.split()[0])
    for pid in (shim, program):
        uids = next(line for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:")).split()[1:]
        assert uids == [str(nobody.pw_uid)] * 4, f"pid {pid} runs as {uids}"
        groups = next(line for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith("Groups:")).split()[1:]
        assert "0" not in groups
    assert pids.stat().st_uid == nobody.pw_uid
    sup.check("multi", "stopwait", "w1", "--pidfile", f"{pids}/%n.pid")


def test_an_unknown_uid_is_a_usage_error(sup):
    proc = sup.run("start", "w1", "--uid", "no-such-user-x", "--exec", sup.fake())
    assert proc.returncode == 2
    assert "unknown user 'no-such-user-x'" in proc.stderr


# --- signals, stop and restart ------------------------------------------------------------------------------------


def test_sighup_to_a_pid_file_pid_restarts_the_node_warm(sup):
    """An init script's `graceful`: kill -HUP $(cat w1.pid). A warm restart, not a crash."""
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    old = sup.pid("w1")
    os.kill(old, signal.SIGHUP)
    wait_for(lambda: (sup.run_dir / "w1.pid").exists() and sup.pid("w1") != old and
             status(sup)["nodes"][0]["state"] == "ready", timeout=15, what="w1 to be restarted")
    node = status(sup)["nodes"][0]
    assert node["restarts"] == 1
    assert "signal TERM" in sup.records("w1")  # warm: the old run got SIGTERM, not HUP
    assert not any("HUP" in line for line in sup.records("w1"))
    log = (sup.log_dir / "master.log").read_text()
    assert "SIGHUP from pid" in log and "restarting it warm" in log
    assert "crash" not in log
    sup.check("stopwait")


def test_stopwait_without_timeout_has_no_deadline(sup):
    """celery multi stopwait waits as long as the tasks run; so does ccmulti without --timeout."""
    sup.check("start", "w1", "w2", "--exec", sup.fake("--notify", "--ignore", "TERM"))
    waiting = subprocess.Popen(sup.command("stopwait", "w1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=sup.env, cwd=sup.root)
    try:
        wait_for(lambda: "signal TERM ignored" in sup.records("w1"), timeout=10, what="w1 to get SIGTERM")
        node = next(n for n in status(sup)["nodes"] if n["name"] == f"w1@{HOST}")
        assert node["state"] == "stopping"
        assert node["kill_in"] is None, node  # no SIGQUIT/SIGKILL planned
        # With --timeout there is one.
        sup.check("stop", "w2", "--timeout", "300")
        w2 = next(n for n in status(sup)["nodes"] if n["name"] == f"w2@{HOST}")
        assert 200 < w2["kill_in"] <= 300
        assert waiting.poll() is None
    finally:
        sup.run("kill")
        out, err = waiting.communicate(timeout=30)
    assert not any("QUIT" in line for line in sup.records("w1"))


def test_restart_with_a_changed_command_line_takes_effect(sup):
    """ExecReload after editing CELERYD_OPTS: the new options are what runs afterwards."""
    sup.check("start", "w1", "--exec", sup.fake("--notify"), "-Q", "old")
    first = sup.pid("w1")
    sup.check("multi", "restart", "w1", "w2", "--exec", sup.fake("--notify"), "-Q", "new")
    assert sup.pid("w1") != first
    nodes = {n["name"]: n for n in status(sup)["nodes"]}
    assert nodes[f"w1@{HOST}"]["queues"] == ["new"]
    assert nodes[f"w2@{HOST}"]["state"] == "ready"  # not running before: started
    sup.check("stopwait")


def test_a_pid_file_naming_some_other_file_is_refused_and_left_untouched(sup):
    precious = sup.root / "precious.conf"
    precious.write_text("root:x:0:0:root:/root:/bin/bash\n")
    proc = sup.run("start", "w1", f"--pidfile={precious}", "--exec", sup.fake("--notify"))
    assert proc.returncode == 2, proc
    [line] = proc.stderr.splitlines()
    assert f"refusing pid file {precious}: it exists and is not a pid file" in line
    assert precious.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    for command in (["stop", "w1"], ["kill", "w1"]):
        sup.run(*command, f"--pidfile={precious}")
        assert precious.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_a_log_dir_given_for_the_master_alone_is_created(sup):
    master_logs, node_logs = sup.root / "master-logs", sup.root / "node-logs"
    sup.check("--log-dir", master_logs, "start", "w1", f"--logfile={node_logs}/%n.log", "--exec",
              sup.fake("--notify"))
    assert (master_logs / "master.log").exists() and (node_logs / "w1.log").exists()
    sup.check("stopwait")


def test_options_without_node_names_mean_the_group_beside_those_pid_files(sup):
    pids = sup.root / "pids"
    sup.check("multi", "start", "w1", "w2", f"--pidfile={pids}/%n.pid", "--exec", sup.fake("--notify"))
    listed = json.loads(sup.check("status", "--json", f"--pidfile={pids}/%n.pid").stdout)
    assert [n["name"] for n in listed["nodes"]] == [f"w1@{HOST}", f"w2@{HOST}"]
    stopped = sup.check("multi", "stopwait", f"--pidfile={pids}/%n.pid")
    assert f"w1@{HOST}  stopped" in stopped.stdout and f"w2@{HOST}  stopped" in stopped.stdout


def test_a_pid_file_is_never_empty_or_half_written_across_restarts(sup):
    """An init script's status may read it at any moment: the old pid or the new one, nothing else."""
    import threading

    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    pidfile = sup.run_dir / "w1.pid"
    seen, bad, done = [], [], threading.Event()

    def poll():
        while not done.is_set():
            try:
                text = pidfile.read_text()
            except FileNotFoundError:
                bad.append("missing")
                continue
            (seen if re.fullmatch(r"[1-9][0-9]*\n", text) else bad).append(text)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        pids = {sup.pid("w1")}
        for _ in range(5):
            before = sup.pid("w1")
            os.kill(before, signal.SIGHUP)
            wait_for(lambda: sup.pid("w1") != before and status(sup)["nodes"][0]["state"] == "ready", timeout=15,
                     what="w1 to be restarted")
            pids.add(sup.pid("w1"))
    finally:
        done.set()
        reader.join()
    assert not bad, f"read {len(bad)} bad pid files, e.g. {bad[:3]}"
    assert len(pids) == 6 and len(seen) > 100
    sup.check("stopwait")


def test_a_sighup_while_the_node_is_starting_is_kept_for_when_it_is_ready(sup):
    # Readiness after 1 s: the second HUP lands while the replacement is starting.
    sup.check("start", "w1", "--exec", sup.fake("--notify=1"))
    first = sup.pid("w1")
    os.kill(first, signal.SIGHUP)
    wait_for(lambda: sup.pid("w1") != first, timeout=15, what="the replacement's pid")
    second = sup.pid("w1")
    assert status(sup)["nodes"][0]["state"] == "starting"
    os.kill(second, signal.SIGHUP)  # blocked from exec on: it cannot kill the starting shim
    wait_for(lambda: status(sup)["nodes"][0]["restarts"] == 2 and status(sup)["nodes"][0]["state"] == "ready",
             timeout=20, what="the second restart")
    assert "once it is ready" in (sup.log_dir / "master.log").read_text()
    assert "crash" not in (sup.log_dir / "master.log").read_text()
    sup.check("stopwait")
