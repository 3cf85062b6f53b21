"""Reload (`ccmulti reload`, SIGHUP): a node is replaced start-before-stop, a broken replacement never takes the
node down, the configuration is read again (added, removed and changed nodes), and systemd hears RELOADING=1
then READY=1; 500 tasks sent while three native nodes are replaced all run exactly once (embedded broker and
Redis); a broken change (a plugin that throws at load, a Celery module with a syntax error, a broken save under
--watch) leaves the old process serving and the fix recovers. Real processes: nodes run tests/helpers/fake_node,
the native worker, or Debian's Celery."""
import collections
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import PYTHON, Redis, wait_for
from test_ops import CELERYAPP
from test_worker import BUILD, PROBE, SUCCEEDED, pool_pids, sanitized_build
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


def test_stop_wait_waits_for_a_replaced_process_still_finishing_its_task(sup):
    """`stop --wait` returns when every process of the node is gone, the replaced one on its warm stop included."""
    config(sup, {"w1": ["--task", "30", "--notify"]})
    sup.check("-C", "group.toml", "start")
    old = sup.pid("w1")
    config(sup, {"w1": ["--notify"]})  # the replacement runs no task: it stops at once
    out = sup.run("reload", "w1")
    assert out.returncode == 0, out.stdout + out.stderr
    # The premise: the old process is still on its warm stop, its task unfinished, when the stop comes.
    assert alive(old) and "task done" not in sup.records("w1") and status(sup)["w1"].get("retiring") == [old]
    stop = sup.popen("stop", "--wait", "--timeout", "3")
    wait_for(lambda: sup.node_status("w1")["state"] == "stopped", timeout=10, what="the node's own process to stop")
    assert stop.poll() is None and alive(old), "stop --wait returned while the replaced process still ran"
    out, err = stop.communicate(timeout=20)
    assert stop.returncode == 0, out + err
    assert not alive(old), "stop --wait returned before the replaced process was gone"


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


def test_reload_returns_when_the_nodes_it_added_are_ready_or_have_failed(sup):
    config(sup, {"w1": ["--notify"]})
    sup.check("-C", "group.toml", "start")
    config(sup, {"w1": ["--notify"], "w2": ["--notify=1"], "w3": ["--exit", "3"]})
    out = sup.run("reload")
    nodes = status(sup)
    assert out.returncode == 1, out.stdout + out.stderr
    assert nodes["w2"]["state"] == "ready", "reload returned before the node it added (ready after 1 s) was ready"
    assert f"w2@{HOST}  added to the configuration: ready, pid {nodes['w2']['pid']}" in out.stdout, out.stdout
    assert f"w3@{HOST} added to the configuration, but" in out.stderr, out.stderr
    assert "fake_node: exiting with 3" in out.stderr, "the failed node's last log lines"


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
    with sup.foreground_under_systemd("w1", "--exec", sup.fake("--notify=0.2")) as (master, listener):
        received, drain = listener.received, listener.drain
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


# --- no task lost or run twice ----------------------------------------------------------------------------------

CHAOS_PLUGIN = BUILD / "tests" / "chaos" / "libccmulti_chaos_plugin.so"
EXAMPLE_PLUGIN = BUILD / "examples" / "plugin" / "libccmulti_example_plugin.so"
BROKEN_PLUGIN = BUILD / "tests" / "libccmulti_broken_plugin.so"


def need_built(*paths):
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (CCMULTI_BUILD_DIR)")


def publish(url, task, args, count):
    """`count` calls of `task` on queue celery, fast (broker_probe, one connection); their ids."""
    out = subprocess.run([PROBE, "publish-many", url, task, json.dumps(args), "celery", str(count)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def stored_statuses(sup, url, ids):
    """{task id: the status its stored result says, or None}."""
    if url.startswith("redis://"):
        import redis as redis_py  # python3-redis, a kombu dependency
        client = redis_py.Redis.from_url(url)
        try:
            values = client.mget([f"celery-task-meta-{i}" for i in ids])
        finally:
            client.close()
        return {i: json.loads(v)["status"] if v else None for i, v in zip(ids, values)}
    with sqlite3.connect(sup.root / "state" / "broker.sqlite3", timeout=30) as conn:
        rows = dict(conn.execute("SELECT task_id, status FROM results").fetchall())
    return {i: rows.get(i) for i in ids}


@pytest.mark.parametrize("broker_kind", ["embedded", pytest.param("redis", marks=pytest.mark.skipif(
    sanitized_build(), reason="the embedded run drives the same reload under ASan; Redis adds nothing there"))])
def test_500_tasks_sent_during_a_reload_of_three_native_nodes_run_exactly_once(sup, broker_kind):
    """Three nodes (two pool processes each) with the chaos plugin, whose tasks write "S id pid" when they start
    and "E id pid" when they end: 250 short tasks are queued, `ccmulti reload` replaces the three nodes one after
    the other while 250 more are sent, and then every task has one SUCCESS, one start, one end and one
    "succeeded" line across the nodes' logs. Premise: the reload overlapped running tasks (a task began in an old
    pool process and ended after a new process had begun running tasks)."""
    need_built(PROBE, CHAOS_PLUGIN)
    redis = Redis(sup.root / "redis") if broker_kind == "redis" else None
    url = redis.url if redis else f"sqlite://{sup.root / 'state' / 'broker.sqlite3'}"
    runs = sup.root / "runs.log"
    try:
        broker = ["--broker", url] if redis else []
        sup.check("start", "w1", "w2", "w3", "-c", "2", f"--plugin={CHAOS_PLUGIN}", *broker)
        old_pools = {pid for short in ("w1", "w2", "w3") for pids in pool_pids(sup, short).values() for pid in pids}
        assert len(old_pools) == 6, old_pools
        # Two 4 s tasks first, begun before the reload: they are still running in old pool processes when the
        # first replacement runs a task (the premise below), however slow the machine (ASan, a loaded CI).
        ids = publish(url, "chaos.sleep", [4.0, str(runs)], 2)
        for seconds, count in ((0.01, 48), (0.02, 50), (0.03, 50), (0.04, 50), (0.05, 50)):
            ids += publish(url, "chaos.sleep", [seconds, str(runs)], count)
        wait_for(lambda: runs.exists() and all(f"S {i} " in runs.read_text() for i in ids[:2]), timeout=20,
                 what="the long tasks to begin")
        reload = sup.popen("reload", "w1", "w2", "w3", "--json")  # named: replaced though unchanged
        for seconds in (0.05, 0.03, 0.01):
            ids += publish(url, "chaos.sleep", [seconds, str(runs)], 50)
        ids += publish(url, "chaos.echo", ["x", str(runs)], 100)
        out, err = reload.communicate(timeout=60)
        assert reload.returncode == 0, out + err
        report = json.loads(out)
        assert sorted(r["node"].split("@")[0] for r in report["replaced"]) == ["w1", "w2", "w3"], report
        assert len(ids) == len(set(ids)) == 500

        def ends():
            return runs.read_text().count("\nE ") + runs.read_text().startswith("E ")
        wait_for(lambda: ends() >= 500, timeout=60, interval=0.1, what="500 tasks to end")
        wait_for(lambda: list(stored_statuses(sup, url, ids).values()).count("SUCCESS") == 500, timeout=20,
                 what="500 results")
        time.sleep(0.2)  # nothing more may run: a task run twice would have written its lines by now
        lines = [line.split() for line in runs.read_text().splitlines()]
        starts = collections.Counter(task_id for kind, task_id, _ in lines if kind == "S")
        finishes = collections.Counter(task_id for kind, task_id, _ in lines if kind == "E")
        assert set(starts) == set(finishes) == set(ids)
        assert [i for i in ids if starts[i] != 1 or finishes[i] != 1] == [], "each task ran exactly once"
        succeeded = collections.Counter()
        for short in ("w1", "w2", "w3"):
            for m in SUCCEEDED.finditer((sup.log_dir / f"{short}.log").read_text(errors="replace")):
                succeeded[m.group(2)] += 1
        assert [i for i in ids if succeeded[i] != 1] == [], "one 'succeeded' line per task across the logs"
        # The premise: some task began in an old pool process and ended after a new one had begun a task.
        first_new = next(n for n, (kind, _, pid) in enumerate(lines) if kind == "S" and int(pid) not in old_pools)
        began_old = {task_id for kind, task_id, pid in lines[:first_new] if kind == "S" and int(pid) in old_pools}
        overlapped = {task_id for kind, task_id, _ in lines[first_new:] if kind == "E"} & began_old
        assert overlapped, "no task was running in an old process while a new one ran tasks"
    finally:
        if redis:
            sup.run("kill", timeout=30)
            redis.stop()


# --- a broken change never takes the node down -------------------------------------------------------------------


def call_wait(sup, task, args, timeout=20):
    out = sup.run("call", task, json.dumps(args), "--wait", "--timeout", timeout, timeout=timeout + 10)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_a_plugin_that_throws_at_load_leaves_the_node_serving_and_a_fixed_build_recovers(sup):
    need_built(CHAOS_PLUGIN, EXAMPLE_PLUGIN, BROKEN_PLUGIN)
    plugin, runs = sup.root / "tasks.so", str(sup.root / "runs.log")
    shutil.copyfile(CHAOS_PLUGIN, plugin)
    sup.check("start", "w1", "-c", "1", f"--plugin={plugin}")
    old = sup.pid("w1")
    shutil.copyfile(BROKEN_PLUGIN, plugin)
    out = sup.run("reload", "w1")  # a named node is replaced even though its command line did not change
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"w1@{HOST}" in out.stderr and "reload failed: " in out.stderr, out.stderr
    assert "failed to register its tasks: broken build: registration throws" in out.stderr, out.stderr
    assert sup.pid("w1") == old and alive(old)
    node = status(sup)["w1"]
    assert node["state"] == "ready" and node["pid"] == old and "reload" in node
    assert any("broken build" in line for line in node["reload"]["log_tail"]), node["reload"]
    assert f"w1@{HOST}: reload failed: " in sup.run("status").stdout
    assert call_wait(sup, "chaos.echo", ["old build", runs]) == "old build", "the old process serves its build"
    shutil.copyfile(EXAMPLE_PLUGIN, plugin)  # the fix: another build, whose tasks tell it apart
    out = sup.run("reload", "w1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sup.pid("w1") != old and "reload" not in status(sup)["w1"]
    assert call_wait(sup, "example.add", [2, 3]) == 5


def test_a_broken_save_under_watch_leaves_the_node_serving_and_the_fixing_save_recovers(sup):
    """--watch on the plugin's directory: the save of a broken build replaces nothing (the replacement fails, the
    old process serves on, status says why), and the next save, a good build, replaces the node by itself."""
    need_built(CHAOS_PLUGIN, EXAMPLE_PLUGIN, BROKEN_PLUGIN)
    (sup.root / "plugins").mkdir()
    plugin, runs = sup.root / "plugins" / "tasks.so", str(sup.root / "runs.log")
    shutil.copyfile(CHAOS_PLUGIN, plugin)
    sup.check("start", "w1", "-c", "1", f"--plugin={plugin}", "--watch", "plugins", "--watch-debounce", "100ms")
    old = sup.pid("w1")
    shutil.copyfile(BROKEN_PLUGIN, plugin)
    node = wait_for(lambda: status(sup)["w1"].get("reload"), timeout=15, what="the failed replacement")
    assert any("broken build" in line for line in node["log_tail"]), node
    assert "change: plugins/tasks.so → replacing w1" in master_log(sup)
    assert sup.pid("w1") == old and status(sup)["w1"]["state"] == "ready"
    assert f"w1@{HOST}: reload failed: " in sup.run("status").stdout
    assert call_wait(sup, "chaos.echo", ["old build", runs]) == "old build"
    shutil.copyfile(EXAMPLE_PLUGIN, plugin)
    wait_for(lambda: sup.pid("w1") != old and "reload" not in status(sup)["w1"], timeout=15,
             what="the fixing save to replace w1")
    assert call_wait(sup, "example.add", [2, 3]) == 5
    wait_for(lambda: not alive(old), timeout=15, what="the old w1 to stop")


@pytest.mark.skipif(sanitized_build(), reason="three Celery workers' start-up (~8 s) prove nothing more under ASan")
def test_a_celery_module_with_a_syntax_error_leaves_the_node_serving_and_the_fix_recovers(sup, redis):
    app = sup.root / "app"
    shutil.copytree(CELERYAPP, app)
    good = (app / "proj.py").read_text()
    sup.env.update(CCMULTI_TEST_BROKER=redis.url, CCMULTI_PYTHON=PYTHON, PYTHONDONTWRITEBYTECODE="1")
    sup.check("start", "w1", "-A", "proj", "-c", "1", "-l", "info", "--workdir", str(app), timeout=90)
    old = sup.pid("w1")

    def add(x, y):
        send = subprocess.run([PYTHON, "-c", f"from proj import add; print(add.delay({x}, {y}).get(timeout=20))"],
                              capture_output=True, text=True, cwd=CELERYAPP, env=dict(sup.env), timeout=40)
        assert send.returncode == 0, send.stderr
        return send.stdout.strip()

    (app / "proj.py").write_text(good.replace("def add(x, y):", "def add(x, y)"))  # the colon forgotten
    out = sup.run("reload", "w1", timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "reload failed: " in out.stderr and "SyntaxError" in out.stderr, out.stderr
    assert sup.pid("w1") == old and alive(old)
    node = status(sup)["w1"]
    assert node["state"] == "ready" and any("SyntaxError" in line for line in node["reload"]["log_tail"]), node
    assert add(2, 3) == "5", "the old worker serves"
    (app / "proj.py").write_text(good.replace("return x + y", "return x + y + 100"))  # fixed, and new code
    out = sup.run("reload", "w1", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sup.pid("w1") != old and "reload" not in status(sup)["w1"]
    wait_for(lambda: not alive(old), timeout=30, what="the old Celery worker's warm stop")
    assert add(2, 3) == "105", "the new code answers"
