"""Memory and connections stay bounded whatever clients and the broker send ("nothing lost, nothing stuck",
item 10), with real processes: the master's control socket against clients that never read, send a line
without end or sit idle (and `ccmulti stop` when every connection is taken), the worker against 10,000
made-up task names and 100,000 messages with an eta far away."""
import json
import os
import pathlib
import re
import signal
import socket
import time

import pytest

from conftest import wait_for
from test_supervisor import HOST, alive, make_sup
from test_worker import sanitized_build

# Bounds measured in RSS mean nothing under AddressSanitizer (its shadow memory and quarantine grow RSS by design),
# and 100,000 messages take minutes there: the default build checks them.
measures_rss = pytest.mark.skipif(sanitized_build(), reason="RSS bounds are not measurable under AddressSanitizer")

MAX_CLIENTS = 64  # supervisor/control_server.hpp
IDLE_TIMEOUT = 5


@pytest.fixture
def sup():
    yield from make_sup(None)


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def master_log(sup):
    path = sup.log_dir / "master.log"
    return path.read_text(errors="replace") if path.exists() else ""


def connect(sup):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sup.run_dir / "master.sock"))
    return s


def ask(sup, request, timeout=10):
    """One request on a fresh connection: the first reply line as JSON."""
    with connect(sup) as s:
        s.settimeout(timeout)
        try:
            s.sendall((json.dumps(request) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # a master with every connection taken answers "busy" at once and closes: its reply is still there
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.split(b"\n")[0])


def closed_by_peer(s, timeout):
    """True once the master has closed `s` (reads end of file or a reset), within `timeout`."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@measures_rss
def test_a_client_that_never_reads_is_dropped_and_the_master_stays_small(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    master = sup.master_pid()
    before = rss_kib(master)
    s = connect(sup)
    s.setblocking(False)
    # Requests as fast as the socket takes them, never reading a reply: without a bound on what is queued for
    # it, the master keeps every reply in memory. (An unknown command of 32 KiB: its error line quotes it.)
    line = (json.dumps({"v": 1, "cmd": "x" * 32768}) + "\n").encode() * 4
    sent, deadline, dropped = 0, time.monotonic() + 20, False
    while time.monotonic() < deadline and sent < 200_000_000:
        try:
            sent += s.send(line)
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            dropped = True
            break
    s.close()
    assert dropped, f"the master took {sent} bytes of requests from a client that reads nothing"
    wait_for(lambda: "does not read its replies" in master_log(sup), timeout=5, what="the log line: " + master_log(sup)[-1500:])
    assert rss_kib(master) < before + 20 * 1024, (before, rss_kib(master))
    assert ask(sup, {"v": 1, "cmd": "ping"})["ok"]  # and it answers others


def test_a_request_line_without_end_is_refused_and_dropped(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    master = sup.master_pid()
    before = rss_kib(master)
    with connect(sup) as s:
        s.settimeout(10)
        sent = 0
        try:
            while sent < 50_000_000:
                sent += s.send(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 50_000_000, "the master kept reading a request line 50 MB long"
    wait_for(lambda: "request line over 64 KiB" in master_log(sup), timeout=5, what="the log line")
    assert rss_kib(master) < before + 20 * 1024
    assert ask(sup, {"v": 1, "cmd": "ping"})["ok"]


def test_idle_connections_are_closed_and_stop_falls_back_to_the_pid_files(sup):
    sup.check("start", "w1", "w2", "--exec", sup.fake("--notify"))
    nodes = [sup.pid("w1"), sup.pid("w2")]
    idle = [connect(sup) for _ in range(MAX_CLIENTS)]
    try:
        wait_for(lambda: ask(sup, {"v": 1, "cmd": "ping"}).get("busy"), timeout=5, what="every connection taken")
        # All taken: `stop` does not wait for them, it signals from the pid files and says so.
        began = time.monotonic()
        proc = sup.check("stop", "w1", "--wait", timeout=30)
        assert "is busy" in proc.stdout and "stopping from the pid files" in proc.stdout, proc.stdout
        assert f"w1@{HOST}  stopped" in proc.stdout, proc.stdout
        assert time.monotonic() - began < IDLE_TIMEOUT + 3
        assert not alive(nodes[0]) and alive(nodes[1])
        # The idle ones are closed after the idle timeout, with a log line; then the master answers again.
        assert all(closed_by_peer(s, IDLE_TIMEOUT + 10) for s in idle)
        assert "sent no request for 5s" in master_log(sup)
        reply = ask(sup, {"v": 1, "cmd": "list"})
        states = {n["name"]: n["state"] for n in reply["nodes"]}
        assert states[f"w2@{HOST}"] == "ready" and states[f"w1@{HOST}"] != "ready", states
    finally:
        for s in idle:
            s.close()
    proc = sup.check("stop", "--wait", timeout=30)
    assert "pid files" not in proc.stdout, proc.stdout  # through the master again
    assert not alive(nodes[1])


def test_stop_falls_back_when_a_hung_master_takes_no_more_connections(sup):
    """A master that hangs (SIGSTOP) with its listen backlog full: `stop` must not block in connect() for ever;
    it gives up on the master after a few seconds and signals from the pid files."""
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    node, master = sup.pid("w1"), sup.master_pid()
    os.kill(master, signal.SIGSTOP)
    queued = []
    try:
        while True:  # fill the backlog: connections queue in the kernel until it refuses the next one
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(sup.run_dir / "master.sock"))
            except BlockingIOError:
                s.close()
                break
            queued.append(s)
            assert len(queued) <= 1024, "the backlog never filled"
        began = time.monotonic()
        proc = sup.run("stop", "w1", timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "takes no more connections" in proc.stdout and "pid files" in proc.stdout, proc.stdout
        assert time.monotonic() - began < 15
        wait_for(lambda: not alive(node), timeout=10, what="the node to stop")
    finally:
        for s in queued:
            s.close()
        os.kill(master, signal.SIGCONT)


def test_a_client_waiting_on_a_stop_is_not_idle(sup):
    """A warm stop that waits longer than the idle timeout for a task keeps its connection to the end."""
    sup.check("start", "w1", "--exec", sup.fake("--notify", "--task", str(IDLE_TIMEOUT + 2)))
    proc = sup.check("stop", "w1", "--wait", timeout=30)
    assert f"w1@{HOST}  stopped" in proc.stdout and "pid files" not in proc.stdout, proc.stdout
    assert "task done" in sup.records("w1")
    assert "sent no request" not in master_log(sup)


# --- the worker against what the broker holds ------------------------------------------------------------------

from test_worker import db, kill_all, make_env, ppids, processes_of, shut_down  # noqa: E402


@pytest.fixture
def own():
    env = make_env("ccmulti-bounds-")
    try:
        yield env
    finally:
        shut_down(env)


def worker_pid(env, node="w1"):
    title = f"ccmulti: worker {node}@{HOST}".encode()
    pids = [pid for pid, line in processes_of(env).items() if line.startswith(title)]
    parents = ppids()
    # A pool process may still carry the worker's title for a moment after its fork: the worker is its parent.
    workers = [pid for pid in pids if parents.get(pid) not in pids]
    assert len(workers) == 1, processes_of(env)
    return workers[0]


def envelope_template(env):
    """The envelope `ccmulti call` stores for a task, taken back out of the queue before any node runs."""
    env.run("call", "ccmulti.echo", "[1]", check=True)
    with db(env) as conn:
        (envelope,) = conn.execute("SELECT envelope FROM messages").fetchone()
        conn.execute("DELETE FROM messages")
    return json.loads(envelope)


def insert_messages(env, template, count, name=lambda i: "ccmulti.echo", eta=None):
    """`count` messages in one transaction (100,000 take a second or two; `ccmulti call` would take minutes),
    then the wakeup a publisher sends after its commit."""
    eta_iso = None
    if eta is not None:
        eta_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(eta)) + ".000000+00:00"
    rows = []
    now = time.time()
    for i in range(count):
        task_id = f"{i:08x}-0000-4000-8000-000000000000"
        message = dict(template)
        headers = dict(template["headers"], id=task_id, root_id=task_id, task=name(i))
        if eta_iso:
            headers["eta"] = eta_iso
        message["headers"] = headers
        message["properties"] = dict(template["properties"], correlation_id=task_id)
        rows.append(("celery", task_id, name(i), eta, json.dumps(message), now))
    with db(env) as conn:
        conn.executemany("INSERT INTO messages (queue, task_id, task_name, eta, envelope, published_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
        wakes = [row[0] for row in conn.execute("SELECT wake FROM consumers")]
    for wake in wakes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(b"\x01", "\0" + wake)
            except OSError:
                pass


def remaining(env):
    with db(env) as conn:
        return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


def test_ten_thousand_unknown_task_names_do_not_grow_the_stats(own):
    template = envelope_template(own)
    own.run("start", "w1", "-c", "2", check=True, timeout=60)
    count = 10_000
    insert_messages(own, template, count, name=lambda i: f"made.up.task{i}")
    wait_for(lambda: remaining(own) == 0, timeout=120, interval=0.5, what="every message settled")
    stats = json.loads(own.run("inspect", "stats", "--json", check=True).stdout)
    total = next(iter(stats.values()))["total"]
    assert len(total) <= 101, f"{len(total)} task names in the stats"  # TaskTotals::max_unregistered + bucket
    assert sum(total.values()) == count
    assert total["(other unregistered tasks)"] == count - 100


def cpu_seconds(pid):
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ping_seconds(env):
    began = time.monotonic()
    out = env.run("call", "ccmulti.ping", "--wait", "--timeout", "30", check=True).stdout
    assert json.loads(out) == "pong"
    return time.monotonic() - began


@measures_rss
def test_a_hundred_thousand_eta_messages_stay_in_the_broker(own):
    """Messages with an eta a day away wait in the broker, not in the node: its memory stays near where it was,
    and other tasks run at once."""
    template = envelope_template(own)
    own.run("start", "w1", "-c", "2", check=True, timeout=60)
    worker = worker_pid(own)
    ping_seconds(own)
    baseline = rss_kib(worker)
    count = 100_000
    insert_messages(own, template, count, eta=time.time() + 86400)
    assert ping_seconds(own) < 10
    cpu = cpu_seconds(worker)
    took = [ping_seconds(own) for _ in range(5)]
    assert max(took) < 5, took
    assert cpu_seconds(worker) - cpu < 5, "the node keeps busy with messages that are not due"
    queues = own.run("queues", check=True).stdout
    assert re.search(r"^celery\s+0\s+100000\s+0\s", queues, re.M), queues
    grown = rss_kib(worker) - baseline
    assert grown < 30 * 1024, f"the node grew by {grown} KiB holding {count} messages that are not due"


@measures_rss
def test_a_hundred_thousand_eta_messages_on_redis_are_parked_not_held(env, redis):
    """On Redis a node claims eta messages (kombu's semantics), but keeps only those due within a minute in
    memory: the rest are parked in Redis (`_ccmulti.parked.<consumer>`). A task queued behind 100,000 of them
    runs within seconds and the node's memory stays near where it was."""
    import redis as redis_py

    try:
        parks_on_redis(env, redis, redis_py.Redis(port=redis.port))
    finally:
        env.run("kill", timeout=30)
        kill_all(env)


def parks_on_redis(env, redis, client):
    env.run("call", "ccmulti.echo", "[1]", "--broker", redis.url, "--countdown", "86400", check=True)
    template = json.loads(client.rpop("celery"))
    env.run("start", "w1", "--broker", redis.url, "-c", "2", check=True, timeout=60)
    worker = worker_pid(env)

    def ping():
        began = time.monotonic()
        out = env.run("call", "ccmulti.ping", "--broker", redis.url, "--wait", "--timeout", "60", check=True)
        assert json.loads(out.stdout) == "pong"
        return time.monotonic() - began

    ping()
    baseline = rss_kib(worker)
    count = 100_000
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        task_id = f"{i:08x}-0000-4000-8000-000000000000"
        message = dict(template, headers=dict(template["headers"], id=task_id, root_id=task_id),
                       properties=dict(template["properties"], correlation_id=task_id,
                                       delivery_tag=f"{i:08x}-0000-4000-8000-00000000000d"))
        pipe.lpush("celery", json.dumps(message))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    assert ping() < 15  # behind all of them in the list
    wait_for(lambda: client.llen("celery") == 0 and sum(client.zcard(k) for k in client.keys("_ccmulti.parked.*"))
             == count, timeout=30, what=f"{count} parked claims")
    assert client.hlen("unacked") == count  # claimed, as a Celery worker claims them
    cpu = cpu_seconds(worker)
    took = [ping() for _ in range(3)]
    assert max(took) < 5, took
    assert cpu_seconds(worker) - cpu < 5, "the node keeps busy with messages that are not due"
    grown = rss_kib(worker) - baseline
    assert grown < 30 * 1024, f"the node grew by {grown} KiB with {count} claimed eta messages"
    # A warm stop leaves them claimed, each to be restored to its queue shortly before it is due.
    env.run("stop", "--wait", check=True, timeout=60)
    assert client.hlen("unacked") == count and not client.keys("_ccmulti.parked.*")
