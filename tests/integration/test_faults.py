"""Faults a node must live through and report honestly ("nothing lost, nothing stuck"), with real processes:
a broker that cannot be reached when a node starts (not ready: `start` says why and exits 3, the node becomes ready
once the broker is there), start_timeout for programs that never say ready, two `start`s racing in one run dir,
the embedded database's disk filling up under a running node, and the database file deleted under it."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import Redis, free_port, wait_for
from test_supervisor import HOST, IS_ROOT, alive, cmdline, make_sup


@pytest.fixture
def sup():
    yield from make_sup(None)


def log_of(sup, short):
    path = sup.log_dir / f"{short}.log"
    return path.read_text(errors="replace") if path.exists() else ""


# --- readiness: a node is ready once it consumes -----------------------------------------------------------


def test_unreachable_broker_is_not_ready_and_becomes_ready_when_the_broker_comes(sup):
    port = free_port()
    started = sup.run("start", "w1", "-c", "1", "--broker", f"redis://127.0.0.1:{port}/0", "--start-timeout", "2",
                      timeout=60)
    assert started.returncode == 3, f"exit {started.returncode}\n{started.stdout}\n{started.stderr}"
    assert "ready" not in started.stdout, started.stdout
    err = started.stderr
    assert f"w1@{HOST}" in err and "not ready after 2.0s" in err, err
    assert "the master keeps it" in err, err
    assert re.search(r"broker unavailable.*(refused|connect)", err, re.I), err  # the reason: its log's last lines

    # The master keeps the node starting; a broker that comes up later makes it ready.
    node = sup.node_status("w1")
    assert node["state"] == "starting" and alive(node["pid"]), node
    server = Redis(sup.root / "redis", port=port)
    try:
        wait_for(lambda: sup.node_status("w1")["state"] == "ready", timeout=30, what="w1 ready once Redis is up")
        assert sup.node_status("w1")["restarts"] == 0
        assert sup.run("status").returncode == 0
        sup.check("stop", "--wait")
    finally:
        server.stop()


def test_start_timeout_applies_to_programs_that_never_say_ready(sup):
    started = sup.run("start", "w1", "--start-secs", "300", "--start-timeout", "1", "--exec", sup.fake(), timeout=60)
    assert started.returncode == 3, f"exit {started.returncode}\n{started.stdout}\n{started.stderr}"
    assert "not ready after 1.0s" in started.stderr, started.stderr
    node = sup.node_status("w1")
    assert node["state"] == "starting" and alive(node["pid"]), node
    assert sup.run("status").returncode == 3
    sup.check("stop", "--wait")


# --- concurrent starts in one run dir ----------------------------------------------------------------------


def test_concurrent_starts_share_one_master_and_report_their_own_nodes(sup):
    for round_ in range(8):
        names = (f"a{round_}", f"b{round_}")
        procs = [sup.popen("start", name, "--exec", sup.fake("--notify")) for name in names]
        outs = [p.communicate(timeout=60) for p in procs]
        for name, proc, (out, err) in zip(names, procs, outs):
            assert proc.returncode == 0, f"round {round_}: start {name} exited {proc.returncode}\n{out}\n{err}"
            lines = out.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"{name}@{HOST}  pid ") and "  ready  " in lines[0], \
                f"round {round_}: start {name} must report exactly its own node:\n{out}"
        code, reply = sup.status()
        assert code == 0 and sorted(n["name"] for n in reply["nodes"]) == sorted(f"{n}@{HOST}" for n in names), reply
        master = reply["master"]["pid"]
        assert cmdline(master).startswith("ccmulti: master")
        sup.check("stop", "--wait")
        wait_for(lambda: not alive(master), timeout=10, what="the master to exit")


# --- the embedded database under faults --------------------------------------------------------------------


def call(sup, db, *args):
    proc = sup.run("call", "--broker", f"sqlite://{db}", *args, timeout=60)
    assert proc.returncode == 0, f"call {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


def result_state(sup, db, task_id):
    proc = sup.run("result", "--broker", f"sqlite://{db}", task_id, "--json", timeout=60)
    try:
        return json.loads(proc.stdout).get("status")
    except ValueError:
        return None


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs of the test's own (root only): the place to fill up."""
    if not IS_ROOT:
        pytest.skip("mounting a small tmpfs to fill needs root")
    where = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def fill(path):
    """Writes `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 512):  # then the last pages, smaller than the first chunk
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_under_the_database_does_not_end_the_node(sup, small_disk):
    db = small_disk / "broker.sqlite3"
    sup.check("start", "w1", "-c", "1", "--broker", f"sqlite://{db}", "-l", "info")
    pid = sup.pid("w1")
    sleeper = call(sup, db, "ccmulti.sleep", "[2]")
    wait_for(lambda: result_state(sup, db, sleeper) == "STARTED", timeout=20, what="the sleep task to run")
    payload = "x" * 20000
    echoes = [call(sup, db, "ccmulti.echo", json.dumps([f"{i}{payload}"])) for i in range(8)]
    fill(small_disk / "filler")
    try:
        # The sleep ends on a full disk: its result, the next claims and the heartbeat all fail, and are retried.
        wait_for(lambda: "database or disk is full" in log_of(sup, "w1"), timeout=30, what="the full disk in the log")
        wait_for(lambda: log_of(sup, "w1").count("Task ccmulti.sleep") >= 2, timeout=10, what="the sleep to end")
        node = sup.node_status("w1")
        assert node["state"] == "ready" and node["restarts"] == 0 and node["pid"] == pid, node
    finally:
        (small_disk / "filler").unlink()
    wait_for(lambda: all(result_state(sup, db, t) == "SUCCESS" for t in [sleeper, *echoes]), timeout=60,
             what="every task done once there is room again")
    node = sup.node_status("w1")
    assert node["restarts"] == 0 and node["pid"] == pid, node
    log = log_of(sup, "w1")
    # Logged once per episode (the claim path and the result writes each say it), not once per retry.
    assert log.count("database or disk is full") <= 4, log
    # A broker error is the broker's: no pool process is blamed for it (killed and replaced).
    assert "killing it" not in log and "exited unexpectedly" not in log, log
    sup.check("stop", "--wait")


def test_a_deleted_database_is_noticed_and_recreated(sup):
    state = sup.root / "state"
    db = state / "broker.sqlite3"
    sup.check("start", "w1", "-c", "1", "-l", "info")
    pid = sup.pid("w1")
    first = sup.run("call", "ccmulti.echo", '["before"]', "--wait", "--timeout", "20", timeout=60)
    assert first.returncode == 0 and '"before"' in first.stdout, first.stdout + first.stderr
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{db}{suffix}").unlink(missing_ok=True)
    # The next call makes a new database; the node must consume that one, not the file it had open.
    after = sup.run("call", "ccmulti.echo", '["after"]', "--wait", "--timeout", "30", timeout=60)
    assert after.returncode == 0 and '"after"' in after.stdout, after.stdout + after.stderr
    log = log_of(sup, "w1")
    assert re.search(r"broker database \S+ was deleted.* while this process used it", log), log
    node = sup.node_status("w1")
    assert node["pid"] == pid and node["restarts"] == 0, node
    sup.check("stop", "--wait")
