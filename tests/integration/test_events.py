"""Celery events from native nodes, read by the real monitor: Debian's `celery -A proj events --dump` on a real
redis-server sees ccmulti nodes come online, beat every 2 s and shut down, and a task's received / started /
succeeded / failed / retried / revoked; `celery control enable_events|disable_events` turns a node's task events
on and off; `ccmulti call` sends task-sent when task_send_sent_event is set. `ps --json` names each process's node.

One redis-server, one dumper and two nodes for the module: w1 with -E (queue e1), w2 without (queue e2). The
dumper subscribes before the nodes start (checked on Redis: PUBSUB NUMPAT), so it misses nothing. Every wait
polls the dump with a deadline."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import PYTHON, Env, Redis, wait_for

CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"
HOST = socket.gethostname()
W1, W2 = f"w1@{HOST}", f"w2@{HOST}"


class Dump:
    """`celery -A proj events --dump`, its output in a file."""

    def __init__(self, root, url, backend=None):
        self.path = root / "events.txt"
        self.environment = dict(os.environ, CCMULTI_TEST_BROKER=url, CCMULTI_TEST_BACKEND=backend or url,
                                PYTHONPATH=str(CELERYAPP))
        with open(self.path, "w") as out:
            self.proc = subprocess.Popen([PYTHON, "-m", "celery", "-A", "proj", "events", "--dump"], cwd=CELERYAPP,
                                         env=self.environment, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def text(self):
        return self.path.read_text()

    def lines(self, pattern):
        return [line for line in self.text().splitlines() if re.search(pattern, line)]

    def wait(self, pattern, what, timeout=15):
        return wait_for(lambda: self.lines(pattern), timeout=timeout, what=f"{what} in the event dump:\n{self.text()}")

    def celery(self, *args):
        proc = subprocess.run([PYTHON, "-m", "celery", "-A", "proj", *args], cwd=CELERYAPP, env=self.environment,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def cluster():
    env = Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-events-")))
    server = Redis(env.root / "redis")
    dump = Dump(env.root, server.url)
    try:
        wait_for(lambda: server.cli("PUBSUB", "NUMPAT") == "1", timeout=30, what="celery events to subscribe")
        env.run("start", "w1", "w2", "--broker", server.url, "-c", 2, "-Q:w1", "e1", "-Q:w2", "e2", "-E:w1",
                check=True, timeout=60)
        yield env, server, dump
    finally:
        if env.run("stop", "--wait", "--timeout", "15", timeout=30).returncode != 0:
            env.run("kill", timeout=30)
        dump.stop()
        server.stop()
        shutil.rmtree(env.root, ignore_errors=True)


def call(env, server, *args):
    return env.run("call", *args, "--broker", server.url, check=True).stdout.strip()


def wait_result(env, server, task_id):
    return json.loads(env.run("result", task_id, "--json", "--broker", server.url, "--wait", "--timeout", "15",
                              timeout=30).stdout)


def heartbeat_after(dump, node, line):
    """Waits for a heartbeat of `node` logged after the dump's line `line`: whatever the node sent in the turn
    that finished a task (flushed at the end of that turn) is in the dump by then."""
    start = dump.text().splitlines().index(line)
    wait_for(lambda: any(l.startswith(f"{node} [") and " heartbeat:" in l
                         for l in dump.text().splitlines()[start + 1:]),
             timeout=10, what=f"a heartbeat of {node} after the task")


def test_nodes_come_online_and_beat_every_two_seconds(cluster):
    _, _, dump = cluster
    for node in (W1, W2):
        (online,) = dump.wait(rf"^{re.escape(node)} \[.*\] started: ", f"{node} online")
        assert "freq=2.0" in online and "sw_ident=ccmulti" in online and "sw_sys=Linux" in online, online
        assert re.search(r"loadavg=\[[\d.]+, [\d.]+, [\d.]+\]", online) and "active=0" in online, online
        assert re.search(r"pid=\d+", online) and re.search(r"clock=\d+", online) and "utcoffset=" in online, online
        beats = dump.wait(rf"^{re.escape(node)} \[.*\] heartbeat: ", f"{node} heartbeat")
        assert "processed=" in beats[0] and "freq=2.0" in beats[0]


def test_a_tasks_life_is_received_started_succeeded_or_failed(cluster):
    env, server, dump = cluster
    ok = call(env, server, "ccmulti.echo", "[1, 2]", "-Q", "e1")
    bad = call(env, server, "ccmulti.fail", '["boom", "ValueError"]', "-Q", "e1")
    assert wait_result(env, server, ok)["status"] == "SUCCESS"
    assert wait_result(env, server, bad)["status"] == "FAILURE"
    (received,) = dump.wait(rf"{W1} \[.*\] task received: ccmulti\.echo\({ok}\)", "task-received")
    assert "args=(1, 2) kwargs={}" in received and "retries=0" in received and f"root_id={ok}" in received, received
    dump.wait(rf"{W1} \[.*\] task started: ccmulti\.echo\({ok}\)", "task-started")
    (succeeded,) = dump.wait(rf"{W1} \[.*\] task succeeded: ccmulti\.echo\({ok}\)", "task-succeeded")
    assert re.search(r"result={'args': \[1, 2\], 'kwargs': {}}, runtime=[\d.e-]+", succeeded), succeeded
    (failed,) = dump.wait(rf"{W1} \[.*\] task failed: ccmulti\.fail\({bad}\)", "task-failed")
    assert "exception=ValueError('boom')" in failed and "traceback=" in failed, failed


def test_retried_and_revoked_tasks(cluster):
    env, server, dump = cluster
    retried = call(env, server, "ccmulti.retry", "[1, 0]", "-Q", "e1")
    assert wait_result(env, server, retried)["result"] == 1
    (line,) = dump.wait(rf"{W1} \[.*\] task retried: ccmulti\.retry\({retried}\)", "task-retried")
    assert "exception=Retry(" in line, line
    dump.wait(rf"{W1} \[.*\] task succeeded: ccmulti\.retry\({retried}\)", "the retry's success")
    # Already expired when the node takes it: revoked, never received.
    expired = call(env, server, "ccmulti.echo", "[1]", "-Q", "e1", "--expires", "0")
    assert wait_result(env, server, expired)["status"] == "REVOKED"
    # The dump names a task by its task-received, which an expired task never has: it shows no id here.
    (revoked,) = dump.wait(rf"{W1} \[.*\] task revoked: .*expired=True", "task-revoked")
    assert "terminated=False" in revoked, revoked


def test_celery_control_enables_and_disables_task_events(cluster):
    env, server, dump = cluster
    quiet = call(env, server, "ccmulti.echo", '["quiet"]', "-Q", "e2")
    assert wait_result(env, server, quiet)["status"] == "SUCCESS"
    last = dump.wait(rf"^{W2} \[", "an event of w2")[-1]
    heartbeat_after(dump, W2, last)
    assert quiet not in dump.text(), "w2 runs without -E: no task events"

    out = dump.celery("control", "enable_events", "-d", W2, "--timeout", "5")
    assert re.search(rf"->\s+{W2}: OK", out) and "task events enabled" in out, out
    assert "task events already enabled" in dump.celery("control", "enable_events", "-d", W2, "--timeout", "5")
    loud = call(env, server, "ccmulti.echo", '["loud"]', "-Q", "e2")
    dump.wait(rf"{W2} \[.*\] task succeeded: ccmulti\.echo\({loud}\)", "w2's task events once enabled")

    out = dump.celery("control", "disable_events", "-d", W2, "--timeout", "5")
    assert "task events disabled" in out, out
    again = call(env, server, "ccmulti.echo", '["quiet again"]', "-Q", "e2")
    assert wait_result(env, server, again)["status"] == "SUCCESS"
    last = dump.wait(rf"^{W2} \[", "an event of w2")[-1]
    heartbeat_after(dump, W2, last)
    assert again not in dump.text(), "task events disabled again"


def test_call_sends_task_sent_when_configured(cluster):
    env, server, dump = cluster
    config = env.root / "ccmulti.toml"
    config.write_text("task_send_sent_event = true\n")
    task_id = env.run("-C", config, "call", "ccmulti.echo", "[5]", "--kwargs", '{"x": "y"}', "-Q", "e1", "--broker",
                      server.url, check=True).stdout.strip()
    (sent,) = dump.wait(rf"^gen\d+@{HOST} \[.*\] task sent: ccmulti\.echo\({task_id}\)", "task-sent")
    assert "args=(5,) kwargs={'x': 'y'}" in sent and "queue=e1" in sent and "routing_key=e1" in sent, sent
    dump.wait(rf"{W1} \[.*\] task succeeded: ccmulti\.echo\({task_id}\)", "the sent task's success")


def test_events_on_the_embedded_broker_are_a_clear_warning(env):
    config = env.root / "ccmulti.toml"
    config.write_text("task_send_sent_event = true\n")
    proc = env.run("-C", config, "call", "ccmulti.echo", "[1]", check=True)
    assert "no task-sent event was sent" in proc.stderr and "Redis or RabbitMQ broker" in proc.stderr, proc.stderr


def test_ps_json_names_the_node_and_queues_of_worker_and_pool(cluster):
    env, _, _ = cluster
    tree = json.loads(env.run("ps", "--json", check=True).stdout)

    def walk(entries):
        for entry in entries:
            yield entry
            yield from walk(entry["children"])

    # Only this group's processes: other tests (or other checkouts) on the machine may run nodes named w1 too.
    master = int((env.run_dir / "master.pid").read_text().split()[0])
    (ours,) = [p for p in tree["processes"] if p["pid"] == master]
    mine = [p for p in walk(ours["children"]) if p["node"] in (W1, W2)]
    workers = {p["node"]: p for p in mine if p["title"].startswith("ccmulti: worker ")}
    pools = [p for p in mine if p["title"].startswith("ccmulti: pool ")]
    assert set(workers) == {W1, W2}
    assert workers[W1]["queues"] == ["e1"] and workers[W2]["queues"] == ["e2"]
    assert len(pools) == 4 and all(p["queues"] == (["e1"] if p["node"] == W1 else ["e2"]) for p in pools)


def test_a_stopping_node_goes_offline(cluster):
    env, _, dump = cluster
    env.run("stop", "w2", "--wait", check=True, timeout=30)
    (offline,) = dump.wait(rf"^{W2} \[.*\] shutdown: ", "w2's worker-offline")
    assert "freq=2.0" in offline and "sw_ident=ccmulti" in offline
