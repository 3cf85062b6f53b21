"""A private rabbitmq-server for the RabbitMQ benchmark (amqp_throughput.py), the one the integration tests start
(tests/integration/rabbit_server.py: without systemd, its own node name, ports, directories and epmd, run as the
rabbitmq user under root), in a temporary directory. About 5 s to start: once per bench/run. A context manager:
the server, the epmd daemons it left and the directory go at the end.

Not a test module: Debian's /usr/bin/python3 only."""
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "integration"))
import rabbit_server as shared  # noqa: E402  (tests/integration/rabbit_server.py, plain Python)


class RabbitMQ:
    def __enter__(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-bench-rabbitmq-"))
        os.chmod(self.root, 0o755)  # the rabbitmq user reaches its directory below
        try:
            self.server = shared.RabbitMQ(self.root / "rabbitmq")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc):
        self.server.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self):
        return self.server.url

    def ctl(self, *args, timeout=60):
        return self.server.ctl(*args, timeout=timeout)

    def version(self):
        return self.server.version()

    def pid(self):
        """The Erlang VM's pid (beam.smp), for its CPU time."""
        return self.server.beam_pid()
