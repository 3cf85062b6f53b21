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
import tempfile
import time

import pytest

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class RabbitMQ:
    """A private RabbitMQ (Debian's rabbitmq-server) as a plain foreground process: its own node name, ports
    (AMQP, distribution, and its own epmd's), directories and Erlang cookie under `root`, owned by the rabbitmq
    user when the tests run as root (RabbitMQ refuses to run as root). It takes about 5 s to start: start it once
    per test module. stop() and start() again bring it back on the same port with its durable queues. With `tls`
    (TlsFiles) it listens for amqps on tls_port too, with that server certificate."""

    def __init__(self, root: pathlib.Path, tls=None):
        self.root = root
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.tls, self.tls_port = tls, free_port() if tls else None
        self.node = f"ccmulti{self.port}@localhost"
        self.proc = None
        self.epmds_before = set(epmd_ports())
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("mnesia", "log", "home"):
            (root / sub).mkdir(exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "env.conf").write_text("")
        if tls:
            # A TLS listener beside the plain one, with the throwaway server certificate (copied here so that the
            # rabbitmq user can read it); clients are not asked for certificates.
            (root / "tls").mkdir(exist_ok=True)
            for name in ("ca.pem", "server.pem", "server.key"):
                shutil.copy(tls.dir / name, root / "tls" / name)
            (root / "rabbitmq.conf").write_text(
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {root / 'tls' / 'ca.pem'}\n"
                f"ssl_options.certfile = {root / 'tls' / 'server.pem'}\n"
                f"ssl_options.keyfile = {root / 'tls' / 'server.key'}\n"
                "ssl_options.verify = verify_none\n"
                "ssl_options.fail_if_no_peer_cert = false\n")
        self.user = None
        if os.geteuid() == 0:
            self.user = "rabbitmq"
            entry = pwd.getpwnam(self.user)
            for path in [root, *root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.env = dict(os.environ)
        self.env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_MNESIA_BASE=str(root / "mnesia"),
            RABBITMQ_LOG_BASE=str(root / "log"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(root / "feature_flags"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(root / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(root / "rabbitmq.pid"),
            RABBITMQ_CONF_ENV_FILE=str(root / "env.conf"),
            RABBITMQ_CONFIG_FILE=str(root / "rabbitmq"),  # rabbitmq.conf: none (the defaults) without TLS
            HOME=str(root / "home"),
        )
        self.start()

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def tls_url(self, query=""):
        return f"amqps://guest:guest@127.0.0.1:{self.tls_port}//" + (f"?{query}" if query else "")

    def beam_pid(self):
        """The Erlang VM's pid (RABBITMQ_PID_FILE): the process that serves every connection."""
        return int((self.root / "rabbitmq.pid").read_text().split()[0])

    def _popen(self, args, **kwargs):
        return subprocess.Popen(args, env=self.env, cwd=self.root, user=self.user, group=self.user, **kwargs)

    def start(self):
        out = open(self.root / "stdout.log", "ab")
        try:
            self.proc = self._popen(["/usr/lib/rabbitmq/bin/rabbitmq-server"], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + 60
        while not (self.listening() and (self.tls_port is None or self.listening(self.tls_port))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "stdout.log").read_text(errors="replace")[-2000:]
                self.stop()
                pytest.skip(f"rabbitmq-server did not start on port {self.port}: {log}")
            time.sleep(0.1)

    def listening(self, port=None):
        try:
            with socket.create_connection(("127.0.0.1", port or self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def ctl(self, *args, timeout=60):
        proc = self._popen(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *map(str, args)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            return proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.communicate()[0]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.beam_pid(), signal.SIGCONT)  # a test may have paused it
            except (OSError, ValueError):
                pass
            self.ctl("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def close(self):
        """stop(), and end the epmd daemons the node and rabbitmqctl started (they outlive them): besides the one
        on our ERL_EPMD_PORT, RabbitMQ's scripts leave some on random ports. Only those that appeared since this
        server was made and have no node registered go, so another test's RabbitMQ is left alone."""
        self.stop()
        for pid, port in epmd_ports().items():
            if pid in self.epmds_before:
                continue
            names = subprocess.run(["epmd", "-port", str(port), "-names"], capture_output=True, text=True,
                                   timeout=10).stdout
            if "\nname " not in names:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def epmd_ports():
    """{pid: TCP port} of the epmd daemons listening on this machine (ss from iproute2)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    ports = {}
    for line in out.splitlines():
        if '"epmd"' not in line:
            continue
        local = line.split()[3]
        pid = line.split("pid=")[1].split(",")[0]
        ports[int(pid)] = int(local.rsplit(":", 1)[1])
    return ports


class TlsFiles:
    """A throwaway certificate authority and a server certificate it signed (for 127.0.0.1 and localhost), made
    with the openssl command (Debian's openssl, a dependency: scripts/install-deps) in `directory`: ca.pem,
    server.pem, server.key. EC keys: made in milliseconds."""

    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                      "-subj", "/CN=ccmulti test CA")
        self._openssl("req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        (directory / "server.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        self._openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", "server.pem", "-days", "2", "-extfile", "server.ext")

    @property
    def ca(self):
        return self.dir / "ca.pem"

    def _openssl(self, *args):
        proc = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")


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
        rabbit = RabbitMQ(root / "rabbitmq", tls=tls)
        yield rabbit, redis
    finally:
        if rabbit:
            rabbit.close()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
