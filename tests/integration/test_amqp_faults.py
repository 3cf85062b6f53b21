"""The RabbitMQ transport's connection and shutdown claims (docs/amqp.md), against a real rabbitmq-server of the
module's own (conftest.amqp_servers, with a TLS listener: its certificate signed by a throwaway CA made with
openssl) and real ccmulti nodes, results in a private redis-server:

- TLS: a node with `amqps://…?ssl_ca_certs=CA` runs a task sent over TLS (`ssl_cert_reqs=CERT_NONE`), and
  RabbitMQ lists its connection as TLS; without the CA the server is not trusted: the node says the certificate
  could not be verified (log, `status`), stays up and keeps trying; `call` fails with the same one-line error.
- Missed heartbeats: with `?heartbeat=2`, RabbitMQ's Erlang VM is stopped (SIGSTOP): the node notices the silence
  while it lasts, reconnects once the VM runs again, and every task sent before and after gets its result.
- Cold shutdown: the task a node is running and those it holds behind it go back to their queue (basic.reject
  with requeue) and another node completes every one.

This module's RabbitMQ is paused by a test: test_amqp.py's shared nodes never see that. Every wait polls with a
deadline (conftest.wait_for)."""
import json
import os
import pathlib
import re
import shutil
import signal

import pytest

from conftest import log_of, release_app, stop_nodes, wait_for

if not shutil.which("epmd") or not pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
    pytest.skip("rabbitmq-server is not installed (scripts/install-deps installs it)", allow_module_level=True)
if not shutil.which("openssl"):
    pytest.skip("openssl is not installed (scripts/install-deps installs it)", allow_module_level=True)

from amqp_lib import HOST, make_app, node_env, ready_and_consumers, results  # noqa: E402

AMQP_TLS = True  # conftest.amqp_servers: a TLS listener too


@pytest.fixture
def nodes(amqp_servers):
    """A private directory set for this test's nodes (results in the module's Redis); its nodes stop after it."""
    _, redis = amqp_servers
    env = node_env(redis)
    try:
        yield env
    finally:
        stop_nodes(env)
        shutil.rmtree(env.root, ignore_errors=True)


def node_status(env, name):
    status = env.run("status", "--json")  # exit 3 while a node is not ready
    (node,) = [n for n in json.loads(status.stdout)["nodes"] if n["name"].split("@")[0] == name]
    return node


def all_succeeded(redis, ids):
    stored = results(redis, ids)
    return stored if all(m and m["status"] == "SUCCESS" for m in stored) else None


# --- TLS (amqps://) ------------------------------------------------------------------------------------------


def test_tls_node_with_the_ca_runs_a_task_sent_over_tls(amqp_servers, nodes):
    rabbit, redis = amqp_servers
    trusted = rabbit.tls_url(f"ssl_ca_certs={rabbit.tls.ca}")
    nodes.run("start", "t1", "--broker", trusted, "-c", 1, "-Q", "tls", check=True, timeout=60)
    # A client that does not verify the server (CERT_NONE: no CA given, so verifying would fail) sends over TLS.
    call = nodes.run("call", "ccmulti.echo", '["over tls"]', "-Q", "tls", "--broker",
                     rabbit.tls_url("ssl_cert_reqs=CERT_NONE"), check=True)
    (stored,) = wait_for(lambda: all_succeeded(redis, [call.stdout.strip()]), timeout=10, what="the result")
    assert stored["result"] == "over tls" and stored["worker"] == f"t1@{HOST}", stored
    # No ssl_ca_certs: the system's trust store, as OpenSSL finds it (SSL_CERT_FILE names it here), verifies the
    # server; a host name (localhost) is checked against the certificate's DNS names as 127.0.0.1 was against its
    # IP address.
    by_name = f"amqps://guest:guest@localhost:{rabbit.tls_port}//"
    nodes.env["SSL_CERT_FILE"] = str(rabbit.tls.ca)
    try:
        call = nodes.run("call", "ccmulti.echo", '["system CAs"]', "-Q", "tls", "--broker", by_name, "--wait",
                         "--timeout", 10)
    finally:
        del nodes.env["SSL_CERT_FILE"]
    assert call.returncode == 0 and json.loads(call.stdout) == "system CAs", call.stderr


def test_tls_server_not_trusted_is_a_clear_error_and_the_node_keeps_trying(amqp_servers, nodes):
    """Without ssl_ca_certs the system's CAs are used, and none of them signed the throwaway server certificate."""
    rabbit, _ = amqp_servers
    untrusted = rabbit.tls_url()
    call = nodes.run("call", "ccmulti.echo", '["x"]', "-Q", "tls", "--broker", untrusted, timeout=30)
    assert call.returncode != 0 and "certificate" in call.stderr, call.stderr
    assert len(call.stderr.strip().splitlines()) == 1, call.stderr

    start = nodes.run("start", "t2", "--broker", untrusted, "-c", 1, "-Q", "tls", "--start-timeout", 3, timeout=60)
    assert start.returncode == 3, start.stdout + start.stderr  # not ready (docs/supervisor.md)
    assert "certificate" in start.stdout + start.stderr, start.stdout + start.stderr
    first = node_status(nodes, "t2")
    # It stays up and keeps trying, with backoff, and says why each time (not a silent crash loop).
    def attempts():
        return [line for line in log_of(nodes, "t2").splitlines()
                if f"t2@{HOST}: cannot connect" in line and "TLS certificate verification failed" in line]
    wait_for(lambda: len(attempts()) >= 3, timeout=15, what=f"three logged attempts:\n{log_of(nodes, 't2')}")
    # OpenSSL's reason (RabbitMQ sends its CA along: "self-signed certificate in certificate chain"), and the way out.
    way_out = r"\(give the CA that signed it: \?ssl_ca_certs=PATH\)"
    assert re.search(r"verification failed: [^(;]*certificate[^(;]* " + way_out, attempts()[0]), attempts()
    now = node_status(nodes, "t2")
    assert now["state"] == "starting" and now["pid"] == first["pid"] and now["restarts"] == 0, (first, now)
    master_log = (nodes.log_dir / "master.log").read_text()
    # The node's systemd-style STATUS= reached the master (its log; systemd's `status` shows it under a unit).
    assert f"t2@{HOST}: status: not ready: broker unavailable: cannot connect" in master_log, master_log
    assert "exited with" not in master_log, master_log


# --- missed heartbeats ---------------------------------------------------------------------------------------


def test_missed_heartbeats_are_noticed_and_no_task_is_lost(amqp_servers, nodes):
    """RabbitMQ's VM stopped (SIGSTOP) keeps its sockets open and says nothing: only the missing heartbeats tell
    the node. It must notice while the VM is stopped (RabbitMQ, once running again, would close the connection
    itself and hide a node that never noticed), then reconnect; tasks it held unacked are redelivered to it."""
    rabbit, redis = amqp_servers
    url = rabbit.url + "?heartbeat=2"
    nodes.run("start", "h1", "--broker", url, "-c", 2, "-Q", "hb", check=True, timeout=60)
    app = make_app(rabbit.url, redis.url)
    beam = rabbit.beam_pid()
    try:
        before = [app.send_task("ccmulti.sleep", args=[0.5], queue="hb").id for _ in range(8)]
        wait_for(lambda: any(m for m in results(redis, before)), timeout=15, what="the node to start working")
        os.kill(beam, signal.SIGSTOP)
        try:
            assert not all_succeeded(redis, before), "the tasks were all done before RabbitMQ stopped"
            # 2 heartbeats of 2 s without a byte, noticed on the node's next tick (every second).
            wait_for(lambda: f"h1@{HOST}: missed heartbeats" in log_of(nodes, "h1"), timeout=15, interval=0.2,
                     what=f"the node to notice the silent broker:\n{log_of(nodes, 'h1')}")
        finally:
            os.kill(beam, signal.SIGCONT)
        wait_for(lambda: f"h1@{HOST}: connected to the AMQP broker" in log_of(nodes, "h1"), timeout=20, interval=0.2,
                 what=f"the node to reconnect:\n{log_of(nodes, 'h1')}")
        after = [app.send_task("ccmulti.sleep", args=[0.1], queue="hb").id for _ in range(4)]
        stored = wait_for(lambda: all_succeeded(redis, before + after), timeout=30, interval=0.2,
                          what="every task's result")
        assert all(m["worker"] == f"h1@{HOST}" for m in stored)
        assert "exited with" not in (nodes.log_dir / "master.log").read_text()
    finally:
        os.kill(beam, signal.SIGCONT)
        release_app(app)


# --- cold shutdown -------------------------------------------------------------------------------------------


def test_cold_shutdown_gives_running_and_reserved_tasks_back(amqp_servers, nodes):
    """`stop --cold` (SIGQUIT, as a second SIGTERM is): the running task is killed and, with the three held behind
    it, rejected with requeue; none is acked (all four are ready in the queue again) and c2 runs every one."""
    rabbit, redis = amqp_servers
    nodes.run("start", "c1", "--broker", rabbit.url, "-c", 1, "--prefetch-multiplier", 4, "-Q", "cold", check=True,
              timeout=60)
    app = make_app(rabbit.url, redis.url)
    try:
        ids = [app.send_task("ccmulti.sleep", args=[3], queue="cold").id for _ in range(4)]
        # Premises: c1 runs the first task and holds the other three (prefetched, unacked) behind it.
        inspect = app.control.inspect(timeout=2, destination=[f"c1@{HOST}"])
        running = wait_for(lambda: [t["id"] for t in (inspect.active() or {}).get(f"c1@{HOST}", [])], timeout=10,
                           what="c1 to run a task")
        assert running[0] in ids and len(running) == 1
        reserved = wait_for(lambda: (inspect.reserved() or {}).get(f"c1@{HOST}"), timeout=10,
                            what="c1 to hold tasks behind the running one")
        assert {t["id"] for t in reserved} <= set(ids) - {running[0]}, reserved
        # Nothing ready in the queue, c1 its consumer: RabbitMQ delivered all four to c1, which acked none.
        wait_for(lambda: ready_and_consumers(rabbit, "cold") == (0, 1), timeout=10,
                 what="RabbitMQ to deliver all four to c1")
        assert results(redis, ids) == [None] * 4
        stop = nodes.run("stop", "c1", "--cold", "--wait", "--timeout", 15, timeout=30)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        # The premise, from c1 itself: the task was still running when the cold shutdown came (the node shim writes
        # the log: its lines may trail the node's exit on a loaded machine).
        wait_for(lambda: "cold shutdown, 1 running task(s) go back to their queues" in log_of(nodes, "c1"),
                 timeout=10, what=f"c1's log to say it gave its running task back:\n{log_of(nodes, 'c1')}")
        assert results(redis, ids) == [None] * 4, "c1 stored a result for a task it gave back"
        # All four are in the queue again, ready, with no consumer left.
        wait_for(lambda: ready_and_consumers(rabbit, "cold") == (4, 0), timeout=10,
                 what="the 4 messages back in queue cold")
        nodes.run("start", "c2", "--broker", rabbit.url, "-c", 4, "-Q", "cold", check=True, timeout=60)
        stored = wait_for(lambda: all_succeeded(redis, ids), timeout=20, interval=0.2, what="the 4 results")
        assert [m["worker"] for m in stored] == [f"c2@{HOST}"] * 4
        wait_for(lambda: f"ccmulti.sleep[{running[0]}] received (redelivered)" in log_of(nodes, "c2"), timeout=10,
                 what=f"c2's log to show the running task redelivered:\n{log_of(nodes, 'c2')}")
        assert ready_and_consumers(rabbit, "cold") == (0, 1)
    finally:
        release_app(app)
