"""Wire compatibility with Python Celery 5 / kombu / py-amqp (Debian's python3-celery, python3-amqp) on a real
RabbitMQ (Debian's rabbitmq-server, started once for the module: it takes about 5 s), with real ccmulti nodes
(`ccmulti start w1 w2 --broker amqp://…`, results in a private redis-server) and the real CLI: Python clients send
to ccmulti nodes and read their results, `celery inspect` sees ccmulti nodes through Celery's pidbox (and
`ccmulti inspect` sees them through the same exchanges), `ccmulti call`/`inspect` reach a Python worker, quorum
queues are consumed, Celery's rpc:// result backend (results on the sender's reply queue) works for Python
clients and `ccmulti call --wait`, Celery's events of a node with -E reach `celery events --dump` and the dashboard through the
`celeryev` topic exchange, a SIGKILLed node's running task is redelivered by
RabbitMQ and completed by another node, and a RabbitMQ restart under load loses no task.

The RabbitMQ restart is the module's last test: the shared nodes must reconnect and re-declare. Every wait polls
with a deadline (conftest.wait_for)."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import PYTHON, Env, end_process_group, log_of, release_app, stop_nodes, wait_for
from dashboard_lib import Dashboard
from test_events import Dump

if not shutil.which("epmd") or not pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
    pytest.skip("rabbitmq-server is not installed (scripts/install-deps installs it)", allow_module_level=True)

from amqp_lib import CELERYAPP, HOST, make_app, meta, node_env, queue_depth, queue_depths  # noqa: E402
from celery.exceptions import TaskRevokedError  # noqa: E402  (Debian's python3-celery)

W1, W2 = f"w1@{HOST}", f"w2@{HOST}"


@pytest.fixture(scope="module")
def shared(amqp_servers):
    """Two ccmulti nodes, w1 and w2 (-c 2, queues celery and high), for the module."""
    rabbit, redis = amqp_servers
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


def test_quorum_queue_named_in_the_url_or_declared_by_another(amqp_servers):
    """x-queue-type=quorum in the URL declares a quorum queue (consumed with per-consumer prefetch: quorum queues
    refuse global QoS); a client whose URL does not say so accepts the queue as it is."""
    rabbit, redis = amqp_servers
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


def start_python_worker(env, broker, backend, queue):
    """A Python Celery worker (tests/integration/celeryapp, solo pool) named `queue`@host consuming `queue`, ready:
    (its process, the leader of its own group, and its log)."""
    log = env.root / f"{queue}-worker.log"
    environment = dict(os.environ, CCMULTI_TEST_BROKER=broker, CCMULTI_TEST_BACKEND=backend, PYTHONPATH=str(CELERYAPP))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "proj", "worker", "-Q", queue, "--pool", "solo", "-n", f"{queue}@%h",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=CELERYAPP, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "ready." in log.read_text(), timeout=30, what="the Python worker to be ready")
    except BaseException:
        end_process_group(proc)
        raise
    return proc, log


def test_ccmulti_call_and_inspect_reach_a_python_worker(amqp_servers):
    rabbit, redis = amqp_servers
    env = node_env(redis)
    proc, log = start_python_worker(env, rabbit.url, redis.url, "py")
    try:
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
        end_process_group(proc)
        shutil.rmtree(env.root, ignore_errors=True)


# --- Celery events: the celeryev topic exchange -----------------------------------------------------------------


def event_queues(rabbit):
    """Consumers of the monitors' queues (celeryev.<uuid>), by queue."""
    out = rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "consumers")
    return {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines())
            if len(p) == 2 and p[0].startswith("celeryev.") and p[1].isdigit()}


@pytest.fixture(scope="module")
def evented(amqp_servers):
    """`celery events --dump` and the dashboard bound to celeryev (checked on RabbitMQ) before e1 (-E, queue ev)
    starts, so that neither misses an event."""
    rabbit, redis = amqp_servers
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


# --- Celery's rpc:// result backend: results to the sender's reply queue ----------------------------------------

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def rpc_nodes(amqp_servers):
    """r1 reads `[results] url = "rpc://"` (and the broker) from ./ccmulti.toml (queue rpc); r2 is given
    --result-backend rpc:// over the Redis backend in its environment (queue rpcflag, one process)."""
    rabbit, redis = amqp_servers
    env = node_env(redis)
    configured = Env(env.root)  # the same dirs, without CCMULTI_RESULT_BACKEND: the file's backend counts
    (env.root / "ccmulti.toml").write_text(f'[broker]\nurl = "{rabbit.url}"\n\n[results]\nurl = "rpc://"\n')
    try:
        configured.run("start", "r1", "-c", 2, "-Q", "rpc", check=True, timeout=60)
        env.run("start", "r2", "-c", 1, "-Q", "rpcflag", "--result-backend", "rpc://", check=True, timeout=60)
        yield env, configured, rabbit, redis
    finally:
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


def test_rpc_backend_python_client_gets_results_and_failures(rpc_nodes):
    env, _, rabbit, redis = rpc_nodes
    app = make_app(rabbit.url, "rpc://")
    try:
        ids = []
        for queue in ("rpc", "rpcflag"):
            done = app.send_task("ccmulti.echo", args=[queue, 2], queue=queue)
            assert done.get(timeout=10) == {"args": [queue, 2], "kwargs": {}}
            failed = app.send_task("ccmulti.fail", args=["bad value 9", "ValueError"], queue=queue)
            with pytest.raises(ValueError, match="bad value 9"):
                failed.get(timeout=10)
            assert failed.state == "FAILURE"
            ids += [done.id, failed.id]
        # Nothing went to the Redis backend of r2's environment: the results took the reply queue.
        assert all(redis.cli("EXISTS", f"celery-task-meta-{i}") == "0" for i in ids)
        wait_for(lambda: "results rpc://" in log_of(env, "r1") and "results rpc://" in log_of(env, "r2"),
                 timeout=10, what="the nodes' ready lines to name rpc://")
    finally:
        release_app(app)


def test_rpc_backend_sends_a_celery_reply_and_nothing_for_ignore_result(rpc_nodes):
    """A queue of the test's own as reply_to: the node's reply is what Celery's RPCBackend publishes (default
    exchange, correlation_id = task id, JSON, transient), and an ignore_result task sends none."""
    import amqp  # Debian's python3-amqp, what kombu speaks through

    env, _, rabbit, _ = rpc_nodes
    app = make_app(rabbit.url, "rpc://")
    connection = amqp.Connection(host=f"127.0.0.1:{rabbit.port}", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    probe = f"rpc-probe-{os.getpid()}"
    try:
        channel.queue_declare(probe, durable=False, auto_delete=False)
        quiet = app.send_task("ccmulti.echo", args=["quiet"], queue="rpcflag", ignore_result=True, reply_to=probe)
        loud = app.send_task("ccmulti.echo", args=["loud"], queue="rpcflag", reply_to=probe)
        replies = []

        def loud_succeeded():
            while (message := channel.basic_get(probe, no_ack=True)) is not None:
                replies.append(message)
            return [m for m in replies if json.loads(m.body)["status"] == "SUCCESS"]
        (success,) = wait_for(loud_succeeded, timeout=10, what="loud's result on the probe queue")
        # r2 runs one task at a time, in order: quiet had finished (and sent nothing) before loud began.
        wait_for(lambda: f"ccmulti.echo[{quiet.id}] succeeded" in log_of(env, "r2"), timeout=10,
                 what="r2's log to show quiet succeeded")
        assert {m.properties["correlation_id"] for m in replies} == {loud.id}  # loud's STARTED, SUCCESS
        body = json.loads(success.body)
        assert body["task_id"] == loud.id and body["result"] == "loud" and body["children"] == [], body
        assert success.properties["content_type"] == "application/json"
        assert success.properties["delivery_mode"] == 1
        assert success.delivery_info["exchange"] == "" and success.delivery_info["routing_key"] == probe
        wait_for(lambda: queue_depth(rabbit, "rpcflag") == 0, timeout=10, what="queue rpcflag to be empty")
        assert channel.basic_get(probe, no_ack=True) is None
    finally:
        channel.queue_delete(probe)
        connection.close()
        release_app(app)


def test_ccmulti_call_wait_with_rpc(rpc_nodes):
    env, configured, rabbit, _ = rpc_nodes
    # From the configuration ([results] url = "rpc://", [broker] url).
    call = configured.run("call", "ccmulti.echo", '["cli"]', "-Q", "rpc", "--wait", "--timeout", "10")
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout) == "cli"
    # From the command line, a failure.
    failed = env.run("call", "ccmulti.fail", '["nope", "KeyError"]', "-Q", "rpcflag", "--broker", rabbit.url,
                     "--result-backend", "rpc://", "--wait", "--timeout", "10")
    assert failed.returncode == 1 and "KeyError" in failed.stderr and "nope" in failed.stderr, failed.stderr

    # The clients' reply queues went with them (exclusive, auto-deleted).
    def reply_queues():
        lines = rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "exclusive").splitlines()
        return [p[0] for p in (line.split() for line in lines) if len(p) == 2 and UUID.match(p[0]) and p[1] == "true"]
    wait_for(lambda: not reply_queues(), timeout=10, what="the callers' reply queues to be deleted")

    # Nothing is stored by id: `result` says so, and how to read one.
    sent = configured.run("call", "ccmulti.echo", '["x"]', "-Q", "rpc", check=True).stdout.strip()
    result = configured.run("result", sent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "rpc:// stores no results" in result.stderr and "--wait" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_ccmulti_call_wait_with_rpc_reaches_a_python_worker(amqp_servers):
    """The other way round: a Python worker with backend rpc:// sends its result to `call`'s reply queue."""
    rabbit, redis = amqp_servers
    env = node_env(redis)
    proc, log = start_python_worker(env, rabbit.url, "rpc://", "pyrpc")
    try:
        args = ["-Q", "pyrpc", "--broker", rabbit.url, "--result-backend", "rpc://", "--wait", "--timeout", "15"]
        done = env.run("call", "proj.add", "[20, 22]", *args, timeout=30)
        assert done.returncode == 0, done.stderr + log.read_text()
        assert json.loads(done.stdout) == 42
        failed = env.run("call", "proj.fail", '["nope"]', *args, timeout=30)
        assert failed.returncode == 1 and "ValueError" in failed.stderr and "nope" in failed.stderr, failed.stderr
    finally:
        end_process_group(proc)
        shutil.rmtree(env.root, ignore_errors=True)


def test_rpc_backend_needs_an_amqp_broker(rpc_nodes):
    env, configured, _, redis = rpc_nodes
    for args in (["start", "bad1", "--result-backend", "rpc://", "--broker", redis.url],
                 ["call", "ccmulti.echo", "[1]", "--result-backend", "rpc://", "--broker", "sqlite://", "--wait"],
                 ["worker", "-n", "bad2@h", "--result-backend", "rpc://", "--broker", redis.url]):
        proc = env.run(*args, timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "rpc:// sends results over an AMQP broker" in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
    bad = configured.run("start", "bad3", "--result-backend", "rpc://x", timeout=30)
    assert bad.returncode == 2 and "give rpc:// alone" in bad.stderr, bad.stderr


# --- failures: a node SIGKILLed mid-task, RabbitMQ restarted -------------------------------------------------


def test_node_killed_mid_task_is_redelivered_and_completed_once(amqp_servers):
    """RabbitMQ gives a dead connection's unacked messages back at once: the task a SIGKILLed node was running
    goes to the other node, redelivered, and its result is stored once, by that node."""
    rabbit, redis = amqp_servers
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


def test_quick_tasks_widen_the_prefetch_and_are_all_acked_in_batches(amqp_servers):
    """A node holding only quick tasks asks RabbitMQ for 8 times its plain window (basic.qos; kept while idle) and
    acks in batches (basic.ack with multiple=true up to the highest tag with nothing unsettled below it): 500 echo
    calls all end acked, nothing ready or unacked left. A slow task brings the plain window back."""
    rabbit, redis = amqp_servers
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
