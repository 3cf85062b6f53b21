"""The supervisor with real processes: start/stop/stopwait/kill, the warm→cold relay, pid-file identity checks
and what a SIGKILLed master leaves behind. Nodes run tests/helpers/fake_node (a stand-in worker that records
the signals it gets). Every process a test starts is killed at teardown, found by the test's private directory
in its environment, so a failing test leaves nothing running."""
import contextlib
import json
import os
import re
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import CCMULTI, FakeSystemdNotify, for_other_users, other_uid, sigkill_until_gone, wait_for

FAKE = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", "")) / "tests" / "fake_node"
HOST = socket.gethostname()
IS_ROOT = os.geteuid() == 0


# --- processes ---------------------------------------------------------------------------------------------


def proc_stat(pid):
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2]), "start": int(fields[19])}


def alive(pid):
    stat = proc_stat(pid)
    return stat is not None and stat["state"] not in ("Z", "X")


def group_members(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat["pgrp"] == pgid and stat["state"] not in ("Z", "X"):
                members.append(int(entry))
    return members


def cmdline(pid):
    try:
        raw = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").split(b"\0")[0].decode(errors="replace")


def processes_mentioning(marker):
    """Pids whose environment contains `marker` (every process a test's ccmulti started inherits it), or whose
    cwd is under it: a master's title overwrites the memory /proc/PID/environ shows, but it runs in the
    directory `start` ran in."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle in pathlib.Path(f"/proc/{entry}/environ").read_bytes():
                found.append(int(entry))
                continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
            if cwd == marker or cwd.startswith(marker + "/") or cwd == marker + " (deleted)":
                found.append(int(entry))
        except OSError:
            pass
    return found


# --- a private ccmulti setup -------------------------------------------------------------------------------


class Sup:
    """A private run/log dir and the ccmulti command, run as this user or (as root) as another uid."""

    def __init__(self, root: pathlib.Path, uid=None):
        self.root = root
        self.uid = uid
        self.run_dir = root / "run"
        self.log_dir = root / "log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCMULTI_") or k == "CCMULTI_BIN"}
        # The state dir too: a native node started as root would otherwise make /var/lib/ccmulti/broker.sqlite3.
        self.env.update(CCMULTI_RUN_DIR=str(self.run_dir), CCMULTI_LOG_DIR=str(self.log_dir),
                        CCMULTI_STATE_DIR=str(root / "state"), NO_COLOR="1", SUPERVISOR_TEST_MARKER=str(root))
        if uid is not None:
            os.chown(root, uid, uid)
            self.env["HOME"] = str(root)

    def command(self, *args):
        if self.uid is None:
            return [CCMULTI, *map(str, args)]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", for_other_users(CCMULTI),
                *map(str, args)]

    def run(self, *args, timeout=60):
        return subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, cwd=self.root,
                              timeout=timeout)

    def check(self, *args, timeout=60):
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"ccmulti {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def popen(self, *args):
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.root, start_new_session=True)

    @contextlib.contextmanager
    def foreground_under_systemd(self, *args):
        """`ccmulti start ARGS --foreground` as systemd runs it (Type=notify): yields (master, listener), the
        listener holding what the master told its NOTIFY_SOCKET. The master is SIGKILLed if still up at the end."""
        listener = FakeSystemdNotify(self.root / "systemd-notify.sock")
        self.env["NOTIFY_SOCKET"] = str(listener.path)
        master = self.popen("start", *args, "--foreground")
        try:
            yield master, listener
        finally:
            del self.env["NOTIFY_SOCKET"]
            listener.close()
            if master.poll() is None:
                os.killpg(master.pid, signal.SIGKILL)
                master.wait()

    def fake(self, *options):
        """An --exec value running fake_node with a record file per node."""
        fake = FAKE if self.uid is None else for_other_users(FAKE)
        return " ".join([str(fake), "--record", str(self.root / "%n.rec"), *options])

    def records(self, short):
        path = self.root / f"{short}.rec"
        return path.read_text().splitlines() if path.exists() else []

    def pid(self, short, run_dir=None):
        text = ((run_dir or self.run_dir) / f"{short}.pid").read_text()
        assert re.fullmatch(r"[1-9][0-9]*\n", text), f"a pid file holds the pid and a newline, not {text!r}"
        return int(text)

    def status(self):
        """`ccmulti status --json`: (exit code, reply)."""
        proc = self.run("status", "--json")
        return proc.returncode, json.loads(proc.stdout)

    def node_status(self, short):
        """The node `short@HOST` of `status --json`."""
        code, reply = self.status()
        for node in reply["nodes"]:
            if node["name"] == f"{short}@{HOST}":
                return node
        raise AssertionError(f"{short} not in {reply}")

    def master_pid(self):
        return int((self.run_dir / "master.pid").read_text().split()[0])

    def program_pid(self, short):
        for line in self.records(short):
            if line.startswith("start "):
                return int(line.split()[1])
        return None

    def cleanup(self):
        # Masters first: one that lost its nodes would restart them (crash backoff) behind the cleanup's back.
        masters = processes_mentioning(str(self.root))
        try:
            masters.append(self.master_pid())  # a master started with --workdir elsewhere
        except (OSError, ValueError, IndexError):
            pass
        for pid in masters:
            if cmdline(pid).startswith("ccmulti: master"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        sigkill_until_gone(lambda: processes_mentioning(str(self.root)))


@pytest.fixture(params=["self", "other-user"] if IS_ROOT else ["self"])
def sup_any_user(request):
    yield from make_sup(other_uid() if request.param == "other-user" else None)


@pytest.fixture
def sup():
    yield from make_sup(None)


def make_sup(uid):
    if not os.access(FAKE, os.X_OK):
        pytest.fail(f"fake_node not built: {FAKE}")
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-sup-"))
    os.chmod(root, 0o755)
    s = Sup(root, uid)
    try:
        yield s
    finally:
        s.cleanup()
        shutil.rmtree(root, ignore_errors=True)


# --- start ---------------------------------------------------------------------------------------------------


def test_start_three_nodes_then_stopwait(sup_any_user):
    sup = sup_any_user
    started = sup.check("start", "w1", "w2", "w3", "-Q", "high,low", "-c", "2", "--exec", sup.fake("--notify"))
    lines = started.stdout.splitlines()
    assert len(lines) == 3, started.stdout
    for short in ("w1", "w2", "w3"):
        assert any(line.startswith(f"{short}@{HOST}  pid ") and "  ready  log " in line for line in lines), lines
        pid = sup.pid(short)
        assert alive(pid)
        assert cmdline(pid) == f"ccmulti: node {short}@{HOST} -Q high,low"
        assert (sup.log_dir / f"{short}.log").exists()
        assert proc_stat(pid)["pgrp"] == pid, "each node leads its own process group"
        assert sup.records(short)[0] == f"start {sup.program_pid(short)} node {short}@{HOST} queues high,low"
    master = sup.master_pid()
    assert cmdline(master).startswith("ccmulti: master")
    node_pids = [sup.pid(s) for s in ("w1", "w2", "w3")]

    stopped = sup.check("stopwait")
    for short in ("w1", "w2", "w3"):
        assert f"{short}@{HOST}  stopped" in stopped.stdout
        assert "signal TERM" in sup.records(short)
        assert not (sup.run_dir / f"{short}.pid").exists()
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit")
    assert not any(alive(pid) for pid in node_pids)
    assert not (sup.run_dir / "master.pid").exists()
    assert not (sup.run_dir / "master.sock").exists()


def test_start_waits_for_ready_1_not_for_start_secs(sup):
    began = time.monotonic()
    sup.check("start", "w1", "--start-secs", "30", "--exec", sup.fake("--notify=0.3"))
    assert 0.3 <= time.monotonic() - began < 10
    assert "notified READY=1" in sup.records("w1")
    sup.check("stop", "--wait")


def test_start_secs_makes_a_silent_program_ready(sup):
    began = time.monotonic()
    sup.check("start", "w1", "--start-secs", "0.5", "--exec", sup.fake())
    assert time.monotonic() - began >= 0.5
    sup.check("kill")


def test_start_of_a_running_node_says_so_and_succeeds(sup):
    """As celery multi: starting what already runs is not an error (an init script's start is idempotent)."""
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    pid = sup.pid("w1")
    again = sup.run("start", "w1", "--exec", sup.fake("--notify"))
    assert again.returncode == 0, again.stderr
    assert f"w1@{HOST} already running (pid {pid})" in again.stdout
    assert sup.pid("w1") == pid
    sup.check("stop", "--wait")


def test_node_that_exits_at_once_fails_start_with_its_own_error(sup):
    proc = sup.run("start", "w1", "--exec", f"{FAKE} --exit 3 --message 'boom: bad option --frobnicate'")
    assert proc.returncode == 1
    assert "boom: bad option --frobnicate" in proc.stderr
    assert "exited with code 3" in proc.stderr
    assert "OK" not in proc.stdout and "ready" not in proc.stdout
    wait_for(lambda: not (sup.run_dir / "master.pid").exists(), timeout=5, what="the master to exit")
    assert not (sup.run_dir / "w1.pid").exists()


def test_missing_program_fails_start(sup):
    proc = sup.run("start", "w1", "--exec", "ccmulti-no-such-program --x")
    assert proc.returncode == 1
    assert "ccmulti-no-such-program" in proc.stderr and "not found" in proc.stderr


def test_one_bad_node_fails_start_but_the_good_ones_run(sup):
    proc = sup.run("start", "w1", "w2", "--exec", sup.fake("--notify"), "--exec:w2", f"{FAKE} --exit 7")
    assert proc.returncode == 1
    assert f"w1@{HOST}  pid" in proc.stdout
    assert f"w2@{HOST} failed to start" in proc.stderr
    assert alive(sup.pid("w1"))
    sup.check("stop", "--wait")


def test_usage_errors_exit_2(sup):
    assert sup.run("start", "w1", "-c", "many", "--exec", sup.fake()).returncode == 2  # not a number
    assert sup.run("start", "w1", "--exec", "'unterminated").returncode == 2


# --- stop ----------------------------------------------------------------------------------------------------


def test_warm_stop_lets_the_task_finish(sup):
    sup.check("start", "w1", "--exec", sup.fake("--task", "1.5", "--notify"))
    began = time.monotonic()
    proc = sup.check("stop", "w1", "--wait")
    assert time.monotonic() - began >= 1.0
    records = sup.records("w1")
    assert records.index("signal TERM") < records.index("task done")
    assert "task interrupted" not in records
    assert f"w1@{HOST}  stopped" in proc.stdout


def test_cold_stop_interrupts_the_task(sup):
    sup.check("start", "w1", "--exec", sup.fake("--task", "30", "--notify"))
    began = time.monotonic()
    sup.check("stop", "--wait", "--cold")
    assert time.monotonic() - began < 5
    records = sup.records("w1")
    assert "signal QUIT" in records and "task interrupted" in records
    assert "signal TERM" not in records and "task done" not in records


def test_stop_without_wait_returns_at_once(sup):
    sup.check("start", "w1", "--exec", sup.fake("--task", "2", "--notify"))
    master = sup.master_pid()
    began = time.monotonic()
    proc = sup.check("stop")
    assert time.monotonic() - began < 1.5
    assert f"w1@{HOST}  stopping" in proc.stdout
    wait_for(lambda: "task done" in sup.records("w1"), timeout=10, what="the task to finish")
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit")


def test_node_ignoring_term_and_quit_is_killed_at_the_deadline(sup_any_user):
    sup = sup_any_user
    sup.check("start", "w1", "w2", "--exec", sup.fake("--ignore", "TERM,QUIT", "--grandchild", "--notify"))
    leaders = {short: sup.pid(short) for short in ("w1", "w2")}
    wait_for(lambda: all(any(l.startswith("grandchild ") for l in sup.records(s)) for s in leaders), what="grandchildren")
    grandchildren = [int(l.split()[1]) for s in leaders for l in sup.records(s) if l.startswith("grandchild ")]
    began = time.monotonic()
    proc = sup.check("stop", "--wait", "--timeout", "2")
    elapsed = time.monotonic() - began
    assert 1.9 <= elapsed < 8, elapsed
    for short, pgid in leaders.items():
        records = sup.records(short)
        assert "signal TERM ignored" in records and "signal QUIT ignored" in records
        assert records.index("signal TERM ignored") < records.index("signal QUIT ignored")
        assert group_members(pgid) == [], f"process group of {short} not empty"
        assert f"{short}@{HOST}  stopped  (killed by SIGKILL" in proc.stdout
    assert not any(alive(pid) for pid in grandchildren)


def test_stop_progress_is_shown_for_long_waits(sup):
    sup.check("start", "w1", "--exec", sup.fake("--ignore", "TERM", "--notify"))
    proc = sup.check("stop", "--wait", "--timeout", "2.5")
    assert "waiting for 1 node" in proc.stdout
    assert "signal QUIT" in sup.records("w1")


def test_kill_sends_sigkill_to_the_process_groups(sup):
    sup.check("start", "w1", "--exec", sup.fake("--ignore", "TERM,QUIT", "--grandchild", "--notify"))
    pgid = sup.pid("w1")
    wait_for(lambda: any(l.startswith("grandchild ") for l in sup.records("w1")), what="the grandchild")
    began = time.monotonic()
    sup.check("kill", "w1")
    assert time.monotonic() - began < 3
    assert group_members(pgid) == []


def test_stop_from_pid_files_when_the_master_does_not_answer(sup):
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    master = sup.master_pid()
    node = sup.pid("w1")
    os.kill(master, signal.SIGSTOP)  # alive (locks held) but deaf
    try:
        proc = sup.check("stop", "w1", "--wait", timeout=30)
        assert "does not answer" in proc.stdout
        assert f"w1@{HOST}  stopped" in proc.stdout
        assert not alive(node)  # a zombie of the stopped master counts as dead
    finally:
        os.kill(master, signal.SIGCONT)
    wait_for(lambda: not alive(master), timeout=5, what="the master to exit")


def test_stop_when_nothing_runs(sup):
    proc = sup.check("stop", "w1", "--wait")
    assert f"w1@{HOST}  not running" in proc.stdout
    assert sup.check("stopwait").returncode == 0


# --- pid-file identity ---------------------------------------------------------------------------------------


def test_stale_pid_file_naming_an_unrelated_process_is_never_signalled(sup_any_user):
    sup = sup_any_user
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        sup.run_dir.mkdir(mode=0o700)
        if sup.uid is not None:
            os.chown(sup.run_dir, sup.uid, sup.uid)
        pidfile = sup.run_dir / "w1.pid"
        pidfile.write_text(f"{sleeper.pid}\n")
        if sup.uid is not None:
            os.chown(pidfile, sup.uid, sup.uid)
        for command in (["stop", "w1", "--wait"], ["kill", "w1"], ["stopwait"], ["kill"]):
            proc = sup.run(*command)
            assert proc.returncode == 0, proc.stderr
            assert "not running" in proc.stdout, proc.stdout
            assert alive(sleeper.pid), f"{command} signalled an unrelated process"
        # The stale file is taken over by a new node.
        sup.check("start", "w1", "--exec", sup.fake("--notify"))
        assert sup.pid("w1") != sleeper.pid
        sup.check("stop", "--wait")
        assert alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_locked_pid_file_of_an_unrelated_process_is_never_signalled(sup):
    """Even a locked file naming a live process is refused when the process title is not a ccmulti node."""
    import fcntl

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        sup.run_dir.mkdir(mode=0o700)
        pidfile = sup.run_dir / "w1.pid"
        pidfile.write_text(f"{sleeper.pid}\n")
        with open(pidfile) as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            proc = sup.run("stop", "w1", "--wait")
            assert proc.returncode == 0
            assert "another process (sleep" in proc.stdout, proc.stdout
            assert alive(sleeper.pid)
            assert sup.run("kill", "w1").returncode == 0
            assert alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


# --- the foreground master and Ctrl+C ------------------------------------------------------------------------


def test_one_ctrl_c_is_warm_the_second_is_cold(sup):
    master = sup.popen("start", "w1", "w2", "--foreground", "--exec", sup.fake("--task", "30", "--notify"))
    try:
        wait_for(lambda: all("notified READY=1" in sup.records(s) for s in ("w1", "w2")), what="both nodes ready")
        wait_for(lambda: (sup.run_dir / "w2.pid").exists() and (sup.run_dir / "w1.pid").exists(), what="pid files")
        # A terminal's Ctrl+C reaches the whole foreground process group: the master's.
        os.killpg(master.pid, signal.SIGINT)
        wait_for(lambda: all("signal TERM" in sup.records(s) for s in ("w1", "w2")), what="warm shutdown")
        assert master.poll() is None, "one Ctrl+C must not kill the master"
        assert all("task interrupted" not in sup.records(s) for s in ("w1", "w2"))
        os.killpg(master.pid, signal.SIGINT)
        out, err = master.communicate(timeout=10)
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
    assert master.returncode == 0, err
    assert "warm shutdown: waiting for 2 nodes (Ctrl+C again for cold)" in out
    assert f"w1@{HOST}  pid " in out and "ready" in out
    for short in ("w1", "w2"):
        records = sup.records(short)
        assert "signal QUIT" in records and "task interrupted" in records
        assert "signal INT" not in records, "the terminal's SIGINT must not reach the nodes"
    assert not (sup.run_dir / "master.pid").exists()


def test_sigterm_to_a_foreground_master_is_a_warm_shutdown(sup):
    master = sup.popen("start", "w1", "--foreground", "--exec", sup.fake("--task", "1", "--notify"))
    try:
        wait_for(lambda: (sup.run_dir / "w1.pid").exists() and "notified READY=1" in sup.records("w1"), what="ready")
        master.send_signal(signal.SIGTERM)
        out, err = master.communicate(timeout=15)
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
    assert master.returncode == 0, err
    assert "task done" in sup.records("w1")


def test_a_foreground_master_tells_its_own_supervisor_when_every_node_is_ready(sup):
    """systemd's Type=notify (systemd/ccmulti.service): READY=1 on the master's own NOTIFY_SOCKET once the nodes
    are ready, never before; STOPPING=1 when a warm shutdown begins. The nodes get the master's socket instead."""
    with sup.foreground_under_systemd("w1", "w2", "--exec", sup.fake("--notify=0.5")) as (master, listener):
        received, drain = listener.received, listener.drain
        wait_for(lambda: any("READY=1" in m for m in drain()), what="READY=1 from the master")
        assert all("notified READY=1" in sup.records(s) for s in ("w1", "w2")), "READY=1 before the nodes were"
        ready = next(m for m in received if "READY=1" in m)
        assert f"MAINPID={master.pid}" in ready
        master.send_signal(signal.SIGTERM)
        wait_for(lambda: any("STOPPING=1" in m for m in drain()), what="STOPPING=1 from the master")
        master.communicate(timeout=15)


# --- a SIGKILLed master --------------------------------------------------------------------------------------


def test_sigkill_of_the_master_leaves_no_node_or_grandchild(sup):
    sup.check("start", "w1", "w2", "--exec", sup.fake("--grandchild", "--ignore", "TERM", "--notify"))
    wait_for(lambda: all(any(l.startswith("grandchild ") for l in sup.records(s)) for s in ("w1", "w2")),
             what="grandchildren")
    pids = [sup.pid(s) for s in ("w1", "w2")]
    pids += [sup.program_pid(s) for s in ("w1", "w2")]
    pids += [int(l.split()[1]) for s in ("w1", "w2") for l in sup.records(s) if l.startswith("grandchild ")]
    assert all(alive(pid) for pid in pids)
    os.kill(sup.master_pid(), signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=1.0, what="every node and grandchild to die")
    # The pid files are left behind unlocked: stale, and the next start takes them over.
    assert sup.run("stop", "--wait").returncode == 0
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    sup.check("stop", "--wait")


# --- a normal user's defaults --------------------------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT, reason="needs root to become another user")
def test_normal_user_default_run_dir():
    uid = other_uid()
    home = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-home-"))
    os.chmod(home, 0o755)
    os.chown(home, uid, uid)
    run_dir = pathlib.Path(f"/tmp/ccmulti-{uid}")
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CCMULTI_", "XDG_")) or k == "CCMULTI_BIN"}
    env.update(HOME=str(home), NO_COLOR="1", SUPERVISOR_TEST_MARKER=str(home))
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", for_other_users(CCMULTI)]
    exec_line = f"{for_other_users(FAKE)} --record {home}/%n.rec --notify"
    try:
        proc = subprocess.run(as_user + ["start", "w1", "w2", "--exec", exec_line], capture_output=True, text=True,
                              env=env, cwd=home, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert (run_dir / "w1.pid").exists() and (run_dir / "master.pid").exists()
        assert os.stat(run_dir).st_uid == uid and os.stat(run_dir).st_mode & 0o777 == 0o700
        assert (home / ".local/state/ccmulti/log/w1.log").exists()
        pid = int((run_dir / "w1.pid").read_text().split()[0])
        assert os.stat(f"/proc/{pid}").st_uid == uid
        proc = subprocess.run(as_user + ["stopwait"], capture_output=True, text=True, env=env, cwd=home, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"w1@{HOST}  stopped" in proc.stdout and f"w2@{HOST}  stopped" in proc.stdout
    finally:
        for pid in processes_mentioning(str(home)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def test_signals_ignored_by_the_parent_shell_still_reach_the_master(sup):
    """A shell starts background jobs with SIGINT and SIGQUIT ignored; the master must still act on them."""

    def ignore_int_and_quit():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)

    master = subprocess.Popen(sup.command("start", "w1", "--foreground", "--exec", sup.fake("--task", "30", "--notify")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sup.env, cwd=sup.root,
                              start_new_session=True, preexec_fn=ignore_int_and_quit)
    try:
        wait_for(lambda: (sup.run_dir / "w1.pid").exists() and "notified READY=1" in sup.records("w1"), what="ready")
        master.send_signal(signal.SIGINT)
        wait_for(lambda: "signal TERM" in sup.records("w1"), what="warm shutdown")
        master.send_signal(signal.SIGQUIT)
        master.communicate(timeout=10)
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
    assert master.returncode == 0
    assert "task interrupted" in sup.records("w1")
    # The node's program starts with default dispositions, whatever the master inherited.
    assert "signal INT" not in sup.records("w1")


def test_nodes_inherit_no_stray_fds(sup):
    """Only stdin (/dev/null) and stdout/stderr (the pipe the node shim appends to the log) reach a node's
    program: no lock, socket or the caller's inherited fds. The node shim holds the pid-file lock, the log, the
    read end of that pipe and its signalfd, nothing else."""
    read_end, write_end = os.pipe()
    callers_pipe = f"pipe:[{os.fstat(write_end).st_ino}]"
    try:
        proc = subprocess.run(sup.command("start", "w1", "--exec", sup.fake("--notify")), capture_output=True,
                              text=True, env=sup.env, cwd=sup.root, timeout=60, pass_fds=(write_end,))
        assert proc.returncode == 0, proc.stderr
    finally:
        os.close(read_end)
        os.close(write_end)
    program = sup.program_pid("w1")

    def open_fds():
        return {int(fd): os.readlink(f"/proc/{program}/fd/{fd}") for fd in os.listdir(f"/proc/{program}/fd")}

    # fake_node's own notify socket may still be open for a moment after READY=1 (start returns on it); an
    # inherited fd never goes away, so waiting for it still fails on one.
    try:
        wait_for(lambda: sorted(open_fds()) == [0, 1, 2], timeout=5, what="only stdin, stdout and stderr open")
    except AssertionError:
        pass  # the assertion below says which fds stayed
    fds = open_fds()
    assert sorted(fds) == [0, 1, 2], fds
    assert fds[0] == "/dev/null" and fds[1] == fds[2] and fds[1].startswith("pipe:"), fds
    assert fds[1] != callers_pipe

    def shim_fds():
        shim = sup.pid("w1")
        return {os.readlink(f"/proc/{shim}/fd/{fd}") for fd in os.listdir(f"/proc/{shim}/fd")}

    assert str(sup.run_dir / "w1.pid") in shim_fds()
    # The shim may still be closing its spawn pipes when the program is already ready.
    wait_for(lambda: {t for t in shim_fds() if "pipe:" in t} == {fds[1]}, what="the shim to hold only the output pipe")
    assert shim_fds() == {"/dev/null", str(sup.log_dir / "w1.log"), str(sup.run_dir / "w1.pid"), fds[1],
                          "anon_inode:[signalfd]"}, shim_fds()
    sup.check("stop", "--wait")
