"""Issue 12's acceptance test, "Celery's own files, one variable changed".

Celery's shipped systemd unit and generic init script (Debian's `celery` package, under
/usr/share/doc/celery/examples; read at test time, never copied into this repository) drive ccmulti in place of
`celery multi`, as an unprivileged system user without a home, against a real Celery project (`proj/`, real
Python Celery workers) on a real redis-server:

- the unit: its ExecStart/ExecStop/ExecReload lines are parsed out of celery.service and run as systemd would
  (backslash continuations joined, `${VAR}` substituted, `$VAR` words split, the rest left to /bin/sh -c with the
  EnvironmentFile variables in the environment, `env -i` otherwise, cwd = the project), with CELERY_BIN = ccmulti;
- the init script (generic-init.d/celeryd v10.1, run as root as it requires) with CELERY_DEFAULTS pointing at a
  config the test writes, CELERY_BIN = ccmulti (so its default CELERYD_MULTI is "ccmulti multi");
- the same init-script steps with the real `celery multi`, for the exit codes ccmulti must match or beat.

Each step is a named check; a test runs all its checks and fails listing every failed one (with ccmulti's output),
so one run shows the whole state of the drop-in. Every wait polls with a deadline."""
import gc
import json
import os
import pathlib
import pwd
import random
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import traceback

import pytest

from conftest import CCMULTI, Redis, sigkill_until_gone, wait_for

EXAMPLES = pathlib.Path("/usr/share/doc/celery/examples")
UNIT = EXAMPLES / "systemd" / "celery.service"
UNIT_CONF = EXAMPLES / "systemd" / "celery.conf"
INIT = EXAMPLES / "generic-init.d" / "celeryd"
CELERY = pathlib.Path("/usr/bin/celery")
HOST = socket.gethostname()
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The sanitizer build's options (scripts/test) reach ccmulti through the otherwise empty environments below, so an
# error there still fails the run; systemd and init would not pass them, and nothing else is passed.
SANITIZER_ENV = {k: v for k, v in os.environ.items() if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
OPTS_1 = "--concurrency=1 --without-mingle --without-gossip"
OPTS_2 = "--concurrency=2 --without-mingle --without-gossip"

pytestmark = pytest.mark.skipif(not (UNIT.exists() and INIT.exists() and CELERY.exists()),
                                reason="Debian's celery package is not installed (scripts/install-deps installs it)")


def why_not_here():
    """Why the scenarios (every test using `world`) cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: creates a system user and runs Celery's init script"
    if shutil.which("useradd") is None or not pathlib.Path("/lib/lsb/init-functions").exists():
        return "needs useradd (passwd) and /lib/lsb/init-functions (sysvinit-utils)"
    return None


from celery import Celery  # noqa: E402  (Debian's python3-celery)


# --- checks that do not stop at the first failure --------------------------------------------------------------


class NotApplicable(Exception):
    """Raised by a step whose premise does not hold on this machine: reported, not a failure."""


class Checks:
    """Named steps of one scenario, run at once by decorating them. A failed step is recorded with its message and
    the scenario goes on, so one run reports every check; a step whose `needs` (keys of earlier steps) did not pass
    is skipped rather than timed out. `done()` fails the test listing what failed."""

    def __init__(self, name):
        self.name = name
        self.ok = set()
        self.passed, self.failed, self.skipped, self.not_applicable = [], [], [], []

    def step(self, label, key=None, needs=()):
        def run(body):
            missing = [need for need in needs if need not in self.ok]
            if missing:
                self.skipped.append(f"{label} (needs: {', '.join(missing)})")
                return
            started = time.monotonic()
            try:
                body()
            except NotApplicable as why:
                self.not_applicable.append(f"{label}: {why}")
                return
            except Exception as error:  # pytest's skip/fail outcomes are BaseExceptions and pass through
                detail = str(error) if isinstance(error, AssertionError) else traceback.format_exc(limit=-3)
                self.failed.append(f"{label}: {detail.strip()}")
                return
            self.passed.append(f"{label} ({time.monotonic() - started:.1f}s)")
            if key:
                self.ok.add(key)

        return run

    def done(self):
        summary = [f"{self.name}: {len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"]
        summary += [f"  PASS {line}" for line in self.passed]
        summary += [f"  SKIP {line}" for line in self.skipped]
        summary += [f"  N/A  {line}" for line in self.not_applicable]
        summary += ["  FAIL " + textwrap.indent(line, "      ").strip() for line in self.failed]
        if self.failed or self.skipped:
            pytest.fail("\n".join(summary), pytrace=False)
        print("\n".join(summary))  # shown with -s or -rP


def shown(proc):
    """A finished command as a failure message shows it."""
    args = proc.args if isinstance(proc.args, str) else shlex.join(map(str, proc.args))
    return f"$ {args}\nexit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def expect_exit(proc, code=0):
    assert proc.returncode == code, f"expected exit {code}\n{shown(proc)}"


# --- Celery's files, read as systemd and init read them --------------------------------------------------------


def unit_exec_lines(path=UNIT):
    """ExecStart/ExecStop/ExecReload of a unit as systemd reads the file: comment lines skipped, a line ending in a
    backslash joined to the next with the backslash replaced by a space."""
    logical, pending = [], None
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith(("#", ";")):
            continue
        text = raw if pending is None else pending + raw
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = None
        logical.append(text)
    lines = {}
    for line in logical:
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("ExecStart", "ExecStop", "ExecReload"):
            lines[key.strip()] = value.strip()
    assert set(lines) == {"ExecStart", "ExecStop", "ExecReload"}, f"unexpected {path}: {lines}"
    return lines


def environment_file(path=UNIT_CONF):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments skipped, one pair of quotes removed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def systemd_argv(line, variables):
    """The argv systemd executes for an Exec line: words split with quotes removed; `${VAR}` replaced inside any
    word; a word that is exactly `$VAR` replaced by the value split at whitespace. Everything else (here the
    `$VAR`s inside the sh -c script) reaches the program as written."""
    assert "%" not in line, f"specifiers are not expanded by this reader: {line}"
    argv = []
    for word in shlex.split(line):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv += variables.get(whole.group(1), "").split()
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: variables.get(m.group(1), ""), word))
    assert argv and argv[0].startswith("/"), f"not an absolute program: {argv}"
    return argv


def app_after_nodes(exec_start):
    """The ExecStart variant that names the app after the nodes: `... multi start $CELERYD_NODES -A $CELERY_APP ...`."""
    assert " -A $CELERY_APP multi start $CELERYD_NODES " in exec_start, exec_start
    return exec_start.replace(" -A $CELERY_APP multi start $CELERYD_NODES ",
                              " multi start $CELERYD_NODES -A $CELERY_APP ")


# --- the world: a system user, a project, a redis-server -------------------------------------------------------

PROJECT_CELERY = '''\
from celery import Celery

app = Celery("proj", broker={broker!r}, backend={backend!r}, include=["proj.tasks"])
app.conf.update(task_track_started=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
'''

PROJECT_TASKS = '''\
import os
import pathlib
import time

from proj.celery import app


@app.task
def add(x, y):
    return x + y


@app.task
def slow(marker, seconds):
    """Marks its start (MARKER.started), works SECONDS, marks its end (MARKER.done)."""
    pathlib.Path(marker + ".started").write_text(str(os.getpid()))
    time.sleep(seconds)
    pathlib.Path(marker + ".done").write_text(str(os.getpid()))
    return "slept %s" % seconds
'''


class World:
    """The temp root (0755, so the user can traverse it), ccmulti copied into it (the build dir may be in a 0700
    home), a system user without a home, the project, a redis-server and a Python Celery client."""

    def __init__(self):
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-dropin-", dir="/tmp"))
        self.user = self.redis = self.client = None
        try:
            self._set_up()
        except BaseException:
            self.close()
            raise

    def _set_up(self):
        os.chmod(self.root, 0o755)
        self.bin = self.root / "bin" / "ccmulti"
        self.bin.parent.mkdir(mode=0o755)
        shutil.copy2(CCMULTI, self.bin)
        os.chmod(self.bin, 0o755)
        name = f"ccdrop{random.randrange(10000, 99999)}"
        subprocess.run(["useradd", "--system", "--home-dir", "/nonexistent", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", "--user-group", name], check=True, capture_output=True)
        self.user = name
        entry = pwd.getpwnam(name)
        self.uid, self.gid, self.home = entry.pw_uid, entry.pw_gid, entry.pw_dir
        assert not os.path.exists(self.home)
        # A system uid is reused once freed: what an earlier owner of this uid left is not this run's.
        self.outside_before = set(self.files_outside())
        self.markers = self.user_dir("markers")
        self.redis = Redis(self.root / "redis")
        self.broker = f"redis://127.0.0.1:{self.redis.port}/0"
        self.backend = f"redis://127.0.0.1:{self.redis.port}/1"
        self.project = self.root / "project"
        package = self.project / "proj"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "celery.py").write_text(PROJECT_CELERY.format(broker=self.broker, backend=self.backend))
        (package / "tasks.py").write_text(PROJECT_TASKS)
        for path in [self.project, package, *package.iterdir()]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        self.client = Celery("client", broker=self.broker, backend=self.backend)
        self.client.conf.update(broker_connection_retry_on_startup=True)

    def user_dir(self, relative):
        """A directory under the root owned by the user (its parents too, below the root)."""
        path = self.root / relative
        path.mkdir(parents=True, exist_ok=True)
        for part in [pathlib.Path(relative), *pathlib.Path(relative).parents]:
            if str(part) != ".":
                os.chown(self.root / part, self.uid, self.gid)
        return path

    def user_pids(self):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        pids.append(int(entry))
                except FileNotFoundError:
                    pass
        return pids

    def user_processes(self):
        """pid → command line of every process of the user (zombies included: they are still there)."""
        procs = {}
        for pid in self.user_pids():
            try:
                cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            procs[pid] = cmd
        return procs

    def new_files_outside(self, since=None):
        return sorted(set(self.files_outside()) - (self.outside_before if since is None else since))

    def files_outside(self):
        """Entries the user owns in the shared scratch and runtime dirs (one level deep; /run/user/UID whole): a
        group whose files all go where its pid and log files are leaves none."""
        found = []
        for top in ("/tmp", "/var/tmp", "/dev/shm", "/run", "/run/user", f"/run/user/{self.uid}"):
            try:
                entries = os.scandir(top)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_uid == self.uid:
                            found.append(entry.path)
                    except OSError:
                        pass
        return found

    def nothing_left(self, timeout=15):
        wait_for(lambda: not self.user_pids(), timeout=timeout,
                 what=f"every process of {self.user} to be gone: {self.user_processes()}")

    # Celery client side.

    def answering(self, nodes, timeout=1.0):
        replies = self.client.control.ping(destination=list(nodes), timeout=timeout)
        return {name for reply in replies for name in reply}

    def all_answer(self, nodes, timeout=1.0):
        missing = set(nodes) - self.answering(nodes, timeout)
        assert not missing, f"no ping reply from {sorted(missing)}"

    def wait_answering(self, nodes, timeout=30):
        wait_for(lambda: set(nodes) <= self.answering(nodes, 0.5), timeout=timeout, interval=0.1,
                 what=f"{sorted(nodes)} to answer a ping")

    def add_works(self, timeout=20):
        result = self.client.send_task("proj.tasks.add", (20, 22))
        assert result.get(timeout=timeout) == 42
        return result

    def concurrency(self, nodes):
        stats = self.client.control.inspect(destination=list(nodes), timeout=2.0).stats() or {}
        return {name: stats.get(name, {}).get("pool", {}).get("max-concurrency") for name in nodes}

    def start_slow_task(self, seconds=3):
        """Sends `slow` and returns once it runs on a worker (its marker exists and its state is STARTED)."""
        marker = str(self.markers / f"slow-{random.randrange(1 << 30)}")
        result = self.client.send_task("proj.tasks.slow", (marker, seconds))
        wait_for(lambda: os.path.exists(marker + ".started") and result.state == "STARTED", timeout=30,
                 interval=0.05, what="the slow task to be running (marker and STARTED)")
        return result, marker

    def close(self):
        if self.user:
            sigkill_until_gone(self.user_pids)
            for path in self.new_files_outside():
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
            subprocess.run(["userdel", self.user], capture_output=True)
        if self.client is not None:
            gc.collect()
            consumer = getattr(self.client.backend, "result_consumer", None)
            if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
                consumer._pubsub.close()
                consumer._pubsub = None
            self.client.close()
        if self.redis:
            self.redis.stop()
        if os.environ.get("CCMULTI_TEST_KEEP"):  # for a post-mortem of the logs
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    if why_not_here():
        pytest.skip(why_not_here())
    w = World()
    try:
        yield w
    finally:
        w.close()


def nodes_of(names):
    return [f"{name}@{HOST}" for name in names.split()]


def pid_file_ok(world, path):
    """Exactly `PID\\n`, and `kill -0 PID` works for the user (it is the user's live process)."""
    text = path.read_text()
    assert re.fullmatch(r"[1-9][0-9]*\n", text), f"{path} holds {text!r}, not 'PID\\n'"
    probe = subprocess.run(["/bin/sh", "-c", f"kill -0 $(cat {shlex.quote(str(path))})"], user=world.uid,
                           group=world.gid, extra_groups=[], capture_output=True, text=True, timeout=10)
    expect_exit(probe, 0)
    return int(text)


def log_of(group, node):
    """The node's log (CELERYD_LOG_FILE's %n%I.log: the main process's is NAME.log)."""
    path = group.log_dir / f"{node.split('@')[0]}.log"
    return path.read_text() if path.exists() else ""


def ready_logged(group):
    """Which nodes' logs hold Celery's 'NODE ready.' line (logged once it consumes)."""
    return {node: f"{node} ready." in log_of(group, node) for node in group.nodes}


def ready_at_return(logged):
    not_ready = sorted(node for node, ready in logged.items() if not ready)
    assert not not_ready, f"start had returned before {not_ready} logged 'ready.'"


def parent_of(pid):
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def as_user(world, script):
    return subprocess.run(["/bin/sh", "-c", script], user=world.uid, group=world.gid, extra_groups=[],
                          capture_output=True, text=True, timeout=10)


def crash_lines(directory):
    """Lines of any log under `directory` that report a crash (the master logs crashes with that word)."""
    return [f"{path.name}: {line}" for path in directory.rglob("*.log") for line in path.read_text().splitlines()
            if "crash" in line.lower()]


# --- the systemd unit ----------------------------------------------------------------------------------------


class Unit:
    """Celery's celery.service for one group: its EnvironmentFile values (celery.conf as shipped, with CELERY_BIN,
    the pid/log paths and the given overrides changed) and its Exec lines, run as systemd runs them."""

    def __init__(self, world, base, **overrides):
        self.world = world
        self.base = base
        self.lines = unit_exec_lines()
        shipped = environment_file()
        self.variables = dict(shipped)
        self.variables.update(
            CELERY_BIN=str(world.bin),
            CELERYD_PID_FILE=str(base) + shipped["CELERYD_PID_FILE"],  # <base>/var/run/celery/%n.pid
            CELERYD_LOG_FILE=str(base) + shipped["CELERYD_LOG_FILE"],  # <base>/var/log/celery/%n%I.log
        )
        self.variables.update(overrides)
        self.pid_dir = pathlib.Path(self.variables["CELERYD_PID_FILE"]).parent
        self.log_dir = pathlib.Path(self.variables["CELERYD_LOG_FILE"]).parent
        self.nodes = nodes_of(self.variables["CELERYD_NODES"])

    def environment(self):
        """What systemd gives a `User=` service: PATH, LANG, the user's identity and home, the EnvironmentFile."""
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "USER": self.world.user, "LOGNAME": self.world.user,
               "HOME": self.world.home, "SHELL": "/usr/sbin/nologin", **SANITIZER_ENV}
        env.update(self.variables)
        return env

    def popen(self, which, line=None):
        argv = systemd_argv(line or self.lines[which], self.variables)
        return subprocess.Popen(argv, env=self.environment(), cwd=self.world.project, user=self.world.uid,
                                group=self.world.gid, extra_groups=[], umask=0o022, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, which, line=None, timeout=120):
        with self.popen(which, line) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def stopping_nodes(self):
        """The group's nodes in state `stopping`, from `ccmulti status NODES --json --pidfile=…` run as the user."""
        argv = [str(self.world.bin), "status", *self.variables["CELERYD_NODES"].split(), "--json",
                f"--pidfile={self.variables['CELERYD_PID_FILE']}"]
        proc = subprocess.run(argv, env=self.environment(), cwd=self.world.project, user=self.world.uid,
                              group=self.world.gid, extra_groups=[], capture_output=True, text=True, timeout=30)
        try:
            nodes = json.loads(proc.stdout).get("nodes") or []
        except ValueError:
            return None
        return [node for node in nodes if node.get("state") == "stopping"] or None

    def pid_files(self):
        return [self.pid_dir / f"{node.split('@')[0]}.pid" for node in self.nodes]


def started_checks(checks, world, service, action):
    """What every way of starting a group must do, as the step keys "start" and "up": `action` exits 0, every node
    is ready when it has returned, a Python client's task gets its result, pid files are plain. Returns the exit
    code of `action` (None when it did not run)."""
    logged, code = {}, []

    @checks.step(f"{action} exits 0", key="start")
    def _():
        start = service.run(action)
        logged.update(ready_logged(service))
        code.append(start.returncode)
        expect_exit(start, 0)

    @checks.step(f"every node is ready when {action} has returned (its log says 'ready.'; it answers a ping)",
                 needs=["start"])
    def _():
        ready_at_return(logged)
        world.all_answer(service.nodes, timeout=3.0)

    @checks.step("a task sent by a Python Celery client gets its result", key="up", needs=["start"])
    def _():
        world.wait_answering(service.nodes)
        world.add_works()

    @checks.step("pid files hold exactly 'PID\\n' and `kill -0 $(cat PIDFILE)` works", needs=["start"])
    def _():
        for path in service.pid_files():
            pid_file_ok(world, path)

    return code[0] if code else None


def test_parsed_unit_lines_are_celerys():
    """The reader sees the three lines Celery ships, and substitutes as systemd does."""
    lines = unit_exec_lines()
    argv = systemd_argv(lines["ExecStart"], {"CELERY_BIN": "/x/ccmulti", "CELERYD_PID_FILE": "/r/%n.pid"})
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
    assert argv[2].startswith("/x/ccmulti -A $CELERY_APP multi start $CELERYD_NODES")
    assert "--pidfile=/r/%n.pid" in argv[2] and "\\" not in argv[2]
    assert " multi stopwait " in lines["ExecStop"] and " multi restart " in lines["ExecReload"]


def test_systemd_unit_start_reload_stopwait(world):
    """The shipped lines, `-A` before `multi`, two nodes: start (ready when it returns, plain pid files), reload
    with changed CELERYD_OPTS (in effect), stopwait while a task runs (it finishes SUCCESS)."""
    checks = Checks("systemd unit as shipped")
    outside = set(world.files_outside())
    base = world.user_dir("unit-a")
    world.user_dir("unit-a/var/run/celery")
    world.user_dir("unit-a/var/log/celery")
    unit = Unit(world, base, CELERYD_NODES="w1 w2", CELERYD_OPTS=OPTS_1)
    try:
        started_checks(checks, world, unit, "ExecStart")

        @checks.step("inspect stats before the reload: max-concurrency 1", needs=["up"])
        def _():
            assert world.concurrency(unit.nodes) == {node: 1 for node in unit.nodes}

        unit.variables["CELERYD_OPTS"] = OPTS_2

        @checks.step("ExecReload with CELERYD_OPTS changed exits 0", key="reload", needs=["start"])
        def _():
            expect_exit(unit.run("ExecReload"), 0)

        @checks.step("the new CELERYD_OPTS are in effect (inspect stats: max-concurrency 2)", needs=["reload"])
        def _():
            world.wait_answering(unit.nodes)
            assert world.concurrency(unit.nodes) == {node: 2 for node in unit.nodes}

        @checks.step("pid files still 'PID\\n' of live processes after the reload", needs=["reload"])
        def _():
            for path in unit.pid_files():
                pid_file_ok(world, path)

        stopping = {}

        @checks.step("ExecStop (stopwait) while a task runs: exit 0 once the task is done, SUCCESS", key="stop",
                     needs=["start"])
        def _():
            world.wait_answering(unit.nodes)
            result, marker = world.start_slow_task(seconds=3)
            with unit.popen("ExecStop") as proc:
                try:
                    try:  # what the waiting node's stop plan is (checked below), while it waits
                        stopping["nodes"] = wait_for(unit.stopping_nodes, timeout=10, interval=0.05,
                                                     what="`ccmulti status` to show the busy node stopping")
                    except AssertionError as error:
                        stopping["error"] = str(error)
                    out, err = proc.communicate(timeout=120)
                finally:
                    if proc.poll() is None:
                        proc.kill()
            stop = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            done_at_return = os.path.exists(marker + ".done")
            expect_exit(stop, 0)
            assert done_at_return, f"stopwait returned before the running task had finished\n{shown(stop)}"
            assert result.state == "SUCCESS", f"task state {result.state}\n{shown(stop)}"

        @checks.step("stopwait without --timeout sets no kill deadline (status: kill_in null while it waits)",
                     needs=["stop"])
        def _():
            assert "nodes" in stopping, stopping.get("error")
            deadlines = {node["name"]: node.get("kill_in", "absent") for node in stopping["nodes"]}
            assert all(value is None for value in deadlines.values()), f"kill_in per stopping node: {deadlines}"

        @checks.step("no pid file left after stopwait", needs=["stop"])
        def _():
            left = [path.name for path in unit.pid_files() if path.exists()]
            assert not left, f"left: {left}"

        @checks.step("nothing of the user left running")
        def _():
            world.nothing_left()

        @checks.step("the user left no file in /tmp, /var/tmp, /dev/shm, /run")
        def _():
            assert not world.new_files_outside(outside), world.new_files_outside(outside)

        @checks.step("no crash logged")
        def _():
            assert not crash_lines(base), crash_lines(base)
    finally:
        sigkill_until_gone(world.user_pids)
    checks.done()


def test_systemd_unit_app_after_nodes_creates_dirs_and_groups_are_independent(world):
    """`-A $CELERY_APP` after the node names, the node list as shipped ("worker"), pid and log dirs that do not
    exist yet (their parent is the user's); started and stopped while a second group (own pid dir, the shipped
    line) runs, which must not notice."""
    checks = Checks("systemd unit, -A after the node names")
    outside = set(world.files_outside())
    unit_b = Unit(world, world.user_dir("unit-b"))  # CELERYD_NODES and CELERYD_OPTS as shipped
    world.user_dir("unit-c/var/run/celery")
    world.user_dir("unit-c/var/log/celery")
    unit_c = Unit(world, world.root / "unit-c", CELERYD_NODES="other", CELERYD_OPTS=OPTS_1)
    start_b = app_after_nodes(unit_b.lines["ExecStart"])
    assert not unit_b.pid_dir.exists() and not unit_b.log_dir.exists()
    c_pids = {}
    try:
        @checks.step("celery.conf as shipped but CELERY_BIN (/var/run/celery, /var/log/celery): a one-line error "
                     "naming the directory and the fix, exit non-zero, nothing started")
        def _():
            conf = environment_file()
            shipped = Unit(world, pathlib.Path("/"), CELERYD_PID_FILE=conf["CELERYD_PID_FILE"],
                           CELERYD_LOG_FILE=conf["CELERYD_LOG_FILE"])
            pid_dir = shipped.pid_dir
            if as_user(world, f"test -w {pid_dir} || test -w {pid_dir.parent}").returncode == 0:
                raise NotApplicable(f"{world.user} may write {pid_dir} or its parent on this machine")
            start = shipped.run("ExecStart")
            assert start.returncode != 0, shown(start)
            lines = start.stderr.strip().splitlines()
            assert len(lines) == 1 and str(pid_dir) in lines[0] and "RuntimeDirectory=celery" in lines[0], \
                f"expected one line naming {pid_dir} with the RuntimeDirectory= fix\n{shown(start)}"
            assert not world.user_pids(), world.user_processes()

        @checks.step("group C (the shipped line, node 'other') starts", key="c")
        def _():
            expect_exit(unit_c.run("ExecStart"), 0)
            world.wait_answering(unit_c.nodes)
            c_pids.update({path: pid_file_ok(world, path) for path in unit_c.pid_files()})

        logged = {}

        @checks.step("ExecStart with -A after the nodes, pid/log dirs missing, exits 0", key="start")
        def _():
            start = unit_b.run("ExecStart", start_b)
            logged.update(ready_logged(unit_b))
            expect_exit(start, 0)

        @checks.step("the missing pid and log dirs were created, owned by the user", needs=["start"])
        def _():
            for path in (unit_b.pid_dir, unit_b.log_dir):
                assert path.is_dir() and path.stat().st_uid == world.uid, f"{path} missing or not the user's"

        @checks.step("the node is ready when ExecStart has returned ('ready.' logged, answers), and runs a task",
                     needs=["start"])
        def _():
            ready_at_return(logged)
            world.all_answer(unit_b.nodes, timeout=3.0)
            world.add_works()

        @checks.step("pid file holds exactly 'PID\\n' and `kill -0 $(cat PIDFILE)` works", needs=["start"])
        def _():
            for path in unit_b.pid_files():
                pid_file_ok(world, path)

        @checks.step("groups B and C have masters of their own (a cgroup kill of one unit spares the other)",
                     needs=["start", "c"])
        def _():
            b_master = {parent_of(pid_file_ok(world, path)) for path in unit_b.pid_files()}
            c_master = {parent_of(pid) for pid in c_pids.values()}
            assert not (b_master & c_master), f"B's nodes' parent {b_master}, C's {c_master}"
            assert 1 not in b_master | c_master, "a node shim without its master"

        @checks.step("ExecStop of group B exits 0 and its node is gone", needs=["start"])
        def _():
            stop = unit_b.run("ExecStop")
            expect_exit(stop, 0)
            assert not world.answering(unit_b.nodes, 1.0), f"{unit_b.nodes} still answer\n{shown(stop)}"

        @checks.step("group C is untouched by group B's start and stop (same pids, answers, runs a task)",
                     needs=["c"])
        def _():
            for path, pid in c_pids.items():
                assert pid_file_ok(world, path) == pid, f"{path} changed"
            world.all_answer(unit_c.nodes)
            world.add_works()

        @checks.step("ExecStop of group C exits 0", needs=["c"])
        def _():
            expect_exit(unit_c.run("ExecStop"), 0)

        @checks.step("nothing of the user left running")
        def _():
            world.nothing_left()

        @checks.step("the user left no file in /tmp, /var/tmp, /dev/shm, /run")
        def _():
            assert not world.new_files_outside(outside), world.new_files_outside(outside)

        @checks.step("no crash logged")
        def _():
            lines = crash_lines(unit_b.base) + crash_lines(unit_c.base)
            assert not lines, lines
    finally:
        sigkill_until_gone(world.user_pids)
    checks.done()


# --- the generic init script ---------------------------------------------------------------------------------


class InitScript:
    """Celery's generic-init.d/celeryd with a config file of ours (CELERY_DEFAULTS), run by root as init runs it:
    minimal environment, cwd /."""

    def __init__(self, world, base, celery_bin, nodes="w1 w2", opts=OPTS_1):
        self.world = world
        self.base = base
        self.config = base / "celeryd.conf"
        self.pid_dir = base / "run"
        self.log_dir = base / "log"
        self.celery_bin = celery_bin
        self.names = nodes
        self.nodes = nodes_of(nodes)
        self.write_config(opts)

    def write_config(self, opts):
        values = {
            "ENABLED": "true",
            "CELERYD_NODES": self.names,
            "CELERY_BIN": str(self.celery_bin),
            "CELERY_APP": "proj",
            "CELERYD_CHDIR": str(self.world.project),
            "CELERYD_OPTS": opts,
            "CELERYD_PID_FILE": f"{self.pid_dir}/%n.pid",
            "CELERYD_LOG_FILE": f"{self.log_dir}/%n%I.log",
            "CELERYD_LOG_LEVEL": "INFO",
            "CELERYD_USER": self.world.user,
            "CELERYD_GROUP": self.world.user,
            "CELERY_CREATE_DIRS": "1",
        }
        self.config.write_text("".join(f'{key}="{value}"\n' for key, value in values.items()))
        os.chown(self.config, 0, 0)
        os.chmod(self.config, 0o640)

    def run(self, *args, timeout=120, **extra_env):
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "CELERY_DEFAULTS": str(self.config), **SANITIZER_ENV,
               **extra_env}
        return subprocess.run([str(INIT), *args], env=env, cwd="/", start_new_session=True, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def pid_files(self):
        return [self.pid_dir / f"{node.split('@')[0]}.pid" for node in self.nodes]


# Exit codes of the init script's steps with ccmulti, for the comparison with `celery multi`.
INIT_CODES = {}


def test_init_script(world):
    """start, status, start again, dryrun, graceful while a task runs, restart with changed options, stop while a
    task runs, status, start, kill, status, restart with nothing running, stop, dryrun with nothing running: the
    script's own exit codes and messages, real workers answering, nothing left behind."""
    checks = Checks("generic init script with CELERY_BIN=ccmulti")
    outside = set(world.files_outside())
    init = InitScript(world, world.user_dir("initd"), world.bin)
    codes = INIT_CODES
    try:
        if (code := started_checks(checks, world, init, "start")) is not None:
            codes["start"] = code

        @checks.step("status exits 0 and says every node is up", needs=["start"])
        def _():
            status = init.run("status")
            codes["status"] = status.returncode
            expect_exit(status, 0)
            for node in init.nodes:
                assert re.search(rf"\(node {node.split('@')[0]}\) \(pid \d+\) is up", status.stdout), shown(status)

        @checks.step("status with CELERYD_MULTI=ccmulti (no 'multi' word) exits 0", needs=["start"])
        def _():
            expect_exit(init.run("status", CELERYD_MULTI=str(world.bin)), 0)

        @checks.step("start of the running group exits 0 (celery multi: 0 with a message)", needs=["start"])
        def _():
            again = init.run("start")
            codes["start again"] = again.returncode
            expect_exit(again, 0)
            world.all_answer(init.nodes)

        @checks.step("dryrun exits 0, prints the node command lines and starts nothing", needs=["start"])
        def _():
            before = set(world.user_pids())
            dry = init.run("dryrun", timeout=30)
            new = set(world.user_pids()) - before
            expect_exit(dry, 0)
            assert not new, f"dryrun started {[world.user_processes().get(p, p) for p in new]}\n{shown(dry)}"
            for node in init.nodes:
                assert node in dry.stdout + dry.stderr, f"{node} is not in the dryrun's output\n{shown(dry)}"

        ready_lines, during = {}, {}

        @checks.step("graceful (HUP to every pid-file pid) while a task runs exits 0", key="graceful", needs=["up"])
        def _():
            ready_lines.update({node: log_of(init, node).count(" ready.") for node in init.nodes})
            during["task"], _marker = world.start_slow_task(seconds=2)
            graceful = init.run("graceful")
            expect_exit(graceful, 0)
            assert graceful.stdout.count("received SIGHUP") == len(init.nodes), shown(graceful)

        @checks.step("after graceful the running task is SUCCESS and every worker restarted (a new 'ready.'), "
                     "has a good pid file and answers", needs=["graceful"])
        def _():
            task = during["task"]
            wait_for(lambda: task.state not in ("PENDING", "STARTED"), timeout=30, interval=0.05,
                     what="the task running during the HUP to end")
            assert task.state == "SUCCESS", f"the task running during the HUP ended {task.state}: not a warm restart"
            for node in init.nodes:
                wait_for(lambda: log_of(init, node).count(" ready.") > ready_lines[node], timeout=30,
                         interval=0.1, what=f"{node} to log 'ready.' again after SIGHUP")
            world.wait_answering(init.nodes)
            for path in init.pid_files():
                pid_file_ok(world, path)
            world.add_works()

        @checks.step("graceful is not logged as a crash", needs=["graceful"])
        def _():
            assert not crash_lines(init.base), crash_lines(init.base)

        init.write_config(OPTS_2)

        @checks.step("restart with changed CELERYD_OPTS exits 0", key="restart", needs=["start"])
        def _():
            restart = init.run("restart")
            codes["restart"] = restart.returncode
            expect_exit(restart, 0)

        @checks.step("the new CELERYD_OPTS are in effect (inspect stats: max-concurrency 2)", needs=["restart"])
        def _():
            world.wait_answering(init.nodes)
            assert world.concurrency(init.nodes) == {node: 2 for node in init.nodes}

        @checks.step("stop while a task runs: exit 0 once the task is done, SUCCESS", key="stop", needs=["start"])
        def _():
            world.wait_answering(init.nodes)
            result, marker = world.start_slow_task(seconds=3)
            stop = init.run("stop")
            codes["stop"] = stop.returncode
            done_at_return = os.path.exists(marker + ".done")
            expect_exit(stop, 0)
            assert done_at_return, f"stop returned before the running task had finished\n{shown(stop)}"
            assert result.state == "SUCCESS", f"task state {result.state}\n{shown(stop)}"

        @checks.step("after stop nothing of the user runs and no pid file is left", needs=["stop"])
        def _():
            world.nothing_left()
            left = [path.name for path in init.pid_files() if path.exists()]
            assert not left, f"left: {left}"

        @checks.step("after stop the user left no file in /tmp, /var/tmp, /dev/shm, /run", needs=["stop"])
        def _():
            # Checked here: the `kill` below leaves Celery's pool temp dirs (/tmp/pymp-*), as it does with celery
            # multi, since only a clean exit removes them.
            assert not world.new_files_outside(outside), world.new_files_outside(outside)

        @checks.step("status after stop exits non-zero, no node is up", needs=["stop"])
        def _():
            status = init.run("status")
            codes["status stopped"] = status.returncode
            assert status.returncode != 0 and "is up" not in status.stdout, shown(status)

        @checks.step("start again exits 0 and the nodes answer", key="start2")
        def _():
            sigkill_until_gone(world.user_pids)  # whatever an earlier failure left
            expect_exit(init.run("start"), 0)
            world.wait_answering(init.nodes)

        @checks.step("kill exits 0 and every process of the user goes", key="kill", needs=["start2"])
        def _():
            kill = init.run("kill")
            codes["kill"] = kill.returncode
            expect_exit(kill, 0)
            world.nothing_left()

        @checks.step("status after kill exits non-zero, no node is up", needs=["kill"])
        def _():
            status = init.run("status")
            codes["status killed"] = status.returncode
            assert status.returncode != 0 and "is up" not in status.stdout, shown(status)

        @checks.step("restart with nothing running exits 0 and starts every node", key="restart2")
        def _():
            sigkill_until_gone(world.user_pids)
            expect_exit(init.run("restart"), 0)
            world.wait_answering(init.nodes)

        @checks.step("stop exits 0 and nothing of the user runs", needs=["restart2"])
        def _():
            expect_exit(init.run("stop"), 0)
            world.nothing_left()

        @checks.step("dryrun with nothing running, CELERYD_MULTI=ccmulti, exits 0 and starts nothing")
        def _():
            sigkill_until_gone(world.user_pids)
            dry = init.run("dryrun", timeout=30, CELERYD_MULTI=str(world.bin))
            running = world.user_processes()
            expect_exit(dry, 0)
            assert not running, f"dryrun left {running}\n{shown(dry)}"

        @checks.step("no crash logged")
        def _():
            assert not crash_lines(init.base), crash_lines(init.base)
    finally:
        sigkill_until_gone(world.user_pids)
    checks.done()


def test_init_script_with_celery_multi_for_comparison(world):
    """The same init-script steps with the real `celery multi` (CELERY_BIN=/usr/bin/celery, CELERYD_MULTI unset):
    ccmulti's exit codes must be the same, or better where issue 12 says Celery fails."""
    checks = Checks("generic init script with celery multi (comparison)")
    init = InitScript(world, world.user_dir("initd-celery"), CELERY)
    celery_codes = {}
    try:
        @checks.step("celery: start exits 0", key="start")
        def _():
            start = init.run("start")
            celery_codes["ready at return"] = all(ready_logged(init).values())
            celery_codes["start"] = start.returncode
            expect_exit(start, 0)

        @checks.step("celery: the nodes come up (not necessarily by the time start returns) and run a task",
                     needs=["start"])
        def _():
            world.wait_answering(init.nodes, timeout=60)
            world.add_works()

        @checks.step("celery: status exits 0", needs=["start"])
        def _():
            status = init.run("status")
            celery_codes["status"] = status.returncode
            expect_exit(status, 0)

        @checks.step("celery: start of the running group exits 0", needs=["start"])
        def _():
            again = init.run("start")
            celery_codes["start again"] = again.returncode
            expect_exit(again, 0)

        @checks.step("celery: stop exits 0 and every process goes", key="stop", needs=["start"])
        def _():
            stop = init.run("stop")
            celery_codes["stop"] = stop.returncode
            expect_exit(stop, 0)
            world.nothing_left()

        @checks.step("celery: status after stop exits non-zero", needs=["stop"])
        def _():
            status = init.run("status")
            celery_codes["status stopped"] = status.returncode
            assert status.returncode != 0, shown(status)

        print(f"celery multi exit codes: {celery_codes}\nccmulti exit codes: {INIT_CODES}")

        @checks.step("ccmulti's init-script exit codes are celery multi's, or 0 where Celery fails")
        def _():
            if not INIT_CODES:
                raise AssertionError("test_init_script recorded no exit codes: run the whole file")
            worse = []
            for step in ("start", "status", "start again", "stop", "status stopped"):
                if step in INIT_CODES and step in celery_codes:
                    ours, theirs = INIT_CODES[step], celery_codes[step]
                    ok = (ours != 0) == (theirs != 0) if step == "status stopped" else (ours == 0 or theirs != 0)
                    if not ok:
                        worse.append(f"{step}: ccmulti exit {ours}, celery multi exit {theirs}")
            assert not worse, "; ".join(worse)
    finally:
        sigkill_until_gone(world.user_pids)
    checks.done()
