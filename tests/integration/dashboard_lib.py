"""Shared by test_dashboard.py and test_dashboard_browser.py: a `ccmulti dashboard` process on a free port of
127.0.0.1, and plain-HTTP helpers (urllib) to talk to it."""
import json
import re
import subprocess
import urllib.error
import urllib.request

from conftest import CCMULTI, wait_for


class Dashboard:
    def __init__(self, env, *args):
        self.env = env
        self.proc = subprocess.Popen([CCMULTI, "dashboard", "--bind", "127.0.0.1:0", "--interval", "0.5", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env.env,
                                     cwd=env.root)
        line = self.proc.stdout.readline()  # printed once it listens
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not match:
            self.proc.kill()
            raise AssertionError(f"no URL in the dashboard's first line: {line!r}; stderr: {self.proc.stderr.read()}")
        self.url = match.group(1)

    def request(self, path, method="GET", headers=None, data=None):
        """(status, headers, body as text)"""
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method, headers=headers or {},
                                     data=data if data is not None else (b"" if method == "POST" else None))
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def get_json(self, path, **kwargs):
        status, _, body = self.request(path, **kwargs)
        assert status == 200, f"GET {path}: {status} {body}"
        return json.loads(body)

    def post(self, path, csrf=None):
        headers = {"X-CSRF-Token": csrf} if csrf else {}
        status, _, body = self.request(path, method="POST", headers=headers)
        return status, json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def node_pid(dashboard, node):
    status = dashboard.get_json("/api/status")
    for entry in status["nodes"]:
        if entry["name"].startswith(node + "@"):
            return entry["pid"] if entry["state"] == "ready" else None
    return None


def start_nodes(env, *args):
    env.run("start", *args, check=True)
    wait_for(lambda: env.run("status").returncode == 0, timeout=20, what="every node ready")
