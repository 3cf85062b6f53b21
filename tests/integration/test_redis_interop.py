"""Wire compatibility with Python Celery 5 / kombu on a real redis-server: Python clients send to ccmulti's Redis
consumer and read the results it stores (AsyncResult.get() wakes on the PUBLISH), ccmulti publishes to a real
Python `celery worker` and reads its results, and kombu's unacked bookkeeping ends empty.

The ccmulti side is tests/tools/broker_probe (RedisBroker / RedisConsumer / RedisResultStore behind a small
command line) until the native worker and `ccmulti call` exist."""
import gc
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import PYTHON, wait_for

BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
PROBE = BUILD / "tests" / "broker_probe"
CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"

pytestmark = pytest.mark.skipif(not PROBE.exists(), reason="broker_probe not built")

from celery import Celery  # noqa: E402  (Debian's python3-celery)
from celery.exceptions import TaskRevokedError  # noqa: E402


def make_app(url):
    app = Celery("proj", broker=url, backend=url)
    app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)
    return app


@pytest.fixture
def celery_app(redis):
    """A Python Celery client of the test's Redis; its pending results are released before Redis stops."""
    app = make_app(redis.url)
    yield app
    release(app)


def release(app):
    gc.collect()  # AsyncResult.__del__ unsubscribes: let it happen while Redis still runs
    # Results still referenced (pytest keeps frames of failed tests) would unsubscribe at interpreter exit,
    # after Redis is gone, and print tracebacks: drop the subscription now.
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer._pubsub.close()
        consumer._pubsub = None
    app.close()


def probe(*args, timeout=60):
    proc = subprocess.run([str(PROBE), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return proc


def run_probe(url, queue, count, timeout_ms=15000):
    proc = probe("run", url, queue, count, timeout_ms)
    assert proc.returncode == 0, f"broker_probe run exited {proc.returncode}: {proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


def assert_broker_clean(redis, *queues):
    assert redis.cli("HLEN", "unacked") == "0"
    assert redis.cli("ZCARD", "unacked_index") == "0"
    for queue in queues:
        for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"):
            assert redis.cli("LLEN", queue + suffix) == "0"


def test_python_send_task_runs_on_ccmulti_and_get_wakes(redis, celery_app):
    app = celery_app
    by_args = app.send_task("proj.add", args=(2, 3), queue="high")
    by_kwargs = app.send_task("proj.add", args=(2,), kwargs={"y": 40}, queue="high")
    ran = run_probe(redis.url, "high", 2)
    assert [r["id"] for r in ran] == [by_args.id, by_kwargs.id]  # FIFO
    assert ran[1]["kwargs"] == {"y": 40}
    assert by_args.get(timeout=10) == 5
    assert by_kwargs.get(timeout=10) == 42
    meta = json.loads(redis.cli("GET", f"celery-task-meta-{by_args.id}"))
    assert meta["status"] == "SUCCESS" and meta["task_id"] == by_args.id
    assert 0 < int(redis.cli("TTL", f"celery-task-meta-{by_args.id}")) <= 86400
    assert_broker_clean(redis, "high")


def test_get_blocks_until_the_result_is_published(redis, celery_app):
    """AsyncResult.get() subscribes first and then sleeps on pub/sub: only the PUBLISH can wake it."""
    app = celery_app
    result = app.send_task("proj.add", args=(1, 1))
    runner = subprocess.Popen([str(PROBE), "run", redis.url, "celery", "1", "15000"], stdout=subprocess.PIPE,
                              text=True)
    try:
        started = time.monotonic()
        assert result.get(timeout=10) == 2
        assert time.monotonic() - started < 5
    finally:
        runner.wait(timeout=20)


def test_failure_reraises_value_error(redis, celery_app):
    app = celery_app
    result = app.send_task("proj.fail", args=("bad value 7",))
    run_probe(redis.url, "celery", 1)
    with pytest.raises(ValueError, match="bad value 7"):
        result.get(timeout=10)
    assert result.state == "FAILURE"


def test_countdown_is_held_until_due(redis, celery_app):
    app = celery_app
    sent = time.time()
    result = app.send_task("proj.add", args=(1, 2), countdown=1.5)
    (ran,) = run_probe(redis.url, "celery", 1)
    assert ran["eta"] is not None
    assert result.get(timeout=10) == 3
    from datetime import datetime
    ran_at = datetime.fromisoformat(ran["ran_at"]).timestamp()
    assert ran_at >= sent + 1.4
    assert_broker_clean(redis, "celery")


def test_expired_task_is_revoked(redis, celery_app):
    app = celery_app
    result = app.send_task("proj.add", args=(1, 2), expires=-5)  # already past
    run_probe(redis.url, "celery", 1)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    assert result.state == "REVOKED"


def test_ignore_result_stores_nothing(redis, celery_app):
    app = celery_app
    result = app.send_task("proj.add", args=(1, 2), ignore_result=True)
    (ran,) = run_probe(redis.url, "celery", 1)
    assert ran["ignore_result"] is True
    assert redis.cli("EXISTS", f"celery-task-meta-{result.id}") == "0"
    assert_broker_clean(redis, "celery")


def test_priorities_land_in_kombus_lists_and_are_consumed_highest_first(redis, celery_app):
    app = celery_app
    low = app.send_task("proj.add", args=(0, 9), priority=9)
    high = app.send_task("proj.add", args=(0, 0), priority=0)
    assert redis.cli("LLEN", "celery\x06\x169") == "1"
    ran = run_probe(redis.url, "celery", 2)
    assert [r["id"] for r in ran] == [high.id, low.id]


def test_non_json_content_is_a_clear_failure_not_a_crash(redis, celery_app):
    app = celery_app
    app.conf.accept_content = ["json", "pickle"]
    result = app.send_task("proj.add", args=(1, 2), serializer="pickle")
    (ran,) = run_probe(redis.url, "celery", 1)
    assert "serializer" in ran["decode_error"]
    assert ran["id"] == result.id
    assert result.state == "FAILURE"
    assert_broker_clean(redis, "celery")


@pytest.fixture
def python_worker(env, redis):
    """A real Python `celery worker` (the proj app, solo pool) consuming `celery` and `high`."""
    log = env.root / "py-worker.log"
    environment = dict(os.environ, CCMULTI_TEST_BROKER=redis.url, PYTHONPATH=str(CELERYAPP))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "proj", "worker", "-Q", "celery,high", "--pool", "solo", "-n",
             "py@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=CELERYAPP, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "ready." in log.read_text(), timeout=30, what="the Python worker to be ready")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_result(url, task_id, timeout_ms=15000):
    proc = probe("wait", url, task_id, timeout_ms)
    assert proc.returncode == 0, f"broker_probe wait exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


def test_ccmulti_publishes_to_a_python_worker(redis, python_worker):
    proc = probe("publish", redis.url, "proj.add", "[20, 22]", "{}", "high")
    assert proc.returncode == 0, proc.stderr
    task_id = proc.stdout.strip()
    meta = wait_result(redis.url, task_id)
    assert meta["status"] == "SUCCESS" and meta["result"] == 42

    proc = probe("publish", redis.url, "proj.add", "[1]", '{"y": 2}', "celery", "1")  # countdown 1 s
    meta = wait_result(redis.url, proc.stdout.strip())
    assert meta["result"] == 3

    proc = probe("publish", redis.url, "proj.fail", '["nope"]', "{}")
    meta = wait_result(redis.url, proc.stdout.strip())
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ValueError"
    assert meta["result"]["exc_message"] == ["nope"]
    wait_for(lambda: redis.cli("HLEN", "unacked") == "0", timeout=10, what="the Python worker's acks")
    assert_broker_clean(redis, "celery", "high")


def test_node_killed_mid_task_is_restored_and_done_by_another(redis, celery_app):
    url = redis.url + "?visibility_timeout=2"
    app = celery_app
    result = app.send_task("proj.sleep", args=(3,))
    doomed = subprocess.Popen([str(PROBE), "run", url, "celery", "1", "60000"], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: redis.cli("HLEN", "unacked") == "1", timeout=10, what="the first probe to claim the task")
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    assert redis.cli("LLEN", "celery") == "0"
    # The heir restores the dead claim once it is older than the visibility timeout, then runs it.
    app.send_task("proj.add", args=(0, 0))  # not needed for the restore; makes the heir's count honest
    ran = run_probe(url, "celery", 2, timeout_ms=30000)
    restored = [r for r in ran if r["id"] == result.id]
    assert restored and restored[0]["redelivered"] is True
    assert_broker_clean(redis, "celery")


@pytest.fixture
def mailbox(redis):
    """broker_probe answering remote control as node probe@test for the test's duration."""
    proc = subprocess.Popen([str(PROBE), "pidbox", redis.url, "probe@test", "60"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def test_inspect_sees_ccmulti_nodes(redis, celery_app, mailbox):
    inspect = celery_app.control.inspect(timeout=2)
    assert inspect.ping() == {"probe@test": {"ok": "pong"}}
    assert inspect.registered() == {"probe@test": ["proj.add", "proj.fail", "proj.sleep"]}
    (active,) = inspect.active()["probe@test"]
    assert active["name"] == "proj.sleep" and active["args"] == [30] and active["acknowledged"] is False
    assert active["delivery_info"]["routing_key"] == "celery"
    stats = inspect.stats()["probe@test"]
    assert stats["pool"]["max-concurrency"] == 2
    assert stats["broker"]["transport"] == "redis"
    assert stats["total"] == {"proj.add": 3}
    # Addressed to another node: no answer; addressed to this one: answered.
    assert celery_app.control.inspect(timeout=1, destination=["other@x"]).ping() is None
    assert celery_app.control.inspect(timeout=2, destination=["probe@test"]).ping() == {"probe@test": {"ok": "pong"}}
    # Celery's own error shape for commands the node does not have.
    reply = celery_app.control.broadcast("no_such_command", reply=True, timeout=2)
    assert reply == [{"probe@test": {"error": "KeyError('no_such_command')"}}]


def test_celery_status_cli_sees_ccmulti_nodes(redis, mailbox):
    environment = dict(os.environ, CCMULTI_TEST_BROKER=redis.url, PYTHONPATH=str(CELERYAPP))
    proc = subprocess.run([PYTHON, "-m", "celery", "-A", "proj", "status", "--timeout", "2"], cwd=CELERYAPP,
                          env=environment, capture_output=True, text=True, timeout=60)
    assert "probe@test: OK" in proc.stdout, proc.stdout + proc.stderr


def test_redis_restarted_under_load_loses_no_task(env):
    """Redis (with AOF, as a deployment that wants to keep queued tasks must run it; SIGTERM flushes it) is
    restarted while a
    ccmulti consumer works through a queue: it keeps its claims, reconnects, and every task gets its result."""
    from conftest import free_port

    port = free_port()
    data = env.root / "redis-aof"
    data.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
               "--appendfsync", "everysec", "--dir", str(data)]

    def start():
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", timeout=10, what="redis-server")
        return proc

    server = start()
    url = f"redis://127.0.0.1:{port}/0"
    app = make_app(url)
    consumer = None
    try:
        ids = [app.send_task("proj.sleep", args=(0.02,)).id for _ in range(150)]
        consumer = subprocess.Popen([str(PROBE), "run", url + "?visibility_timeout=5", "celery", "150", "90000"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: int(subprocess.run(["redis-cli", "-p", str(port), "LLEN", "celery"], capture_output=True,
                                            text=True).stdout.strip() or 0) < 120, timeout=20,
                 what="the consumer to get going")
        server.terminate()
        server.wait(timeout=10)
        server = start()
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err
        assert "reconnecting" in err
        ran = [json.loads(line)["id"] for line in out.splitlines()]
        assert sorted(set(ran)) == sorted(ids)
        assert [app.backend.get_task_meta(i)["result"] for i in ids] == [0.02] * len(ids)
        cli = lambda *a: subprocess.run(["redis-cli", "-p", str(port), *a], capture_output=True, text=True).stdout.strip()
        assert cli("HLEN", "unacked") == "0" and cli("LLEN", "celery") == "0"
    finally:
        if consumer and consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        release(app)
        server.terminate()
        server.wait(timeout=10)
