"""Bad input that used to be taken silently, hang the master or leak: each is refused with one clear line
(docs/bad-input.md lists these with the rest)."""
import os
import shutil
import subprocess
import socket
import stat

import pytest

from conftest import CCMULTI, wait_for
from test_supervisor import HOST, alive, make_sup


@pytest.fixture
def sup():
    yield from make_sup(None)


@pytest.mark.parametrize("logfile, problem", [
    ("/dev/full", "it is a character device, not a regular file"),
    ("/proc/self/mem", "it is a kernel file (/proc, /sys), not a regular file"),
    ("/tmp", "it is a directory, not a regular file"),
])
def test_a_log_path_that_is_not_a_regular_file_is_a_usage_error(sup, logfile, problem):
    out = sup.run("start", "w1", f"--logfile={logfile}", "--exec", sup.fake())
    assert out.returncode == 2, out
    [line] = out.stderr.splitlines()
    assert f"log file {logfile} of w1@{HOST}: {problem}; give --logfile the path of a regular file" in line, line
    assert not (sup.run_dir / "master.pid").exists()


def test_a_fifo_or_symlink_at_the_log_path_is_refused_before_start(sup):
    sup.log_dir.mkdir(mode=0o700)
    os.mkfifo(sup.log_dir / "w1.log")
    secret = sup.root / "secret"
    secret.write_text("top secret line\n")
    (sup.log_dir / "w2.log").symlink_to(secret)
    for short, problem in (("w1", "it is a FIFO"), ("w2", "it is a symlink")):
        out = sup.run("start", short, "--exec", sup.fake(), timeout=20)
        assert out.returncode == 2, out
        assert problem in out.stderr and "top secret" not in out.stderr, out.stderr
    assert secret.read_text() == "top secret line\n"


def test_a_fifo_planted_at_a_running_nodes_log_does_not_hang_the_master(sup):
    """The log is replaced by a FIFO while the node runs (a shared log dir); the node dies and the master, which
    restarts it, used to block for good in open(2), deaf to TERM. It refuses the FIFO and stays in charge."""
    sup.check("start", "w1", "--backoff-initial", "0.1", "--exec", sup.fake("--notify"))
    master, node = sup.master_pid(), sup.pid("w1")
    log = sup.log_dir / "w1.log"
    log.unlink()
    os.mkfifo(log)
    os.kill(node, 9)
    wait_for(lambda: "refusing log file" in (sup.log_dir / "master.log").read_text(), timeout=10,
             what="the master to refuse the FIFO")
    assert "it is a FIFO, not a regular file" in (sup.log_dir / "master.log").read_text()
    assert sup.run("status", timeout=10).returncode != 0  # answers: w1 is not running
    os.kill(master, 15)
    wait_for(lambda: not alive(master), timeout=10, what="the master to exit on TERM")
    assert stat.S_ISFIFO(os.lstat(log).st_mode)


def test_a_symlink_planted_at_a_running_nodes_log_is_not_followed_or_shown(sup):
    sup.check("start", "w1", "--backoff-initial", "0.1", "--exec", sup.fake("--notify"))
    master, node = sup.master_pid(), sup.pid("w1")
    secret = sup.root / "secret"
    secret.write_text("top secret line\n")
    log = sup.log_dir / "w1.log"
    log.unlink()
    log.symlink_to(secret)
    os.kill(node, 9)
    wait_for(lambda: "refusing log file" in (sup.log_dir / "master.log").read_text(), timeout=10,
             what="the master to refuse the symlink")
    status = sup.run("status", timeout=10)
    assert "top secret" not in status.stdout + status.stderr
    assert "top secret" not in (sup.log_dir / "master.log").read_text()
    assert secret.read_text() == "top secret line\n"
    os.kill(master, 15)
    wait_for(lambda: not alive(master), timeout=10, what="the master to exit on TERM")


def test_call_with_an_empty_task_name_is_a_usage_error(env):
    for name in ("", "  ", "tasks.add\n"):
        out = env.run("call", name)
        assert out.returncode == 2, out
        assert "TASK must be a task name" in out.stderr
    out = env.run("call", "ccmulti.ping", "-Q", "")
    assert out.returncode == 2 and "--queue must be a queue name" in out.stderr, out


def test_worker_args_after_double_dash_reach_a_native_node_or_are_refused(env):
    out = env.run("show", "w1", "--", "--loglevel=DEBUG", "--time-limit", "30", check=True)
    assert out.stdout.rstrip().endswith("worker -n w1@" + HOST + " --loglevel=DEBUG --time-limit 30"), out.stdout
    out = env.run("show", "w1", "--", "--autoscale=4,2")
    assert out.returncode == 2, out
    [line] = out.stderr.splitlines()
    assert "'--autoscale=4,2' after -- is not an option of the native worker" in line, line
    assert "--loglevel" in line and "-A/--app or --exec" in line


def test_a_stale_inspect_socket_is_removed(env):
    """A node killed with SIGKILL leaves its inspect socket; asking finds nobody listening and removes it."""
    env.run_dir.mkdir(mode=0o700)
    stale = env.run_dir / f"inspect-ghost@{HOST}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(stale))
    listener.close()  # the file stays, as after SIGKILL
    assert stale.exists()
    out = env.run("inspect", "ping", "--timeout", "1")
    assert out.returncode == 1 and "no nodes replied" in out.stderr, out
    assert not stale.exists()


def test_a_missing_transport_module_is_a_clear_error(tmp_path):
    """The RabbitMQ transport and the dashboard are modules beside the executable (platform/module.hpp): a binary
    without them says which module it needs and how to fix it, and a Redis or SQLite command does not need them."""
    binary = tmp_path / "bin" / "ccmulti"
    binary.parent.mkdir()
    shutil.copy(CCMULTI, binary)
    env = {k: v for k, v in os.environ.items() if k != "CCMULTI_MODULE_DIR"}
    env["CCMULTI_STATE_DIR"] = str(tmp_path / "state")
    out = subprocess.run([str(binary), "call", "ccmulti.echo", "[1]", "--broker", "amqp://guest:guest@127.0.0.1:1//"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0
    assert "the RabbitMQ transport (amqp:// URLs) needs the module ccmulti-amqp.so" in out.stderr, out.stderr
    assert "CCMULTI_MODULE_DIR" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = subprocess.run([str(binary), "dashboard", "--bind", "127.0.0.1:0"], capture_output=True, text=True,
                         timeout=30, env=env)
    assert out.returncode != 0 and "the dashboard needs the module ccmulti-dashboard.so" in out.stderr, out.stderr
    # Pointed at the build's modules, the same binary loads them: the call now fails only on the unreachable broker.
    env["CCMULTI_MODULE_DIR"] = os.path.dirname(CCMULTI)
    out = subprocess.run([str(binary), "call", "ccmulti.echo", "[1]", "--broker", "amqp://guest:guest@127.0.0.1:1//"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0 and "module" not in out.stderr, out.stderr
