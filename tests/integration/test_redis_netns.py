"""Many machines, simulated: two consumers in two network namespaces share the work of one Redis in a third.
Needs root (ip netns, veth from Debian's iproute2); skipped otherwise.

    ns A (10.77.1.2) ──veth── ns R: redis-server (10.77.1.1, 10.77.2.1) ──veth── ns B (10.77.2.2)

The nodes are real `ccmulti worker` processes (-c 2), one per namespace; a Python Celery client in the Redis
namespace sends the tasks and reads the results, which say which node ran each."""
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import CCMULTI, PYTHON, wait_for

PORT = 6390
HOST = socket.gethostname()  # the namespaces share the UTS namespace: one host name

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed"),
]


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def namespaces():
    tag = f"ccm{os.getpid() % 100000}"
    names = {role: f"{tag}-{role}" for role in ("r", "a", "b")}
    try:
        for name in names.values():
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as error:
        for name in names.values():
            ip("netns", "del", name, check=False)
        pytest.skip(f"cannot create network namespaces here: {error.stderr.strip()}")
    try:
        for index, role in ((1, "a"), (2, "b")):
            outer, inner = f"{tag}{role}0", f"{tag}{role}1"
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            ip("link", "set", outer, "netns", names["r"])
            ip("link", "set", inner, "netns", names[role])
            ip("-n", names["r"], "addr", "add", f"10.77.{index}.1/24", "dev", outer)
            ip("-n", names[role], "addr", "add", f"10.77.{index}.2/24", "dev", inner)
            ip("-n", names["r"], "link", "set", outer, "up")
            ip("-n", names[role], "link", "set", inner, "up")
        yield names
    finally:
        for name in names.values():
            ip("netns", "del", name, check=False)  # takes the veth pairs with it


def in_ns(name, *command):
    return ["ip", "netns", "exec", name, *map(str, command)]


def test_nodes_in_two_namespaces_share_one_redis(env, namespaces):
    redis = subprocess.Popen(
        in_ns(namespaces["r"], "redis-server", "--port", PORT, "--bind", "0.0.0.0", "--protected-mode", "no",
              "--save", "", "--appendonly", "no", "--dir", env.root),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = {}
    logs = {}
    try:
        def pong():
            out = subprocess.run(in_ns(namespaces["a"], "redis-cli", "-h", "10.77.1.1", "-p", PORT, "PING"),
                                 capture_output=True, text=True)
            return out.stdout.strip() == "PONG"
        wait_for(pong, timeout=10, what="redis in its namespace, reached from namespace A")

        for role, address in (("a", "10.77.1.1"), ("b", "10.77.2.1")):
            logs[role] = env.root / f"w{role}.log"
            with open(logs[role], "w") as out:
                nodes[role] = subprocess.Popen(
                    in_ns(namespaces[role], CCMULTI, "worker", "-n", f"w{role}@%h", "-c", 2, "-Q", "celery",
                          "--broker", f"redis://{address}:{PORT}/0"),
                    env=env.env, cwd=env.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        for role in "ab":
            wait_for(lambda: f"w{role}@{HOST} ready:" in logs[role].read_text(), timeout=15,
                     what=f"the node in namespace {role} to be ready")

        send_and_wait = (
            "import json, sys\n"
            "from celery import Celery\n"
            f"app = Celery('proj', broker='redis://127.0.0.1:{PORT}/0', backend='redis://127.0.0.1:{PORT}/0')\n"
            "results = [app.send_task('ccmulti.sleep', args=(0.1,)) for _ in range(30)]\n"
            "values = [r.get(timeout=30) for r in results]\n"
            "workers = [app.backend.get_task_meta(r.id)['worker'] for r in results]\n"
            "print(json.dumps({'values': values, 'workers': workers}))\n"
        )
        done = subprocess.run(in_ns(namespaces["r"], PYTHON, "-c", send_and_wait), capture_output=True, text=True,
                              timeout=90)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["values"] == [0.1] * 30, "every task ran and stored its result"
        assert set(out["workers"]) == {f"wa@{HOST}", f"wb@{HOST}"}, f"both namespaces should get work: {out}"

        unacked = subprocess.run(in_ns(namespaces["r"], "redis-cli", "-p", PORT, "HLEN", "unacked"),
                                 capture_output=True, text=True)
        assert unacked.stdout.strip() == "0"
        # Warm shutdown over the veth: both nodes leave cleanly.
        for role, proc in nodes.items():
            proc.send_signal(signal.SIGTERM)
        for role, proc in nodes.items():
            assert proc.wait(timeout=20) == 0, logs[role].read_text()
        # Exactly 30 runs between them: no task ran twice.
        assert sum(logs[role].read_text().count("] succeeded in") for role in "ab") == 30
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        redis.terminate()
        redis.wait(timeout=10)
