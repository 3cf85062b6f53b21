"""Wire compatibility with Python Celery 5 / kombu (Debian's python3-celery) on a real redis-server, with real
ccmulti nodes (`ccmulti start w1 w2 --broker redis://…`) and the real CLI (`ccmulti call/result/inspect`):
Python clients send to ccmulti nodes and read their results (AsyncResult.get() wakes on the PUBLISH), ccmulti
sends to a real Python `celery worker`, both sides see each other's nodes through Celery's pidbox, a SIGKILLed
node's task is restored and run by another node, and a Redis restart under load loses no task. kombu's
`unacked` bookkeeping and the queues end empty.

Nodes and the Redis they share are module-scoped (the tests only add tasks and read results); tests that kill a
node or restart Redis start their own. broker_probe (tests/tools) is kept for what the CLI cannot show: the
consumer's pop order across kombu's priority lists. Every wait polls with a deadline (conftest.wait_for)."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import PYTHON, Env, Redis, end_process_group, free_port, release_app, wait_for

BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
PROBE = BUILD / "tests" / "broker_probe"
CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"
HOST = socket.gethostname()
W1, W2 = f"w1@{HOST}", f"w2@{HOST}"

from celery import Celery  # noqa: E402  (Debian's python3-celery)
from celery.exceptions import TaskRevokedError  # noqa: E402


# --- helpers -------------------------------------------------------------------------------------------------


def make_app(url):
    app = Celery("proj", broker=url, backend=url)
    app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)
    return app


def make_env():
    return Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-redis-")))


def start_nodes(env, url, *nodes, concurrency=2, queues="celery,high"):
    """`ccmulti start` returns once every node is READY (consuming)."""
    env.run("start", *nodes, "--broker", url, "-c", concurrency, "-Q", queues, check=True, timeout=60)


def shut_down(env):
    """Warm stop with a deadline; what is left (a test failed half-way) is killed. Then the private dirs go."""
    stop = env.run("stop", "--wait", "--timeout", "15", timeout=30)
    if stop.returncode != 0:
        env.run("kill", timeout=30)
    shutil.rmtree(env.root, ignore_errors=True)


def log_of(env, node):
    path = env.log_dir / f"{node}.log"
    return path.read_text() if path.exists() else ""


def queues_empty(redis, *queues):
    return all(redis.cli("LLEN", queue + suffix) == "0"
               for queue in queues for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"))


def wait_broker_clean(redis, *queues, timeout=10):
    """Every claim acked (a result is stored before its ack: get() may return a moment earlier) and every queue
    drained."""
    wait_for(lambda: redis.cli("HLEN", "unacked") == "0" and redis.cli("ZCARD", "unacked_index") == "0"
             and queues_empty(redis, *queues), timeout=timeout, what="unacked and the queues to be empty")


def meta(redis, task_id):
    text = redis.cli("GET", f"celery-task-meta-{task_id}")
    return json.loads(text) if text else None


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared():
    """One redis-server and two ccmulti nodes, w1 and w2 (-c 2, queues celery and high), for the module."""
    env = make_env()
    server = Redis(env.root / "redis")
    try:
        start_nodes(env, server.url, "w1", "w2")
        yield env, server
    finally:
        shut_down(env)
        server.stop()


@pytest.fixture
def nodes(shared):
    """The shared nodes' Redis; after each test nothing is left unacked or queued."""
    env, server = shared
    yield server
    wait_broker_clean(server, "celery", "high")


@pytest.fixture
def app(nodes):
    """A Python Celery client of the shared Redis; its pending results are released before Redis stops."""
    client = make_app(nodes.url)
    yield client
    release_app(client)


# --- Python Celery client → ccmulti nodes --------------------------------------------------------------------


def test_send_task_with_args_kwargs_and_queue_runs_on_ccmulti(nodes, app):
    started = time.monotonic()
    both = app.send_task("ccmulti.echo", args=[2, 3], kwargs={"y": 40}, queue="high")
    one = app.send_task("ccmulti.echo", args=["hello"], queue="high")
    assert both.get(timeout=10) == {"args": [2, 3], "kwargs": {"y": 40}}
    assert one.get(timeout=10) == "hello"
    assert time.monotonic() - started < 5  # get() woke on the PUBLISH, not on a poll
    stored = meta(nodes, both.id)
    assert stored["status"] == "SUCCESS" and stored["task_id"] == both.id
    assert stored["worker"] in (W1, W2) and stored["queue"] == "high"
    assert 0 < int(nodes.cli("TTL", f"celery-task-meta-{both.id}")) <= 86400
    wait_broker_clean(nodes, "celery", "high")


def test_failure_reraises_value_error(nodes, app):
    result = app.send_task("ccmulti.fail", args=["bad value 7", "ValueError"])
    with pytest.raises(ValueError, match="bad value 7"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert meta(nodes, result.id)["result"]["exc_type"] == "ValueError"


def test_countdown_is_held_until_due(nodes, app):
    sent = time.monotonic()
    result = app.send_task("ccmulti.echo", args=["later"], countdown=1.5)
    # Held (claimed, not run) by a node meanwhile, as a Celery worker holds eta tasks.
    wait_for(lambda: nodes.cli("HLEN", "unacked") == "1", timeout=5, what="a node to claim the eta task")
    assert result.state == "PENDING"
    assert result.get(timeout=10) == "later"
    assert time.monotonic() - sent >= 1.4


def test_expired_task_is_revoked(nodes, app):
    result = app.send_task("ccmulti.echo", args=["never"], expires=-5)  # already past
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    assert result.state == "REVOKED"


def test_ignore_result_stores_nothing(nodes, app):
    result = app.send_task("ccmulti.echo", args=["quiet"], ignore_result=True)
    # LPUSH is synchronous: the message is queued now. Once it has left the queue and its claim is acked, it ran.
    wait_broker_clean(nodes, "celery")
    assert nodes.cli("EXISTS", f"celery-task-meta-{result.id}") == "0"
    # Run after it on the same nodes, a task with a result does store one: the check above could fail.
    assert app.send_task("ccmulti.echo", args=["loud"]).get(timeout=10) == "loud"


def test_pickle_is_a_clear_failure_not_a_crash(nodes, app):
    app.conf.accept_content = ["json", "pickle"]
    result = app.send_task("ccmulti.echo", args=[1], serializer="pickle")
    wait_for(lambda: meta(nodes, result.id), timeout=10, what="the failure to be stored")
    assert result.state == "FAILURE"
    assert meta(nodes, result.id)["result"]["exc_type"] == "ContentDisallowed"
    # The nodes are still up.
    assert app.send_task("ccmulti.echo", args=[2]).get(timeout=10) == 2


def test_results_from_ccmulti_result_and_call(shared, nodes, app):
    env, _ = shared
    sent = app.send_task("ccmulti.echo", args=["py"])
    assert sent.get(timeout=10) == "py"
    shown = env.run("result", sent.id, "--json", "--broker", nodes.url, check=True)
    assert json.loads(shown.stdout)["result"] == "py"
    call = env.run("call", "ccmulti.echo", '["cli"]', "-Q", "high", "--broker", nodes.url, "--wait", "--timeout",
                   "10", check=True)
    assert json.loads(call.stdout) == "cli"


def test_call_count_publishes_many_that_the_nodes_run(shared, nodes):
    """call --count N: N envelopes over one connection (pipelined), each its own id, all run by the nodes."""
    env, _ = shared
    out = env.run("call", "ccmulti.echo", '["many"]', "-Q", "high", "--count", "300", "--broker", nodes.url,
                  check=True)
    ids = out.stdout.split()
    assert len(ids) == 300 and len(set(ids)) == 300
    wait_broker_clean(nodes, "high")
    keys = [f"celery-task-meta-{task_id}" for task_id in ids]
    metas = [json.loads(text) for text in nodes.cli("MGET", *keys).splitlines() if text]
    assert len(metas) == 300
    assert {(m["status"], m["result"]) for m in metas} == {("SUCCESS", "many")}


def test_priorities_land_in_kombus_lists_and_are_consumed_highest_first(redis):
    """The consumer's pop order, shown by broker_probe (no node consumes this private Redis)."""
    if not PROBE.exists():
        pytest.skip("broker_probe not built")
    app = make_app(redis.url)
    try:
        low = app.send_task("proj.add", args=(0, 9), priority=9)
        high = app.send_task("proj.add", args=(0, 0), priority=0)
        assert redis.cli("LLEN", "celery\x06\x169") == "1"
        proc = subprocess.run([str(PROBE), "run", redis.url, "celery", "2", "15000"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == [high.id, low.id]
    finally:
        release_app(app)


# --- remote control through Celery's pidbox ------------------------------------------------------------------


def test_python_inspect_sees_ccmulti_nodes(nodes, app):
    inspect = app.control.inspect(timeout=5, limit=2)  # returns as soon as both nodes answered
    assert inspect.ping() == {W1: {"ok": "pong"}, W2: {"ok": "pong"}}
    registered = inspect.registered()
    assert set(registered) == {W1, W2}
    assert {"ccmulti.echo", "ccmulti.sleep", "ccmulti.fail"} <= set(registered[W1])
    stats = inspect.stats()
    assert stats[W1]["pool"]["max-concurrency"] == 2 and stats[W1]["broker"]["transport"] == "redis"

    running = app.send_task("ccmulti.sleep", args=[1.5])
    def active():
        found = [(node, task) for node, tasks in (inspect.active() or {}).items() for task in tasks]
        return found if any(task["id"] == running.id for _, task in found) else None
    ((node, task),) = wait_for(active, timeout=10, what="the sleep task to be active")
    assert node in (W1, W2)
    assert task["name"] == "ccmulti.sleep" and task["args"] == [1.5] and task["acknowledged"] is False
    assert task["delivery_info"]["routing_key"] == "celery"
    assert running.get(timeout=10) == 1.5

    assert app.control.inspect(timeout=1, destination=["other@x"]).ping() is None
    assert app.control.inspect(timeout=5, destination=[W2], limit=1).ping() == {W2: {"ok": "pong"}}
    reply = app.control.broadcast("no_such_command", reply=True, timeout=5, limit=2)
    assert sorted(reply, key=lambda r: list(r)[0]) == [{W1: {"error": "KeyError('no_such_command')"}},
                                                        {W2: {"error": "KeyError('no_such_command')"}}]


def test_celery_inspect_ping_cli_sees_ccmulti_nodes(nodes):
    environment = dict(os.environ, CCMULTI_TEST_BROKER=nodes.url, PYTHONPATH=str(CELERYAPP))
    proc = subprocess.run([PYTHON, "-m", "celery", "-A", "proj", "inspect", "ping", "--timeout", "1"],
                          cwd=CELERYAPP, env=environment, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{W1}: OK" in proc.stdout and f"{W2}: OK" in proc.stdout, proc.stdout + proc.stderr


def test_ccmulti_inspect_over_redis_answers_from_both_nodes(shared, nodes):
    env, _ = shared
    ping = env.run("inspect", "ping", "--broker", nodes.url, "--json", "-t", "2", check=True)
    assert json.loads(ping.stdout) == {W1: {"ok": "pong"}, W2: {"ok": "pong"}}
    text = env.run("inspect", "ping", "--broker", nodes.url, "-t", "1", check=True).stdout
    assert f"-> {W1}: OK" in text and f"-> {W2}: OK" in text and "2 nodes online." in text
    stats = json.loads(env.run("inspect", "stats", "--broker", nodes.url, "--json", "-d", "w2", check=True).stdout)
    assert list(stats) == [W2] and stats[W2]["pool"]["max-concurrency"] == 2


# --- ccmulti → a Python `celery worker` ----------------------------------------------------------------------


@pytest.fixture
def python_worker(env, redis):
    """A real Python `celery worker` (the proj app, solo pool) consuming `celery` and `high` of a private Redis."""
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
        end_process_group(proc)


def test_ccmulti_call_wait_to_a_python_worker(env, redis, python_worker):
    def call(*args):
        return env.run("call", *args, "--broker", redis.url, "--wait", "--timeout", "15", timeout=30)

    done = call("proj.add", "[20, 22]", "-Q", "high")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 42

    started = time.monotonic()
    done = call("proj.add", "[1]", "--kwargs", '{"y": 2}', "--countdown", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 3 and time.monotonic() - started >= 0.9

    failed = call("proj.fail", '["nope"]')
    assert failed.returncode != 0
    assert "ValueError" in failed.stdout + failed.stderr and "nope" in failed.stdout + failed.stderr

    task_id = env.run("call", "proj.add", "[1, 1]", "--broker", redis.url, check=True).stdout.strip()
    wait_for(lambda: meta(redis, task_id), timeout=15, what="the Python worker's result")
    shown = json.loads(env.run("result", task_id, "--json", "--broker", redis.url, check=True).stdout)
    assert shown["status"] == "SUCCESS" and shown["result"] == 2
    # ccmulti inspect asks the Python worker through the same pidbox.
    ping = env.run("inspect", "ping", "--broker", redis.url, "--json", "-t", "2", check=True)
    assert json.loads(ping.stdout) == {f"py@{HOST}": {"ok": "pong"}}
    wait_broker_clean(redis, "celery", "high")


# --- failures: a node SIGKILLed, Redis restarted -------------------------------------------------------------


def test_node_killed_mid_task_is_restored_and_done_by_another(env, redis):
    """A SIGKILLed node cannot give its claims back: any live node restores a claim once it is older than the
    visibility timeout (kombu's, from the URL: 3 s here instead of kombu's 3600). Live nodes refresh their own
    claims every heartbeat (a third of the timeout), so a task running longer than the timeout on a live node is
    not restored under it and run twice."""
    url = redis.url + "?visibility_timeout=3"
    try:
        # One task per node at a time: prefetch 1.
        env.run("start", "w1", "w2", "--broker", url, "-c", 1, "-Q", "celery", "--prefetch-multiplier", 1,
                check=True, timeout=60)
        app = make_app(redis.url)
        try:
            inspect = app.control.inspect(timeout=5, limit=2)
            long = app.send_task("ccmulti.sleep", args=[4.5])
            doomed = app.send_task("ccmulti.sleep", args=[2])

            def placed():
                where = {task["id"]: node for node, tasks in (inspect.active() or {}).items() for task in tasks}
                return where if {long.id, doomed.id} <= set(where) else None
            where = wait_for(placed, timeout=10, what="both tasks to start, one on each node")
            victim = where[doomed.id]
            heir = W2 if victim == W1 else W1
            assert where[long.id] == heir
            killed = env.run("kill", victim.split("@")[0], check=True)
            killed_at = time.monotonic()
            assert "SIGKILL" in killed.stdout + killed.stderr
            assert redis.cli("HLEN", "unacked") == "2" and queues_empty(redis, "celery")

            assert long.get(timeout=15) == 4.5
            assert doomed.get(timeout=30) == 2
            # Restored within the visibility timeout and a heartbeat (1 s here), then run for 2 s.
            assert time.monotonic() - killed_at < 9
            assert meta(redis, doomed.id)["worker"] == heir
            heir_log = log_of(env, heir.split("@")[0])
            assert f"ccmulti.sleep[{doomed.id}] received (redelivered)" in heir_log
            assert "restored 1 unacknowledged message(s) of a node presumed dead" in heir_log
            # The long task, older than the visibility timeout while it ran, ran once, where it started.
            logs = log_of(env, "w1") + log_of(env, "w2")
            assert logs.count(f"ccmulti.sleep[{long.id}] received") == 1, logs
            wait_broker_clean(redis, "celery")
        finally:
            release_app(app)
    finally:
        shut_down_nodes(env)


def shut_down_nodes(env):
    stop = env.run("stop", "--wait", "--timeout", "15", timeout=30)
    if stop.returncode != 0:
        env.run("kill", timeout=30)


def test_redis_restarted_under_load_loses_no_task(env):
    """Redis (with AOF, as a deployment that wants to keep queued tasks must run it; SIGTERM flushes it) is
    restarted while two ccmulti nodes work through a queue: they keep their claims, reconnect, and every task
    gets its result exactly as sent."""
    port = free_port()
    data = env.root / "redis-aof"
    data.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
               "--appendfsync", "everysec", "--dir", str(data)]

    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def start():
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: cli("PING") == "PONG", timeout=10, what="redis-server")
        return proc

    server = start()
    url = f"redis://127.0.0.1:{port}/0"
    app = make_app(url)
    count = 200
    try:
        start_nodes(env, url + "?visibility_timeout=30", "w1", "w2", queues="celery")
        ids = [app.send_task("ccmulti.sleep", args=[0.03]).id for _ in range(count)]
        wait_for(lambda: int(cli("LLEN", "celery") or count) < count - 30, timeout=20,
                 what="the nodes to get going")
        assert int(cli("LLEN", "celery")) > 0, "the load was over before the restart"
        server.terminate()
        server.wait(timeout=10)
        server = start()

        def results():
            gone = [line for line in (env.log_dir / "master.log").read_text().splitlines() if "exited with" in line]
            assert not gone, f"a node died during the restart: {gone}"
            values = cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
            # STARTED is stored too: wait until every task has its final state.
            done = len(values) == count and all(v and json.loads(v)["status"] == "SUCCESS" for v in values)
            return values if done else None
        stored = wait_for(results, timeout=60, interval=0.2, what="every task's result after the restart")
        assert [json.loads(v)["result"] for v in stored] == [0.03] * count
        wait_for(lambda: cli("HLEN", "unacked") == "0" and cli("LLEN", "celery") == "0", timeout=15,
                 what="unacked and the queue to be empty")
        logs = log_of(env, "w1") + log_of(env, "w2")
        assert "reconnecting" in logs and "connected again" in logs
    finally:
        shut_down_nodes(env)
        release_app(app)
        server.terminate()
        server.wait(timeout=10)
