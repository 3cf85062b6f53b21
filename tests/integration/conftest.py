"""Shared fixtures for integration tests: the ccmulti binary, private directories, and helpers that poll
with a deadline instead of sleeping."""
import gc
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # also when loaded by path (tests/chaos)
from rabbit_server import RabbitMQ, RabbitUnavailable, TlsFiles, free_port  # noqa: F401  (free_port: the tests')

CCMULTI = os.environ.get("CCMULTI_BIN", "")
PYTHON = os.environ.get("CCMULTI_PYTHON", "/usr/bin/python3")


_SHARED_DIR = None


def for_other_users(path):
    """A copy of the executable `path` that another user can run: in a world-readable directory of its own,
    made once per session. Tests that run ccmulti or fake_node as nobody must not depend on the clone's parent
    directories, which CI may have made 0700 (`d=$(mktemp -d) && git clone . $d/c`)."""
    global _SHARED_DIR
    path = pathlib.Path(path)
    if _SHARED_DIR is None:
        _SHARED_DIR = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-shared-bin-"))
        os.chmod(_SHARED_DIR, 0o755)
    copy = _SHARED_DIR / path.name
    if not copy.exists():
        shutil.copy2(path, copy)
        os.chmod(copy, 0o755)
    return str(copy)


def pytest_sessionfinish(session, exitstatus):
    if _SHARED_DIR is not None:
        shutil.rmtree(_SHARED_DIR, ignore_errors=True)


def pytest_configure(config):
    if not CCMULTI or not os.access(CCMULTI, os.X_OK):
        raise pytest.UsageError("set CCMULTI_BIN to the ccmulti binary (ctest does this)")


class Env:
    """A private run/log/state dir set for one test, and a way to run ccmulti in it."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.run_dir = root / "run"
        self.log_dir = root / "log"
        self.state_dir = root / "state"
        self.env = dict(os.environ)
        self.env.update(
            CCMULTI_RUN_DIR=str(self.run_dir),
            CCMULTI_LOG_DIR=str(self.log_dir),
            CCMULTI_STATE_DIR=str(self.state_dir),
            NO_COLOR="1",
        )
        self.env.pop("CCMULTI_CONFIG", None)

    def run(self, *args, check=False, timeout=60, input=None, **kwargs):
        proc = subprocess.run(
            [CCMULTI, *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
            input=input,
            **kwargs,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ccmulti {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def env():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-it-"))
    try:
        yield Env(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stop_nodes(env):
    """Stops env's group warm, or kills it when that does not end it within 15 s."""
    if env.run("stop", "--wait", "--timeout", "15", timeout=30).returncode != 0:
        env.run("kill", timeout=30)


def log_of(env, node):
    """The log of `node` (a name) so far; empty before it exists."""
    path = env.log_dir / f"{node}.log"
    return path.read_text() if path.exists() else ""


def end_process_group(proc, timeout=20):
    """SIGTERM to the process group `proc` leads (a Python worker and its pool), SIGKILL after `timeout` s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class FakeSystemdNotify:
    """A NOTIFY_SOCKET as systemd's (Type=notify) for a master started with `NOTIFY_SOCKET=listener.path`: the
    datagrams it received, in order."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.received = []

    def drain(self):
        try:
            while True:
                self.received.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.received

    def close(self):
        self.sock.close()


def sigkill_until_gone(find_pids):
    """Last resort after a test: SIGKILL whatever `find_pids()` still lists, a few rounds (children appear)."""
    for _ in range(3):
        pids = find_pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


class Redis:
    """A private redis-server on a free 127.0.0.1 port, in the test's directory. With persist=True it keeps an
    append-only file (as a deployment that keeps queued tasks across restarts does; SIGTERM flushes it) and its log,
    and start() after stop() brings it back on the same port with the same data."""

    def __init__(self, root: pathlib.Path, persist=False, port=None):
        self.root = root
        self.persist = persist
        self.port = port or free_port()  # a port given: the one a node was told to use while nothing listened
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.root)]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
            out = open(self.root / "redis.log", "ab")
        else:
            args += ["--appendonly", "no"]
            out = subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        if out is not subprocess.DEVNULL:
            out.close()
        wait_for(self.ping, timeout=20, what=f"redis-server on port {self.port}")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cli(self, *args):
        """redis-cli's answer, or "" when it did not come within 10 s (a paused server)."""
        try:
            return subprocess.run(["redis-cli", "-p", str(self.port), *map(str, args)], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except subprocess.TimeoutExpired:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a test may have paused it
            self.proc.terminate()
            self.proc.wait(timeout=30)


def release_app(app):
    """Closes a Celery client app while its Redis still runs."""
    gc.collect()  # AsyncResult.__del__ unsubscribes: let it happen now
    # Results still referenced (pytest keeps frames of failed tests) would unsubscribe at interpreter exit,
    # after Redis is gone, and print tracebacks: drop the subscription now.
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer._pubsub.close()
        consumer._pubsub = None
    app.close()


def other_uid():
    """A uid with no account (so nothing of a real user is touched), unique per test run."""
    uid = 40000 + os.getpid() % 20000
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            return uid


@pytest.fixture
def redis(env):
    server = Redis(env.root / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def amqp_servers(request):
    """A private RabbitMQ and a private redis-server (the result backend) for a test module: (rabbit, redis). A
    module that sets AMQP_TLS = True gets a TLS listener too (rabbit.tls_port, rabbit.tls_url(); the CA that
    signed its certificate: rabbit.tls.ca)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-amqp-"))
    os.chmod(root, 0o755)  # the rabbitmq user reaches its directory below
    rabbit = None
    redis = Redis(root / "redis")
    try:
        tls = TlsFiles(root / "tls") if getattr(request.module, "AMQP_TLS", False) else None
        try:
            rabbit = RabbitMQ(root / "rabbitmq", tls=tls)
        except RabbitUnavailable as e:
            pytest.skip(str(e))
        yield rabbit, redis
    finally:
        if rabbit:
            rabbit.close()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
