"""The dashboard with real clients: Debian's headless chromium (driven by chromium-driver over plain-HTTP
WebDriver, from urllib) loads the page while tasks run, sees the node and queue tables and the chart move,
restarts a node through its button and confirmation, and takes the screenshot the README shows; and a real
Prometheus scrapes /metrics with the dashboard's token. Each is skipped, saying why, when its program is missing.
Left out under the sanitizers (tests/integration/CMakeLists.txt): the time goes to chromium and Prometheus."""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import CCMULTI, free_port, wait_for
from dashboard_lib import Dashboard, node_pid, start_nodes

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
PROMETHEUS = shutil.which("prometheus")
# Where the screenshot goes: docs/img/dashboard.png when asked (SAVE_DASHBOARD_SCREENSHOT=docs), else the build dir.
SCREENSHOT = (pathlib.Path(__file__).resolve().parents[2] / "docs/img/dashboard.png"
              if os.environ.get("SAVE_DASHBOARD_SCREENSHOT") == "docs"
              else pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", tempfile.gettempdir())) / "dashboard.png")


def http_json(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Browser:
    """A W3C WebDriver session on headless chromium, through chromedriver."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, root):
        self.port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: self._ready(), timeout=20, what="chromedriver")
        options = {"binary": CHROMIUM,
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1280,1000", f"--user-data-dir={root / 'chromium'}"]}
        status, reply = http_json("POST", self.base + "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options, "unhandledPromptBehavior": "ignore"}}}, timeout=60)
        assert status == 200, reply
        self.session = f"{self.base}/session/{reply['value']['sessionId']}"

    def _ready(self):
        try:
            return http_json("GET", self.base + "/status", timeout=2)[1]["value"]["ready"]
        except (OSError, ValueError, KeyError):
            return False

    def call(self, method, path, body=None):
        status, reply = http_json(method, self.session + path, body)
        if status != 200:
            raise AssertionError(f"WebDriver {method} {path}: {status} {reply}")
        return reply["value"]

    def run(self, script, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def click(self, css):
        # The page re-renders its tables as data arrives: an element found a moment ago may have been replaced
        # by the time the click is sent (a WebDriver "stale element reference"); find it again and retry.
        def clicked():
            element = self.call("POST", "/element", {"using": "css selector", "value": css})[self.ELEMENT]
            status, reply = http_json("POST", f"{self.session}/element/{element}/click", {})
            if status == 200:
                return True
            if reply.get("value", {}).get("error") == "stale element reference":
                return False
            raise AssertionError(f"WebDriver click on {css}: {status} {reply}")
        wait_for(clicked, timeout=10, what=f"a click on {css}")

    def close(self):
        try:
            http_json("DELETE", self.session, timeout=20)
        except OSError:
            pass
        self.driver.terminate()
        self.driver.wait(timeout=20)


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="needs Debian's chromium and chromium-driver (scripts/install-deps installs them)")
def test_a_real_browser_sees_the_nodes_and_restarts_one(env):
    start_nodes(env, "w1", "w2", "-c", "2")
    env.run("call", "ccmulti.fail", '["shown in the task list"]', "--wait", "--timeout", "20")
    env.run("call", "ccmulti.echo", "[1]", "-Q", "nobody-consumes", "--count", "5", check=True)
    dashboard = Dashboard(env)
    browser = None
    load = None
    try:
        browser = Browser(env.root)
        # Tasks run while the page is open: the chart has something to draw.
        load = subprocess.Popen([CCMULTI, "call", "ccmulti.sleep",
                                 "[0.05]", "--count", "200"], env=env.env, stdout=subprocess.DEVNULL)
        browser.call("POST", "/url", {"url": dashboard.url})
        rows = wait_for(lambda: browser.run(
            "return [...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node + ' ' +"
            " r.querySelector('.state').textContent)"), timeout=20, what="the node table")
        assert sorted(r.split("@")[0] + " " + r.split()[-1] for r in rows) == ["w1 ready", "w2 ready"]
        wait_for(lambda: browser.run(
            "const r = document.querySelector('#queues tr[data-queue=\"nobody-consumes\"]');"
            "return r && r.querySelector('.ready').textContent === '5' && r.querySelector('.warning') !== null"),
            timeout=20, what="the queue without consumer, flagged")
        wait_for(lambda: browser.run("return document.querySelectorAll('#tasks tbody tr').length") >= 1,
                 timeout=20, what="the task list")
        # The embedded SQLite broker carries no Celery events: the page says where the states come from.
        wait_for(lambda: "No task events" in browser.run("return document.getElementById('events-note').textContent"),
                 timeout=20, what="the note that no task events arrive")
        # The chart follows the event stream: its point count grows, and it saw tasks finish.
        first = int(browser.run("return document.getElementById('chart').dataset.points"))
        wait_for(lambda: int(browser.run("return document.getElementById('chart').dataset.points")) >= first + 3,
                 timeout=20, what="new chart points")
        load.wait(timeout=60)
        wait_for(lambda: dashboard.get_json("/api/points")[-1]["depth"] == 5, timeout=30, what="the load done")
        assert any(p["throughput"] > 0 for p in dashboard.get_json("/api/points"))

        shot = base64.b64decode(browser.call("GET", "/screenshot"))
        assert shot.startswith(b"\x89PNG")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)

        before = node_pid(dashboard, "w1")
        browser.click('#nodes tr[data-node^="w1@"] button.restart')
        text = wait_for(lambda: http_json("GET", browser.session + "/alert/text")[1]["value"]
                        if http_json("GET", browser.session + "/alert/text")[0] == 200 else None,
                        timeout=10, what="the confirmation")
        assert text.startswith("Restart w1@")
        browser.call("POST", "/alert/accept", {})
        wait_for(lambda: node_pid(dashboard, "w1") not in (None, before), timeout=30, what="w1 restarted")
        new_pid = str(node_pid(dashboard, "w1"))
        wait_for(lambda: browser.run("return document.querySelector('#nodes tr[data-node^=\"w1@\"] .pid').textContent")
                 == new_pid, timeout=20, what="the page showing w1's new pid")
    finally:
        if load and load.poll() is None:
            load.kill()
        if browser:
            browser.close()
        dashboard.stop()
        env.run("stop", "--wait", timeout=60)


@pytest.mark.skipif(not PROMETHEUS, reason="needs Debian's prometheus (scripts/install-deps installs it)")
def test_a_real_prometheus_scrapes_the_dashboard(env):
    start_nodes(env, "w1", "-c", "1")
    dashboard = Dashboard(env, "--auth-token", "scrape-token")
    port = free_port()
    config = env.root / "prometheus.yml"
    target = urllib.parse.urlparse(dashboard.url).netloc
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ccmulti
    scrape_interval: 1s
    authorization:
      credentials: scrape-token
    static_configs:
      - targets: ["{target}"]
""")
    prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={env.root / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    try:
        def query(expression):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
            try:
                status, reply = http_json("GET", url, timeout=5)
            except OSError:
                return []
            return reply["data"]["result"] if status == 200 else []

        up = wait_for(lambda: [r for r in query('up{job="ccmulti"}') if r["value"][1] == "1"], timeout=30,
                      interval=0.2, what="Prometheus scraping the dashboard")
        assert up[0]["metric"]["instance"] == target
        nodes = wait_for(lambda: query("ccmulti_node_up"), timeout=10, interval=0.2, what="ccmulti_node_up")
        assert [(r["metric"]["node"].split("@")[0], r["value"][1]) for r in nodes] == [("w1", "1")]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        dashboard.stop()
        env.run("stop", "--wait", timeout=60)
