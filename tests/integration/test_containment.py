"""Containment: nothing a node's program started outlives the node. A command task that escapes the node's
process group (`setsid sleep 302 &`) or its parent chain (a double fork) must be gone after `stop --wait`, after
`kill`, and after a SIGKILLed master followed by `ccmulti kill` or by the next `start`.

Three ways to run: as root with a cgroup per node ("cgroup", skipped where this machine gives ccmulti no
writable cgroup v2), the fallback forced with CCMULTI_CONTAINMENT=subreaper (the master as subreaper, leftovers
found by their CCMULTI_GROUP/CCMULTI_NODE environment), and (as root) as a uid without an account, for which
cgroups are not writable, so the fallback is what it gets. The escaped processes are recognised by their command
line (`sleep 302`) and a token of the test's own in their environment (not by ccmulti's marker)."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

from conftest import CCMULTI, for_other_users, other_uid, sigkill_until_gone, wait_for

IS_ROOT = os.geteuid() == 0

# Each leaves a `sleep 302` behind and succeeds at once: one in a new session, one orphaned by a double fork.
CONFIG = """
[tasks."escape.setsid"]
command = ["/bin/sh", "-c", "cat >/dev/null; setsid sleep 302 </dev/null >/dev/null 2>&1 & echo null"]

[tasks."escape.double_fork"]
command = ["/bin/sh", "-c", "cat >/dev/null; (sleep 302 </dev/null >/dev/null 2>&1 &) ; echo null"]
"""


def cgroup_usable_here():
    """Why ccmulti cannot use cgroups on this machine as root, or None when it can (mirrors platform/cgroup)."""
    if not IS_ROOT:
        return "not root"
    mount = None
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            mount = left.split()[4]
            break
    if mount is None:
        return "no cgroup v2 mounted"
    own = next((line[3:] for line in pathlib.Path("/proc/self/cgroup").read_text().splitlines()
                if line.startswith("0::")), None)
    if own is None:
        return "no cgroup v2 path in /proc/self/cgroup"
    base = os.path.normpath(mount + "/" + own)
    if not os.access(base, os.W_OK) or not os.access(base + "/cgroup.procs", os.W_OK):
        return f"{base} is not writable"
    if os.path.exists("/run/systemd/system"):
        return "systemd manages the cgroups here (ccmulti needs Delegate=yes)"
    return None


class Group:
    def __init__(self, root, mode):
        self.root = root
        self.mode = mode
        self.uid = other_uid() if mode == "other-user" else None
        self.run_dir = root / "run"
        self.token = uuid.uuid4().hex
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCMULTI_")}
        self.env.update(CCMULTI_RUN_DIR=str(self.run_dir), CCMULTI_LOG_DIR=str(root / "log"),
                        CCMULTI_STATE_DIR=str(root / "state"), NO_COLOR="1", CONTAINMENT_TEST_TOKEN=self.token)
        if mode == "subreaper":
            self.env["CCMULTI_CONTAINMENT"] = "subreaper"
        (root / "ccmulti.toml").write_text(CONFIG)
        if self.uid is not None:
            os.chown(root, self.uid, self.uid)
            self.env["HOME"] = str(root)

    def run(self, *args, timeout=60):
        command = [CCMULTI, "-C", str(self.root / "ccmulti.toml"), *map(str, args)]
        if self.uid is not None:
            command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                       for_other_users(CCMULTI), *command[1:]]
        return subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=self.root, timeout=timeout)

    def check(self, *args, timeout=60):
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"ccmulti {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def sleeps(self):
        """Live `sleep 302` processes carrying this test's token."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if pathlib.Path(f"/proc/{entry}/cmdline").read_bytes() != b"sleep\x00302\x00":
                    continue
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
                if stat[stat.rindex(")") + 2] == "Z":
                    continue
                environ = pathlib.Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"CONTAINMENT_TEST_TOKEN={self.token}".encode() in environ:
                found.append(int(entry))
        return found

    def master_pid(self):
        return int((self.run_dir / "master.pid").read_text().split()[0])

    def start_and_escape(self):
        """Starts w1 (native worker, one pool process), runs both escaping tasks, returns the two sleeps."""
        self.check("start", "w1", "-c", "1")
        for task in ("escape.setsid", "escape.double_fork"):
            self.check("call", task, "--wait", "--timeout", "30")
        return wait_for(lambda: len(self.sleeps()) == 2 and self.sleeps(), timeout=10,
                        what="both tasks to leave a sleep 302 behind")

    def wait_no_sleeps(self, after):
        wait_for(lambda: not self.sleeps(), timeout=10, what=f"no sleep 302 left after {after}")

    def status(self):
        return json.loads(self.run("status", "--json").stdout)


@pytest.fixture(params=["cgroup", "subreaper"] + (["other-user"] if IS_ROOT else []))
def group(request):
    if request.param == "cgroup":
        why = cgroup_usable_here()
        if why:
            pytest.skip(f"cgroup containment is not available here: {why}")
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-contain-"))
    os.chmod(root, 0o755)
    g = Group(root, request.param)
    try:
        yield g
    finally:
        g.run("kill", timeout=30)
        sigkill_until_gone(g.sleeps)
        shutil.rmtree(root, ignore_errors=True)


def test_status_says_how_nodes_are_contained(group):
    group.start_and_escape()
    reply = group.status()
    how = reply["master"]["containment"]
    node = reply["nodes"][0]
    assert node["memory"] > 0 and node["memory_source"]
    if group.mode == "cgroup":
        assert how["mode"] == "cgroup" and how["memory"] in ("memory.current", "rss of cgroup.procs")
        cgroup = pathlib.Path(node["cgroup"])
        assert cgroup.parent == pathlib.Path(how["path"])
        members = {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
        assert set(group.sleeps()) <= members and node["pid"] in members
        assert node["memory_source"] == how["memory"]
    else:
        assert how["mode"] == "subreaper" and how["reason"]
        assert node["containment"] == "subreaper" and node["memory_source"] == "rss of process group"
    text = group.check("status").stdout.splitlines()
    assert text[1].startswith(f"containment  {how['mode']}  ")
    assert text[3].split()[7] == "MEM"
    group.check("stop", "--wait")
    if group.mode == "cgroup":
        wait_for(lambda: not pathlib.Path(how["path"]).exists(), timeout=10, what="the group's cgroup to be removed")
        assert not (group.run_dir / "master.cgroup").exists()


def test_stop_wait_ends_what_escaped(group):
    group.start_and_escape()
    group.check("stop", "--wait", timeout=60)
    group.wait_no_sleeps("stop --wait")


def test_kill_ends_what_escaped(group):
    group.start_and_escape()
    group.check("kill", timeout=60)
    group.wait_no_sleeps("kill")


@pytest.mark.parametrize("then", ["kill", "start"])
def test_a_sigkilled_masters_leftovers_end_with_the_next_kill_or_start(group, then):
    sleeps = group.start_and_escape()
    master = group.master_pid()
    os.kill(master, signal.SIGKILL)
    # The node shims see their master die and kill their process groups; the escaped sleeps are not in them.
    wait_for(lambda: not pathlib.Path(f"/proc/{master}").exists() or
             pathlib.Path(f"/proc/{master}/stat").read_text().split(") ")[1][0] == "Z",
             timeout=10, what="the master to die")
    wait_for(lambda: not group.run("status").returncode == 0, timeout=10, what="status to see no master")
    assert sorted(group.sleeps()) == sorted(sleeps), "the premise: the escaped processes outlive a SIGKILLed master"
    if then == "kill":
        out = group.run("kill", timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "leftover process" in out.stdout and "of a master that died, killed" in out.stdout, out.stdout
        group.wait_no_sleeps("ccmulti kill")
    else:
        group.check("start", "w1", "-c", "1")
        group.wait_no_sleeps("the next start")
        log = (group.root / "log" / "master.log").read_text()
        assert "left behind by a previous master of this group" in log
        group.check("stop", "--wait")
