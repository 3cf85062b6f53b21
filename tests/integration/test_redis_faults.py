"""Redis faults under real ccmulti nodes and a private redis-server: nothing lost, nothing stuck, nothing run
twice by live nodes.

- Error replies (OOM under maxmemory + noeviction, READONLY from a server turned replica) do not end a node: it
  backs off, reconnects and carries on; a message that arrives at an idle node meanwhile is neither dropped nor
  stranded.
- A worker SIGKILLed while a message arrives for it, idle, loses nothing: waiting pops nothing.
- A Redis pause longer than the command timeout leaves no claim behind that no node holds (a claim whose reply
  was lost with the connection is adopted on reconnect).
- An outage longer than the visibility timeout does not restore live nodes' claims: they are re-asserted on
  reconnect before anyone restores, and every task runs once.

Tasks are sent by a Python Celery client without a result backend (no subscriptions); results are read from
Redis with redis-cli. Every wait polls with a deadline (conftest.wait_for)."""
import json
import os
import signal
import socket
import time

import pytest

from conftest import free_port, log_of, stop_nodes, wait_for

HOST = socket.gethostname()

from celery import Celery  # noqa: E402  (Debian's python3-celery)
import redis as redis_py  # noqa: E402  (python3-redis, a kombu dependency)


def start_nodes(env, url, *nodes, concurrency=2, prefetch=4):
    env.run("start", *nodes, "--broker", url, "-c", concurrency, "--prefetch-multiplier", prefetch, "-Q", "celery",
            check=True, timeout=60)


def node_exits(env):
    path = env.log_dir / "master.log"
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if "exited with" in line or "killed by" in line]


def statuses(redis, ids):
    values = redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
    return [json.loads(v)["status"] if v else None for v in values]


def all_succeeded(redis, ids):
    return statuses(redis, ids) == ["SUCCESS"] * len(ids)


def broker_clean(redis):
    return all(redis.cli(*command) == "0"
               for command in (("HLEN", "unacked"), ("ZCARD", "unacked_index"), ("LLEN", "celery")))


@pytest.fixture
def app(redis):
    client = Celery("faults", broker=redis.url)
    yield client
    client.close()


@pytest.fixture
def nodes(env, redis):
    yield
    redis.proc.send_signal(signal.SIGCONT)  # a test that failed half-way may leave it stopped
    stop_nodes(env)


def oom_on(redis):
    return ("config_set", "maxmemory", "1")


def readonly_on(redis):
    return ("replicaof", "127.0.0.1", str(free_port()))  # a master that never answers: its data stays


# name: (the fault as a step of a transaction, its end, what the nodes log, whether an idle node still claims)
FAULTS = {
    # Under OOM the claim script may pop (RPOP is allowed), and a script that has written goes on: the claim
    # record is written in the same step.
    "oom": (oom_on, lambda r: r.config_set("maxmemory", "0"), "OOM", True),
    # A replica refuses the claim script's RPOP: the message stays queued until the server is a master again.
    "readonly": (readonly_on, lambda r: r.replicaof("NO", "ONE"), "READONLY", False),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_error_replies_do_not_end_nodes_or_lose_tasks(env, redis, app, nodes, fault):
    """Two nodes run tasks; a message is moved into their queue in the same transaction that turns on the fault,
    so an idle node is rung and claims under the fault (OOM: the claim goes through, its results cannot be
    stored; READONLY: nothing can be claimed). The nodes live through the fault (no exit), and once it is over
    every task has its result and nothing is left in the broker."""
    turn_on, turn_off, word, pops = FAULTS[fault]
    start_nodes(env, redis.url + "?visibility_timeout=6", "w1", "w2")
    running = [app.send_task("ccmulti.sleep", args=[2.5]).id for _ in range(2)]
    wait_for(lambda: statuses(redis, running) == ["STARTED"] * 2, timeout=10, what="two tasks to start")
    parked = app.send_task("ccmulti.sleep", args=[0.5], queue="staging").id

    client = redis_py.Redis(port=redis.port)
    name, *args = turn_on(redis)
    with client.pipeline(transaction=True) as step:
        step.rpoplpush("staging", "celery")
        getattr(step, name)(*args)
        step.execute()
    try:
        if pops:
            wait_for(lambda: redis.cli("LLEN", "celery") == "0", timeout=5, what="an idle node to claim the message")
        # Every node meets the fault (a heartbeat at the latest, every 2 s here), and lives on.
        wait_for(lambda: all(word in log_of(env, n) for n in ("w1", "w2")) or node_exits(env), timeout=10,
                 what=f"both nodes to meet {word}")
        assert not node_exits(env)
    finally:
        turn_off(client)
    ids = running + [parked]
    wait_for(lambda: all_succeeded(redis, ids), timeout=20, interval=0.1, what="every task's result")
    wait_for(lambda: broker_clean(redis), timeout=5, what="unacked and the queue to be empty")
    assert not node_exits(env), node_exits(env)
    logs = log_of(env, "w1") + log_of(env, "w2")
    assert "connected again" in logs
    assert logs.count(f"ccmulti.sleep[{parked}] received") == 1, logs


def test_pause_longer_than_the_command_timeout_strands_no_claim(env, redis, app, nodes):
    """Redis stops (SIGSTOP) for longer than the nodes' command timeout (5 s) while they claim and settle tasks:
    a node claims the next window ahead as a task finishes (prefetch 1: at every task), so a claim sent during the
    pause is the request that times out, and Redis runs it once it wakes up. The node that made it adopts what it
    claimed on reconnect: every task is done long before the visibility timeout (60 s), nothing stays in
    `unacked`."""
    start_nodes(env, redis.url + "?visibility_timeout=60", "w1", "w2", prefetch=1)
    ids = [app.send_task("ccmulti.sleep", args=[0.5]).id for _ in range(40)]
    wait_for(lambda: statuses(redis, ids).count("SUCCESS") >= 4, timeout=10, what="the nodes to get going")
    redis.proc.send_signal(signal.SIGSTOP)
    time.sleep(7)  # the outage itself: longer than the 5 s command timeout
    redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: all_succeeded(redis, ids), timeout=20, interval=0.1, what="every task's result")
    wait_for(lambda: broker_clean(redis), timeout=5, what="unacked and the queue to be empty")
    logs = log_of(env, "w1") + log_of(env, "w2")
    assert "presumed dead" not in logs
    assert not node_exits(env)


def test_outage_longer_than_the_visibility_timeout_runs_no_task_twice(env, redis, app, nodes):
    """Redis stops for 6 s with a visibility timeout of 4 s while both nodes run long tasks: every claim is older
    than the timeout when Redis returns, yet the nodes are alive. They re-assert their claims on reconnect and
    hold off restoring others' claims until every live node had the time to do so: each task runs once."""
    # Prefetch 1: a node claims no more than it can run at once, so the three tasks start on the four slots
    # whichever node claims first (with a larger window the first one could hold the third unstarted).
    start_nodes(env, redis.url + "?visibility_timeout=4", "w1", "w2", prefetch=1)
    ids = [app.send_task("ccmulti.sleep", args=[9]).id for _ in range(3)]
    wait_for(lambda: statuses(redis, ids) == ["STARTED"] * 3, timeout=10, what="the tasks to start")
    redis.proc.send_signal(signal.SIGSTOP)
    time.sleep(6)  # the outage itself: longer than the visibility timeout
    redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: all_succeeded(redis, ids), timeout=20, interval=0.1, what="every task's result")
    logs = log_of(env, "w1") + log_of(env, "w2")
    for task_id in ids:
        assert logs.count(f"ccmulti.sleep[{task_id}] received") == 1, logs
    assert "presumed dead" not in logs
    wait_for(lambda: broker_clean(redis), timeout=5, what="unacked and the queue to be empty")


def worker_pids(node):
    """Pids of the worker processes titled `ccmulti: worker <node>@<host>` (the title replaces the command line)."""
    title = f"ccmulti: worker {node}@{HOST}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(title):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def waiting_for_messages(redis):
    """A connection of the idle node waits for the queue: client-side-caching tracking of the queue keys in
    broadcast mode (flag B: how ccmulti waits), or a BRPOP blocked on them (flag b: how it waited before)."""
    for line in redis.cli("CLIENT", "LIST").splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "B" in fields.get("flags", "") or ("b" in fields.get("flags", "") and fields.get("cmd") == "brpop"):
            return True
    return False


def test_a_worker_killed_while_a_message_arrives_loses_nothing(env, redis, app, nodes):
    """An idle node waits for its queue; its worker is stopped (SIGSTOP), a Python client sends a task, Redis does
    all it does for waiting clients (an observer tracking the queue key hears of the push: Redis has served
    blocked clients and sent invalidations by then), and the worker is SIGKILLed without ever reading it. The task
    must be in Redis at that moment (queued or claimed) and run exactly once, by the worker the master starts
    again. A consumer that popped in its blocking wait (BRPOP) lost it here: popped, never recorded."""
    node = f"lw{os.getpid()}"
    start_nodes(env, redis.url, node, concurrency=1, prefetch=1)
    first = app.send_task("ccmulti.sleep", args=[0]).id
    wait_for(lambda: all_succeeded(redis, [first]), timeout=10, what="a first task (the node is up and idle)")
    wait_for(lambda: waiting_for_messages(redis), timeout=5, what="the idle node to wait for its queue")
    [worker] = worker_pids(node)

    listener = redis_py.Connection(port=redis.port)  # invalidations of the queue key come here
    listener.send_command("CLIENT", "ID")
    listener_id = listener.read_response()
    listener.send_command("SUBSCRIBE", "__redis__:invalidate")
    assert listener.read_response()[0] == b"subscribe"
    tracker = redis_py.Redis(port=redis.port, single_connection_client=True)
    tracker.execute_command("CLIENT", "TRACKING", "on", "REDIRECT", listener_id, "BCAST", "PREFIX", "celery")
    client = redis_py.Redis(port=redis.port)
    os.kill(worker, signal.SIGSTOP)
    try:
        task = app.send_task("ccmulti.sleep", args=[0]).id

        def pushed():
            if not listener.can_read(timeout=0.1):
                return False
            kind, _channel, keys = listener.read_response()
            return kind == b"message" and b"celery" in (keys or [b"celery"])  # no keys: a flush

        wait_for(pushed, timeout=5, what="Redis to announce the push to the queue")
        # The invariant itself: the message is in the queue or claimed in `unacked`, never only in a process.
        assert client.llen("celery") + client.hlen("unacked") == 1, "the message is neither queued nor claimed"
    finally:
        os.kill(worker, signal.SIGKILL)
        tracker.close()
        listener.disconnect()
    wait_for(lambda: [p for p in worker_pids(node) if p != worker], timeout=15, what="the master to restart the worker")
    wait_for(lambda: all_succeeded(redis, [task]), timeout=10, interval=0.05, what="the task's result")
    wait_for(lambda: broker_clean(redis), timeout=5, what="unacked and the queue to be empty")
    assert log_of(env, node).count(f"ccmulti.sleep[{task}] received") == 1, log_of(env, node)
