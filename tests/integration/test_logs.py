"""Logs: rotation while nodes write without pause (rename + SIGUSR1, `ccmulti reopen`, and the shipped logrotate
config run by logrotate itself) loses no line and splits none; the master logs to the journal stream when
systemd gives it one. Real processes throughout: a counter program per node, the real master and node shims."""
import gzip
import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from conftest import CCMULTI, PYTHON, wait_for
from test_supervisor import FAKE, HOST, alive, make_sup

REPO = pathlib.Path(__file__).resolve().parents[2]

# Each line goes out in two writes ("N " then "tick\n"), so a rotation that switched files between writes would
# split a line. TERM: finish the line, write "end N", exit 0.
COUNTER = r"""
import os, signal, sys, time
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
i = 0
while not stop:
    os.write(1, b"%d " % i)
    os.write(1, b"tick\n")
    i += 1
    if i % 20 == 0:
        time.sleep(0.002)
os.write(1, b"end %d\n" % i)
"""


@pytest.fixture
def sup():
    yield from make_sup(None)


def start_counters(sup, *names):
    script = sup.root / "counter.py"
    script.write_text(COUNTER)
    sup.check("start", *names, "--exec", f"{PYTHON} {script}")
    return sup.master_pid()


def line_count(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def read_any(path):
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def check_every_line_once_in_order(files):
    """The union of the files, oldest first: "0 tick", "1 tick", … then "end N", nothing lost, doubled or split."""
    chunks = [read_any(f) for f in files]
    for f, chunk in zip(files, chunks):
        assert chunk, f"{f} is empty"
        assert chunk.endswith(b"\n"), f"{f} ends in the middle of a line: {chunk[-40:]!r}"
    lines = b"".join(chunks).decode().splitlines()
    assert lines[-1].startswith("end "), lines[-3:]
    count = int(lines[-1].split()[1])
    body = lines[:-1]
    bad = [(n, line) for n, line in enumerate(body) if line != f"{n} tick"]
    assert not bad, f"first unexpected line: {bad[0]} of {len(body)} (files {[str(f) for f in files]})"
    assert len(body) == count, (len(body), count)
    return count


def test_rename_and_sigusr1_lose_no_line(sup):
    master = start_counters(sup, "w1", "w2")
    logs = {n: sup.log_dir / f"{n}.log" for n in ("w1", "w2")}
    for round in (1, 2, 3):
        for path in logs.values():
            seen = line_count(path)
            wait_for(lambda: line_count(path) > seen + 200, timeout=10, what=f"{path} to grow")
        for path in [*logs.values(), sup.log_dir / "master.log"]:
            path.rename(path.with_name(f"{path.name}.{round}"))
        os.kill(master, signal.SIGUSR1)
        for path in logs.values():
            wait_for(lambda: line_count(path) > 50, timeout=10, what=f"a new {path} with lines")
        wait_for(lambda: "log reopened" in read_text(sup.log_dir / "master.log"), timeout=10,
                 what="a new master.log")
    sup.check("stopwait")
    for name, path in logs.items():
        files = [path.with_name(f"{path.name}.{r}") for r in (1, 2, 3)] + [path]
        assert check_every_line_once_in_order(files) > 1000
    # The master went on logging into the new file; nothing after the rename went into the old one.
    assert "stopped" in read_text(sup.log_dir / "master.log")
    assert "stopped" not in read_text(sup.log_dir / "master.log.3")


def read_text(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_reopen_command_signals_the_masters_of_this_user(sup):
    start_counters(sup, "w1")
    path = sup.log_dir / "w1.log"
    wait_for(lambda: line_count(path) > 100, timeout=10, what="w1.log to grow")
    path.rename(path.with_name("w1.log.1"))
    proc = sup.check("reopen")
    assert f"pid {sup.master_pid()}  ccmulti: master" in proc.stdout, proc.stdout
    wait_for(lambda: line_count(path) > 50, timeout=10, what="a new w1.log")
    sup.check("stopwait")
    check_every_line_once_in_order([path.with_name("w1.log.1"), path])
    assert sup.run("reopen", "--quiet").stdout == ""


@pytest.mark.skipif(not shutil.which("logrotate"), reason="logrotate is not installed (Debian package logrotate)")
def test_logrotate_with_the_shipped_config_loses_no_line(sup):
    """etc/logrotate.d/ccmulti as installed, with the log dir and the binary pointed at this test's."""
    start_counters(sup, "w1")
    config = (REPO / "etc/logrotate.d/ccmulti").read_text()
    assert "/var/log/ccmulti" in config and "/usr/bin/ccmulti" in config
    config = config.replace("/var/log/ccmulti", str(sup.log_dir)).replace("/usr/bin/ccmulti", CCMULTI)
    conf = sup.root / "logrotate.conf"
    conf.write_text(config)
    conf.chmod(0o644)
    path = sup.log_dir / "w1.log"
    for round in (1, 2, 3):
        seen = line_count(path)
        wait_for(lambda: line_count(path) > seen + 200, timeout=10, what="w1.log to grow")
        proc = subprocess.run(["logrotate", "-f", "-s", str(sup.root / "logrotate.state"), str(conf)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: line_count(path) > 50, timeout=10, what="a new w1.log")
    sup.check("stopwait")
    rotated = sorted(sup.log_dir.glob("w1.log.*"), key=lambda p: int(p.name.split(".")[2]), reverse=True)
    assert [p.name for p in rotated] == ["w1.log.3.gz", "w1.log.2.gz", "w1.log.1"]  # delaycompress
    check_every_line_once_in_order([*rotated, path])


# --- the journal ---------------------------------------------------------------------------------------------


def run_foreground(sup, stderr_file, journal_stream, *node_args):
    env = dict(sup.env)
    if journal_stream:
        env["JOURNAL_STREAM"] = journal_stream
    proc = subprocess.Popen([CCMULTI, "start", "--foreground", *node_args], stdout=subprocess.PIPE,
                            stderr=stderr_file, text=True, env=env, cwd=sup.root, start_new_session=True)
    line = proc.stdout.readline()
    assert " ready " in line, line
    return proc


def test_master_logs_to_the_journal_stream_without_timestamps(sup):
    err_path = sup.root / "journal"
    with open(err_path, "wb") as err:
        st = os.fstat(err.fileno())
        proc = run_foreground(sup, err, f"{st.st_dev}:{st.st_ino}", "w1", "w2", "--backoff-initial", "5",
                              "--exec", f"{FAKE} --notify", "--exec:w2",
                              f"{FAKE} --notify --crash-after 0.5 --message crashed")
        wait_for(lambda: "restarting in" in read_text(err_path), timeout=10,
                 what="the crash line in the journal stream")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    lines = read_text(err_path).splitlines()
    assert lines and all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines), lines
    assert any(line.startswith("<6>master started for") for line in lines), lines
    assert any(line.startswith(f"<3>w2@{HOST}: exited with code 3") for line in lines), lines
    assert not any("[20" in line or "[pid" in line for line in lines), "journald adds timestamps and the pid"
    assert not (sup.log_dir / "master.log").exists(), "the journal is the master's log"
    assert "warm shutdown" not in out, "said once, in the journal"
    assert any(line.startswith("<6>warm shutdown") for line in lines), lines


def test_journal_stream_of_another_fd_is_ignored(sup):
    """systemd sets JOURNAL_STREAM for the unit; a master whose stderr is something else keeps its file."""
    with open(sup.root / "stderr", "wb") as err:
        proc = run_foreground(sup, err, "1:2", "w1", "--exec", f"{FAKE} --notify")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    text = read_text(sup.log_dir / "master.log")
    assert "] [info] [pid " in text and "master started for" in text, text
    assert not read_text(sup.root / "stderr").startswith("<")


def test_nodes_do_not_inherit_journal_stream(sup):
    """The node's output goes to its log file, not the journal: JOURNAL_STREAM would mislead its program."""
    with open(sup.root / "stderr", "wb") as err:
        st = os.fstat(err.fileno())
        proc = run_foreground(sup, err, f"{st.st_dev}:{st.st_ino}", "w1", "--exec",
                              f"{PYTHON} -c 'import os,sys,time; print(os.environ.get(\"JOURNAL_STREAM\", \"unset\"), "
                              f"flush=True); time.sleep(60)'", "--start-secs", "0.2")
        wait_for(lambda: read_text(sup.log_dir / "w1.log").strip(), timeout=10, what="the node's output")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert read_text(sup.log_dir / "w1.log").splitlines()[0] == "unset"


# --- the node shim's pipe ------------------------------------------------------------------------------------


def test_output_written_just_before_exit_is_all_in_the_log(sup):
    """The shim drains the pipe before it reports the exit: the failure report's last line is the last one."""
    proc = sup.run("start", "w1", "--exec", "sh -c 'seq 1 200000; echo last words >&2; exit 3'")
    assert proc.returncode == 1
    assert "last words" in proc.stderr, proc.stderr
    lines = (sup.log_dir / "w1.log").read_text().splitlines()
    assert lines[:200000] == [str(i) for i in range(1, 200001)] and lines[200000] == "last words", lines[-3:]


def test_a_program_that_closes_its_output_keeps_running(sup):
    sup.check("start", "w1", "--start-secs", "0.3", "--exec", "sh -c 'echo bye; exec >&- 2>&-; exec sleep 60'")
    shim = sup.pid("w1")
    wait_for(lambda: "bye" in read_text(sup.log_dir / "w1.log"), timeout=10, what="the last line")
    status = sup.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    os.kill(shim, signal.SIGUSR1)  # a reopen with nothing left to write is harmless
    sup.check("stopwait")


@pytest.mark.skipif(os.geteuid() != 0, reason="a log file in /dev needs root")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs that fills up")
def test_a_full_disk_is_reported_not_fatal(sup):
    """A full file system under the log: every write fails with ENOSPC; the master's log says so once, the node
    runs on. (/dev/full itself is refused as a log: it is not a regular file.)"""
    script = sup.root / "counter.py"
    script.write_text(COUNTER)
    full = sup.root / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        log = full / "w1.log"
        log.touch()
        filler = os.open(full / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(filler, b"x" * 4096) > 0:  # until the file system is full (ENOSPC)
                pass
        except OSError:
            pass
        finally:
            os.close(filler)
        # --log-dir on the command line keeps master.log in the log dir (not beside the node's log, on the tmpfs).
        sup.log_dir.mkdir(mode=0o700)  # (start does not create it when no node logs there)
        sup.check("--log-dir", sup.log_dir, "start", "w1", f"--logfile={log}", "--exec", f"{PYTHON} {script}")
        master = sup.master_pid()
        wait_for(lambda: f"cannot write to the log {log}: No space left on device" in read_text(
            sup.log_dir / "master.log"), timeout=10, what="the ENOSPC report")
        assert sup.run("status").returncode == 0
        assert read_text(sup.log_dir / "master.log").count("No space left on device") == 1
        assert alive(master)
        sup.check("stopwait")
    finally:
        sup.cleanup()
        subprocess.run(["umount", "-l", str(full)])

