"""Many machines, simulated: two consumers in two network namespaces share the work of one Redis in a third.
Needs root (ip netns, veth from Debian's iproute2); skipped otherwise.

    ns A (10.77.1.2) ──veth── ns R: redis-server (10.77.1.1, 10.77.2.1) ──veth── ns B (10.77.2.2)

The consumers are tests/tools/broker_probe (RedisConsumer + RedisResultStore) until the native worker exists."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import PYTHON, wait_for

BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
PROBE = BUILD / "tests" / "broker_probe"
PORT = 6390

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed"),
    pytest.mark.skipif(not PROBE.exists(), reason="broker_probe not built"),
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
    consumers = []
    try:
        def pong():
            out = subprocess.run(in_ns(namespaces["a"], "redis-cli", "-h", "10.77.1.1", "-p", PORT, "PING"),
                                 capture_output=True, text=True)
            return out.stdout.strip() == "PONG"
        wait_for(pong, timeout=10, what="redis in its namespace, reached from namespace A")

        send = (
            "import json, sys\n"
            "from celery import Celery\n"
            f"app = Celery('proj', broker='redis://10.77.1.1:{PORT}/0', backend='redis://10.77.1.1:{PORT}/0')\n"
            "print(json.dumps([app.send_task('proj.sleep', args=(0.1,)).id for _ in range(30)]))\n"
        )
        sent = subprocess.run(in_ns(namespaces["r"], PYTHON, "-c", send), capture_output=True, text=True,
                              timeout=60, check=True)
        ids = json.loads(sent.stdout)

        for role, address in (("a", "10.77.1.1"), ("b", "10.77.2.1")):
            consumers.append(subprocess.Popen(
                in_ns(namespaces[role], PROBE, "run", f"redis://{address}:{PORT}/0", "celery", 30, 6000),
                stdout=subprocess.PIPE, text=True))
        ran = {}
        for role, proc in zip("ab", consumers):
            out, _ = proc.communicate(timeout=60)
            ran[role] = [json.loads(line)["id"] for line in out.splitlines()]

        assert ran["a"] and ran["b"], f"both namespaces should get work: {ran}"
        assert sorted(ran["a"] + ran["b"]) == sorted(ids), "every task ran exactly once"

        check = (
            "import json, sys\n"
            "from celery import Celery\n"
            f"app = Celery('proj', broker='redis://127.0.0.1:{PORT}/0', backend='redis://127.0.0.1:{PORT}/0')\n"
            f"ids = json.loads(sys.argv[1])\n"
            "print(json.dumps([app.AsyncResult(i).get(timeout=10) for i in ids]))\n"
        )
        results = subprocess.run(in_ns(namespaces["r"], PYTHON, "-c", check, json.dumps(ids)), capture_output=True,
                                 text=True, timeout=60, check=True)
        assert json.loads(results.stdout) == [0.1] * len(ids)
        unacked = subprocess.run(in_ns(namespaces["r"], "redis-cli", "-p", PORT, "HLEN", "unacked"),
                                 capture_output=True, text=True)
        assert unacked.stdout.strip() == "0"
    finally:
        for proc in consumers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        redis.terminate()
        redis.wait(timeout=10)
