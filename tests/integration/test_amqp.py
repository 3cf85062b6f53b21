"""Wire compatibility with Python Celery 5 / kombu / py-amqp (Debian's python3-celery, python3-amqp) on a real
RabbitMQ (Debian's rabbitmq-server, started once for the module: it takes about 5 s), with real ccmulti nodes
(`ccmulti start w1 w2 --broker amqp://…`, results in a private redis-server) and the real CLI: Python clients send
to ccmulti nodes and read their results, `celery inspect` sees ccmulti nodes through Celery's pidbox (and
`ccmulti inspect` sees them through the same exchanges), `ccmulti call`/`inspect` reach a Python worker, quorum
queues are consumed, Celery's events of a node with -E reach `celery events --dump` and the dashboard through the
`celeryev` topic exchange, a SIGKILLed node's running task is redelivered by
RabbitMQ and completed by another node, and a RabbitMQ restart under load loses no task.

The RabbitMQ restart is the module's last test: the shared nodes must reconnect and re-declare. Every wait polls
with a deadline (conftest.wait_for)."""
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

from conftest import PYTHON, Env, RabbitMQ, Redis, release_app, wait_for
from dashboard_lib import Dashboard
from test_events import Dump

CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"
HOST = socket.gethostname()
W1, W2 = f"w1@{HOST}", f"w2@{HOST}"

if not shutil.which("epmd") or not pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
    pytest.skip("rabbitmq-server is not installed (scripts/install-deps installs it)", allow_module_level=True)

from celery import Celery  # noqa: E402  (Debian's python3-celery)
from celery.exceptions import TaskRevokedError  # noqa: E402


def make_app(broker, backend):
    app = Celery("proj", broker=broker, backend=backend)
    app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)
    return app


def log_of(env, node):
    path = env.log_dir / f"{node}.log"
    return path.read_text() if path.exists() else ""


def meta(redis, task_id):
    text = redis.cli("GET", f"celery-task-meta-{task_id}")
    return json.loads(text) if text else None


def queue_depths(rabbit):
    """Ready + unacked messages by queue, as RabbitMQ counts them (rabbitmqctl: about half a second)."""
    depths = {}
    for line in rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "messages").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def queue_depth(rabbit, queue):
    return queue_depths(rabbit).get(queue)


def stop_nodes(env):
    if env.run("stop", "--wait", "--timeout", "15", timeout=30).returncode != 0:
        env.run("kill", timeout=30)


@pytest.fixture(scope="module")
def servers():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-amqp-"))
    os.chmod(root, 0o755)  # the rabbitmq user reaches its directory below
    rabbit = None
    redis = Redis(root / "redis")
    try:
        rabbit = RabbitMQ(root / "rabbitmq")
        yield rabbit, redis
    finally:
        if rabbit:
            rabbit.close()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def node_env(redis):
    env = Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-amqp-nodes-")))
    env.env["CCMULTI_RESULT_BACKEND"] = redis.url
    return env


@pytest.fixture(scope="module")
def shared(servers):
    """Two ccmulti nodes, w1 and w2 (-c 2, queues celery and high), for the module."""
    rabbit, redis = servers
    env = node_env(redis)
    try:
        env.run("start", "w1", "w2", "--broker", rabbit.url, "-c", 2, "-Q", "celery,high", check=True, timeout=60)
        yield env, rabbit, redis
    finally:
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture
def app(shared):
    _, rabbit, redis = shared
    client = make_app(rabbit.url, redis.url)
    yield client
    release_app(client)


# --- Python Celery client → ccmulti nodes --------------------------------------------------------------------


def test_send_task_with_args_kwargs_and_queue_runs_on_ccmulti(shared, app):
    _, rabbit, redis = shared
    both = app.send_task("ccmulti.echo", args=[2, 3], kwargs={"y": 40}, queue="high")
    one = app.send_task("ccmulti.echo", args=["hello"])
    assert both.get(timeout=10) == {"args": [2, 3], "kwargs": {"y": 40}}
    assert one.get(timeout=10) == "hello"
    stored = meta(redis, both.id)
    assert stored["status"] == "SUCCESS" and stored["worker"] in (W1, W2) and stored["queue"] == "high"
    # Acked after the result was stored: the queues end empty (ready and unacked).
    def empty():
        depths = queue_depths(rabbit)
        return depths.get("celery") == 0 and depths.get("high") == 0
    wait_for(empty, timeout=10, what="the queues to be empty")


def test_failure_reraises_the_original_type(app):
    result = app.send_task("ccmulti.fail", args=["bad value 7", "ValueError"])
    with pytest.raises(ValueError, match="bad value 7"):
        result.get(timeout=10)
    assert result.state == "FAILURE"


def test_countdown_is_held_without_blocking_others(app):
    sent = time.monotonic()
    # More eta tasks than the nodes' prefetch windows (2 nodes × 2 × 4): held ones raise the prefetch count.
    later = [app.send_task("ccmulti.echo", args=[i], countdown=1.5) for i in range(20)]
    now = app.send_task("ccmulti.echo", args=["now"])
    assert now.get(timeout=5) == "now"
    assert time.monotonic() - sent < 1.4, "a ready task waited behind eta tasks"
    assert [r.get(timeout=10) for r in later] == list(range(20))
    assert time.monotonic() - sent >= 1.4


def test_expired_task_is_revoked(app):
    result = app.send_task("ccmulti.echo", args=["never"], expires=-5)  # already past
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    assert result.state == "REVOKED"


def test_ignore_result_stores_nothing(shared, app):
    _, rabbit, redis = shared
    quiet = app.send_task("ccmulti.echo", args=["quiet"], ignore_result=True, queue="high")
    loud = app.send_task("ccmulti.echo", args=["loud"], queue="high")
    assert loud.get(timeout=10) == "loud"
    wait_for(lambda: queue_depth(rabbit, "high") == 0, timeout=10, what="queue high to be empty (quiet ran)")
    assert redis.cli("EXISTS", f"celery-task-meta-{quiet.id}") == "0"


def test_ccmulti_call_wait_and_count(shared):
    env, rabbit, redis = shared
    call = env.run("call", "ccmulti.echo", '["cli"]', "-Q", "high", "--broker", rabbit.url, "--wait", "--timeout",
                   "10", check=True)
    assert json.loads(call.stdout) == "cli"
    out = env.run("call", "ccmulti.echo", '["many"]', "--count", "200", "--broker", rabbit.url, check=True)
    ids = out.stdout.split()
    assert len(set(ids)) == 200

    def done():
        values = redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
        return len(values) == 200 and all(v and json.loads(v)["status"] == "SUCCESS" for v in values)
    wait_for(done, timeout=20, what="the 200 tasks' results")


# --- remote control through Celery's pidbox ------------------------------------------------------------------


def test_celery_inspect_sees_ccmulti_nodes(shared, app):
    env, rabbit, redis = shared
    inspect = app.control.inspect(timeout=5, limit=2)
    assert inspect.ping() == {W1: {"ok": "pong"}, W2: {"ok": "pong"}}
    stats = inspect.stats()
    assert stats[W1]["broker"]["transport"] == "amqp" and stats[W1]["prefetch_count"] == 8
    assert app.control.inspect(timeout=5, destination=[W2], limit=1).ping() == {W2: {"ok": "pong"}}

    environment = dict(os.environ, CCMULTI_TEST_BROKER=rabbit.url, CCMULTI_TEST_BACKEND=redis.url,
                       PYTHONPATH=str(CELERYAPP))
    proc = subprocess.run([PYTHON, "-m", "celery", "-A", "proj", "inspect", "ping", "--timeout", "1"],
                          cwd=CELERYAPP, env=environment, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{W1}: OK" in proc.stdout and f"{W2}: OK" in proc.stdout, proc.stdout + proc.stderr

    ping = env.run("inspect", "ping", "--broker", rabbit.url, "--json", "-d", "w1,w2", check=True)
    assert json.loads(ping.stdout) == {W1: {"ok": "pong"}, W2: {"ok": "pong"}}


def test_quorum_queue_named_in_the_url_or_declared_by_another(servers):
    """x-queue-type=quorum in the URL declares a quorum queue (consumed with per-consumer prefetch: quorum queues
    refuse global QoS); a client whose URL does not say so accepts the queue as it is."""
    rabbit, redis = servers
    env = node_env(redis)
    try:
        env.run("start", "q1", "--broker", rabbit.url + "?x-queue-type=quorum", "-c", 1, "-Q", "quorum", check=True,
                timeout=60)
        assert "quorum\tquorum" in rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "type")
        call = env.run("call", "ccmulti.echo", '["q"]', "-Q", "quorum", "--broker", rabbit.url, "--wait",
                       "--timeout", "10", check=True)
        assert json.loads(call.stdout) == "q"
    finally:
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


# --- ccmulti → a Python `celery worker` ----------------------------------------------------------------------


def test_ccmulti_call_and_inspect_reach_a_python_worker(servers):
    rabbit, redis = servers
    env = node_env(redis)
    log = env.root / "py-worker.log"
    environment = dict(os.environ, CCMULTI_TEST_BROKER=rabbit.url, CCMULTI_TEST_BACKEND=redis.url,
                       PYTHONPATH=str(CELERYAPP))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "proj", "worker", "-Q", "py", "--pool", "solo", "-n", "py@%h",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=CELERYAPP, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "ready." in log.read_text(), timeout=30, what="the Python worker to be ready")
        done = env.run("call", "proj.add", "[20, 22]", "-Q", "py", "--broker", rabbit.url, "--wait", "--timeout",
                       "15", timeout=30)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == 42
        failed = env.run("call", "proj.fail", '["nope"]', "-Q", "py", "--broker", rabbit.url, "--wait",
                         "--timeout", "15", timeout=30)
        assert failed.returncode != 0 and "ValueError" in failed.stderr and "nope" in failed.stderr
        ping = env.run("inspect", "ping", "--broker", rabbit.url, "--json", "-d", f"py@{HOST}", check=True)
        assert json.loads(ping.stdout) == {f"py@{HOST}": {"ok": "pong"}}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(env.root, ignore_errors=True)


# --- Celery events: the celeryev topic exchange -----------------------------------------------------------------


def event_queues(rabbit):
    """Consumers of the monitors' queues (celeryev.<uuid>), by queue."""
    out = rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "consumers")
    return {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines())
            if len(p) == 2 and p[0].startswith("celeryev.") and p[1].isdigit()}


@pytest.fixture(scope="module")
def evented(servers):
    """`celery events --dump` and the dashboard bound to celeryev (checked on RabbitMQ) before e1 (-E, queue ev)
    starts, so that neither misses an event."""
    rabbit, redis = servers
    env = node_env(redis)
    env.env["CCMULTI_BROKER_URL"] = rabbit.url
    dump = Dump(env.root, rabbit.url, redis.url)
    dashboard = None
    try:
        dashboard = Dashboard(env)
        wait_for(lambda: dashboard.get_json("/api/tasks")["events"]["receiving"], timeout=10,
                 what="the dashboard to consume celeryev")
        wait_for(lambda: sorted(event_queues(rabbit).values()) == [1, 1], timeout=30,
                 what=f"two monitors on celeryev queues:\n{dump.text()}")
        env.run("start", "e1", "-c", 2, "-Q", "ev", "-E", check=True, timeout=60)
        yield env, rabbit, dump, dashboard
    finally:
        stop_nodes(env)
        if dashboard:
            dashboard.stop()
        dump.stop()
        shutil.rmtree(env.root, ignore_errors=True)


def test_celery_events_dump_sees_a_node_and_its_task(evented):
    env, rabbit, dump, _ = evented
    node = f"e1@{HOST}"
    (online,) = dump.wait(rf"^{re.escape(node)} \[.*\] started: ", f"{node} online")
    assert "sw_ident=ccmulti" in online and "freq=2.0" in online, online
    result = env.run("call", "ccmulti.echo", "[5]", "-Q", "ev", "--wait", "--timeout", "10",
                     check=True).stdout  # prints the result; the id comes from the dump
    assert json.loads(result) == 5
    (received,) = dump.wait(rf"{node} \[.*\] task received: ccmulti\.echo\(", "task-received")
    assert "args=(5,)" in received, received
    dump.wait(rf"{node} \[.*\] task started: ccmulti\.echo\(", "task-started")
    (succeeded,) = dump.wait(rf"{node} \[.*\] task succeeded: ccmulti\.echo\(", "task-succeeded")
    assert "result=5" in succeeded and "runtime=" in succeeded, succeeded
    # The events travel on the topic exchange Celery declares for AMQP, not on a fanout.
    assert "celeryev\ttopic" in rabbit.ctl("list_exchanges", "-q", "--no-table-headers", "name", "type")


def test_the_dashboard_lists_a_task_with_its_runtime_from_amqp_events(evented):
    env, _, _, dashboard = evented
    ids = env.run("call", "ccmulti.echo", "[7]", "-Q", "ev", "--count", "2", check=True).stdout.split()

    def finished():
        tasks = {t["task_id"]: t for t in dashboard.get_json("/api/tasks")["tasks"]}
        done = [tasks[i] for i in ids if i in tasks and tasks[i]["status"] == "SUCCESS"
                and tasks[i].get("runtime") is not None]
        return done if len(done) == 2 else None
    for task in wait_for(finished, timeout=15, what="2 tasks with runtimes in /api/tasks"):
        assert task["name"] == "ccmulti.echo" and task["worker"] == f"e1@{HOST}" and task["runtime"] >= 0, task
        assert task["received"] <= task["started"], task
    summary = dashboard.get_json("/api/tasks")["events"]
    assert summary["available"] and summary["receiving"], summary


# --- failures: a node SIGKILLed mid-task, RabbitMQ restarted -------------------------------------------------


def test_node_killed_mid_task_is_redelivered_and_completed_once(servers):
    """RabbitMQ gives a dead connection's unacked messages back at once: the task a SIGKILLed node was running
    goes to the other node, redelivered, and its result is stored once, by that node."""
    rabbit, redis = servers
    env = node_env(redis)
    app = make_app(rabbit.url, redis.url)
    try:
        env.run("start", "k1", "k2", "--broker", rabbit.url, "-c", 1, "--prefetch-multiplier", 1, "-Q", "kill",
                check=True, timeout=60)
        doomed = app.send_task("ccmulti.sleep", args=[1.5], queue="kill")
        inspect = app.control.inspect(timeout=2, destination=[f"k1@{HOST}", f"k2@{HOST}"], limit=2)

        def running():
            for node, tasks in (inspect.active() or {}).items():
                if any(task["id"] == doomed.id for task in tasks):
                    return node
            return None
        victim = wait_for(running, timeout=10, what="the task to run on a node")
        heir = f"k2@{HOST}" if victim == f"k1@{HOST}" else f"k1@{HOST}"
        env.run("kill", victim.split("@")[0], check=True)
        assert doomed.get(timeout=15) == 1.5
        assert meta(redis, doomed.id)["worker"] == heir
        heir_log = log_of(env, heir.split("@")[0])
        assert f"ccmulti.sleep[{doomed.id}] received (redelivered)" in heir_log, heir_log
        logs = log_of(env, "k1") + log_of(env, "k2")
        assert logs.count(f"ccmulti.sleep[{doomed.id}] succeeded") == 1, logs
        wait_for(lambda: queue_depth(rabbit, "kill") == 0, timeout=10, what="queue kill to be empty")
    finally:
        release_app(app)
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


def consumer_prefetch(rabbit, queue):
    """The global prefetch count (basic.qos) of the channel consuming `queue`, as RabbitMQ has it; None if none."""
    channels = [line.split()[1] for line in rabbit.ctl("list_consumers", "-q", "--no-table-headers", "queue_name",
                                                       "channel_pid").splitlines()
                if len(line.split()) == 2 and line.split()[0] == queue]
    for line in rabbit.ctl("list_channels", "-q", "--no-table-headers", "pid", "global_prefetch_count").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in channels and parts[1].isdigit():
            return int(parts[1])
    return None


def test_quick_tasks_widen_the_prefetch_and_are_all_acked_in_batches(servers):
    """A node holding only quick tasks asks RabbitMQ for 8 times its plain window (basic.qos; kept while idle) and
    acks in batches (basic.ack with multiple=true up to the highest tag with nothing unsettled below it): 500 echo
    calls all end acked, nothing ready or unacked left. A slow task brings the plain window back."""
    rabbit, redis = servers
    env = node_env(redis)
    try:
        env.run("start", "q1", "--broker", rabbit.url, "-c", 1, "--prefetch-multiplier", 1, "-Q", "window",
                check=True, timeout=60)
        assert wait_for(lambda: consumer_prefetch(rabbit, "window"), timeout=15, what="the node's channel") == 1
        ids = env.run("call", "ccmulti.echo", "[7]", "-Q", "window", "--count", 500, "--broker", rabbit.url,
                      check=True).stdout.split()

        def done():
            values = redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
            return len(values) == 500 and all(v and json.loads(v)["status"] == "SUCCESS" for v in values)
        wait_for(done, timeout=60, what="the 500 results")
        wait_for(lambda: queue_depth(rabbit, "window") == 0, timeout=15, what="every message acked")
        assert consumer_prefetch(rabbit, "window") == 8  # 1 x 1, 8 times while only quick tasks were held
        slow = env.run("call", "ccmulti.sleep", "[1.0]", "-Q", "window", "--broker", rabbit.url, check=True)
        wait_for(lambda: consumer_prefetch(rabbit, "window") == 1, timeout=15, what="the plain window again")
        wait_for(lambda: (m := meta(redis, slow.stdout.strip())) and m["status"] == "SUCCESS", timeout=15,
                 what="the slow task's result")
        wait_for(lambda: queue_depth(rabbit, "window") == 0, timeout=15, what="the slow task acked")
    finally:
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


def test_rabbitmq_restarted_under_load_loses_no_task(shared):
    """Last: RabbitMQ is stopped and started again (durable queues, persistent messages) while the shared nodes
    work through a queue; they reconnect with backoff, declare again, and every task gets its result (tasks
    running or held unacked at the time run again: AMQP is at-least-once)."""
    env, rabbit, redis = shared
    app = make_app(rabbit.url, redis.url)
    count = 300  # about 4 s of work for the two nodes (4 pool processes): the restart lands in the middle
    try:
        ids = [app.send_task("ccmulti.sleep", args=[0.05], queue="celery").id for _ in range(count)]
        release_app(app)

        def finished():
            return sum(1 for v in redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
                       if v and json.loads(v)["status"] == "SUCCESS")
        wait_for(lambda: finished() >= 40, timeout=20, what="the nodes to get going")
        assert finished() < count, "the load was over before the restart"
        # The RabbitMQ application stopped and started again in its running Erlang VM (rabbitmqctl stop_app,
        # start_app): every connection is closed and the port stops listening, as in a full restart, without
        # the VM's 5 s boot.
        rabbit.ctl("stop_app")
        assert not rabbit.listening()
        rabbit.ctl("start_app")

        def results():
            values = redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
            done = len(values) == count and all(v and json.loads(v)["status"] == "SUCCESS" for v in values)
            return values if done else None
        stored = wait_for(results, timeout=60, interval=0.2, what="every task's result after the restart")
        assert [json.loads(v)["result"] for v in stored] == [0.05] * count
        # The node shims write the nodes' logs: on a loaded machine their lines may trail the results.
        wait_for(lambda: all(s in log_of(env, "w1") + log_of(env, "w2")
                             for s in ("reconnecting", "connected to the AMQP broker")),
                 timeout=15, what="the nodes' logs to say they reconnected")
        gone = [line for line in (env.log_dir / "master.log").read_text().splitlines() if "exited with" in line]
        assert not gone, f"a node died during the restart: {gone}"
    finally:
        release_app(app)
