"""A private rabbitmq-server for the RabbitMQ benchmark (amqp_throughput.py), started without systemd as the
integration tests start theirs (tests/integration/conftest.py, whose copy needs pytest): Debian's rabbitmq-server
as a foreground process with its own node name, ports (AMQP, distribution, its own epmd's), directories and
Erlang cookie in a temporary directory, run as the rabbitmq user when the benchmark runs as root (RabbitMQ refuses
root). About 5 s to start: once per bench/run. A context manager: the server, the epmd daemons it left and the
directory go at the end.

Not a test module: Debian's /usr/bin/python3 only."""
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SERVER = pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = pathlib.Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epmd_pids():
    """The pids of the epmd daemons listening on this machine (ss from iproute2)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    return {int(line.split("pid=")[1].split(",")[0]): int(line.split()[3].rsplit(":", 1)[1])
            for line in out.splitlines() if '"epmd"' in line}


class RabbitMQ:
    def __init__(self):
        if not SERVER.exists() or not shutil.which("epmd"):
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-bench-rabbitmq-"))
        os.chmod(self.root, 0o755)
        self.port, dist_port, epmd_port = _free_port(), _free_port(), _free_port()
        self.node = f"ccmultibench{self.port}@localhost"
        self.proc = None
        self.user = "rabbitmq" if os.geteuid() == 0 else None
        self.env = dict(
            os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(dist_port), ERL_EPMD_PORT=str(epmd_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"), RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(self.root / "feature_flags"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.root / "rabbitmq.pid"), RABBITMQ_CONF_ENV_FILE=str(self.root / "env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq"),  # none: the defaults
            HOME=str(self.root / "home"))

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def __enter__(self):
        self.epmds_before = set(epmd_pids())
        for sub in ("mnesia", "log", "home"):
            (self.root / sub).mkdir()
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "env.conf").write_text("")
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        with open(self.root / "stdout.log", "ab") as out:
            self.proc = self._popen([str(SERVER)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "stdout.log").read_text(errors="replace")[-2000:]
                self.__exit__()
                raise RuntimeError(f"rabbitmq-server did not start on port {self.port}: {log}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.ctl("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The epmd daemons the node and rabbitmqctl started outlive them; only those that appeared since the
        # start and have no node registered go, so another RabbitMQ's stay.
        for pid, port in epmd_pids().items():
            if pid in self.epmds_before:
                continue
            names = subprocess.run(["epmd", "-port", str(port), "-names"], capture_output=True, text=True,
                                   timeout=10).stdout
            if "\nname " not in names:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)

    def _popen(self, args, **kwargs):
        return subprocess.Popen(args, env=self.env, cwd=self.root, user=self.user, group=self.user, **kwargs)

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def ctl(self, *args, timeout=60):
        proc = self._popen([str(CTL), "-n", self.node, *map(str, args)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        try:
            return proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.communicate()[0]

    def version(self):
        for line in self.ctl("status").splitlines():
            if line.strip().startswith("RabbitMQ version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def pid(self):
        """The Erlang VM's pid (beam.smp), for its CPU time: the script execs it, or starts it as a child."""
        text = (self.root / "rabbitmq.pid").read_text().strip() if (self.root / "rabbitmq.pid").exists() else ""
        return int(text) if text.isdigit() else self.proc.pid
