"""The chaos test: nothing lost, nothing stuck (docs/testing.md).

2,000 tasks (CHAOS_TASKS; 10,000 with `scripts/chaos --long`) go through three native nodes, once on the
embedded SQLite broker and once on a private redis-server on 127.0.0.1, while a driver, between batches of
tasks, SIGKILLs pool processes, workers, node shims and the master (the group is started again with `ccmulti
start`), and on Redis restarts redis-server (AOF, so what it holds survives), pauses it (SIGSTOP/SIGCONT) and
fills its memory (maxmemory + noeviction, then back). At the end:

- every task has exactly one final result, SUCCESS with the value it was sent (FAILURE WorkerLostError only for a
  task whose process was killed under it three times);
- a task ran more than once only when a run before its last one was in a process the driver killed (chaos.echo and
  chaos.sleep, from tests/chaos/chaos_plugin.cpp, append "S id pid" and "E id pid" around every run to a file;
  the driver records every pid it killed, with the descendants each kill took along);
- no node died on its own (every crash in master.log is one of the driver's SIGKILLs);
- the queues and `unacked` (SQLite: the messages table) are empty;
- after a SIGKILLed master nothing of its group outlives it, and after the final stop no process of the test's
  directory remains (a scan of /proc by the nodes' unique names and by working directory).

Phases: CHAOS_PHASES is a comma list of pool, worker, shim, master, redis-restart, redis-pause,
redis-memory, or `default` (what passes on main: DEFAULT_PHASES below) or `all`.
CHAOS_SEED repeats a run's schedule; CHAOS_KEEP=1 keeps the directory (logs, executions file)."""
import collections
import importlib.util
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("integration_conftest", HERE.parent / "integration" / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
Env, Redis, wait_for = _conftest.Env, _conftest.Redis, _conftest.wait_for

CCMULTI = os.environ.get("CCMULTI_BIN", "")
BUILD = pathlib.Path(os.environ.get("CCMULTI_BUILD_DIR", ""))
PROBE = BUILD / "tests" / "broker_probe"
PLUGIN = pathlib.Path(os.environ.get("CHAOS_PLUGIN", BUILD / "tests" / "chaos" / "libccmulti_chaos_plugin.so"))
HOST = socket.gethostname()

ALL_PHASES = ["pool", "worker", "shim", "master", "redis-restart", "redis-pause", "redis-memory"]
# What `default` runs on each broker: every phase that applies to it.
DEFAULT_PHASES = {"sqlite": ["pool", "worker", "shim", "master"],
                  "redis": ["pool", "worker", "shim", "master", "redis-restart", "redis-pause", "redis-memory"]}
TASKS = int(os.environ.get("CHAOS_TASKS", "2000"))
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", str(max(10, TASKS // 125))))
SEED = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
KEEP = os.environ.get("CHAOS_KEEP") == "1"
# Redis: a pause outlasts ccmulti's 5 s command timeout (nodes see it as an outage and reconnect), and the
# visibility timeout outlasts a pause plus a heartbeat (a third of it), so live nodes' claims stay fresh through
# it while a SIGKILLed node's claims still come back within the test.
PAUSE_SECONDS = 7.0
FULL_SECONDS = 3.0
VISIBILITY_TIMEOUT = 15


def phases(broker):
    text = os.environ.get("CHAOS_PHASES", "default")
    if text == "default":
        return list(DEFAULT_PHASES[broker])
    chosen = ALL_PHASES if text == "all" else [p.strip() for p in text.split(",") if p.strip()]
    unknown = set(chosen) - set(ALL_PHASES)
    if unknown:
        raise pytest.UsageError(f"CHAOS_PHASES: unknown phase(s) {sorted(unknown)}; "
                                f"known: {', '.join(ALL_PHASES)}, default, all")
    return [p for p in chosen if broker == "redis" or not p.startswith("redis-")]


# --- processes ------------------------------------------------------------------------------------------------


def proc_table():
    """{pid: (ppid, state, cmdline bytes, cwd)} of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
        except (OSError, ValueError):
            continue
        table[pid] = (int(fields[1]), fields[0], cmd, cwd)
    return table


def descendants(table, pid):
    children = collections.defaultdict(list)
    for child, (parent, *_rest) in table.items():
        children[parent].append(child)
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(children[p])
    return found


# --- the run --------------------------------------------------------------------------------------------------


class Chaos:
    def __init__(self, broker, root, rng):
        self.broker = broker
        self.root = root
        self.rng = rng
        self.env = Env(root)
        self.tag = f"cx{os.getpid() % 100000}{broker[0]}"
        self.nodes = [f"{self.tag}{letter}" for letter in "abc"]
        self.execs = root / "executions.txt"
        self.execs.touch()
        self.redis = Redis(root / "redis", persist=True) if broker == "redis" else None
        self.expected = {}  # task id -> (name, result)
        self.killed = set()  # every pid a kill of the driver ended (the target and what it took along)
        self.kills = collections.Counter()  # phase -> how many
        self.sigkill_crashes = 0  # worker/shim kills: the master logs each as a crash
        self.exec_offset = 0
        self.running = {}  # pid -> task id, from the executions file
        self.oom_errors = 0  # OOM error replies Redis sent in the last memory fault
        self.fills = 0

    # -- ccmulti

    @property
    def broker_url(self):
        if self.redis:
            return f"{self.redis.url}?visibility_timeout={VISIBILITY_TIMEOUT}"
        return f"sqlite://{self.env.state_dir / 'broker.sqlite3'}"

    def start_group(self):
        args = ["start", *self.nodes, "-c", "2", f"--plugin={PLUGIN}", "--backoff-initial", "0.2",
                "--backoff-max", "1"]
        if self.redis:
            args.append(f"--broker={self.broker_url}")
        out = self.env.run(*args, timeout=120)
        assert out.returncode == 0, f"ccmulti start exited {out.returncode}:\n{out.stdout}\n{out.stderr}"

    def ours(self, table=None):
        """{pid: entry} of the processes of this test: the nodes' unique names in their titles, or a working
        directory under the test's root (the master's, inherited by everything below it). Not redis-server."""
        table = table if table is not None else proc_table()
        tag, root = self.tag.encode(), str(self.root)
        skip = {os.getpid(), self.redis.proc.pid if self.redis else -1}
        return {pid: e for pid, e in table.items()
                if pid not in skip and e[1] != "Z" and (tag in e[2] or e[3] == root or e[3].startswith(root + "/"))}

    def by_title(self, prefix, table=None):
        table = table if table is not None else proc_table()
        return [pid for pid, e in self.ours(table).items() if e[2].startswith(prefix.encode())]

    def sigkill(self, pid, table):
        """SIGKILL `pid`; everything below it counts as killed too (PDEATHSIG and the shim take it along)."""
        self.killed |= descendants(table, pid)
        try:
            os.kill(pid, signal.SIGKILL)
            return True
        except ProcessLookupError:
            return False

    # -- tasks

    def publish(self, task, args, count, queue="celery"):
        out = subprocess.run([str(PROBE), "publish-many", self.broker_url, task, json.dumps(args), queue,
                              str(count)], capture_output=True, text=True, timeout=120, env=self.env.env)
        assert out.returncode == 0, f"publish-many {task}: {out.stderr}"
        ids = out.stdout.split()
        assert len(ids) == count, (count, out.stdout, out.stderr)
        return ids

    def publish_batch(self, round_no, count):
        """`count` tasks, a mix of recorded (chaos.*) and built-in tasks, short sleeps among echoes."""
        log = str(self.execs)
        parts = [
            ("chaos.echo", [f"r{round_no}", log], f"r{round_no}", 0.35),
            ("chaos.sleep", [0.02, log], 0.02, 0.15),
            ("chaos.sleep", [0.05, log], 0.05, 0.15),
            ("ccmulti.echo", [round_no], round_no, 0.2),
            ("ccmulti.sleep", [0.03], 0.03, 0.15),
        ]
        left = count
        for i, (task, args, value, share) in enumerate(parts):
            n = left if i == len(parts) - 1 else round(count * share)
            left -= n
            ids = self.publish(task, args, n)
            for task_id in ids:
                self.expected[task_id] = (task, value)
            with open(self.root / "published.txt", "a") as f:  # for a post-mortem of a kept directory
                f.writelines(f"{task_id} {task} {json.dumps(value)} round {round_no}\n" for task_id in ids)

    def read_executions(self):
        """[(kind, task id, pid)] of every run recorded so far; keeps `running` (pid -> task) up to date."""
        runs = []
        with open(self.execs) as f:
            f.seek(self.exec_offset)
            text = f.read()
        complete = text[: text.rfind("\n") + 1]
        self.exec_offset += len(complete.encode())
        for line in complete.splitlines():
            kind, task_id, pid = line.split()
            runs.append((kind, task_id, int(pid)))
            if kind == "S":
                self.running[int(pid)] = task_id
            else:
                self.running.pop(int(pid), None)
        return runs

    def all_executions(self):
        runs = collections.defaultdict(list)  # task id -> [(kind, pid)] in order
        for line in self.execs.read_text().splitlines():
            kind, task_id, pid = line.split()
            runs[task_id].append((kind, int(pid)))
        return runs

    # -- the driver's faults

    def kill_pool(self):
        """A pool process that is running a recorded task now, if one can be found within a moment."""
        def target():
            self.read_executions()
            table = proc_table()
            pools = set(self.by_title("ccmulti: pool ", table))
            busy = [pid for pid in self.running if pid in pools]
            return (self.rng.choice(sorted(busy)), table) if busy else None

        try:
            pid, table = wait_for(target, timeout=3, interval=0.01, what="a pool process running a task")
        except AssertionError:
            table = proc_table()
            pools = self.by_title("ccmulti: pool ", table)
            if not pools:
                return
            pid = self.rng.choice(sorted(pools))
        if self.sigkill(pid, table):
            self.kills["pool"] += 1

    def kill_node_part(self, what):
        """SIGKILL the worker (`what` = worker) or the node shim (node) of a random running node; wait until the
        master has it back."""
        table = proc_table()
        candidates = self.by_title(f"ccmulti: {what} ", table)
        if not candidates:
            return
        pid = self.rng.choice(sorted(candidates))
        name = table[pid][2].split(b"@")[0].split()[-1].decode()
        if self.sigkill(pid, table):
            self.kills["worker" if what == "worker" else "shim"] += 1
            self.sigkill_crashes += 1
        wait_for(lambda: [p for p in self.by_title(f"ccmulti: worker {name}@") if p not in self.killed],
                 timeout=30, interval=0.05, what=f"the master to start {name} again after its {what} was killed")

    def kill_master(self):
        table = proc_table()
        masters = self.by_title("ccmulti: master ", table)
        assert len(masters) == 1, f"expected one master of the group, found {masters}"
        group = descendants(table, masters[0])
        self.sigkill(masters[0], table)
        self.kills["master"] += 1
        # PDEATHSIG: every node shim kills its process group; nothing of the group may survive its master.
        try:
            wait_for(lambda: not (set(self.ours()) & group), timeout=15, interval=0.05,
                     what="the nodes to die with their SIGKILLed master")
        except AssertionError:
            left = {pid: e[2] for pid, e in self.ours().items() if pid in group}
            raise AssertionError(f"processes outlived their SIGKILLed master: {left}") from None
        self.start_group()

    def restart_redis(self):
        self.redis.proc.terminate()
        self.redis.proc.wait(timeout=30)
        self.redis.start()
        self.kills["redis-restart"] += 1

    def pause_redis(self):
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(PAUSE_SECONDS)  # the fault's length, not a synchronisation
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.kills["redis-pause"] += 1

    def fill_redis(self):
        """Redis runs out of memory, in turn two ways: a limit far below what it holds (every command that may add
        data is refused: "-OOM command not allowed when used memory > 'maxmemory'"), or filled up to a limit just
        above it by a big key, so the nodes' writes fail or pass as memory moves. Then it is freed again."""
        import redis
        client = redis.Redis(port=self.redis.port, socket_timeout=10)
        self.fills += 1
        try:
            assert client.config_set("maxmemory-policy", "noeviction")
            if self.fills % 2:
                client.config_set("maxmemory", 1)
            else:
                client.config_set("maxmemory", client.info("memory")["used_memory"] + (4 << 20))
                chunk = b"x" * (64 << 10)
                try:
                    for _ in range(1000):  # 64 MiB at most: the limit stops it long before
                        client.append("chaos-filler", chunk)
                except redis.exceptions.ResponseError as error:
                    assert "OOM" in str(error), error
            time.sleep(FULL_SECONDS)  # the fault's length, not a synchronisation
            self.oom_errors = max(self.oom_errors, self.errorstat("OOM"))
        finally:
            client.delete("chaos-filler")
            client.config_set("maxmemory", 0)
            client.close()
        self.kills["redis-memory"] += 1

    def errorstat(self, name):
        """How many error replies `name` this redis-server has sent (INFO errorstats; reset by a restart)."""
        for line in self.redis.cli("INFO", "errorstats").splitlines():
            if line.startswith(f"errorstat_{name}:count="):
                return int(line.split("=")[1].split(",")[0])
        return 0

    def fault(self, phase):
        {"pool": self.kill_pool,
         "worker": lambda: self.kill_node_part("worker"),
         "shim": lambda: self.kill_node_part("node"),
         "master": self.kill_master,
         "redis-restart": self.restart_redis,
         "redis-pause": self.pause_redis,
         "redis-memory": self.fill_redis}[phase]()

    # -- the end state

    def results(self):
        """{task id: meta} of the final results stored (SUCCESS, FAILURE); others (STARTED) are left out."""
        ids = list(self.expected)
        found = {}
        if self.redis:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for task_id, line in zip(chunk, self._mget(chunk)):
                    if line:
                        found[task_id] = json.loads(line)
        else:
            with sqlite3.connect(self.env.state_dir / "broker.sqlite3", timeout=30) as conn:
                for task_id, meta in conn.execute("SELECT task_id, meta FROM results"):
                    found[task_id] = json.loads(meta)
        return {t: m for t, m in found.items() if m.get("status") in ("SUCCESS", "FAILURE")}

    def _mget(self, keys):
        import redis  # Debian's python3-redis, there with python3-celery
        client = redis.Redis(port=self.redis.port, socket_timeout=30)
        try:
            return client.mget([f"celery-task-meta-{t}" for t in keys])
        finally:
            client.close()

    def leftovers(self):
        """What is still queued or claimed in the broker: {what: count}, zeros left out."""
        if self.redis:
            import redis
            client = redis.Redis(port=self.redis.port, socket_timeout=30)
            try:
                counts = {"unacked": client.hlen("unacked"), "unacked_index": client.zcard("unacked_index")}
                for key in client.keys("celery*"):
                    if not key.startswith(b"celery-task-meta-") and client.type(key) == b"list":
                        counts[key.decode(errors="replace")] = client.llen(key)
            finally:
                client.close()
        else:
            with sqlite3.connect(self.env.state_dir / "broker.sqlite3", timeout=30) as conn:
                counts = dict(conn.execute("SELECT CASE WHEN consumer IS NULL THEN 'queued ' || queue "
                                           "ELSE 'claimed ' || queue END, COUNT(*) FROM messages GROUP BY 1"))
        return {k: v for k, v in counts.items() if v}

    def crashes(self):
        path = self.env.log_dir / "master.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [line for line in text.splitlines() if "; restarting in " in line]

    def settle(self, timeout, what):
        """Waits until every task sent has a final result; returns them. Else fails saying what became of a few
        of the missing ones. Redis brings back the claims of SIGKILLed nodes only after the visibility timeout:
        the timeouts allow for it."""
        missing = set(self.expected)

        def all_final():
            nonlocal missing
            results = self.results()
            missing = set(self.expected) - set(results)
            return results if not missing else None

        try:
            return wait_for(all_final, timeout=timeout, interval=0.2, what=what)
        except AssertionError:
            raise AssertionError(f"waiting for {what}: {len(missing)} of {len(self.expected)} tasks have no final "
                                 f"result; the broker still holds {self.leftovers()}\n"
                                 f"{self.whereabouts(sorted(missing)[:5])}\n{self.log_tail()}") from None

    def whereabouts(self, task_ids):
        """What the node logs say of each task: a lost task that no node ever received shows so."""
        out = []
        for task_id in task_ids:
            task, value = self.expected[task_id]
            lines = [f"  {name}: {line}" for name in self.nodes for line in self.node_log(name).splitlines()
                     if task_id in line]
            out.append(f"{task_id} {task} {value!r}: " + ("\n" + "\n".join(lines) if lines else "no node received it"))
        return "\n".join(out)

    def node_log(self, name):
        path = self.env.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines=30):
        out = []
        for path in sorted(self.env.log_dir.glob("*.log")):
            # Not the task lines: what went wrong is in the rest.
            text = [line for line in path.read_text(errors="replace").splitlines() if "/MainProcess] Task " not in line]
            out.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


@pytest.fixture(params=["sqlite", "redis"])
def chaos(request):
    if not CCMULTI or not os.access(CCMULTI, os.X_OK):
        pytest.fail("set CCMULTI_BIN to the ccmulti binary (ctest does this)")
    for path, what in ((PROBE, "broker_probe"), (PLUGIN, "the chaos plugin")):
        if not path.exists():
            pytest.fail(f"{what} not built: {path}")
    if request.param == "redis" and not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (scripts/install-deps installs it)")
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"ccmulti-chaos-{request.param}-"))
    run = None
    try:
        run = Chaos(request.param, root, random.Random(SEED))
        yield run
    finally:
        if run is not None:
            run.env.run("kill", timeout=30)
            for _ in range(3):  # last resort: nothing of the test may outlive it
                for pid in run.ours():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            if run.redis:
                run.redis.stop()
        report = getattr(request.node, "rep_call", None)  # conftest.py: kept for a post-mortem when it failed
        if KEEP or report is None or report.failed:
            print(f"chaos: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def test_nothing_lost_nothing_stuck(chaos):
    started = time.monotonic()
    chosen = phases(chaos.broker)
    print(f"chaos: {chaos.broker}, {TASKS} tasks in {ROUNDS} rounds, phases {','.join(chosen)}, "
          f"CHAOS_SEED={SEED}, dir {chaos.root}")
    chaos.start_group()

    # The schedule: every phase in turn, each cycle shuffled; a master kill is kept from the last round so the
    # group runs on its own at the end.
    schedule = []
    while len(schedule) < ROUNDS:
        cycle = list(chosen)
        chaos.rng.shuffle(cycle)
        schedule += cycle
    schedule = schedule[:ROUNDS]

    per_round = [TASKS // ROUNDS + (1 if i < TASKS % ROUNDS else 0) for i in range(ROUNDS)]
    runs_seen = 0
    occurrences = collections.Counter()
    for round_no, (phase, count) in enumerate(zip(schedule, per_round)):
        before = runs_seen
        chaos.publish_batch(round_no, count)

        def working():
            nonlocal runs_seen
            runs_seen += len(chaos.read_executions())
            return runs_seen >= before + min(20, count // 4)

        occurrences[phase] += 1
        if phase.startswith("redis-") and occurrences[phase] % 2 == 0:
            # Every other Redis fault hits idle nodes, waiting for their doorbell (the next batch arrives as it ends).
            chaos.settle(timeout=60, what=f"round {round_no}'s tasks to finish before the fault")
        else:
            # The fault hits nodes at work: wait until this batch's tasks are being run.
            wait_for(working, timeout=30, interval=0.02, what=f"round {round_no}'s tasks to run")
        chaos.fault(phase)
    chaos_done = time.monotonic()

    # Everything ends: one final result per task.
    results = chaos.settle(timeout=60 + TASKS / 100, what="a final result for every task")
    drained = time.monotonic()

    # ... and the broker lets go of everything: nothing queued, nothing claimed.
    try:
        wait_for(lambda: not chaos.leftovers(), timeout=20, interval=0.2, what="empty queues and unacked")
    except AssertionError:
        raise AssertionError(f"the broker still holds {chaos.leftovers()} after every task has its result") from None

    executions = chaos.all_executions()
    problems = []
    for task_id, (task, value) in chaos.expected.items():
        meta = results[task_id]
        runs = executions.get(task_id, [])
        starts = [pid for kind, pid in runs if kind == "S"]
        if meta["status"] == "FAILURE":
            # A task killed under it three times in one worker fails WorkerLostError, by design.
            killed_runs = [pid for pid in starts if pid in chaos.killed]
            if not (meta["result"].get("exc_type") == "WorkerLostError" and len(killed_runs) >= 3):
                problems.append(f"{task_id} {task}: FAILURE {meta['result']} after runs {runs}")
            continue
        if meta["result"] != value:
            problems.append(f"{task_id} {task}: result {meta['result']!r}, sent for {value!r}")
        if task.startswith("chaos."):
            if not [pid for kind, pid in runs if kind == "E"]:
                problems.append(f"{task_id} {task}: SUCCESS but no run finished: {runs}")
            # Every run but the one that stored the result must have been in a process the driver killed.
            if len(starts) > 1:
                survivors = [pid for pid in starts if pid not in chaos.killed]
                if len(survivors) > 1:
                    problems.append(f"{task_id} {task}: ran {len(starts)} times, {len(survivors)} of them in "
                                    f"processes nobody killed: {runs}")
    assert not problems, f"{len(problems)} task(s) wrong:\n" + "\n".join(problems[:20])

    # No node died on its own: each crash the master logged is one of the driver's kills (killed by SIGKILL).
    crashes = chaos.crashes()
    own = [line for line in crashes if "killed by SIGKILL" not in line]
    assert not own, "nodes died on their own:\n" + "\n".join(own[:10]) + "\n" + chaos.log_tail()
    assert len(crashes) <= chaos.sigkill_crashes, (chaos.sigkill_crashes, crashes)

    # Without a node killed, no claim may need the visibility timeout to come back: a live node that lost track
    # of what it claimed (stranded in `unacked`) shows up as a restore "of a node presumed dead".
    if chaos.redis and not {"worker", "shim", "master"} & set(chosen):
        stranded = [line for name in chaos.nodes for line in chaos.node_log(name).splitlines()
                    if "presumed dead" in line]
        assert not stranded, "claims of live nodes were stranded until the visibility timeout:\n" + "\n".join(
            stranded[:10])

    # A warm stop ends the group, and nothing of it is left behind.
    out = chaos.env.run("stop", "--wait", "--timeout", "60", timeout=120)
    assert out.returncode == 0, f"ccmulti stop --wait exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    try:
        wait_for(lambda: not chaos.ours(), timeout=10, interval=0.05, what="every process of the test to exit")
    except AssertionError:
        raise AssertionError(f"orphans: {[(pid, e[2]) for pid, e in chaos.ours().items()]}") from None

    reruns = sum(1 for runs in executions.values() if sum(kind == "S" for kind, _ in runs) > 1)
    print(f"chaos: {chaos.broker}: {len(chaos.expected)} tasks, faults {dict(chaos.kills)}, "
          f"{len(crashes)} crash restarts, {reruns} recorded tasks re-run after a kill, "
          f"chaos {chaos_done - started:.1f}s, drained {drained - chaos_done:.1f}s, "
          f"total {time.monotonic() - started:.1f}s")
    # The premise: the faults happened, and some kills hit a task mid-run.
    expected_kinds = {p for p in chosen}
    assert set(chaos.kills) == expected_kinds, (dict(chaos.kills), expected_kinds)
    if "redis-memory" in chosen:
        assert chaos.oom_errors > 0, "Redis refused no write while full: the memory phase tested nothing"
    if "pool" in chosen or "worker" in chosen:
        assert reruns > 0, "no kill hit a running task: the test proved nothing about redelivery"
