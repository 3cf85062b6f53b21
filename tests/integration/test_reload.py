"""Reload (`ccmulti reload`, SIGHUP): a node is replaced start-before-stop, a broken replacement never takes the
node down, the configuration is read again (added, removed and changed nodes), and systemd hears RELOADING=1
then READY=1. Real processes: nodes run tests/helpers/fake_node, or the native worker on the embedded broker."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, FakeSystemdNotify, wait_for
from test_ops import CELERYAPP
from test_worker import sanitized_build
from test_supervisor import HOST, alive, make_sup, processes_mentioning  # noqa: F401  (make_sup backs the fixture below)


@pytest.fixture
def sup():
    yield from make_sup(None)


def status(sup):
    out = sup.run("status", "--json")
    assert out.stdout, out.stderr
    return {node["name"].split("@")[0]: node for node in json.loads(out.stdout)["nodes"]}


def master_log(sup):
    path = sup.log_dir / "master.log"
    return path.read_text(errors="replace") if path.exists() else ""


def config(sup, nodes):
    """group.toml (not ccmulti.toml, which every command would read: `status` must work while it is broken) with one [nodes.NAME] per entry of `nodes` ({name: fake_node options})."""
    text = "".join(f"[nodes.{name}]\nexec = {json.dumps(sup.fake(*options))}\n" for name, options in nodes.items())
    (sup.root / "group.toml").write_text(text)


def test_reload_starts_the_replacement_before_it_stops_the_old_process(sup):
    sup.check("start", "w1", "w2", "--exec", sup.fake("--notify=0.3"))
    old, other = sup.pid("w1"), sup.pid("w2")
    out = sup.run("reload", "w1")
    assert out.returncode == 0, out.stderr
    new = sup.pid("w1")
    assert new != old and f"w1@{HOST}  replaced pid {old} → pid {new}" in out.stdout
    assert sup.pid("w2") == other, "reload w1 touched only w1"
    wait_for(lambda: f"old pid {old} stopped" in master_log(sup), timeout=5, what="the old w1 to stop")
    assert not alive(old)
    log = master_log(sup)
    # The order: the replacement starts beside the old one, is ready, and only then the old one gets SIGTERM.
    started = log.index(f"replacement started beside pid {old}: pid {new}")
    ready = log.index(f"pid {new} is ready (replacement); warm stop of the old pid {old}")
    term = log.index(f"sent SIGTERM to pid {old}")
    gone = log.index(f"old pid {old} stopped")
    assert started < ready < term < gone
    assert status(sup)["w1"]["state"] == "ready" and "reload" not in status(sup)["w1"]


def test_a_broken_replacement_leaves_the_node_serving_and_a_fix_recovers(sup):
    config(sup, {"w1": ["--notify"], "w2": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    old, other = sup.pid("w1"), sup.pid("w2")
    config(sup, {"w1": ["--exit", "1", "--message", "ImportError:no_module_named_tasks"], "w2": ["--notify"]})
    out = sup.run("reload")
    assert out.returncode == 1
    assert "w1@" in out.stderr and "reload failed: exited with code 1 before it was ready" in out.stderr
    assert "ImportError:no_module_named_tasks" in out.stderr  # the replacement's own last log lines
    assert sup.pid("w1") == old and alive(old), "the old process serves on, named by the pid file"
    assert sup.pid("w2") == other
    nodes = status(sup)
    assert nodes["w1"]["state"] == "ready" and nodes["w1"]["pid"] == old
    assert nodes["w1"]["reload"]["error"] == "exited with code 1 before it was ready"
    assert any("ImportError" in line for line in nodes["w1"]["reload"]["log_tail"])
    text = sup.run("status").stdout
    assert f"w1@{HOST}: reload failed: exited with code 1 before it was ready" in text
    # Nothing of the failed replacement is left: no process of its run (containment unit w1@host~1).
    assert not set(processes_mentioning(f"CCMULTI_UNIT=w1@{HOST}~1")) & set(processes_mentioning(str(sup.root)))
    config(sup, {"w1": ["--notify=0.1"], "w2": ["--notify"]})
    out = sup.run("reload")
    assert out.returncode == 0, out.stderr
    assert sup.pid("w1") != old and sup.pid("w2") == other, "only the changed node is replaced"
    assert "reload" not in status(sup)["w1"]


def test_a_replacement_not_ready_by_its_start_timeout_is_killed(sup):
    """An --exec node is ready after --start-secs (1 s) unless it says READY=1: with start_timeout 0.4 s, a
    replacement that does not say so is not ready in time."""
    text = f"[nodes.w1]\nstart_timeout = 0.4\nexec = {json.dumps(sup.fake('--notify'))}\n"
    (sup.root / "group.toml").write_text(text)
    sup.check("-C", "group.toml", "start")
    old = sup.pid("w1")
    (sup.root / "group.toml").write_text(text.replace(" --notify", " --notify=5"))
    out = sup.run("reload")
    assert out.returncode == 1 and "reload failed: not ready after 0.4s" in out.stderr
    assert sup.pid("w1") == old and status(sup)["w1"]["state"] == "ready"
    wait_for(lambda: not set(processes_mentioning(f"CCMULTI_UNIT=w1@{HOST}~1")) & set(processes_mentioning(str(sup.root))),
             timeout=5, what="the replacement's processes to be gone")


def replacing(sup, short, options):
    """Starts a replacement of `short` that becomes ready only after a while (the fake's own --notify delay), and
    returns the node's pid and its replacement's once the master says it is replacing."""
    config(sup, {short: options})
    assert sup.run("reload", "--no-wait").returncode == 0
    node = wait_for(lambda: (lambda n: n if n.get("state") == "replacing" and "replacement" in n else None)(
        status(sup)[short]), timeout=5, what="the replacement to start")
    return node["pid"], node["replacement"]["pid"]


def test_a_stop_during_a_replacement_ends_both(sup):
    config(sup, {"w1": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    old, new = replacing(sup, "w1", ["--notify=30"])
    out = sup.run("stop", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: not alive(old) and not alive(new), timeout=5, what="both processes to be gone")
    wait_for(lambda: not processes_mentioning(str(sup.root)), timeout=5, what="the master to exit")


def test_the_old_process_dying_mid_replacement_hands_the_node_over(sup):
    config(sup, {"w1": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    old, new = replacing(sup, "w1", ["--notify=1"])
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: status(sup)["w1"]["state"] == "ready" and status(sup)["w1"]["pid"] == new, timeout=5,
             what="the replacement to be the node")
    assert sup.pid("w1") == new, "the pid file names the live process"
    assert "takes over" in master_log(sup)


def test_sighup_reads_the_configuration_again(sup):
    config(sup, {"w1": ["--notify"], "w2": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    w1, w2 = sup.pid("w1"), sup.pid("w2")
    config(sup, {"w1": ["--notify=0.1"], "w3": ["--notify"]})  # w1 changed, w2 removed, w3 added
    os.kill(sup.master_pid(), signal.SIGHUP)

    def settled():
        nodes = status(sup)
        return (nodes.get("w3", {}).get("state") == "ready" and nodes["w2"]["state"] == "stopped"
                and nodes["w1"]["state"] == "ready" and nodes["w1"]["pid"] not in (w1, None))
    wait_for(settled, timeout=10, what="w3 started, w2 stopped, w1 replaced")
    assert not alive(w2)
    wait_for(lambda: not alive(w1), timeout=5, what="the old w1 to stop")
    assert "configuration read again: 1 added, 1 removed, 1 changed, 0 unchanged" in master_log(sup)


def test_sighup_with_a_broken_configuration_keeps_the_group(sup):
    config(sup, {"w1": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    w1 = sup.pid("w1")
    (sup.root / "group.toml").write_text("[nodes.w1]\nconcurency = 4\n")
    os.kill(sup.master_pid(), signal.SIGHUP)
    wait_for(lambda: "the configuration is not valid" in master_log(sup), timeout=10, what="the rejection")
    assert "unknown key 'concurency'" in master_log(sup)
    out = sup.run("reload")
    assert out.returncode == 2
    assert "group.toml:2:1: unknown key 'concurency' in [nodes.w1]" in out.stderr
    assert sup.pid("w1") == w1 and status(sup)["w1"]["state"] == "ready"


def test_reload_of_one_node_touches_only_it(sup):
    sup.check("start", "w1", "w2", "w3", "--exec", sup.fake("--notify"))
    before = {name: sup.pid(name) for name in ("w1", "w2", "w3")}
    out = sup.run("reload", "w2", "--json")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert [r["node"] for r in done["replaced"]] == [f"w2@{HOST}"] and done["failed"] == []
    after = {name: sup.pid(name) for name in ("w1", "w2", "w3")}
    assert after["w1"] == before["w1"] and after["w3"] == before["w3"] and after["w2"] != before["w2"]
    assert done["replaced"][0] == {"node": f"w2@{HOST}", "old_pid": before["w2"], "pid": after["w2"]}


def test_reload_leaves_unchanged_nodes_and_all_replaces_every_one(sup):
    """With nothing changed, `reload` says so per node and replaces nothing; `reload --all` (new code deployed
    without --watch) replaces every node, one at a time."""
    sup.check("start", "w1", "w2", "--exec", sup.fake("--notify"))
    before = {name: sup.pid(name) for name in ("w1", "w2")}
    out = sup.run("reload")
    assert out.returncode == 0, out.stderr
    assert f"w1@{HOST}  unchanged" in out.stdout and f"w2@{HOST}  unchanged" in out.stdout, out.stdout
    assert {name: sup.pid(name) for name in ("w1", "w2")} == before
    out = sup.run("reload", "--all", "--json")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert sorted(r["node"] for r in done["replaced"]) == [f"w1@{HOST}", f"w2@{HOST}"], done
    assert all(sup.pid(name) != before[name] for name in ("w1", "w2"))


def test_a_node_added_by_a_later_start_is_reloaded_as_it_runs(sup):
    """`reload api` of a node that a second `start` added (not in the group's configuration or command line) is
    replaced with the spec it runs, and a broken replacement leaves it serving, with the reason in status."""
    sup.check("start", "w1", "--exec", sup.fake("--notify"))
    script = sup.root / "api.sh"
    script.write_text(f"#!/bin/sh\nexec {sup.fake('--notify')}\n")
    script.chmod(0o755)
    sup.check("start", "api", "--exec", str(script))
    old = sup.pid("api")
    out = sup.run("reload", "api")
    assert out.returncode == 0 and f"api@{HOST}  replaced pid {old}" in out.stdout, out.stdout + out.stderr
    serving = sup.pid("api")
    script.write_text("#!/bin/sh\necho 'api: cannot import settings' >&2\nexit 1\n")
    out = sup.run("reload", "api")
    assert out.returncode == 1 and "reload failed" in out.stderr, out.stdout + out.stderr
    assert "cannot import settings" in out.stderr, out.stderr
    assert sup.pid("api") == serving and alive(serving)
    assert "reload failed" in sup.run("status").stdout


def test_a_task_running_during_the_reload_of_a_native_node_completes_once(sup):
    """A native node is replaced start-before-stop: the new worker serves (a task sent after the reload is done by
    it) while the old one's warm stop lets its running task finish; each task runs once."""
    sup.check("start", "w1", "-c", "1")
    old = sup.pid("w1")
    task_id = sup.check("call", "ccmulti.sleep", "[4.0]").stdout.strip()
    log = sup.log_dir / "w1.log"

    def task_status(tid):
        return json.loads(sup.run("result", tid, "--json").stdout or "{}").get("status")
    wait_for(lambda: task_status(task_id) == "STARTED", timeout=10, what="the task to run")
    out = sup.run("reload", "w1")
    assert out.returncode == 0, out.stderr
    new = sup.pid("w1")
    assert new != old
    assert task_status(task_id) == "STARTED", "the replacement was ready before the old process's task ended"
    after = sup.check("call", "ccmulti.echo", '["after"]', "--wait", "--timeout", "20").stdout
    assert '"after"' in after, after
    wait_for(lambda: task_status(task_id) == "SUCCESS", timeout=20, what="the old process's task to finish")
    wait_for(lambda: not os.path.exists(f"/proc/{old}"), timeout=20, what="the old process to end")
    text = log.read_text(errors="replace")
    assert text.count(f"Task ccmulti.sleep[{task_id}] received") == 1
    assert text.count(f"Task ccmulti.sleep[{task_id}] succeeded") == 1


def test_systemd_hears_reloading_then_ready(sup):
    listener = FakeSystemdNotify(sup.root / "systemd-notify.sock")
    received, drain = listener.received, listener.drain
    sup.env["NOTIFY_SOCKET"] = str(listener.path)
    master = sup.popen("start", "w1", "--foreground", "--exec", sup.fake("--notify=0.2"))
    try:
        wait_for(lambda: any("READY=1" in m for m in drain()), what="READY=1 from the master")
        received.clear()
        old = sup.pid("w1")
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        master.send_signal(signal.SIGHUP)
        wait_for(lambda: any("READY=1" in m for m in drain()), what="READY=1 after the reload")
        reloading = next(i for i, m in enumerate(received) if "RELOADING=1" in m)
        ready = next(i for i, m in enumerate(received) if "READY=1" in m)
        assert reloading < ready
        usec = int(next(f for f in received[reloading].split("\n") if f.startswith("MONOTONIC_USEC="))[15:])
        assert before * 1e6 <= usec <= time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        assert sup.pid("w1") == old, "an unchanged configuration replaces nothing"
        master.send_signal(signal.SIGTERM)
        master.communicate(timeout=15)
    finally:
        del sup.env["NOTIFY_SOCKET"]
        listener.close()
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()


@pytest.mark.skipif(sanitized_build(), reason="two Celery workers' start-up (~5 s) prove nothing more under ASan")
def test_a_celery_node_is_replaced_start_before_stop(sup, redis):
    """Two Celery workers of one node name coexist for the overlap; the new one answers tasks."""
    sup.env.update(CCMULTI_TEST_BROKER=redis.url, CCMULTI_PYTHON=PYTHON, PYTHONDONTWRITEBYTECODE="1")
    sup.check("start", "w1", "-A", "proj", "-c", "1", "-l", "info", "--workdir", str(CELERYAPP), timeout=90)
    old = sup.pid("w1")
    out = sup.run("reload", "w1", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    new = sup.pid("w1")
    assert new != old and "replacement started beside" in master_log(sup)
    wait_for(lambda: not alive(old), timeout=30, what="the old Celery worker's warm stop")
    send = subprocess.run([PYTHON, "-c", "from proj import add; print(add.delay(2, 3).get(timeout=20))"],
                          capture_output=True, text=True, cwd=CELERYAPP, env=dict(sup.env), timeout=40)
    assert send.returncode == 0 and send.stdout.strip() == "5", send.stderr
