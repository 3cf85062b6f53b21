"""A private RabbitMQ (Debian's rabbitmq-server) started without systemd, for the integration tests (conftest.py's
amqp_servers fixture) and the RabbitMQ benchmark (bench/rabbit_server.py): plain Python, no pytest."""
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import time

SERVER = pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitUnavailable(RuntimeError):
    """rabbitmq-server is not installed, or did not start (the message says why): tests skip, the benchmark stops."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RabbitMQ:
    """A private RabbitMQ (Debian's rabbitmq-server) as a plain foreground process: its own node name, ports
    (AMQP, distribution, and its own epmd's), directories and Erlang cookie under `root`, owned by the rabbitmq
    user when the tests run as root (RabbitMQ refuses to run as root). It takes about 5 s to start: start it once
    per test module. stop() and start() again bring it back on the same port with its durable queues. With `tls`
    (TlsFiles) it listens for amqps on tls_port too, with that server certificate."""

    def __init__(self, root: pathlib.Path, tls=None):
        if not SERVER.exists():
            raise RabbitUnavailable("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
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

    def version(self):
        for line in self.ctl("status").splitlines():
            if line.strip().startswith("RabbitMQ version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def beam_pid(self):
        """The Erlang VM's pid (RABBITMQ_PID_FILE): the process that serves every connection."""
        return int((self.root / "rabbitmq.pid").read_text().split()[0])

    def _popen(self, args, **kwargs):
        return subprocess.Popen(args, env=self.env, cwd=self.root, user=self.user, group=self.user, **kwargs)

    def start(self):
        out = open(self.root / "stdout.log", "ab")
        try:
            self.proc = self._popen([str(SERVER)], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + 60
        while not (self.listening() and (self.tls_port is None or self.listening(self.tls_port))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "stdout.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RabbitUnavailable(f"rabbitmq-server did not start on port {self.port}: {log}")
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
