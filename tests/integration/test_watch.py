"""Hot reload's parts beside the master (issue 15), with real processes and real files:

- --watch / --watch:w1 / --watch-ignore / --watch-debounce reach the master, which replaces a watching node when a
  file below its paths changes (one burst, one replacement; ignored files and ccmulti's own files never), and
  bad values are one-line usage errors (exit 2);
- a plugin .so overwritten in place (truncated and rewritten, as `cp` and linkers do) while a task runs in it
  crashes nothing: the node runs its private copy;
- two native worker processes of one node name side by side (as a reload runs them during the old one's warm
  stop) do every task exactly once, on the embedded broker and on Redis, and `ccmulti inspect` sees one node,
  before and after the old one leaves."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import CCMULTI, Env, Redis, wait_for

BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
CHAOS_PLUGIN = BUILD / "tests" / "chaos" / "libccmulti_chaos_plugin.so"
EXAMPLE_PLUGIN = BUILD / "examples" / "plugin" / "libccmulti_example_plugin.so"
HOST = socket.gethostname()
SUCCEEDED = re.compile(r"Task (\S+)\[([0-9a-f-]+)\] succeeded in")


@pytest.fixture
def own():
    env = Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-watch-")))
    try:
        yield env
    finally:
        env.run("kill", timeout=30)
        shutil.rmtree(env.root, ignore_errors=True)


def node_pid(env, short):
    try:
        return int((env.run_dir / f"{short}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def change_lines(env):
    log = env.log_dir / "master.log"
    text = log.read_text() if log.exists() else ""
    # The watch's own line, not the reload's "reload (change: …): replacing …" that follows it.
    return [line[line.index("change: "):] for line in text.splitlines() if "change: " in line and "reload (" not in line]


def call(env, *args):
    out = env.run("call", *args, check=True)
    return out.stdout.strip()


def result(env, task_id, timeout=15):
    out = env.run("result", task_id, "--wait", "--timeout", timeout, "--json", timeout=timeout + 10)
    return json.loads(out.stdout)


# --- the options ----------------------------------------------------------------------------------------------


def test_watch_usage_errors(own):
    (own.root / "proj").mkdir()
    cases = [
        (["--watch", "missing/"], "--watch path missing/ of w1@" + HOST + " does not exist"),
        (["--watch="], "command line --watch: empty path"),
        (["--watch", "proj", "--watch-ignore="], "command line --watch-ignore: empty pattern"),
        (["--watch", "proj", "--watch-debounce=-1"], "command line --watch-debounce: expected a duration from 0 to 60"),
        (["--watch", "proj", "--watch-debounce", "soon"], "got string \"soon\""),
        (["--watch", "proj", "--watch-debounce", "61s"], "got string \"61s\""),
        (["--watch:w9", "proj"], "--watch:w9 names no node"),
    ]
    for args, message in cases:
        out = own.run("start", "w1", "--exec", "sleep 60", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    (own.root / "ccmulti.toml").write_text("[watch]\npaths = [\"proj\"]\ndebounce = -1\n")
    out = own.run("-C", own.root / "ccmulti.toml", "start", "w1", "--exec", "sleep 60")
    assert out.returncode == 2 and "ccmulti.toml:3" in out.stderr and "debounce" in out.stderr, out.stderr
    assert not (own.run_dir / "master.pid").exists() or own.run("status").returncode != 0


def test_the_inotify_watch_limit_fails_start(own):
    """The limit reached at start is exit 2 naming fs.inotify.max_user_watches, not a partial watch. The limit is
    lowered for this test only: inotify watches are counted per user namespace, and a new one may set its own."""
    if subprocess.run(["unshare", "-Ur", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespaces here (unshare -Ur)")
    (own.root / "proj/a/b/c/d").mkdir(parents=True)
    out = subprocess.run(["unshare", "-Ur", "sh", "-c", 'echo 3 > /proc/sys/user/max_inotify_watches && exec "$@"',
                          "sh", CCMULTI, "start", "w1", "--exec", "sleep 60", "--watch", "proj"],
                         capture_output=True, text=True, env=own.env, cwd=own.root, timeout=30)
    assert out.returncode == 2, out.stderr
    assert "fs.inotify.max_user_watches" in out.stderr and "cannot watch" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (own.run_dir / "master.pid").exists()


def test_show_does_not_pass_watch_options_to_the_worker(own):
    (own.root / "proj").mkdir()
    out = own.run("show", "w1", "--watch", "proj", "--watch-ignore", "*.txt", "--watch-debounce", "50ms", check=True)
    assert "--watch" not in out.stdout, out.stdout
    out = own.run("show", "w1", "-A", "proj", "--watch", "proj", check=True)
    assert "--watch" not in out.stdout, out.stdout


def test_nodes_watching_one_project_are_replaced_one_at_a_time(own):
    """w1, w2 and w3 all watch proj (each with watches of its own: their own log and pid files are ignored): one save
    replaces all three, one after the other, never two at once."""
    (own.root / "proj").mkdir()
    (own.root / "proj" / "tasks.py").write_text("x = 0\n")
    own.run("start", "w1", "w2", "w3", "-c", "1", "--watch", "proj", "--watch-debounce", "50ms", check=True)
    before = {name: node_pid(own, name) for name in ("w1", "w2", "w3")}
    (own.root / "proj" / "tasks.py").write_text("x = 1\n")
    wait_for(lambda: all(node_pid(own, n) not in (None, before[n]) for n in before), timeout=30,
             what="every node to be replaced")
    log = (own.log_dir / "master.log").read_text()
    events = re.findall(r"(w\d)@\S+: (replacing pid|replaced pid)", log)
    assert len(events) == 6, log
    for i in range(0, 6, 2):  # each replacement ends before the next begins
        assert events[i][1] == "replacing pid" and events[i + 1] == (events[i][0], "replaced pid"), events


def test_a_change_replaces_only_the_watching_node_once(own):
    """w1 watches the whole test dir, which holds the run, log and state dirs the nodes write to all the time:
    only the change to tasks.py replaces it, once for a burst of 20 writes, and w2 (not watching) stays."""
    (own.root / "tasks.py").write_text("x = 0\n")
    # A debounce far longer than the gaps between the burst's writes, even on a loaded machine (checked below).
    (own.root / "ccmulti.toml").write_text("[defaults]\nwatch_debounce = \"800ms\"\n")
    own.run("-C", own.root / "ccmulti.toml", "start", "w1", "w2", "-c", "1", "--watch:w1", ".",
            "--watch-ignore", "*.txt", check=True)
    w1, w2 = node_pid(own, "w1"), node_pid(own, "w2")
    for i in range(3):  # the database, the nodes' logs
        assert result(own, call(own, "ccmulti.echo", f"[{i}]"))["status"] == "SUCCESS"
    (own.root / "notes.txt").write_text("ignored\n")
    gaps, last = [], time.monotonic()
    for i in range(20):  # 20 writes in about 100 ms
        (own.root / "tasks.py").write_text(f"x = {i}\n")
        time.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    assert max(gaps) < 0.8, f"the burst was not one: a gap of {max(gaps):.3f}s between writes"
    wait_for(lambda: node_pid(own, "w1") not in (None, w1), timeout=15, what="w1 to be replaced")
    wait_for(lambda: own.run("status").returncode == 0, timeout=15, what="the new w1 to be ready")
    time.sleep(1.0)  # longer than the debounce: a second replacement would have begun by now
    assert change_lines(own) == ["change: tasks.py → replacing w1"], change_lines(own)
    assert node_pid(own, "w2") == w2
    assert result(own, call(own, "ccmulti.echo", "[9]"))["status"] == "SUCCESS"


# --- a plugin rebuilt in place --------------------------------------------------------------------------------


def test_a_plugin_overwritten_while_its_task_runs_crashes_nothing(own):
    if not CHAOS_PLUGIN.exists() or not EXAMPLE_PLUGIN.exists():
        pytest.fail(f"plugins not built: {CHAOS_PLUGIN}, {EXAMPLE_PLUGIN} (CCMULTI_BUILD_DIR)")
    plugin = own.root / "tasks.so"
    shutil.copyfile(CHAOS_PLUGIN, plugin)
    runs = own.root / "runs.log"
    own.run("start", "w1", "-c", "1", f"--plugin={plugin}", check=True)
    task_id = call(own, "chaos.sleep", json.dumps([1.0, str(runs)]))
    wait_for(lambda: runs.exists() and f"S {task_id}" in runs.read_text(), timeout=15, what="the task to start")
    pool = int(runs.read_text().split()[2])
    with open(plugin, "r+b") as f:  # as cp does: the same inode, truncated, then the other build written
        f.truncate(0)
        f.flush()
        os.fsync(f.fileno())
        f.write(EXAMPLE_PLUGIN.read_bytes())
    meta = result(own, task_id)
    assert meta["status"] == "SUCCESS" and meta["result"] == 1.0, meta
    assert f"E {task_id} {pool}" in runs.read_text()
    # The same pool process, still running the build it loaded: chaos.echo is not in the new file.
    echo = call(own, "chaos.echo", json.dumps(["still here", str(runs)]))
    assert result(own, echo)["result"] == "still here"
    assert f"E {echo} {pool}" in runs.read_text()


# --- two processes of one node name ---------------------------------------------------------------------------


def worker(env, log):
    args = [CCMULTI, "worker", "-n", f"w1@{HOST}", "-c", "2", "-l", "info"]
    return subprocess.Popen(args, env=env.env, cwd=env.root, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def inspect(env, method):
    out = env.run("inspect", method, "-d", "w1", "--json", "--timeout", "2")
    return json.loads(out.stdout).get(f"w1@{HOST}") if out.returncode == 0 else None


@pytest.mark.parametrize("broker_kind", ["embedded", "redis"])
def test_two_processes_of_one_node_do_every_task_once(own, broker_kind):
    redis = Redis(own.root / "redis") if broker_kind == "redis" else None
    broker = redis.url if redis else None
    if broker:
        own.env["CCMULTI_BROKER_URL"] = broker
    logs = [open(own.root / f"worker{i}.log", "w") for i in range(2)]
    old = new = None
    try:
        old = worker(own, logs[0])
        wait_for(lambda: (inspect(own, "stats") or {}).get("pid") == old.pid, timeout=20,
                 what="the first process to answer")
        new = worker(own, logs[1])
        # Both answer as one node; stats is the newest process's.
        wait_for(lambda: (inspect(own, "stats") or {}).get("pid") == new.pid, timeout=20,
                 what="the second process to answer")
        assert inspect(own, "ping") == {"ok": "pong"}
        # Until both have consumed (the premise: two processes of one name really share the queue), at most 200.
        def consumed_by_both():
            for log in logs:
                log.flush()
            return all(SUCCEEDED.search((own.root / f"worker{i}.log").read_text()) for i in range(2))
        ids = []
        while len(ids) < 200 and (len(ids) < 30 or not consumed_by_both()):
            ids.append(call(own, "ccmulti.echo", f"[{len(ids)}]"))
        # The old one leaves with a warm stop while tasks are still arriving.
        old.send_signal(signal.SIGTERM)
        ids += [call(own, "ccmulti.echo", f"[{i}]") for i in range(len(ids), len(ids) + 10)]
        assert old.wait(timeout=30) == 0
        for task_id in ids:
            assert result(own, task_id)["status"] == "SUCCESS", task_id
        assert inspect(own, "ping") == {"ok": "pong"}
        assert inspect(own, "stats")["pid"] == new.pid
        if not broker:  # the old process removed its own socket, not the new one's
            assert [p.name for p in own.run_dir.glob("inspect-*.sock")] == [f"inspect-w1@{HOST}~{new.pid}.sock"]
        for log in logs:
            log.flush()
        done = [[m.group(2) for m in SUCCEEDED.finditer((own.root / f"worker{i}.log").read_text())] for i in range(2)]
        assert done[0] and done[1], f"both processes consumed: {len(done[0])} and {len(done[1])} tasks"
        assert sorted(done[0] + done[1]) == sorted(ids), "every task done exactly once"
    finally:
        for proc in (old, new):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        for log in logs:
            log.close()
        if redis:
            redis.stop()
