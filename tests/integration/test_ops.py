"""Supervisor operations with real processes: crash restart with backoff, status, ps, rolling restart, adding
nodes to a running master, the control socket's defences, and the Celery runner. Nodes run tests/helpers/fake_node
except in the Celery test. Synchronisation is by polling with a deadline (wait_for), never by sleeping."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import PYTHON, wait_for
from test_supervisor import FAKE, HOST, IS_ROOT, alive, cmdline, make_sup, processes_mentioning

CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"


@pytest.fixture
def sup():
    yield from make_sup(None)


# --- crash restart -----------------------------------------------------------------------------------------


def test_crashed_nodes_are_restarted_with_growing_backoff(sup):
    sup.check("start", "w1", "w2", "--backoff-initial", "0.2", "--backoff-max", "0.8",
              "--exec", sup.fake("--notify", "--crash-after", "0.3", "--message", "'boom: lost the broker'"),
              "--exec:w2", sup.fake("--notify", "--crash-after", "0.3", "--crash-signal", "SEGV"))
    master = sup.master_pid()
    wait_for(lambda: all(sup.node_status(s)["restarts"] >= 3 for s in ("w1", "w2")), timeout=15,
             what="three restarts of each node")
    assert sup.master_pid() == master and alive(master)
    pids = [int(line.split()[1]) for line in sup.records("w1") if line.startswith("start ")]
    assert len(set(pids)) >= 4, "every restart is a new process"

    # The master's log names every crash with its reason and the growing delay.
    log = (sup.log_dir / "master.log").read_text()
    delays = [float(d) for d in re.findall(r"w1@\S+: exited with code 3 after [\d.]+s up; restarting in ([\d.]+)s", log)]
    assert len(delays) >= 3, log
    assert delays[0] < delays[1] < delays[2], delays
    assert all(d <= 0.8 for d in delays), delays
    assert re.search(r"w2@\S+: killed by SIGSEGV.* restarting in", log), log

    # status shows the crash loop: state backoff (caught at some point), how it ended, and its log.
    def in_backoff():
        code, reply = sup.status()
        node = next(n for n in reply["nodes"] if n["name"] == f"w1@{HOST}")
        return (code, node) if node["state"] == "backoff" else None

    code, node = wait_for(in_backoff, timeout=10, what="w1 in backoff")
    assert code == 3, "not every node is ready"
    assert node["pid"] is None and node["status"] == "exited with code 3"
    assert node["backoff"]["attempt"] >= 1 and 0 <= node["backoff"]["restart_in"] <= 1.0
    assert "boom: lost the broker" in node["log_tail"]
    w2 = sup.node_status("w2")
    assert w2["status"].startswith("killed by SIGSEGV")
    if IS_ROOT:  # fake_node raises its own core limit; root can
        assert "(core dumped)" in w2["status"]

    began = time.monotonic()
    stopped = sup.run("stop", "--wait")
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - began < 5
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit after the stop")


def test_stop_cancels_a_pending_restart(sup):
    sup.check("start", "w1", "--backoff-initial", "30", "--exec", sup.fake("--notify", "--crash-after", "0.2"))
    master = sup.master_pid()
    wait_for(lambda: sup.node_status("w1")["state"] == "backoff", what="backoff")
    text = sup.run("status")
    assert text.returncode == 3
    assert "backoff" in text.stdout and "next start in" in text.stdout and "fake_node: crashing with 3" in text.stdout
    proc = sup.check("stop", "--wait")
    assert f"w1@{HOST}  not running" in proc.stdout
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit")
    assert not (sup.run_dir / "w1.pid").exists()


def test_a_clean_stop_by_someone_else_is_not_a_crash(sup):
    sup.check("start", "w1", "w2", "--backoff-initial", "0.1", "--exec", sup.fake("--notify"))
    os.kill(sup.program_pid("w1"), signal.SIGTERM)  # e.g. `celery control shutdown`: exits 0
    wait_for(lambda: sup.node_status("w1")["state"] == "exited", what="w1 to be seen as exited")
    code, reply = sup.status()
    assert code == 3
    w1 = next(n for n in reply["nodes"] if n["name"] == f"w1@{HOST}")
    assert w1["status"] == "exited with code 0" and w1["restarts"] == 0
    assert sum(1 for line in sup.records("w1") if line.startswith("start ")) == 1, "not restarted"
    assert "a clean stop that ccmulti did not ask for: not restarted" in (sup.log_dir / "master.log").read_text()
    sup.check("stop", "--wait")


# --- status ------------------------------------------------------------------------------------------------


def test_status_table_json_and_exit_codes(sup):
    none = sup.run("status")
    assert none.returncode == 3
    assert "no ccmulti master is running in" in none.stderr and "ccmulti start" in none.stderr
    none_json = sup.run("status", "--json")
    assert none_json.returncode == 3 and json.loads(none_json.stdout)["master"] is None

    sup.check("start", "w1", "w2", "-Q", "high,low", "-c", "2", "-c:w2", "3", "--exec", sup.fake("--notify"))
    code, reply = sup.status()
    assert code == 0 and reply["ready"] is True
    master = reply["master"]
    assert master["pid"] == sup.master_pid() and master["uptime"] >= 0 and master["rss"] > 0
    assert master["run_dir"] == str(sup.run_dir)
    names = [n["name"] for n in reply["nodes"]]
    assert names == [f"w1@{HOST}", f"w2@{HOST}"]
    for node in reply["nodes"]:
        assert set(node) >= {"name", "pid", "state", "uptime", "restarts", "queues", "concurrency", "rss", "logfile",
                             "pidfile"}
        assert node["state"] == "ready" and node["restarts"] == 0 and node["queues"] == ["high", "low"]
        assert node["pid"] == sup.pid(node["name"].split("@")[0]) and node["rss"] > 0
    assert [n["concurrency"] for n in reply["nodes"]] == [2, 3]

    text = sup.check("status")
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"master  pid {master['pid']}  up ")
    assert lines[1].startswith("containment  ")  # cgroup PATH, or subreaper (why); docs/supervisor.md
    assert lines[3].split() == ["NODE", "PID", "STATE", "UPTIME", "RESTARTS", "QUEUES", "CONC", "MEM", "LOG"]
    assert lines[4].split()[:3] == [f"w1@{HOST}", str(sup.pid("w1")), "ready"]
    assert "\033[" not in text.stdout, "NO_COLOR is set"
    only = sup.run("status", "w2", "--json")
    assert only.returncode == 0 and [n["name"] for n in json.loads(only.stdout)["nodes"]] == [f"w2@{HOST}"]
    sup.check("stop", "--wait")


# --- ps ----------------------------------------------------------------------------------------------------


def find_master(tree, pid):
    return next((p for p in tree["processes"] if p["pid"] == pid), None)


def test_ps_finds_the_tree_without_any_pid_file(sup):
    sup.check("start", "w1", "w2", "-Q", "high,low", "--exec", sup.fake("--notify", "--grandchild"))
    wait_for(lambda: all(any(l.startswith("grandchild ") for l in sup.records(s)) for s in ("w1", "w2")),
             what="grandchildren")
    master = sup.master_pid()
    shims = {s: sup.pid(s) for s in ("w1", "w2")}
    for pidfile in sup.run_dir.glob("*.pid"):
        pidfile.unlink()

    proc = sup.check("ps", "--json")
    tree = json.loads(proc.stdout)
    root = find_master(tree, master)
    assert root is not None, tree
    assert root["role"] == "master" and root["title"] == f"ccmulti: master [w1@{HOST} w2@{HOST}]"
    assert root["node"] is None and root["queues"] is None
    nodes = {n["pid"]: n for n in root["children"] if n["role"] == "node"}
    assert set(nodes) == set(shims.values())
    for short, pid in shims.items():
        node = nodes[pid]
        assert node["title"] == f"ccmulti: node {short}@{HOST} -Q high,low"
        assert node["uptime"] >= 0 and node["rss"] > 0
        # Scripts read the node and its queues without parsing titles; processes below a node are its.
        assert node["node"] == f"{short}@{HOST}" and node["queues"] == ["high", "low"]
        (program,) = node["children"]
        assert program["pid"] == sup.program_pid(short) and str(FAKE) in program["title"]
        (grandchild,) = program["children"]
        assert grandchild["role"] == "process"
        for below in (program, grandchild):
            assert below["node"] == f"{short}@{HOST}" and below["queues"] == ["high", "low"]

    text = sup.check("ps").stdout
    assert f"ccmulti: master [w1@{HOST} w2@{HOST}]" in text
    assert f"└─ ccmulti: node w2@{HOST} -Q high,low" in text or f"├─ ccmulti: node w2@{HOST} -Q high,low" in text
    ps_ef = subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout
    assert f"ccmulti: node w1@{HOST} -Q high,low" in ps_ef and f"ccmulti: master [w1@{HOST}" in ps_ef
    comm = pathlib.Path(f"/proc/{master}/comm").read_text().strip()
    assert comm == "ccmulti-master"
    sup.run("kill")


def test_the_master_title_names_the_configured_app(sup):
    (sup.root / "ccmulti.toml").write_text('app = "shop"\n')
    sup.check("-C", str(sup.root / "ccmulti.toml"), "start", "w1", "--exec", sup.fake("--notify"))
    master = sup.master_pid()
    assert cmdline(master).startswith("ccmulti: master [shop]"), cmdline(master)
    root = find_master(json.loads(sup.check("ps", "--json").stdout), master)
    assert root["title"] == "ccmulti: master [shop]"
    sup.run("kill")


# --- restart -----------------------------------------------------------------------------------------------


def test_rolling_restart_keeps_all_but_one_ready(sup):
    nodes = ("w1", "w2", "w3")
    sup.check("start", *nodes, "--exec", sup.fake("--notify=0.3"))
    old = {s: sup.pid(s) for s in nodes}
    restart = sup.popen("restart")
    seen_ready_counts = set()
    try:
        while restart.poll() is None:
            code, reply = sup.status()
            ready = sum(1 for n in reply["nodes"] if n["state"] == "ready")
            seen_ready_counts.add(ready)
            assert ready >= len(nodes) - 1, reply
        out, err = restart.communicate(timeout=5)
    finally:
        if restart.poll() is None:
            restart.kill()
    assert restart.returncode == 0, err
    assert len(nodes) - 1 in seen_ready_counts, "the polling never saw a node being restarted"
    for short in nodes:
        assert f"{short}@{HOST}  restarting" in out and f"{short}@{HOST}  pid {sup.pid(short)}  ready" in out
        assert sup.pid(short) != old[short] and not alive(old[short])
        assert sup.node_status(short)["restarts"] == 1
        assert "signal TERM" in sup.records(short), "the old run got a warm stop"
    # One at a time: each node began only once the previous one was ready again.
    order = [line.split()[0] for line in out.splitlines()]
    assert order == [f"{s}@{HOST}" for s in nodes for _ in range(2)], out
    sup.check("stop", "--wait")


def test_restart_all_at_once_and_of_unknown_nodes(sup):
    sup.check("start", "w1", "w2", "--exec", sup.fake("--notify=0.2"))
    old = {s: sup.pid(s) for s in ("w1", "w2")}
    proc = sup.check("restart", "--all")
    assert all(sup.pid(s) != old[s] for s in old)
    # Both went down before either came back.
    lines = proc.stdout.splitlines()
    assert [l.split()[1] for l in lines[:2]] == ["restarting", "restarting"], lines
    # As celery multi restart: a node named on the command line that does not run is started.
    new = sup.check("restart", "w9", "--exec", sup.fake("--notify=0.2"))
    assert f"w9@{HOST}  pid {sup.pid('w9')}  ready" in new.stdout, new.stdout
    sup.check("stop", "--wait")
    gone = sup.run("restart")
    assert gone.returncode == 1 and "no ccmulti master is running" in gone.stderr
    # With node arguments and nothing running, restart is a start.
    again = sup.check("restart", "w1", "--exec", sup.fake("--notify=0.2"))
    assert "starting them" in again.stdout and f"w1@{HOST}  pid {sup.pid('w1')}  ready" in again.stdout
    sup.check("stop", "--wait")


def test_a_rolling_restart_stops_at_a_node_that_does_not_come_back(sup):
    flag = sup.root / "broken"
    # w1 crashes at once once the flag exists (broken code after a deploy); w2 would be fine.
    script = sup.root / "maybe_broken.sh"
    script.write_text(f"#!/bin/sh\n[ -e {flag} ] && {{ echo 'ImportError: broken deploy' >&2; exit 4; }}\n"
                      f"exec {FAKE} --record {sup.root}/$1.rec --notify\n")
    script.chmod(0o755)
    sup.check("start", "w1", "w2", "--backoff-initial", "5", "--exec", f"{script} %n")
    flag.touch()
    old_w2 = sup.pid("w2")
    proc = sup.run("restart")
    assert proc.returncode == 1
    assert f"w1@{HOST} did not come back: exited with code 4" in proc.stderr
    assert f"w2@{HOST}  not restarted" in proc.stdout
    assert sup.pid("w2") == old_w2 and alive(old_w2), "w2 keeps running the old code"
    assert sup.node_status("w1")["state"] == "backoff"
    sup.check("stop", "--wait")


# --- start adds nodes to a running master ------------------------------------------------------------------


def test_second_start_adds_nodes_to_the_running_master(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    master = sup.master_pid()
    added = sup.check("start", "w2", "w3", "--exec", sup.fake("--notify"))
    assert f"w2@{HOST}  pid {sup.pid('w2')}  ready" in added.stdout
    assert f"w3@{HOST}  pid {sup.pid('w3')}  ready" in added.stdout
    assert sup.master_pid() == master
    code, reply = sup.status()
    assert code == 0 and [n["name"] for n in reply["nodes"]] == [f"w{i}@{HOST}" for i in (1, 2, 3)]
    assert cmdline(master) == f"ccmulti: master [w1@{HOST} w2@{HOST} w3@{HOST}]"

    again = sup.run("start", "w1", "w4", "--exec", sup.fake("--notify"))
    assert again.returncode == 0, again.stderr
    assert f"w1@{HOST} already running (pid {sup.pid('w1')})" in again.stdout
    assert f"w4@{HOST}  pid {sup.pid('w4')}  ready" in again.stdout

    failing = sup.run("start", "w5", "--exec", f"{FAKE} --exit 6 --message 'w5 cannot start'")
    assert failing.returncode == 1 and "w5 cannot start" in failing.stderr
    assert alive(master)
    assert sup.run("start", "w6", "--foreground", "--exec", sup.fake()).returncode == 1
    stopped = sup.check("stopwait")
    assert all(f"w{i}@{HOST}  stopped" in stopped.stdout for i in (1, 2, 3, 4))
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit")


# --- the control socket ------------------------------------------------------------------------------------


def talk(path, payload, timeout=5):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data.decode().splitlines()[0])


def test_garbage_on_the_control_socket_gets_errors_and_the_master_carries_on(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    path = sup.run_dir / "master.sock"
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(sup.run_dir).st_mode & 0o777 == 0o700
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(path))  # connected, never sends: must not block anyone
    try:
        for payload, error in [(b"\xff\xfe not json\n", "bad request"),
                               (b"[1,2]\n", "bad request"),
                               (b'{"v":1,"cmd":5}\n', "bad request"),
                               (b'{"v":1,"cmd":"stop","nodes":"w1","mode":"warm"}\n', "bad stop request"),
                               (b'{"v":1,"cmd":"restart","nodes":7}\n', "bad request"),
                               (b'{"v":1,"cmd":"add","nodes":[{"name":"x"}]}\n', "bad request"),
                               (b'{"v":1,"cmd":"frobnicate"}\n', "unknown command 'frobnicate'"),
                               (b"x" * 70000, "too long")]:
            reply = talk(path, payload)
            assert reply["ok"] is False and error in reply["error"], (payload[:40], reply)
        assert talk(path, b'{"v":1,"cmd":"ping"}\n')["ok"] is True
    finally:
        idle.close()
    assert sup.node_status("w1")["state"] == "ready"
    sup.check("stop", "--wait")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to connect as another uid")
def test_a_request_from_another_uid_is_refused(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    path = sup.run_dir / "master.sock"
    # Open the way on purpose, so only the master's SO_PEERCRED check stands between nobody and the node.
    os.chmod(sup.run_dir, 0o711)
    os.chmod(path, 0o666)
    client = ("import json, socket, sys\n"
              "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])\n"
              "s.sendall(b'{\"v\":1,\"cmd\":\"stop\",\"mode\":\"kill\"}\\n')\n"
              "data = b''\n"
              "while True:\n"
              "    chunk = s.recv(4096)\n"
              "    if not chunk: break\n"
              "    data += chunk\n"
              "print(data.decode())\n")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PYTHON, "-c", client,
                           str(path)], capture_output=True, text=True, timeout=10, cwd="/")
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["ok"] is False and "permission denied: uid 65534" in reply["error"]
    assert sup.node_status("w1")["state"] == "ready", "the refused request did nothing"
    assert "refused a connection from uid 65534" in (sup.log_dir / "master.log").read_text()
    sup.check("stop", "--wait")


# --- the Celery runner -------------------------------------------------------------------------------------


def celery(sup, broker, *args, timeout=30):
    env = dict(sup.env, CCMULTI_TEST_BROKER=broker)
    return subprocess.run([PYTHON, "-m", "celery", "-A", "proj", *args], capture_output=True, text=True,
                          cwd=CELERYAPP, env=env, timeout=timeout)


def test_celery_runner_start_ping_task_and_warm_stop(sup, redis):
    sup.env["CCMULTI_TEST_BROKER"] = redis.url
    sup.env["CCMULTI_PYTHON"] = PYTHON
    sup.env["PYTHONDONTWRITEBYTECODE"] = "1"
    began = time.monotonic()
    started = sup.check("start", "w1", "w2", "-A", "proj", "-c", "1", "-l", "info", "-Q", "celery,high",
                        "--workdir", str(CELERYAPP), "--start-secs", "60", timeout=90)
    assert time.monotonic() - began < 45, "readiness comes from the worker's log, not from --start-secs"
    for short in ("w1", "w2"):
        assert f"{short}@{HOST}  pid " in started.stdout
        log = (sup.log_dir / f"{short}.log").read_text()
        assert f"{short}@{HOST} ready." in log
        shim = sup.pid(short)
        program = [p for p in processes_mentioning(str(sup.root)) if cmdline(p).startswith(PYTHON)
                   and os.getpgid(p) == shim]
        assert program, "the worker runs in the node's process group"
    ping = celery(sup, redis.url, "inspect", "ping", "-d", f"w1@{HOST},w2@{HOST}", "--timeout", "5")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert f"w1@{HOST}: OK" in ping.stdout and f"w2@{HOST}: OK" in ping.stdout

    send = subprocess.run([PYTHON, "-c", "from proj import add; print(add.delay(2, 3).get(timeout=20))"],
                          capture_output=True, text=True, cwd=CELERYAPP, env=dict(sup.env), timeout=40)
    assert send.returncode == 0 and send.stdout.strip() == "5", send.stderr

    stopped = sup.check("stop", "--wait", timeout=60)
    for short in ("w1", "w2"):
        assert f"{short}@{HOST}  stopped  (exited with code 0" in stopped.stdout, stopped.stdout
        assert "Warm shutdown" in (sup.log_dir / f"{short}.log").read_text()
    wait_for(lambda: not processes_mentioning(str(sup.root)), timeout=10, what="every Celery process to exit")
