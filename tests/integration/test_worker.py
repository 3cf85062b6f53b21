"""The native worker (`ccmulti worker`, run by `ccmulti start` for nodes without --exec) on the embedded SQLite
broker, with real processes: built-in tasks, results, a pool process killed mid-task, warm and cold shutdown,
time limits, expiry, unknown tasks, command tasks from a config file, a C++ plugin, two nodes sharing one
database, queues/purge, countdown, max_tasks_per_child.

Nodes that tests can share (they only add tasks and read results) are module-scoped; tests that stop or kill a
node start their own in their own directories. Every wait polls with a deadline (conftest.wait_for)."""
import collections
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest

from conftest import CCMULTI, Env, sigkill_until_gone, wait_for

BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
PROBE = BUILD / "tests" / "broker_probe"
PLUGIN = BUILD / "examples" / "plugin" / "libccmulti_example_plugin.so"
HOST = socket.gethostname()
PYTHON3 = "/usr/bin/python3"

RECEIVED = re.compile(r"Task (\S+)\[([0-9a-f-]+)\] received( \(redelivered\))?")
SUCCEEDED = re.compile(r"Task (\S+)\[([0-9a-f-]+)\] succeeded in")


# --- helpers -------------------------------------------------------------------------------------------------


def make_env(prefix="ccmulti-worker-"):
    root = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    return Env(root)


def ppids():
    """{pid: parent pid} of every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    return parents


def cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid):
    """True unless the process is gone or a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def processes_of(env):
    """{pid: cmdline} of the master of `env` and all its descendants (node shims, workers, pool processes).
    Found through the process tree: the titles overwrite the environment, so /proc/PID/environ cannot tell."""
    roots = []
    for pidfile in env.run_dir.glob("*.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline(pid).startswith(b"ccmulti"):
            roots.append(pid)
    children = collections.defaultdict(list)
    for pid, parent in ppids().items():
        children[parent].append(pid)
    found, todo = {}, list(roots)
    while todo:
        pid = todo.pop()
        if pid in found or not alive(pid):
            continue
        found[pid] = cmdline(pid)
        todo.extend(children[pid])
    return found


def pool_pids(env, node="w1"):
    """The pool processes of `node`, by their title `ccmulti: pool w1@HOST #N`: {index: pid}."""
    title = re.compile(rb"^ccmulti: pool " + re.escape(f"{node}@{HOST}".encode()) + rb" #(\d+)")
    pools = {}
    for pid, line in processes_of(env).items():
        m = title.match(line)
        if m:
            pools.setdefault(int(m.group(1)), []).append(pid)
    return pools


def kill_all(env):
    """Last resort after a test: SIGKILL whatever of `env` is still running."""
    sigkill_until_gone(lambda: processes_of(env))


def start(env, *args, check=True):
    return env.run("start", *args, check=check, timeout=60)


def shut_down(env):
    env.run("kill", timeout=30)
    kill_all(env)
    shutil.rmtree(env.root, ignore_errors=True)


def call(env, *args):
    """Sends a task, returns its id."""
    out = env.run("call", *args, check=True)
    return out.stdout.strip()


def result(env, task_id):
    proc = env.run("result", task_id, "--json")
    return json.loads(proc.stdout)


def wait_status(env, task_id, *statuses, timeout=15):
    def ready():
        meta = result(env, task_id)
        return meta if meta["status"] in statuses else None

    return wait_for(ready, timeout=timeout, interval=0.05, what=f"task {task_id} in {statuses}")


def log_text(env, node="w1"):
    path = env.log_dir / f"{node}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_log(env, predicate, what, node="w1", timeout=10):
    """The node's log reaches its file through the node shim, a moment after the event it tells of: poll."""
    try:
        return wait_for(lambda: predicate(log_text(env, node)), timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}; the log ends:\n{log_text(env, node)[-2000:]}") from None


def log_lines_about(env, task_id, node="w1"):
    return [line for line in log_text(env, node).splitlines() if task_id in line]


def db(env):
    return sqlite3.connect(env.state_dir / "broker.sqlite3", timeout=30)


# --- the shared node ------------------------------------------------------------------------------------------

ADD_PY = """import json, sys
call = json.load(sys.stdin)
print(json.dumps({"sum": sum(call["args"]), "task": call["task"]}))
"""
FAIL_PY = """import json, sys
json.load(sys.stdin)
raise ValueError('boom')
"""
SPAWN_PY = """import json, pathlib, subprocess, sys
json.load(sys.stdin)
child = subprocess.Popen(["/bin/sleep", "30"])
pathlib.Path(sys.argv[1]).write_text(str(child.pid))
child.wait()
"""
FDS_PY = """import json, os, sys
json.load(sys.stdin)
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
print(json.dumps([fd for fd in range(1024) if is_open(fd)]))
"""
CONFIG = """
[tasks."tasks.fds"]
command = ["/usr/bin/python3", "fds.py"]

[tasks."tasks.spawn"]
command = ["/usr/bin/python3", "spawn.py", "spawned.pid"]

[tasks."tasks.slow"]
command = ["/usr/bin/python3", "-c", "import sys, time; sys.stdin.read(); time.sleep(5)"]
soft_time_limit = 0.5
time_limit = 4

[tasks."tasks.add"]
command = ["/usr/bin/python3", "add.py"]

[tasks."tasks.fail"]
command = ["/usr/bin/python3", "fail.py"]
"""


@pytest.fixture(scope="module")
def node():
    """w1, two pool processes, with command tasks from ccmulti.toml and the example plugin."""
    if not PLUGIN.exists():
        pytest.fail(f"example plugin not built: {PLUGIN} (CCMULTI_BUILD_DIR)")
    env = make_env()
    (env.root / "add.py").write_text(ADD_PY)
    (env.root / "fail.py").write_text(FAIL_PY)
    (env.root / "spawn.py").write_text(SPAWN_PY)
    (env.root / "fds.py").write_text(FDS_PY)
    (env.root / "ccmulti.toml").write_text(CONFIG)
    try:
        # celery multi's grammar: a long option takes its value after '=' (`--plugin PATH` would make PATH a node).
        env.run("-C", env.root / "ccmulti.toml", "start", "w1", "-c", "2", f"--plugin={PLUGIN}", check=True)
        yield env
    finally:
        shut_down(env)


@pytest.fixture
def own():
    """A private directory set for a test that starts, stops or kills its own nodes."""
    env = make_env()
    try:
        yield env
    finally:
        shut_down(env)


# --- 1. built-ins and results ---------------------------------------------------------------------------------


def test_builtins_with_call_wait(node):
    ping = node.run("call", "ccmulti.ping", "--wait", "--timeout", "10")
    assert ping.returncode == 0, ping.stderr
    assert json.loads(ping.stdout) == "pong"

    echo = node.run("call", "ccmulti.echo", '[{"a": [1, 2]}]', "--wait", "--timeout", "10", check=True)
    assert json.loads(echo.stdout) == {"a": [1, 2]}

    sleep = node.run("call", "ccmulti.sleep", "[0.2]", "--wait", "--timeout", "10", check=True)
    assert json.loads(sleep.stdout) == 0.2

    fail = node.run("call", "ccmulti.fail", '["boom", "ValueError"]', "--wait", "--timeout", "10")
    assert fail.returncode == 1
    assert "ValueError: boom" in fail.stderr


def test_result_json_states(node):
    ok = call(node, "ccmulti.echo", "[7]")
    meta = wait_status(node, ok, "SUCCESS", "FAILURE")
    assert meta["status"] == "SUCCESS" and meta["result"] == 7 and meta["task_id"] == ok

    bad = call(node, "ccmulti.fail", '["boom", "ValueError"]')
    meta = wait_status(node, bad, "SUCCESS", "FAILURE")
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ValueError" and "boom" in json.dumps(meta["result"])
    assert node.run("result", bad, "--json").returncode == 1

    unknown = node.run("result", "00000000-0000-4000-8000-000000000000", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["status"] == "UNKNOWN"

    # No node consumes 'nobody-pending': the task stays PENDING in its queue.
    queued = call(node, "ccmulti.ping", "-Q", "nobody-pending")
    meta = result(node, queued)
    assert meta == {"task_id": queued, "status": "PENDING", "queue": "nobody-pending", "reserved": False}
    node.run("purge", "nobody-pending", check=True)


# --- 2. a pool process killed mid-task ------------------------------------------------------------------------


def test_sigkill_of_a_pool_process_reruns_the_task_once(node):
    before = pool_pids(node)
    assert sorted(before) == [1, 2] and all(len(p) == 1 for p in before.values()), before
    task_id = call(node, "ccmulti.sleep", "[1.5]")
    started = wait_status(node, task_id, "STARTED", "SUCCESS")
    assert started["status"] == "STARTED"
    victim = started["result"]["pid"]
    assert victim in [p[0] for p in before.values()], (victim, before)
    os.kill(victim, signal.SIGKILL)

    meta = wait_status(node, task_id, "SUCCESS", "FAILURE", timeout=20)
    assert meta["status"] == "SUCCESS" and meta["result"] == 1.5
    lines = log_lines_about(node, task_id)
    received = [m for m in map(RECEIVED.search, lines) if m]
    assert len(received) == 2 and not received[0].group(3) and received[1].group(3), lines
    assert len([line for line in lines if SUCCEEDED.search(line)]) == 1, lines
    assert any("returned to queue" in line and str(victim) in line for line in lines), lines
    # One stored result row, SUCCESS.
    with db(node) as conn:
        rows = conn.execute("SELECT status FROM results WHERE task_id = ?", (task_id,)).fetchall()
    assert rows == [("SUCCESS",)]

    # The pool is back to two processes, the killed one replaced.
    def replaced():
        pools = pool_pids(node)
        pids = [p for ps in pools.values() for p in ps]
        return sorted(pools) == [1, 2] and len(pids) == 2 and victim not in pids

    wait_for(replaced, timeout=10, what="the killed pool process to be replaced")
    assert json.loads(node.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"


def test_an_idle_pool_process_that_dies_is_replaced(node):
    wait_for(lambda: sorted(pool_pids(node)) == [1, 2], timeout=10, what="a whole pool")
    victim = pool_pids(node)[2][0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: pool_pids(node).get(2, [victim])[0] != victim, timeout=10, what="pool process #2 replaced")
    line = f"pool process {victim} (#2) exited unexpectedly (signal KILL); replacing it"
    wait_log(node, lambda text: line in text, what="the pool-process line")
    assert json.loads(node.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"


def test_hup_and_usr1_do_not_end_the_node(node):
    """The node shim forwards HUP and USR1 to the worker; like Celery's, the node must survive both (USR1 is a
    habit of Celery operators: it dumps what runs)."""
    [worker] = [pid for pid, line in processes_of(node).items() if line.startswith(f"ccmulti: worker w1@{HOST}".encode())]
    task_id = call(node, "ccmulti.sleep", "[0.5]")
    wait_status(node, task_id, "STARTED")
    for sig in (signal.SIGUSR1, signal.SIGHUP):
        os.kill(worker, sig)
    wait_for(lambda: "SIGHUP ignored" in log_text(node), timeout=5, what="the SIGHUP log line")
    assert f"running ccmulti.sleep[{task_id}]" in log_text(node)
    assert wait_status(node, task_id, "SUCCESS", "FAILURE")["status"] == "SUCCESS"
    assert json.loads(node.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"
    assert alive(worker)


def test_inspect_shows_the_running_task_and_the_pool(node):
    name = f"w1@{HOST}"
    task_id = call(node, "ccmulti.sleep", "[1.5]")
    pid = wait_status(node, task_id, "STARTED")["result"]["pid"]
    active = json.loads(node.run("inspect", "active", "--json", check=True).stdout)
    [entry] = [t for t in active[name] if t["id"] == task_id]
    assert entry["worker_pid"] == pid and entry["name"] == "ccmulti.sleep" and entry["args"] == [1.5]
    assert entry["acknowledged"] is False  # late ack: still in the broker while it runs
    stats = json.loads(node.run("inspect", "stats", "--json", check=True).stdout)[name]
    assert sorted(stats["pool"]["processes"]) == sorted(p for ps in pool_pids(node).values() for p in ps)
    assert stats["pool"]["max-concurrency"] == 2
    assert wait_status(node, task_id, "SUCCESS", "FAILURE")["status"] == "SUCCESS"
    stats = json.loads(node.run("inspect", "stats", "--json", check=True).stdout)[name]
    assert stats["total"].get("ccmulti.sleep", 0) >= 1, stats["total"]


# --- 3, 4. cold and warm shutdown -----------------------------------------------------------------------------


def test_cold_shutdown_requeues_the_running_task(own):
    start(own, "w1", "-c", "1")
    task_id = call(own, "ccmulti.sleep", "[2]")
    wait_status(own, task_id, "STARTED")
    pool = pool_pids(own)[1][0]
    stop = own.run("stop", "--cold", "--wait", "--timeout", "20", timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert "killed" not in stop.stdout, stop.stdout  # it obeyed QUIT, no SIGKILL was needed
    assert not alive(pool), "the pool process survived the cold shutdown"

    meta = result(own, task_id)
    assert meta["status"] != "SUCCESS", meta
    queues = {q["name"]: q for q in json.loads(own.run("queues", "--json", check=True).stdout)}
    assert queues["celery"]["ready"] == 1 and queues["celery"]["reserved"] == 0, queues
    assert queues["celery"]["no_consumer"], queues

    start(own, "w1", "-c", "1")
    meta = wait_status(own, task_id, "SUCCESS", "FAILURE", timeout=20)
    assert meta["status"] == "SUCCESS" and meta["result"] == 2
    received = [m for m in map(RECEIVED.search, log_lines_about(own, task_id)) if m]
    assert len(received) == 2 and received[1].group(3), log_lines_about(own, task_id)


def test_sigquit_to_the_worker_is_a_cold_shutdown(own):
    start(own, "w1", "-c", "1")
    task_id = call(own, "ccmulti.sleep", "[2]")
    started = wait_status(own, task_id, "STARTED")
    pool = started["result"]["pid"]
    worker = [pid for pid, cmd in processes_of(own).items() if cmd.startswith(f"ccmulti: worker w1@{HOST}".encode())]
    assert len(worker) == 1, processes_of(own)
    os.kill(worker[0], signal.SIGQUIT)
    wait_for(lambda: not alive(pool), timeout=10, what="the pool process to be killed")
    wait_for(lambda: not alive(worker[0]), timeout=15, what="the worker to exit after SIGQUIT")
    assert result(own, task_id)["status"] != "SUCCESS"
    assert any("cold shutdown" in line for line in log_text(own).splitlines())


def test_one_sigterm_to_the_node_group_is_a_warm_shutdown(own):
    """`kill -TERM -PGID` (timeout(1), init scripts) reaches the worker directly and through its node shim: the
    two copies are one request, so the running task finishes (warm), it is not killed as by a second TERM."""
    start(own, "w1", "-c", "1")
    task_id = call(own, "ccmulti.sleep", "[3]")
    pool = wait_status(own, task_id, "STARTED")["result"]["pid"]
    [worker] = [pid for pid, cmd in processes_of(own).items() if cmd.startswith(f"ccmulti: worker w1@{HOST}".encode())]
    group = os.getpgid(worker)
    assert group != os.getpgid(0)
    # The two copies often arrive together and merge into one pending signal; the shim is held back here so
    # that its copy comes after the worker has acted on the direct one, as it does when the shim is slow.
    shim = ppids()[worker]
    os.kill(shim, signal.SIGSTOP)
    try:
        os.killpg(group, signal.SIGTERM)
        # The worker's own log goes through the (stopped) shim; its STOPPING=1 reaches the master directly.
        wait_for(lambda: "says it is stopping" in log_text(own, "master"), timeout=10, what="the warm shutdown")
    finally:
        os.kill(shim, signal.SIGCONT)
    meta = wait_status(own, task_id, "SUCCESS", "FAILURE", timeout=20)
    assert meta["status"] == "SUCCESS", meta
    assert ": cold shutdown," not in log_text(own)
    assert "counted once" in log_text(own)
    wait_for(lambda: not alive(pool), timeout=15, what="the pool process to exit")


def test_cold_shutdown_kills_what_a_command_task_started(own):
    (own.root / "spawn.py").write_text(SPAWN_PY)
    (own.root / "ccmulti.toml").write_text(CONFIG)
    own.run("-C", own.root / "ccmulti.toml", "start", "w1", "-c", "1", check=True)
    marker = own.root / "spawned.pid"
    task_id = call(own, "tasks.spawn")
    wait_for(lambda: marker.exists() and marker.read_text(), timeout=10, what="the command to start its child")
    spawned = int(marker.read_text())
    own.run("stop", "--cold", "--wait", "--timeout", "20", check=True, timeout=30)
    wait_for(lambda: not alive(spawned), timeout=5, what=f"the command's child {spawned} to be killed")
    assert result(own, task_id)["status"] != "SUCCESS"


def test_warm_stop_waits_for_the_running_task(own):
    start(own, "w1", "-c", "1")
    task_id = call(own, "ccmulti.sleep", "[1.5]")
    waiting = [call(own, "ccmulti.echo", f"[{i}]") for i in range(2)]  # prefetched behind it
    wait_status(own, task_id, "STARTED")
    wait_for(lambda: all(result(own, w).get("reserved") for w in waiting), timeout=5, what="the others reserved")
    node_pids = [pid for pid, line in processes_of(own).items() if not line.startswith(b"ccmulti: master")]
    assert len(node_pids) == 3, node_pids  # shim, worker, pool
    t0 = time.monotonic()
    stop = own.run("stop", "--wait", "--timeout", "20", timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert time.monotonic() - t0 > 0.5, "stop --wait returned before the task could have finished"
    # The node has exited, and its task finished before it did.
    assert not [pid for pid in node_pids if alive(pid)]
    meta = result(own, task_id)
    assert meta["status"] == "SUCCESS" and meta["result"] == 1.5, meta
    # What it had prefetched went back to the queue, not run.
    for w in waiting:
        assert result(own, w) == {"task_id": w, "status": "PENDING", "queue": "celery", "reserved": False}
    start(own, "w1", "-c", "1")
    for i, w in enumerate(waiting):
        meta = wait_status(own, w, "SUCCESS", "FAILURE")
        assert meta["status"] == "SUCCESS" and meta["result"] == i


def test_warm_stop_past_the_stop_timeout_turns_cold_and_requeues(own):
    start(own, "w1", "-c", "1", "--stop-timeout=1")
    task_id = call(own, "ccmulti.sleep", "[4]")
    wait_status(own, task_id, "STARTED")
    t0 = time.monotonic()
    stop = own.run("stop", "--wait", timeout=30)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert time.monotonic() - t0 < 3.5, "the stop timeout did not cut the task short"
    assert result(own, task_id)["status"] == "STARTED"
    queues = {q["name"]: q for q in json.loads(own.run("queues", "--json", check=True).stdout)}
    assert queues["celery"]["ready"] == 1, queues
    assert "cold shutdown" in log_text(own)


def test_worker_in_the_foreground_two_ctrl_c_are_warm_then_cold(own):
    """`ccmulti worker` run by hand: the first SIGINT waits for the running task, the second ends it (and
    returns it to the queue); exit code 0 either way."""
    own.state_dir.mkdir(parents=True, exist_ok=True)
    log = open(own.root / "worker.log", "w")
    proc = subprocess.Popen([CCMULTI, "worker", "-n", "fg", "-c", "1"], env=own.env, cwd=own.root,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def consumers():
            out = own.run("queues", "--json")
            return out.returncode == 0 and any(f"fg@{HOST}" in q["consumers"] for q in json.loads(out.stdout))

        wait_for(consumers, timeout=15, what="the foreground worker to consume")
        task_id = call(own, "ccmulti.sleep", "[3]")
        wait_status(own, task_id, "STARTED")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "warm shutdown" in (own.root / "worker.log").read_text(), timeout=5, what="warm shutdown")
        assert proc.poll() is None, "the first Ctrl+C did not wait for the running task"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        text = (own.root / "worker.log").read_text()
        assert "cold shutdown, 1 running task(s) go back to their queues" in text, text
        assert result(own, task_id)["status"] == "STARTED"
        queues = {q["name"]: q for q in json.loads(own.run("queues", "--json", check=True).stdout)}
        assert queues["celery"]["ready"] == 1, queues
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


# --- 5. time limits -------------------------------------------------------------------------------------------


def test_hard_time_limit_kills_the_task_and_the_node_keeps_serving(node):
    t0 = time.monotonic()
    out = node.run("call", "ccmulti.sleep", "[5]", "--time-limit", "1", "--wait", "--timeout", "15")
    assert out.returncode == 1
    assert "TimeLimitExceeded" in out.stderr
    assert time.monotonic() - t0 < 4.5
    assert json.loads(node.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"
    wait_for(lambda: sorted(pool_pids(node)) == [1, 2], timeout=10, what="the pool to be whole again")


def test_soft_time_limit_raises_in_the_task(node):
    t0 = time.monotonic()
    out = node.run("call", "ccmulti.sleep", "[5]", "--soft-time-limit", "0.5", "--wait", "--timeout", "15")
    assert out.returncode == 1
    assert "SoftTimeLimitExceeded" in out.stderr
    assert time.monotonic() - t0 < 4.5


def test_node_options_queues_and_time_limit(own):
    """-Q and --time-limit given to `start` reach the worker: it consumes both queues, and every task gets the
    node's hard limit unless its message has its own."""
    start(own, "w1", "-c", "1", "-Q", "alpha,beta", "--time-limit=1")
    for queue in ("alpha", "beta"):
        out = own.run("call", "ccmulti.echo", f'["{queue}"]', "-Q", queue, "--wait", "--timeout", "10")
        assert out.returncode == 0 and json.loads(out.stdout) == queue, out.stderr
    out = own.run("call", "ccmulti.sleep", "[5]", "-Q", "beta", "--wait", "--timeout", "10")
    assert out.returncode == 1 and "TimeLimitExceeded" in out.stderr, out.stderr
    out = own.run("call", "ccmulti.sleep", "[1.2]", "-Q", "alpha", "--time-limit", "3", "--wait", "--timeout", "10")
    assert out.returncode == 0 and json.loads(out.stdout) == 1.2, out.stderr
    queues = {q["name"]: q for q in json.loads(own.run("queues", "--json", check=True).stdout)}
    assert queues["alpha"]["consumers"] == queues["beta"]["consumers"] == [f"w1@{HOST}"]


def test_time_limits_from_the_config_file(node):
    """[tasks."tasks.slow"] soft_time_limit = 0.5: the command gets SIGUSR1 and dies of it."""
    t0 = time.monotonic()
    out = node.run("call", "tasks.slow", "--wait", "--timeout", "15")
    assert out.returncode == 1
    assert "SoftTimeLimitExceeded" in out.stderr, out.stderr  # not the hard limit (4 s), not success (5 s)
    assert time.monotonic() - t0 < 3.9


def test_a_task_whose_pool_process_keeps_dying_fails_worker_lost(node):
    task_id = call(node, "ccmulti.sleep", "[2]")
    killed = []
    for _ in range(3):
        def started_again():
            meta = result(node, task_id)
            pid = meta.get("result", {}).get("pid") if meta["status"] == "STARTED" else None
            return pid if pid and pid not in killed else None

        pid = wait_for(started_again, timeout=10, interval=0.05, what="the task to start (again)")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    meta = wait_status(node, task_id, "FAILURE", "SUCCESS", timeout=10)
    assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "WorkerLostError", meta
    assert "Worker exited prematurely: signal" in json.dumps(meta["result"]), meta
    wait_for(lambda: sorted(pool_pids(node)) == [1, 2], timeout=10, what="the pool to be whole again")


# --- 6. expiry ------------------------------------------------------------------------------------------------


def test_expired_task_is_revoked_and_never_runs(node):
    # Due in 1 s, expired after 0.3 s: by the time it may run it has expired.
    task_id = call(node, "ccmulti.echo", '["late"]', "--countdown", "1", "--expires", "0.3")
    meta = wait_status(node, task_id, "REVOKED", "SUCCESS", "FAILURE", timeout=10)
    assert meta["status"] == "REVOKED", meta
    lines = log_lines_about(node, task_id)
    assert not any(RECEIVED.search(line) for line in lines), lines
    assert any("expired" in line for line in lines), lines
    assert node.run("result", task_id).returncode == 1


def test_a_task_expiring_while_reserved_is_revoked_not_run(node):
    """Reserved (prefetched) while both pool processes are busy, it expires before one is free: Celery checks
    expiry again when a task is about to run, and so must the node."""
    busy = [call(node, "ccmulti.sleep", "[4]") for _ in range(2)]
    for task_id in busy:
        wait_status(node, task_id, "STARTED")
    late = call(node, "ccmulti.echo", '["late"]', "--expires", "1")
    expired_by = time.time() + 1  # the client stamped `expires` before `call` returned
    # Reserved behind them (on a very slow machine it may already have expired on arrival: REVOKED too).
    wait_for(lambda: result(node, late).get("reserved") or result(node, late)["status"] == "REVOKED", timeout=5,
             what="the task to be reserved")
    done = [wait_status(node, task_id, "SUCCESS", "FAILURE", timeout=20) for task_id in busy]
    assert all(meta["status"] == "SUCCESS" for meta in done), done
    # The premise: no pool process was free before the task expired.
    freed = min(datetime.datetime.fromisoformat(meta["date_done"]).timestamp() for meta in done)
    assert freed > expired_by, f"a pool process was free {expired_by - freed:.2f} s before the task expired"
    meta = wait_status(node, late, "REVOKED", "SUCCESS", "FAILURE", timeout=10)
    assert meta["status"] == "REVOKED", meta
    assert not any(RECEIVED.search(line) for line in log_lines_about(node, late)), log_lines_about(node, late)


def test_retries_then_success_and_max_retries(node):
    out = node.run("call", "ccmulti.retry", "[2, 0.2]", "--wait", "--timeout", "15")
    assert out.returncode == 0 and json.loads(out.stdout) == 2, out.stderr
    out = node.run("call", "ccmulti.retry", "[9, 0.1]", "--wait", "--timeout", "15")
    assert out.returncode == 1 and "MaxRetriesExceededError" in out.stderr, out.stderr


# --- 7. unknown task ------------------------------------------------------------------------------------------


def test_unknown_task_fails_not_registered(node):
    out = node.run("call", "no.such.task", "[1]", "--wait", "--timeout", "10")
    assert out.returncode == 1
    assert "NotRegistered" in out.stderr
    wait_log(node, lambda text: any("no.such.task" in line and "NotRegistered" in line for line in text.splitlines()),
             what="the NotRegistered line")


def test_an_undecodable_message_fails_and_leaves_the_queue(node):
    """A message no node can decode (written by something else) is settled as FAILURE once, not redelivered
    for ever, and the node goes on."""
    task_id = "0badc0de-0000-4000-8000-000000000001"
    with db(node) as conn:
        conn.execute("INSERT INTO messages (queue, task_id, task_name, envelope, published_at) VALUES (?, ?, ?, ?, ?)",
                     ("celery", task_id, "ccmulti.ping", "{not json", time.time()))
        wakes = [row[0] for row in conn.execute("SELECT wake FROM consumers")]
    for wake in wakes:  # what a publisher does after its commit
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(b"\x01", "\0" + wake)
            except OSError:
                pass
    meta = wait_status(node, task_id, "FAILURE", "SUCCESS", timeout=15)
    assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "ContentDisallowed", meta
    with db(node) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE task_id = ?", (task_id,)).fetchone()[0] == 0
    assert json.loads(node.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"


def test_a_deeply_nested_message_fails_and_the_node_goes_on(own):
    """Arguments nested 100,000 levels deep (in the body, and in a header of another message): no node may
    overflow its stack on them. Each is settled as FAILURE ContentDisallowed, the worker is the same process
    afterwards, and the task behind them runs."""
    import base64
    depth = 100_000
    deep = "[" * depth + "]" * depth
    in_body = call(own, "ccmulti.echo", '["x"]', "-Q", "held")  # no consumer yet: rewritten below
    in_header = call(own, "ccmulti.echo", '["x"]', "-Q", "held")
    with db(own) as conn:
        for task_id in (in_body, in_header):
            text = conn.execute("SELECT envelope FROM messages WHERE task_id = ?", (task_id,)).fetchone()[0]
            envelope = json.loads(text)
            if task_id == in_body:
                args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
                body = "[[" + deep + "]," + json.dumps(kwargs) + "," + json.dumps(embed) + "]"
                envelope["body"] = base64.b64encode(body.encode()).decode()
                text = json.dumps(envelope)
            else:
                text = text[:-1] + ', "x-deep": ' + deep + "}"
            conn.execute("UPDATE messages SET envelope = ?, queue = 'celery' WHERE task_id = ?", (text, task_id))
    after = call(own, "ccmulti.ping")
    start(own, "w1", "-c", "1")
    [worker] = [pid for pid, cmd in processes_of(own).items() if cmd.startswith(f"ccmulti: worker w1@{HOST}".encode())]
    for task_id in (in_body, in_header):
        meta = wait_status(own, task_id, "FAILURE", "SUCCESS", timeout=20)
        assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "ContentDisallowed", meta
        assert "nested deeper than" in meta["result"]["exc_message"][0], meta
    assert wait_status(own, after, "SUCCESS", timeout=20)["result"] == "pong"
    assert alive(worker), "the worker crashed"
    assert "exited" not in own.run("status").stdout


def sanitized_build():
    cache = BUILD / "CMakeCache.txt"
    return cache.exists() and re.search(r"^CCMULTI_SANITIZE:\w+=\S", cache.read_text(), re.M) is not None


@pytest.mark.skipif(sanitized_build(), reason="decoding a 90 MB message takes ~45 s under ASan; ~5 s otherwise")
def test_a_request_too_large_for_the_pool_fails_and_the_node_goes_on(own):
    """Arguments over the pool pipes' 64 MiB frame limit: the task fails (EncodeError) instead of being handed
    to one pool process after another, and what comes after it still runs."""
    import base64
    task_id = call(own, "ccmulti.echo", '["x"]', "-Q", "held")  # no consumer yet: rewritten below
    with db(own) as conn:
        envelope = json.loads(conn.execute("SELECT envelope FROM messages WHERE task_id = ?", (task_id,)).fetchone()[0])
        args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
        envelope["body"] = base64.b64encode(json.dumps([["A" * (65 << 20)], kwargs, embed]).encode()).decode()
        conn.execute("UPDATE messages SET envelope = ?, queue = 'celery' WHERE task_id = ?",
                     (json.dumps(envelope), task_id))
    del envelope
    after = call(own, "ccmulti.ping")
    start(own, "w1", "-c", "1")
    meta = wait_status(own, task_id, "FAILURE", "SUCCESS", timeout=90)  # decoding 90 MB takes a while
    assert meta["result"]["exc_type"] == "EncodeError", meta
    assert meta["args"] == [] and "over the pool's limit" in meta["traceback"]
    assert wait_status(own, after, "SUCCESS", "FAILURE")["status"] == "SUCCESS"
    assert len(pool_pids(own).get(1, [])) == 1


# --- 8, 9. command tasks and a plugin -------------------------------------------------------------------------


def test_command_tasks_from_the_config_file(node):
    out = node.run("call", "tasks.add", "[2, 3]", "--wait", "--timeout", "15")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"sum": 5, "task": "tasks.add"}

    out = node.run("call", "tasks.fail", "--wait", "--timeout", "15")
    assert out.returncode == 1
    assert "ValueError: boom" in out.stderr


def test_a_command_task_sees_only_stdin_stdout_and_stderr(node):
    """The pool process's request and reply pipes (fds 3 and 4) must not reach a command: with them a task
    could read other tasks' requests or forge replies."""
    out = node.run("call", "tasks.fds", "--wait", "--timeout", "15")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0, 1, 2]


def test_hard_time_limit_of_a_command_task_kills_what_it_started(node):
    """The command runs in its own process group; the node's hard limit must reach the whole group, not only
    the pool process (whose death takes just the command's leader along, by PR_SET_PDEATHSIG)."""
    marker = node.root / "spawned.pid"
    marker.unlink(missing_ok=True)
    out = node.run("call", "tasks.spawn", "--time-limit", "1", "--wait", "--timeout", "15")
    assert out.returncode == 1 and "TimeLimitExceeded" in out.stderr, out.stderr
    spawned = int(marker.read_text())
    wait_for(lambda: not alive(spawned), timeout=5, what=f"the command's child {spawned} to be killed")


def test_a_pool_process_killed_mid_command_takes_the_command_group_along(node):
    """SIGKILL from outside (OOM killer, a user) to the pool process running a command: PR_SET_PDEATHSIG ends
    the command itself, and the node (its subreaper) must end what the command started."""
    marker = node.root / "spawned.pid"
    marker.unlink(missing_ok=True)
    task_id = call(node, "tasks.spawn")
    # Requeued after each loss, it runs again; the third loss fails it (WorkerLostError), so nothing runs on.
    children = []
    for run in range(3):
        wait_for(lambda: marker.exists() and marker.read_text() and int(marker.read_text()) not in children,
                 timeout=10, what=f"run {run + 1} to start its child")
        children.append(int(marker.read_text()))
        os.kill(result(node, task_id)["result"]["pid"], signal.SIGKILL)
        wait_for(lambda: not alive(children[-1]), timeout=5, what=f"the command's child {children[-1]} to be killed")
    meta = wait_status(node, task_id, "FAILURE", "SUCCESS")
    assert meta["result"]["exc_type"] == "WorkerLostError", meta
    wait_for(lambda: sorted(pool_pids(node)) == [1, 2], timeout=10, what="the pool to be whole again")


def test_a_missing_command_program_fails_clearly(own):
    (own.root / "ccmulti.toml").write_text('[tasks."t.missing"]\ncommand = ["/nonexistent/prog"]\n')
    own.run("-C", own.root / "ccmulti.toml", "start", "w1", "-c", "1", check=True)
    out = own.run("call", "t.missing", "--wait", "--timeout", "10")
    assert out.returncode == 1
    assert "CommandError: cannot run '/nonexistent/prog': No such file or directory" in out.stderr, out.stderr


def test_a_plugin_that_cannot_load_fails_start(own):
    out = start(own, "w1", "-c", "1", "--plugin=/nonexistent/plugin.so", check=False)
    assert out.returncode == 1
    assert "cannot load plugin /nonexistent/plugin.so" in out.stderr, out.stderr


def test_plugin_task(node):
    out = node.run("call", "example.add", "[2, 3]", "--wait", "--timeout", "10")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == 5
    out = node.run("call", "example.divide", "[1, 0]", "--wait", "--timeout", "10")
    assert out.returncode == 1 and "ZeroDivisionError: division by zero" in out.stderr


def test_ignore_result_stores_nothing(node):
    task_id = call(node, "ccmulti.echo", '["quiet"]', "--ignore-result")
    wait_for(lambda: any(SUCCEEDED.search(line) for line in log_lines_about(node, task_id)), timeout=10,
             what="the task to run")
    assert result(node, task_id)["status"] == "UNKNOWN"


# --- 11, 12. queues and countdown -----------------------------------------------------------------------------


def test_queues_flags_a_queue_without_consumer_and_purge(node):
    for _ in range(3):
        call(node, "ccmulti.ping", "-Q", "orphans")
    queues = {q["name"]: q for q in json.loads(node.run("queues", "--json", check=True).stdout)}
    assert queues["orphans"]["ready"] == 3 and queues["orphans"]["no_consumer"] and not queues["orphans"]["consumers"]
    assert queues["celery"]["consumers"] == [f"w1@{HOST}"] and not queues["celery"]["no_consumer"], queues
    assert node.run("purge", "orphans", check=True).stdout.strip() == "purged 3 messages from 'orphans'"
    queues = {q["name"]: q for q in json.loads(node.run("queues", "--json", check=True).stdout)}
    assert queues.get("orphans", {"ready": 0})["ready"] == 0


def test_countdown_delays_the_task(node):
    sent = time.monotonic()
    task_id = call(node, "ccmulti.ping", "--countdown", "2")
    assert result(node, task_id)["status"] == "PENDING"
    meta = wait_status(node, task_id, "SUCCESS", "FAILURE", timeout=10)
    ran = time.monotonic() - sent
    assert meta["status"] == "SUCCESS"
    assert 1.95 <= ran < 8, f"ran after {ran:.2f}s"


BAD_SECONDS = ("nan", "-1", "1e308", "inf")


def test_bad_durations_on_the_command_line_are_usage_errors(own):
    """NaN, negative and absurd seconds are refused with one clear line and exit 2, never taken as 0 or overflowed
    into an instant kill."""
    for value in BAD_SECONDS:
        for args in (("call", "ccmulti.ping", "--countdown", value), ("call", "ccmulti.ping", "--expires", value),
                     ("call", "ccmulti.ping", "--time-limit", value), ("call", "ccmulti.ping", "--wait", "--timeout",
                                                                       value),
                     ("start", "w1", "--start-secs", value), ("start", "w1", f"--stop-timeout={value}"),
                     ("stop", "--timeout", value)):
            out = own.run(*args)
            assert out.returncode == 2, (args, out.returncode, out.stdout, out.stderr)
            lines = out.stderr.strip().splitlines()
            option = next(a for a in args if a.startswith("--") and a != "--wait").split("=")[0]
            assert len(lines) == 1 and option in lines[0] and "seconds" in lines[0], (args, out.stderr)
    assert not (own.run_dir / "master.pid").exists()
    # A worker option is checked by the worker: the node fails to start, and start says why.
    out = own.run("start", "w1", "--time-limit=nan")
    assert out.returncode == 1 and "--time-limit takes a number of seconds from 0 to 1e+09, not 'nan'" in out.stderr, \
        out.stderr


def test_bad_durations_in_messages_fail_the_task_and_the_node_goes_on(own):
    """A message's time limit of -1 or 1e308 is FAILURE ContentDisallowed (not an instant kill, not overflow);
    ccmulti.sleep(1e308) is FAILURE ValueError; an eta in the year 9999 waits instead of overflowing a timer and
    one in the year 1 runs at once. The worker is the same process at the end."""
    rewrite = {}
    for limit in ("-1", "1e308"):
        rewrite[call(own, "ccmulti.ping", "-Q", "held")] = ("timelimit", [float(limit), None])
    far = call(own, "ccmulti.ping", "-Q", "held")
    past = call(own, "ccmulti.ping", "-Q", "held")
    with db(own) as conn:
        def update(task_id, key, value, eta=None):
            envelope = json.loads(conn.execute("SELECT envelope FROM messages WHERE task_id = ?",
                                               (task_id,)).fetchone()[0])
            envelope["headers"][key] = value
            conn.execute("UPDATE messages SET envelope = ?, queue = 'celery', eta = ? WHERE task_id = ?",
                         (json.dumps(envelope), eta, task_id))
        for task_id, (key, value) in rewrite.items():
            update(task_id, key, value)
        update(far, "eta", "9999-12-31T00:00:00+00:00", 253370764800.0)
        update(past, "eta", "0001-01-01T00:00:00+00:00", -62135596800.0)
    start(own, "w1", "-c", "1")
    [worker] = [pid for pid, cmd in processes_of(own).items() if cmd.startswith(f"ccmulti: worker w1@{HOST}".encode())]
    for task_id in rewrite:
        meta = wait_status(own, task_id, "FAILURE", "SUCCESS", timeout=20)
        assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "ContentDisallowed", meta
        assert "timelimit" in meta["result"]["exc_message"][0], meta
    assert wait_status(own, past, "SUCCESS", "FAILURE", timeout=20)["status"] == "SUCCESS"
    sleep = call(own, "ccmulti.sleep", "[1e308]")
    meta = wait_status(own, sleep, "FAILURE", "SUCCESS", timeout=20)
    assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "ValueError", meta
    assert json.loads(own.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"
    assert result(own, far)["status"] == "PENDING"
    assert alive(worker), "the worker crashed"


# --- 13. max_tasks_per_child ----------------------------------------------------------------------------------


def test_max_tasks_per_child_replaces_the_pool_process(own):
    start(own, "w1", "-c", "1", "--max-tasks-per-child", "1")

    def the_pool_process():
        pids = pool_pids(own).get(1, [])
        return pids[0] if len(pids) == 1 else None

    seen = []
    for i in range(3):
        seen.append(wait_for(lambda: (pid := the_pool_process()) and pid not in seen and pid, timeout=10,
                             what=f"a fresh pool process for task {i + 1}"))
        out = own.run("call", "ccmulti.echo", f"[{i}]", "--wait", "--timeout", "10", check=True)
        assert json.loads(out.stdout) == i
    wait_for(lambda: (pid := the_pool_process()) and pid not in seen, timeout=10, what="a fresh pool process")
    replaced = [line for line in log_text(own).splitlines() if "max_tasks_per_child" in line]
    assert [any(f"pool process {pid} (#1) ran 1 tasks" in line for line in replaced) for pid in seen] == [True] * 3


def test_tasks_of_a_killed_node_go_to_the_other_node(own):
    """SIGKILL of a whole node (no chance to give anything back): its claims return to the queue as soon as any
    client sees the node is gone, and the surviving node runs them."""
    start(own, "w1", "w2", "-c", "1", "-Q:w2", "other")
    task_id = call(own, "ccmulti.sleep", "[0.5]")
    wait_status(own, task_id, "STARTED")
    own.run("kill", "w1", check=True)
    # w2 takes the queue over; the first client that looks (here: queues) restores w1's claims.
    own.run("stop", "w2", "--wait", check=True)
    start(own, "w2", "-c", "1")
    own.run("queues", check=True)
    meta = wait_status(own, task_id, "SUCCESS", "FAILURE", timeout=15)
    assert meta["status"] == "SUCCESS" and meta["worker"] == f"w2@{HOST}", meta
    received = [m for m in map(RECEIVED.search, log_lines_about(own, task_id, "w2")) if m]
    assert len(received) == 1 and received[0].group(3), log_lines_about(own, task_id, "w2")


def test_max_memory_per_child_replaces_the_pool_process(own):
    start(own, "w1", "-c", "1", "--max-memory-per-child=1")  # 1 KiB: every pool process is over it
    first = pool_pids(own)[1][0]
    assert json.loads(own.run("call", "ccmulti.ping", "--wait", "--timeout", "10", check=True).stdout) == "pong"
    wait_for(lambda: pool_pids(own).get(1, [first])[0] != first, timeout=10, what="a fresh pool process")
    wait_log(own, lambda text: f"pool process {first} (#1) uses" in text, what="the memory-limit line")


# --- 10. two nodes, one database, 2,000 tasks -----------------------------------------------------------------


def publish_many(env, task, args, count):
    """`count` calls of `task` on queue celery of env's embedded broker, fast (broker_probe); their ids."""
    url = f"sqlite://{env.state_dir / 'broker.sqlite3'}"
    out = subprocess.run([PROBE, "publish-many", url, task, args, "celery", str(count)],
                         capture_output=True, text=True, timeout=120, env=env.env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_two_nodes_share_one_database(own):
    if not PROBE.exists():
        pytest.fail(f"broker_probe not built: {PROBE}")
    start(own, "w1", "w2", "-c", "2")
    count = 2000
    ids = publish_many(own, "ccmulti.echo", "[1]", count)
    assert len(set(ids)) == count

    def all_done():
        with db(own) as conn:
            n = conn.execute("SELECT COUNT(*) FROM results WHERE status IN ('SUCCESS', 'FAILURE')").fetchone()[0]
        return n >= count

    wait_for(all_done, timeout=120, interval=0.2, what=f"{count} results")
    with db(own) as conn:
        rows = dict(conn.execute("SELECT task_id, status FROM results").fetchall())
    assert {task_id: rows.get(task_id) for task_id in ids} == {task_id: "SUCCESS" for task_id in ids}

    received = collections.defaultdict(list)
    succeeded = collections.Counter()
    per_node = collections.Counter()
    for name in ("w1", "w2"):
        for line in log_text(own, name).splitlines():
            if m := RECEIVED.search(line):
                received[m.group(2)].append(bool(m.group(3)))
                per_node[name] += 1
            elif m := SUCCEEDED.search(line):
                succeeded[m.group(2)] += 1
    assert set(received) == set(ids)
    # A task received twice must be a redelivery; nothing was killed here, so there are none.
    twice = {task_id: flags for task_id, flags in received.items() if len(flags) > 1}
    assert not twice, dict(list(twice.items())[:5])
    assert all(succeeded[task_id] == 1 for task_id in ids)
    assert per_node["w1"] > 0 and per_node["w2"] > 0, per_node


def test_two_nodes_with_pool_processes_killed_under_load(own):
    """The same with SIGKILLs of pool processes while the queue drains: every task still ends with exactly one
    SUCCESS, and a task received more than once was received again only as a redelivery. Each kill is made to
    hit a running task, not hoped to: between batches of short sleeps the queue holds a 5 s sleep (a probe), and
    the pool process its STARTED state names is killed while the probe runs in it."""
    start(own, "w1", "w2", "-c", "2")
    ids, probes = [], []
    for _ in range(4):
        ids += publish_many(own, "ccmulti.sleep", "[0.01]", 120)
        [probe] = publish_many(own, "ccmulti.sleep", "[5]", 1)
        probes.append(probe)
        ids.append(probe)
    ids += publish_many(own, "ccmulti.sleep", "[0.01]", 120)
    count = len(ids)

    def done():
        with db(own) as conn:
            return conn.execute("SELECT COUNT(*) FROM results WHERE status IN ('SUCCESS', 'FAILURE')").fetchone()[0]

    killed = []
    for probe in probes:
        started = wait_status(own, probe, "STARTED", timeout=60)
        pid = started["result"]["pid"]
        assert pid in [p for name in ("w1", "w2") for ps in pool_pids(own, name).values() for p in ps]
        os.kill(pid, signal.SIGKILL)  # the probe sleeps 5 s in it: this kill hits a running task
        killed.append(pid)
    wait_for(lambda: done() >= count, timeout=120, interval=0.1, what=f"{count} results")
    with db(own) as conn:
        rows = dict(conn.execute("SELECT task_id, status FROM results").fetchall())
    assert {task_id: rows.get(task_id) for task_id in ids} == {task_id: "SUCCESS" for task_id in ids}

    received = collections.defaultdict(list)
    succeeded = collections.Counter()
    receipts = []  # (log time, task id, redelivered), from both nodes' logs, put in time order below
    for name in ("w1", "w2"):
        for line in log_text(own, name).splitlines():
            if m := RECEIVED.search(line):
                receipts.append((line.split("]", 1)[0], m.group(2), bool(m.group(3))))
            elif m := SUCCEEDED.search(line):
                succeeded[m.group(2)] += 1
    for _, task_id, redelivered in sorted(receipts, key=lambda r: (r[0], r[2])):  # a tie: the first receipt first
        received[task_id].append(redelivered)
    assert set(received) == set(ids)
    again = {task_id: flags for task_id, flags in received.items() if len(flags) > 1}
    assert set(probes) <= set(again), (probes, again)  # each kill hit its probe, which ran again
    assert all(flags[1:] == [True] * (len(flags) - 1) for flags in again.values()), again
    assert [task_id for task_id in ids if succeeded[task_id] != 1] == []
    for name in ("w1", "w2"):
        wait_for(lambda: sorted(pool_pids(own, name)) == [1, 2], timeout=10, what=f"{name}'s pool whole again")


def test_large_requests_and_results_never_deadlock_node_and_pool(own):
    """200 echoes of 50 KB at -c 1: once echo is known as quick, several requests (well over a pipe's 64 KiB) go
    to the one pool process while it writes 50 KB replies. The node writes requests only as far as the pipe takes
    them and reads replies meanwhile, so neither side waits for the other for ever; and a warm stop still works."""
    if not PROBE.exists():
        pytest.fail(f"broker_probe not built: {PROBE}")
    start(own, "w1", "-c", "1")
    warm = publish_many(own, "ccmulti.echo", "[1]", 100)  # enough runs for echo to be known as quick
    wait_status(own, warm[-1], "SUCCESS")
    big = "x" * 50_000
    ids = publish_many(own, "ccmulti.echo", json.dumps([big]), 200)

    def done():
        with db(own) as conn:
            return conn.execute("SELECT COUNT(*) FROM results WHERE status = 'SUCCESS'").fetchone()[0]

    wait_for(lambda: done() >= len(warm) + len(ids), timeout=60, interval=0.1, what="200 large echoes")
    assert result(own, ids[-1])["result"] == big
    stop = own.run("stop", "--wait", timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert "killed" not in stop.stdout, stop.stdout


def test_quick_tasks_never_wait_behind_a_slow_one(own):
    """Pool processes are sent several tasks at a time only while every task they have is known to be quick:
    once ccmulti.echo is known as quick and one pool process runs a long sleep, the echoes all go to the other
    process and finish while the sleep still runs, instead of queueing behind it."""
    if not PROBE.exists():
        pytest.fail(f"broker_probe not built: {PROBE}")
    start(own, "w1", "-c", "2")
    warm = publish_many(own, "ccmulti.echo", "[1]", 200)  # enough runs to be known as quick
    for task_id in warm[-5:]:
        wait_status(own, task_id, "SUCCESS")
    slow = call(own, "ccmulti.sleep", "[20]")
    wait_status(own, slow, "STARTED")
    quick = publish_many(own, "ccmulti.echo", "[2]", 100)
    for task_id in quick:
        assert wait_status(own, task_id, "SUCCESS", timeout=15)["result"] == 2
    assert result(own, slow)["status"] == "STARTED"  # 20 s: still running, no echo waited for it
