"""The broker client commands against the embedded SQLite broker, without a worker: call, result, queues, purge.
A stand-in "worker" written in Python stores a result straight into the database and rings the waiters' wake
sockets, the way a node does, to prove `result --wait` / `call --wait` are woken rather than polling."""
import json
import re
import socket
import sqlite3
import subprocess
import time

from conftest import CCMULTI, wait_for

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def db_path(env):
    return env.state_dir / "broker.sqlite3"


def store_result(env, task_id, meta):
    """What a node does: write the result row, then ring every waiter of that task (abstract unix sockets)."""
    db = sqlite3.connect(db_path(env), timeout=30)
    with db:
        db.execute(
            "INSERT OR REPLACE INTO results (task_id, status, meta, stored_at, expires_at) VALUES (?, ?, ?, ?, NULL)",
            (task_id, meta["status"], json.dumps(meta), time.time()),
        )
        wakes = [row[0] for row in db.execute("SELECT wake FROM result_waiters WHERE task_id = ?", (task_id,))]
    db.close()
    for wake in wakes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(b"\x01", "\0" + wake)
            except OSError:
                pass


def waiter_count(env, task_id):
    db = sqlite3.connect(db_path(env), timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM result_waiters WHERE task_id = ?", (task_id,)).fetchone()[0]
    finally:
        db.close()


def test_call_prints_an_id_and_warns_without_consumer(env):
    out = env.run("call", "ccmulti.ping", check=True)
    assert UUID.match(out.stdout.strip())
    assert "no running node consumes queue 'celery'" in out.stderr


def test_call_count_publishes_n_tasks_each_with_its_own_id(env):
    out = env.run("call", "ccmulti.echo", "[1]", "-Q", "many", "--count", "250", check=True)
    ids = out.stdout.split()
    assert len(ids) == 250 and len(set(ids)) == 250 and all(UUID.match(i) for i in ids)
    queues = {q["name"]: q for q in json.loads(env.run("queues", "--json", check=True).stdout)}
    assert queues["many"]["ready"] == 250
    assert env.run("result", ids[-1], "--json", check=True).stdout.count("PENDING") == 1
    assert env.run("call", "t", "--count", "0").returncode == 2
    assert env.run("call", "t", "--count", "2", "--wait").returncode == 2  # one result to wait for, not N


def test_result_tells_pending_from_unknown(env):
    task_id = env.run("call", "tasks.add", "[2, 3]", "-Q", "high", check=True).stdout.strip()
    pending = env.run("result", task_id)
    assert pending.returncode == 0
    assert pending.stdout.startswith("PENDING")
    assert "'high'" in pending.stdout
    as_json = json.loads(env.run("result", task_id, "--json", check=True).stdout)
    assert as_json == {"task_id": task_id, "status": "PENDING", "queue": "high", "reserved": False}

    unknown = env.run("result", "no-such-id")
    assert unknown.returncode == 1
    assert unknown.stdout.startswith("UNKNOWN")
    assert json.loads(env.run("result", "no-such-id", "--json").stdout)["status"] == "UNKNOWN"
    # --wait on an id nobody knows answers at once instead of hanging.
    assert env.run("result", "no-such-id", "--wait", timeout=10).returncode == 1


def test_queues_flags_queue_without_consumer_and_purge(env):
    env.run("call", "t", "-Q", "orphans", check=True)
    env.run("call", "t", "-Q", "orphans", check=True)
    env.run("call", "t", "-Q", "later", "--countdown", "600", check=True)
    table = env.run("queues", check=True)
    assert "orphans" in table.stdout and "none" in table.stdout
    assert "no running node consumes later, orphans" in table.stderr
    queues = {q["name"]: q for q in json.loads(env.run("queues", "--json", check=True).stdout)}
    assert queues["orphans"]["ready"] == 2 and queues["orphans"]["no_consumer"]
    assert queues["later"]["scheduled"] == 1 and queues["later"]["ready"] == 0

    assert env.run("purge", "orphans", check=True).stdout.strip() == "purged 2 messages from 'orphans'"
    queues = {q["name"]: q for q in json.loads(env.run("queues", "--json", check=True).stdout)}
    assert "orphans" not in queues


def test_call_usage_errors(env):
    assert env.run("call", "t", "not json").returncode == 2
    assert env.run("call", "t", '{"a": 1}').returncode == 2  # args must be an array
    assert env.run("call", "t", "--kwargs", "[1]").returncode == 2
    assert env.run("call", "t", "--countdown", "-1").returncode == 2
    assert env.run("call", "t", "--countdown", "1", "--eta", "2030-01-01T00:00:00Z").returncode == 2
    assert env.run("call", "t", "--broker", "sqs://x").returncode == 2
    assert env.run("queues", "--broker", "sqlite://relative").returncode == 2


def test_explicit_database_path(env):
    path = env.root / "custom.db"
    env.run("call", "t", "--broker", f"sqlite://{path}", check=True)
    assert path.exists()
    assert not db_path(env).exists()
    env.env["CCMULTI_BROKER_URL"] = f"sqlite://{path}"
    assert json.loads(env.run("queues", "--json", check=True).stdout)[0]["ready"] == 1


def test_call_wait_is_woken_by_the_result(env):
    proc = subprocess.Popen(
        [CCMULTI, "call", "ccmulti.echo", '["hi"]', "--wait", "--timeout", "60"],
        env=env.env, cwd=env.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The task id is in the queue once call has published; the waiter row appears when it waits.
        def published():
            if not db_path(env).exists():
                return None
            db = sqlite3.connect(db_path(env), timeout=30)
            try:
                row = db.execute("SELECT task_id FROM messages").fetchone()
                return row[0] if row else None
            except sqlite3.OperationalError:  # created, schema not yet
                return None
            finally:
                db.close()

        task_id = wait_for(published, what="the published task")
        wait_for(lambda: waiter_count(env, task_id) > 0, what="call --wait to enrol as a waiter")
        started = time.monotonic()
        store_result(env, task_id, {"status": "SUCCESS", "result": "hi", "traceback": None, "children": [],
                                    "date_done": "2026-01-01T00:00:00+00:00", "task_id": task_id})
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert json.loads(out) == "hi"
        assert time.monotonic() - started < 5  # woken, not the 30 s safety-net re-check
        assert waiter_count(env, task_id) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_failure_result_and_exit_codes(env):
    task_id = env.run("call", "tasks.div", "[1, 0]", check=True).stdout.strip()
    store_result(env, task_id, {"status": "FAILURE",
                                "result": {"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"],
                                           "exc_module": "builtins"},
                                "traceback": "Traceback (most recent call last):\nZeroDivisionError: division by zero",
                                "children": [], "date_done": "2026-01-01T00:00:00+00:00", "task_id": task_id})
    out = env.run("result", task_id)
    assert out.returncode == 1
    assert out.stdout.splitlines()[:2] == ["FAILURE", "ZeroDivisionError: division by zero"]
    assert "Traceback" in out.stdout
    waited = env.run("result", task_id, "--wait", "--timeout", "5")
    assert waited.returncode == 1


def test_call_wait_times_out(env):
    started = time.monotonic()
    out = env.run("call", "ccmulti.ping", "--wait", "--timeout", "0.5", timeout=30)
    assert out.returncode == 1
    assert "timed out waiting for task" in out.stderr
    assert time.monotonic() - started < 10
