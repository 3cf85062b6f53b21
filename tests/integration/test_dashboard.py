"""`ccmulti dashboard` over real HTTP against real running nodes: the API returns what the CLI's --json prints,
/metrics is valid Prometheus text (Debian's promtool checks it), the live chart's event stream moves, actions
need the CSRF token, a non-loopback address needs a token, and no page shows a broker password. The real
browser and the real Prometheus are in test_dashboard_browser.py."""
import json
import os
import shutil
import socket
import subprocess
import urllib.request

import pytest

from conftest import PYTHON, Redis, free_port, wait_for
from dashboard_lib import Dashboard, node_pid, start_nodes


@pytest.fixture
def group(env):
    """w1 and w2, native nodes on the embedded broker, with a few finished tasks (one failed) and a queue that
    nobody consumes; stopped afterwards."""
    start_nodes(env, "w1", "w2", "-c", "2")
    ok = env.run("call", "ccmulti.echo", '["hello"]', "--wait", "--timeout", "20", check=True)
    failed = env.run("call", "ccmulti.fail", '["boom"]', "--wait", "--timeout", "20")
    assert failed.returncode == 1
    ids = env.run("call", "ccmulti.echo", "[1]", "-Q", "orphan", "--count", "3", check=True).stdout.split()
    dashboard = Dashboard(env)
    try:
        yield env, dashboard, {"ok": ok, "orphans": ids}
    finally:
        dashboard.stop()
        env.run("stop", "--wait", timeout=60)


def cli_json(env, *args):
    return json.loads(env.run(*args, "--json").stdout)


def without_volatile(status):
    """status --json without what changes from one second to the next."""
    status = json.loads(json.dumps(status))
    for entry in [status["master"], *status["nodes"]]:
        for key in ("uptime", "rss", "memory"):
            entry.pop(key, None)
    return status


def test_api_returns_what_the_cli_prints_with_json(group):
    env, dashboard, _ = group
    assert without_volatile(dashboard.get_json("/api/status")) == without_volatile(cli_json(env, "status"))
    assert dashboard.get_json("/api/queues") == cli_json(env, "queues")
    queues = {q["name"]: q for q in dashboard.get_json("/api/queues")}
    assert queues["orphan"]["no_consumer"] and queues["orphan"]["ready"] == 3
    pings = dashboard.get_json("/api/inspect/ping")
    assert sorted(pings) == sorted(cli_json(env, "inspect", "ping")) and len(pings) == 2
    stats = dashboard.get_json("/api/inspect/stats")
    assert sum(sum(reply["total"].values()) for reply in stats.values()) == 2
    assert dashboard.request("/api/inspect/shutdown")[0] == 404

    tasks = dashboard.get_json("/api/tasks")["tasks"]
    states = sorted(t["status"] for t in tasks)
    assert states == ["FAILURE", "SUCCESS"], tasks
    for task in tasks:
        assert task == cli_json(env, "result", task["task_id"])
        assert dashboard.get_json("/api/result/" + task["task_id"]) == task
    failures = dashboard.get_json("/api/tasks?state=FAILURE")["tasks"]
    assert [t["status"] for t in failures] == ["FAILURE"] and failures[0]["result"]["exc_type"]
    assert dashboard.get_json("/api/tasks?name=echo")["tasks"][0]["name"] == "ccmulti.echo"
    assert dashboard.get_json("/api/tasks?name=nothing-like-it")["tasks"] == []
    wanted = tasks[0]["task_id"]
    assert [t["task_id"] for t in dashboard.get_json("/api/tasks?id=" + wanted[:8])["tasks"]] == [wanted]
    # A whole id not among the results: still queued, found all the same.
    orphan = group[2]["orphans"][0]
    assert dashboard.get_json("/api/tasks?id=" + orphan)["tasks"] == [cli_json(env, "result", orphan)]
    assert dashboard.get_json("/api/result/no-such-id")["status"] == "UNKNOWN"

    page = dashboard.request("/")
    assert page[0] == 200 and "<canvas" in page[2] and "Content-Security-Policy" in page[1]
    assert dashboard.request("/assets/app.js")[2].startswith("//")
    assert dashboard.request("/healthz")[2] == "ok\n"


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_are_valid_prometheus_text(group):
    env, dashboard, _ = group
    host = cli_json(env, "status")["nodes"][0]["name"].split("@", 1)[1]
    # The sampler runs every 0.5 s: wait for a round that saw both tasks counted.
    def scraped():
        status, headers, text = dashboard.request("/metrics")
        samples = parse_metrics(text)
        finished = sum(v for k, v in samples.items() if k.startswith("ccmulti_tasks_finished_total{"))
        return (headers, text, samples) if finished == 2 else None
    headers, text, samples = wait_for(scraped, timeout=10, what="both finished tasks in /metrics")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert samples["ccmulti_up"] == 1
    for node in ("w1", "w2"):
        assert samples[f'ccmulti_node_up{{node="{node}@{host}"}}'] == 1
        assert samples[f'ccmulti_node_restarts_total{{node="{node}@{host}"}}'] == 0
        assert samples[f'ccmulti_node_resident_memory_bytes{{node="{node}@{host}"}}'] > 1_000_000
        assert samples[f'ccmulti_node_concurrency{{node="{node}@{host}"}}'] == 2
    assert samples['ccmulti_queue_messages{queue="orphan",state="ready"}'] == 3
    assert samples['ccmulti_queue_consumers{queue="orphan"}'] == 0
    assert samples['ccmulti_recent_results{state="FAILURE"}'] == 1
    assert samples['ccmulti_recent_results{state="SUCCESS"}'] == 1
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus; scripts/install-deps installs it)")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_event_stream_sends_chart_points(group):
    env, dashboard, _ = group
    with urllib.request.urlopen(dashboard.url + "api/events", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        times = []
        while len(times) < 3:  # the points so far, then new ones every 0.5 s
            line = stream.readline().decode()
            if line.startswith("data: "):
                point = json.loads(line[6:])
                assert set(point) == {"time", "throughput", "failures", "depth"}
                times.append(point["time"])
        assert times == sorted(times)
    depth = dashboard.get_json("/api/points")[-1]["depth"]
    assert depth == 3  # the orphan queue's messages


def test_actions_need_the_csrf_token_and_act(group):
    env, dashboard, _ = group
    csrf = dashboard.get_json("/api/session")["csrf"]
    node = next(n["name"] for n in dashboard.get_json("/api/status")["nodes"] if n["name"].startswith("w1@"))
    before = node_pid(dashboard, "w1")
    assert dashboard.post(f"/api/nodes/{node}/restart")[0] == 403
    assert dashboard.post(f"/api/nodes/{node}/restart", csrf="0" * 32)[0] == 403
    status, _, _ = dashboard.request(f"/api/nodes/{node}/restart", method="POST",
                                     headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert status == 403
    assert node_pid(dashboard, "w1") == before
    assert dashboard.request(f"/api/nodes/{node}/restart")[0] == 404  # GET never acts

    status, reply = dashboard.post(f"/api/nodes/{node}/restart", csrf=csrf)
    assert status == 200 and reply["ok"], reply
    wait_for(lambda: node_pid(dashboard, "w1") not in (None, before), timeout=20, what="w1 restarted")
    assert dashboard.post("/api/nodes/nobody@nowhere/restart", csrf=csrf)[0] == 409

    status, reply = dashboard.post("/api/queues/orphan/purge", csrf=csrf)
    assert (status, reply["purged"]) == (200, 3)
    assert "orphan" not in {q["name"] for q in cli_json(env, "queues")}

    w2 = node.replace("w1@", "w2@")
    assert dashboard.post(f"/api/nodes/{w2}/stop", csrf=csrf)[0] == 200
    wait_for(lambda: any(n["name"] == w2 and n["state"] == "stopped" for n in dashboard.get_json("/api/status")["nodes"])
             or w2 not in [n["name"] for n in dashboard.get_json("/api/status")["nodes"]], timeout=20, what="w2 stopped")


def test_a_non_loopback_address_needs_a_token(env):
    refused = env.run("dashboard", "--bind", "0.0.0.0:0")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "--auth-token" in refused.stderr
    assert env.run("dashboard", "--bind", "nonsense").returncode == 2
    token_file = env.root / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o644)
    assert "chmod 600" in env.run("dashboard", "--bind", "0.0.0.0:0", "--auth-token-file", token_file).stderr

    dashboard = Dashboard(env, "--auth-token", "s3cret-token")
    try:
        assert dashboard.request("/api/status")[0] == 401
        assert dashboard.request("/metrics")[0] == 401
        assert dashboard.request("/", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert dashboard.request("/healthz")[0] == 200
        assert dashboard.request("/api/status", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        # A browser opens /?token=… once and gets a cookie.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(dashboard.url + "?token=s3cret-token", timeout=10) as page:
            assert page.status == 200 and b"<canvas" in page.read()
        with opener.open(dashboard.url + "api/session", timeout=10) as session:
            assert "csrf" in json.loads(session.read())
    finally:
        dashboard.stop()


def test_on_redis_no_page_shows_the_password(env):
    redis = Redis(env.root / "redis")
    try:
        redis.cli("CONFIG", "SET", "requirepass", "hunter2")
        url = f"redis://:hunter2@127.0.0.1:{redis.port}/0"
        env.env["CCMULTI_BROKER_URL"] = url
        start_nodes(env, "r1", "-c", "1")
        env.run("call", "ccmulti.echo", "[7]", "--wait", "--timeout", "20", check=True)
        dashboard = Dashboard(env)
        try:
            assert dashboard.get_json("/api/about")["broker"] == f"redis://:***@127.0.0.1:{redis.port}/0"
            tasks = dashboard.get_json("/api/tasks")["tasks"]
            assert [(t["status"], t["name"]) for t in tasks] == [("SUCCESS", "ccmulti.echo")]
            texts = [dashboard.request(path)[2] for path in
                     ("/api/about", "/api/status", "/api/inspect/stats", "/api/queues", "/api/tasks", "/metrics")]
            assert all("hunter2" not in text for text in texts), texts
            assert "r1@" in texts[2]
        finally:
            dashboard.stop()
    finally:
        env.run("stop", "--wait", timeout=60)
        redis.stop()


# --- Celery events (a real redis-server, a node with -E) --------------------------------------------------------


@pytest.fixture
def evented(env):
    """A dashboard subscribed to a real redis-server's events (before any node sends one), and w1 with -E."""
    server = Redis(env.root / "redis")
    env.env["CCMULTI_BROKER_URL"] = server.url
    dashboard = Dashboard(env)
    try:
        wait_for(lambda: dashboard.get_json("/api/tasks")["events"]["receiving"], timeout=10,
                 what="the dashboard to subscribe to celeryev")
        start_nodes(env, "w1", "-c", "2", "-E")
        yield env, dashboard
    finally:
        dashboard.stop()
        env.run("stop", "--wait", timeout=60)
        server.stop()


def test_task_events_fill_the_task_list_and_metrics(evented):
    env, dashboard = evented
    node = cli_json(env, "status")["nodes"][0]["name"]
    ids = env.run("call", "ccmulti.echo", "[1]", "--count", "3", check=True).stdout.split()
    failed = env.run("call", "ccmulti.fail", '["boom"]', "--wait", "--timeout", "20")
    assert failed.returncode == 1

    def finished():
        tasks = dashboard.get_json("/api/tasks")["tasks"]
        done = [t for t in tasks if (t["status"] == "SUCCESS" and t.get("runtime") is not None)
                or (t["status"] == "FAILURE" and t.get("exception"))]
        return tasks if len(done) == 4 else None
    tasks = wait_for(finished, timeout=15, what="4 finished tasks with their events in /api/tasks")
    by_id = {t["task_id"]: t for t in tasks}
    for task_id in ids:
        task = by_id[task_id]
        assert task["status"] == "SUCCESS" and task["name"] == "ccmulti.echo" and task["worker"] == node, task
        assert task["runtime"] >= 0 and task["received"] <= task["started"], task
    failure = next(t for t in tasks if t["name"] == "ccmulti.fail")
    assert failure["status"] == "FAILURE" and "boom" in failure["exception"], failure
    assert failure["result"]["exc_type"] and "boom" in failure["traceback"] + failure["exception"]
    assert [t["task_id"] for t in dashboard.get_json("/api/tasks?state=FAILURE")["tasks"]] == [failure["task_id"]]
    summary = dashboard.get_json("/api/tasks")["events"]
    assert summary["available"] and summary["receiving"] and summary["events"] >= 12, summary

    def scraped():
        text = dashboard.request("/metrics")[2]
        samples = parse_metrics(text)
        return (text, samples) if samples.get(
            'ccmulti_task_runtime_seconds_count{name="ccmulti.echo"}') == 3 else None
    text, samples = wait_for(scraped, timeout=10, what="the runtime histogram in /metrics")
    assert samples['ccmulti_tasks_total{name="ccmulti.echo",state="SUCCESS"}'] == 3
    assert samples['ccmulti_tasks_total{name="ccmulti.echo",state="STARTED"}'] == 3
    assert samples['ccmulti_tasks_total{name="ccmulti.fail",state="FAILURE"}'] == 1
    assert samples['ccmulti_task_runtime_seconds_bucket{name="ccmulti.echo",le="+Inf"}'] == 3
    assert samples["ccmulti_events_receiving"] == 1
    assert 0 <= samples[f'ccmulti_node_heartbeat_age_seconds{{node="{node}"}}'] < 10
    beat = next(n for n in dashboard.get_json("/api/status")["nodes"] if n["name"] == node)["heartbeat"]
    assert beat["online"] and beat["age"] < 10 and beat["processed"] >= 0, beat
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus; scripts/install-deps installs it)")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_running_task_shows_started_before_any_result(evented):
    env, dashboard = evented
    task_id = env.run("call", "ccmulti.sleep", "[30]", check=True).stdout.split()[0]
    try:
        # STARTED may show from the result store a moment before the node's task-started event is in: wait for both.
        started = wait_for(lambda: next((t for t in dashboard.get_json("/api/tasks")["tasks"]
                                         if t["task_id"] == task_id and t["status"] == "STARTED" and t.get("started")),
                                        None),
                           timeout=10, what="the sleeping task STARTED, with its start time, in /api/tasks")
        assert started["name"] == "ccmulti.sleep" and started["started"] and started.get("runtime") is None
        assert started["worker"].startswith("w1@") and started["args"] in ([30], "(30,)"), started
    finally:
        env.run("stop", "--wait", "--cold", "--timeout", "10", timeout=30)


def test_without_events_the_page_says_so(env):
    """The embedded SQLite broker carries no events: the task list comes from the result store, and says why."""
    dashboard = Dashboard(env)
    try:
        events = wait_for(lambda: (lambda e: e if not e["available"] else None)(
            dashboard.get_json("/api/tasks")["events"]), timeout=10, what="the events summary")
        assert "carries no Celery events" in events["why"]
        assert "ccmulti_tasks_total" not in dashboard.request("/metrics")[2]
    finally:
        dashboard.stop()


# --- The master serves the dashboard -------------------------------------------------------------------------


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("how", ["flag", "config"])
def test_the_master_serves_the_dashboard(env, how):
    port = free_port()
    if how == "flag":
        env.run("start", "w1", "-c", "1", f"--dashboard=127.0.0.1:{port}", check=True)
    else:
        (env.root / "ccmulti.toml").write_text(f'[dashboard]\nserve = true\nbind = "127.0.0.1:{port}"\n')
        env.run("start", "w1", "-c", "1", check=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        status = cli_json(env, "status")
        assert status["master"]["dashboard"] == url
        assert f"dashboard  {url}" in env.run("status").stdout
        with urllib.request.urlopen(url + "api/status", timeout=10) as reply:
            served = json.loads(reply.read())
        assert served["master"]["pid"] == status["master"]["pid"]
        assert [n["name"] for n in served["nodes"]] == [n["name"] for n in status["nodes"]]

        def scraped():
            with urllib.request.urlopen(url + "metrics", timeout=10) as reply:
                samples = parse_metrics(reply.read().decode())
            return samples if samples.get("ccmulti_up") == 1 else None
        wait_for(scraped, timeout=10, what="ccmulti_up 1 in the master's /metrics")
        # The dashboard's sockets live in the master only: no node inherits one (it would keep the port bound).
        node_pid = status["nodes"][0]["pid"]
        inodes = {line.split()[9] for line in open("/proc/net/tcp").read().splitlines()[1:]
                  if line.split()[1].endswith(f":{port:04X}")}
        assert inodes
        node_fds = set()
        for fd in os.listdir(f"/proc/{node_pid}/fd"):
            try:
                node_fds.add(os.readlink(f"/proc/{node_pid}/fd/{fd}"))
            except OSError:
                pass
        assert not {f"socket:[{inode}]" for inode in inodes} & node_fds
    finally:
        env.run("stop", "--wait", timeout=60, check=True)
    assert not port_open(port), "the dashboard still listens after the group stopped"


def test_start_refuses_a_dashboard_it_cannot_serve(env):
    refused = env.run("start", "w1", "--dashboard=0.0.0.0:0")
    assert refused.returncode == 2 and "auth" in refused.stderr, refused.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = env.run("start", "w1", f"--dashboard=127.0.0.1:{port}")
        assert failed.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in failed.stderr, failed.stderr
    assert env.run("status").returncode != 0  # nothing started


PYTHON_EVENTS = """
import sys
from celery import Celery
app = Celery(broker=sys.argv[1])
with app.connection_for_write() as connection:
    # As a Python worker sends them: task events buffered and published as one "task.multi" list.
    dispatcher = app.events.Dispatcher(connection, hostname="py1@elsewhere", buffer_group=["task"], buffer_limit=100)
    dispatcher.send("worker-online", freq=2.0, active=0, processed=0, loadavg=[0.5, 0.25, 0.125])
    dispatcher.send("task-received", uuid="py-ok", name="proj.add", args="(1, 2)", kwargs="{}", retries=0)
    dispatcher.send("task-started", uuid="py-ok")
    dispatcher.send("task-succeeded", uuid="py-ok", result="3", runtime=0.25)
    dispatcher.send("task-received", uuid="py-bad", name="proj.fail", args="()", kwargs="{}", retries=0)
    dispatcher.send("task-failed", uuid="py-bad", exception="KeyError('x')", traceback="Traceback ...")
    dispatcher.send("task-revoked", uuid="py-gone", terminated=False, signum=None, expired=False)
    dispatcher.flush()
    dispatcher.close()
"""


def test_events_from_python_celery_are_read_as_celery_events_reads_them(env):
    """Debian's Celery (kombu's Redis transport) publishes; the dashboard's receiver decodes it all."""
    server = Redis(env.root / "redis")
    dashboard = Dashboard(env, "--broker", server.url)
    try:
        wait_for(lambda: dashboard.get_json("/api/tasks")["events"]["receiving"], timeout=10,
                 what="the dashboard to subscribe to celeryev")
        assert server.cli("PUBSUB", "NUMPAT") == "1"
        sent = subprocess.run([PYTHON, "-c", PYTHON_EVENTS, server.url], capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        tasks = wait_for(lambda: (lambda ts: ts if len(ts) == 3 else None)(
            {t["task_id"]: t for t in dashboard.get_json("/api/tasks")["tasks"]}), timeout=10,
            what="the three tasks the Python client sent events for")
        assert (tasks["py-ok"]["status"], tasks["py-ok"]["name"], tasks["py-ok"]["runtime"]) == \
            ("SUCCESS", "proj.add", 0.25)
        assert tasks["py-ok"]["worker"] == "py1@elsewhere"
        assert tasks["py-bad"]["status"] == "FAILURE" and tasks["py-bad"]["exception"] == "KeyError('x')"
        assert tasks["py-bad"]["result"]["exc_type"] == "KeyError"
        assert tasks["py-gone"]["status"] == "REVOKED"
        samples = parse_metrics(dashboard.request("/metrics")[2])
        assert samples['ccmulti_task_runtime_seconds_bucket{name="proj.add",le="0.25"}'] == 1
        assert samples['ccmulti_task_runtime_seconds_bucket{name="proj.add",le="0.1"}'] == 0
        assert samples['ccmulti_tasks_total{name="proj.fail",state="FAILURE"}'] == 1
        assert samples['ccmulti_tasks_total{name="unknown",state="REVOKED"}'] == 1
        assert 'ccmulti_node_heartbeat_age_seconds{node="py1@elsewhere"}' in samples
    finally:
        dashboard.stop()
        server.stop()
