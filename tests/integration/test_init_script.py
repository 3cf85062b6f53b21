"""scripts/init.d/ccmulti for real, as root: a system user without a home, a defaults file in Celery's CELERYD_*
names, native worker nodes on the embedded SQLite broker answering tasks, and the LSB exit codes of every state:
status 3 (not running), 0 (running), 1 (dead, pid files left), 4 (unknown); start twice, reload (rolling),
restart, stop twice, reload when stopped (7). Nothing is left behind."""
import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import CCMULTI, for_other_users, wait_for
from test_supervisor import alive

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts/init.d/ccmulti"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the init script is tested as root (it creates a user)")


class Service:
    def __init__(self, root, user):
        self.root = root
        self.user = user
        self.defaults = root / "default"
        self.run_dir = root / "run"
        self.group_dir = self.run_dir  # where master.pid lives: beside the pid files when they are elsewhere
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CCMULTI_DEFAULTS": str(self.defaults)}

    def write_defaults(self, **values):
        self.defaults.write_text("".join(f'{k}="{v}"\n' for k, v in values.items()))

    def __call__(self, action, env=None):
        return subprocess.run([str(SCRIPT), action], capture_output=True, text=True, timeout=120,
                              env={**self.env, **(env or {})}, cwd="/")

    def ccmulti(self, *args):
        """ccmulti as the service user, in the service's directories."""
        return subprocess.run(["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups",
                               for_other_users(CCMULTI), *args], capture_output=True, text=True, timeout=60, cwd=self.root / "proj",
                              env={"PATH": "/usr/bin:/bin", "CCMULTI_RUN_DIR": str(self.group_dir),
                                   "CCMULTI_LOG_DIR": str(self.root / "log"),
                                   "CCMULTI_STATE_DIR": str(self.root / "state"), "NO_COLOR": "1"})

    def nodes(self):
        reply = json.loads(self.ccmulti("status", "--json").stdout)
        return {n["name"].split("@")[0]: n for n in reply["nodes"]}

    def master_pid(self):
        return int((self.group_dir / "master.pid").read_text().split()[0])


@pytest.fixture
def service():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-init-"))
    os.chmod(root, 0o755)
    user = f"ccit{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                    "/usr/sbin/nologin", "--user-group", user], check=True)
    (root / "proj").mkdir()
    shutil.chown(root / "proj", user, user)
    s = Service(root, user)
    try:
        yield s
    finally:
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        wait_for(lambda: not live_processes(user), timeout=10, what=f"every process of {user} gone")
        subprocess.run(["userdel", user], check=True)
        shutil.rmtree(root, ignore_errors=True)


def test_init_script_lifecycle_with_celery_names(service):
    root = service.root
    defaults = dict(
        CCMULTI_BIN=for_other_users(CCMULTI),  # the service user cannot reach into a 0700 clone
        CELERYD_NODES="w1 w2",
        CELERYD_OPTS="-c 1 -Q:w2 high",
        CELERYD_PID_FILE=f"{root}/pids/%n.pid",
        CELERYD_LOG_FILE=f"{root}/logs/%n%I.log",
        CELERYD_LOG_LEVEL="INFO",
        CELERYD_USER=service.user,
        CELERYD_CHDIR=f"{root}/proj",
        CCMULTI_RUN_DIR=f"{root}/run",
        CCMULTI_LOG_DIR=f"{root}/log",
        CCMULTI_STATE_DIR=f"{root}/state",
    )
    service.write_defaults(**defaults)
    assert service("status").returncode == 3
    service.group_dir = root / "pids"  # a group lives beside its pid files (as with celery multi)

    proc = service("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" ready ") == 2, proc.stdout
    for d in ("run", "log", "state", "pids", "logs"):
        assert pwd.getpwuid((root / d).stat().st_uid).pw_name == service.user, d
    status = service("status")
    assert status.returncode == 0 and "w1@" in status.stdout and "w2@" in status.stdout, status.stdout
    nodes = service.nodes()
    assert nodes["w2"]["queues"] == ["high"] and nodes["w1"]["pidfile"] == f"{root}/pids/w1.pid"
    assert pwd.getpwuid(os.stat(f"/proc/{nodes['w1']['pid']}").st_uid).pw_name == service.user
    # Real nodes: a task goes through the embedded broker and comes back.
    call = service.ccmulti("call", "ccmulti.echo", '["hi"]', "--queue", "high", "--wait", "--timeout", "30")
    assert call.returncode == 0 and json.loads(call.stdout) == "hi", call.stdout + call.stderr
    assert (root / "logs/w1.log").exists()

    again = service("start")
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr

    # reload: a rolling restart with the options as they are now.
    old = {name: node["pid"] for name, node in service.nodes().items()}
    defaults["CELERYD_OPTS"] = "-c 2 -Q:w2 high"
    service.write_defaults(**defaults)
    reload = service("reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    nodes = service.nodes()
    assert all(nodes[n]["pid"] != old[n] for n in old), (old, nodes)
    assert all(node["concurrency"] == 2 for node in nodes.values()), nodes
    assert service("force-reload").returncode == 0

    master = service.master_pid()
    restart = service("restart")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert service.master_pid() != master and service("status").returncode == 0

    # The master dies hard: its node shims take their nodes down; pid files stay behind: status 1.
    master = service.master_pid()
    pids = [n["pid"] for n in service.nodes().values()]
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in [master, *pids]), timeout=10, what="the group gone")
    dead = service("status")
    assert dead.returncode == 1, dead.stdout + dead.stderr
    # start takes the stale files over.
    proc = service("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert service("status").returncode == 0

    # ccmulti cannot tell (it fails): 4.
    service.write_defaults(**{**defaults, "CCMULTI_BIN": "/bin/false"})
    assert service("status").returncode == 4
    service.write_defaults(**defaults)

    stop = service("stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert service("status").returncode == 3
    assert service("stop").returncode == 0, "stopping a stopped service is fine (LSB)"
    assert service("reload").returncode == 7
    assert list((root / "pids").iterdir()) == [] and not (root / "pids/master.pid").exists()
    assert not live_processes(service.user), "nothing left"


def live_processes(user):
    """The user's processes that still run (zombies whose parent is pid 1 are that init's business: a container's
    pid 1 may never reap)."""
    ps = subprocess.run(["ps", "-o", "stat=,pid=,args=", "-u", user], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if not line.lstrip().startswith("Z")]


def test_ccmulti_names_win_over_celery_names(service):
    root = service.root
    service.write_defaults(CCMULTI_BIN=for_other_users(CCMULTI), CELERYD_NODES="w1 w2", CCMULTI_NODES="w3", CCMULTI_OPTS="-c 1",
                           CELERYD_OPTS="-c 2", CCMULTI_USER=service.user, CELERYD_USER="nobody",
                           CCMULTI_CHDIR=f"{root}/proj", CCMULTI_RUN_DIR=f"{root}/run",
                           CCMULTI_LOG_DIR=f"{root}/log", CCMULTI_STATE_DIR=f"{root}/state")
    proc = service("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = service.nodes()
    assert list(nodes) == ["w3"] and nodes["w3"]["concurrency"] == 1, nodes
    assert "unknown environment variable" not in proc.stderr, proc.stderr
    assert service("stop").returncode == 0


def test_usage_and_missing_binary(service):
    assert service("frobnicate").returncode == 2
    service.write_defaults(CCMULTI_BIN="/nonexistent/ccmulti")
    proc = service("start")
    assert proc.returncode == 5 and "not installed" in proc.stderr
    assert service("status").returncode == 4 and service("stop").returncode == 0
