#!/usr/bin/python3
"""Hot reload: change-to-serving latency, and tasks lost or duplicated by reloads under load.

Not a test (ctest and CI never run it). Run with Debian's interpreter, which has python3-celery:

    /usr/bin/python3 bench/reload.py [--rounds 5] [--reloads 10] [--build build/default]

It starts a private redis-server on a free port (its files in a temporary directory, removed at the end), then,
one group after the other on that Redis, three nodes of each kind, every one watching its code:
  (a) ccmulti, native: `ccmulti -C conf/ccmulti.toml start w1 w2 w3 -c 2 --watch conf` with a command task
      `bench.version` defined in conf/ccmulti.toml (`/bin/echo N`) and the chaos plugin (tests/chaos) for the load;
  (b) ccmulti, Celery: `ccmulti start w1 w2 w3 -A benchproj -c 2 --watch app`, the task in app/benchproj.py;
  (c) watchmedo (Debian's python3-watchdog), where installed: three `watchmedo auto-restart -d app -p '*.py' -R --
      celery -A benchproj worker -n wN@host -c 2`, the way Celery's users reload today.
Each uses the default debounce (ccmulti 300 ms; watchmedo has none).

  - latency: --rounds times, the version in the watched file is rewritten, and one client calls bench.version
    (one call after another; a new one every 0.5 s while earlier ones are unanswered) until a call is answered
    with the new number: the time from the write to that answer, debounce included. Between rounds, all three
    nodes are replaced and idle again.
  - under load: a second client sends --rate tasks per second (each sleeps 20 ms and writes "S id" when it starts
    and "E id" when it ends to a file) while the version is changed --reloads times, each change answered before
    the next; then every sent task is waited for. Lost: a task with no SUCCESS result 60 s after the last send
    (and, of those, how many sit in kombu's "unacked" hash, to be restored after its visibility timeout).
    Duplicated: a task started more than once. Interrupted: a start with no end (a run cut by a stop).
Prints a Markdown table.
"""
import argparse
import collections
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from celery import Celery

from lib import close_celery_app

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST = socket.gethostname()
PYTHON = "/usr/bin/python3"
NODES = ("w1", "w2", "w3")

PY_APP = '''
import os
import time

from celery import Celery

VERSION = {version}

url = os.environ["BENCH_BROKER"]
app = Celery("benchproj", broker=url, backend=url)
app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="bench.version")
def version():
    return VERSION


def record(path, what, task_id):
    with open(path, "a") as f:  # one short append: lines of several processes never interleave
        f.write(f"{{what}} {{task_id}}\\n")


@app.task(name="bench.work", bind=True)
def work(self, seconds, path):
    record(path, "S", self.request.id)
    time.sleep(seconds)
    record(path, "E", self.request.id)
    return seconds
'''

NATIVE_CONFIG = '''
[tasks."bench.version"]
command = ["/bin/echo", "{version}"]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


class Group:
    """Three watching nodes of one kind; `write(version)` changes their code."""

    def __init__(self, kind, work, args, broker):
        self.kind, self.args, self.broker = kind, args, broker
        self.dir = work / kind
        (self.dir / "app").mkdir(parents=True)
        (self.dir / "conf").mkdir()
        self.runs = self.dir / "runs.log"
        self.env = dict(os.environ, CCMULTI_RUN_DIR=str(self.dir / "run"), CCMULTI_LOG_DIR=str(self.dir / "log"),
                        CCMULTI_STATE_DIR=str(self.dir / "state"), CCMULTI_PYTHON=PYTHON, BENCH_BROKER=broker,
                        PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
        self.env.pop("CCMULTI_CONFIG", None)
        self.procs = []
        self.write(0)

    # The work task: the chaos plugin's chaos.sleep for native nodes, bench.work for Celery.
    @property
    def work_task(self):
        return "chaos.sleep" if self.kind == "native" else "bench.work"

    def write(self, version):
        if self.kind == "native":
            path, text = self.dir / "conf" / "ccmulti.toml", NATIVE_CONFIG.format(version=version)
        else:
            path, text = self.dir / "app" / "benchproj.py", PY_APP.format(version=version)
        tmp = path.with_suffix(".tmp")  # as editors save: write a temporary file, rename it over
        tmp.write_text(text)
        os.rename(tmp, path)

    def ccmulti(self, *args, check=True):
        out = subprocess.run([self.args.ccmulti, *map(str, args)], capture_output=True, text=True, env=self.env,
                             cwd=self.dir, timeout=180)
        if check and out.returncode != 0:
            sys.exit(f"ccmulti {' '.join(map(str, args))}: exit {out.returncode}\n{out.stdout}{out.stderr}")
        return out

    def start(self):
        if self.kind == "native":
            plugin = pathlib.Path(self.args.build) / "tests" / "chaos" / "libccmulti_chaos_plugin.so"
            if not plugin.exists():
                sys.exit(f"chaos plugin not built: {plugin} (ninja -C {self.args.build} ccmulti_chaos_plugin)")
            self.ccmulti("-C", "conf/ccmulti.toml", "start", *NODES, "-c", "2", "--broker", self.broker,
                         f"--plugin={plugin}", "--watch", "conf", "-l", "info")
        elif self.kind == "ccmulti-A":
            self.ccmulti("start", *NODES, "-A", "benchproj", "-c", "2", "--workdir", self.dir / "app", "--watch",
                         "app", "-l", "info")
        else:
            (self.dir / "log").mkdir()
            for name in NODES:
                log = open(self.dir / "log" / f"{name}.log", "w")
                self.procs.append(subprocess.Popen(
                    ["watchmedo", "auto-restart", "-d", ".", "-p", "*.py", "-R", "--", PYTHON, "-m", "celery", "-A",
                     "benchproj", "worker", "-n", f"{name}@{HOST}", "-c", "2", "-l", "info"],
                    cwd=self.dir / "app", env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
                log.close()

    def pids(self):
        if self.kind == "watchmedo":
            return None
        pids = {}
        for name in NODES:
            try:
                pids[name] = int((self.dir / "run" / f"{name}.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pids[name] = None
        return pids

    def settled(self, app, before):
        """All three nodes replaced since `before` (their pids), ready and idle, the old processes gone."""
        if self.kind == "watchmedo":
            # Each worker answers ping once it is up; a restarted one is new code.
            wait_for(lambda: len(app.control.ping(timeout=0.5)) >= 3, 120, "three workers to answer ping")
            return
        def done():
            out = self.ccmulti("status", "--json", check=False)
            if out.returncode != 0 or not out.stdout:
                return False
            nodes = json.loads(out.stdout)["nodes"]
            return all(n["state"] == "ready" and n.get("pid") not in (None, before.get(n["name"].split("@")[0]))
                       and "retiring" not in n and "replacement" not in n and "reload" not in n for n in nodes)
        wait_for(done, 120, "all three nodes to be replaced")

    def stop(self):
        if self.kind == "watchmedo":
            for proc in self.procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in self.procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        else:
            self.ccmulti("kill", check=False)


def call_version(app, timeout=10):
    try:
        return app.send_task("bench.version").get(timeout=timeout)
    except Exception:  # noqa: BLE001  (a worker restarting: the call comes back later, or times out)
        return None


def answered(app, version, t0, limit=120):
    """Calls bench.version again every 0.5 s while the calls before are unanswered (a call may be held by a
    worker that stops, or lost: see below), until one is answered with `version`; the time of that answer."""
    pending = []
    while time.monotonic() - t0 < limit:
        pending.append(app.send_task("bench.version"))
        resend = time.monotonic() + 0.5
        while time.monotonic() < resend:
            for result in [r for r in pending if r.ready()]:
                pending.remove(result)
                if result.successful() and result.result == version:
                    return time.monotonic()
            if not pending:
                break
            time.sleep(0.002)
    sys.exit(f"version {version} not answered within {limit} s")


def measure_latency(group, app, rounds, version):
    latencies = []
    for _ in range(rounds):
        version += 1
        before = group.pids()
        t0 = time.monotonic()
        group.write(version)
        latencies.append(answered(app, version, t0) - t0)
        group.settled(app, before)
        time.sleep(0.5)
    return latencies, version


class Load(threading.Thread):
    """Sends `rate` work tasks a second until stopped; keeps their ids."""

    def __init__(self, broker, task, path, rate):
        super().__init__(daemon=True)
        self.app = Celery("load", broker=broker, backend=broker)
        self.task, self.path, self.rate = task, str(path), rate
        self.ids, self.stopping = [], threading.Event()

    def run(self):
        period, n = 1.0 / self.rate, 0
        t0 = time.monotonic()
        while not self.stopping.is_set():
            self.ids.append(self.app.send_task(self.task, args=[0.02, self.path]).id)
            n += 1
            delay = t0 + n * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def under_load(group, app, broker, reloads, rate, version):
    load = Load(broker, group.work_task, group.runs, rate)
    load.start()
    time.sleep(1)
    for _ in range(reloads):
        version += 1
        before = group.pids()
        group.write(version)
        answered(app, version, time.monotonic())
        group.settled(app, before)
    time.sleep(1)
    load.stopping.set()
    load.join()
    ids = load.ids
    client = app.backend.client
    keys = [f"celery-task-meta-{i}" for i in ids]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        values = [v for n in range(0, len(keys), 1000) for v in client.mget(keys[n:n + 1000])]
        if sum(1 for v in values if v and json.loads(v)["status"] == "SUCCESS") == len(ids):
            break
        time.sleep(0.2)
    values = [v for n in range(0, len(keys), 1000) for v in client.mget(keys[n:n + 1000])]
    lost_ids = [i for i, v in zip(ids, values) if not v or json.loads(v)["status"] != "SUCCESS"]
    lost = len(lost_ids)
    # Where a lost task is: kombu's Redis transport keeps a message it delivered in the "unacked" hash until it is
    # acked, and restores one whose worker went away only after its visibility timeout (1 hour by default).
    parked = set()
    for value in client.hvals("unacked"):
        try:
            parked.add(json.loads(value)[0]["headers"]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    in_unacked = sum(1 for i in lost_ids if i in parked)
    lines = [line.split() for line in group.runs.read_text().splitlines()] if group.runs.exists() else []
    starts = collections.Counter(line[1] for line in lines if line[0] == "S")
    ends = collections.Counter(line[1] for line in lines if line[0] == "E")
    duplicated = sum(1 for i in ids if starts[i] > 1)
    if lost_ids or duplicated:
        print(f"{group.kind}: lost {lost_ids[:10]}, duplicated {[i for i in ids if starts[i] > 1][:10]}",
              file=sys.stderr)
    interrupted = sum(max(0, starts[i] - ends[i]) for i in ids)
    close_celery_app(load.app)
    return {"sent": len(ids), "lost": lost, "in_unacked": in_unacked, "duplicated": duplicated,
            "interrupted": interrupted}, version


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds per kind")
    parser.add_argument("--reloads", type=int, default=10, help="reloads under load per kind")
    parser.add_argument("--rate", type=int, default=50, help="tasks per second sent during the reloads")
    parser.add_argument("--build", default=str(ROOT / "build/default"), help="the build dir (chaos plugin)")
    parser.add_argument("--ccmulti", default=None, help="the binary (default BUILD/src/ccmulti)")
    parser.add_argument("--kinds", default="native,ccmulti-A,watchmedo")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' files (logs, runs.log) and print where")
    args = parser.parse_args()
    args.ccmulti = args.ccmulti or os.environ.get("CCMULTI_BIN") or str(pathlib.Path(args.build) / "src/ccmulti")
    kinds = args.kinds.split(",")
    if "watchmedo" in kinds and not shutil.which("watchmedo"):
        print("watchmedo not installed (apt-get install python3-watchdog): left out", file=sys.stderr)
        kinds.remove("watchmedo")

    work = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-bench-reload-"))
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    broker = f"redis://127.0.0.1:{port}/0"
    rows = {}
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", 20, "redis-server")
        for kind in kinds:
            group = Group(kind, work, args, broker)
            app = Celery("client", broker=broker, backend=broker)
            try:
                group.start()
                wait_for(lambda: call_version(app) == 0, 120, f"{kind}: the first answer")
                group.settled(app, {}) if kind == "watchmedo" else None
                latencies, version = measure_latency(group, app, args.rounds, 0)
                counts, version = under_load(group, app, broker, args.reloads, args.rate, version)
                rows[kind] = (latencies, counts)
                print(f"{kind}: latencies {[round(x * 1000) for x in latencies]} ms; {counts}", file=sys.stderr)
            finally:
                group.stop()
                close_celery_app(app)
    finally:
        redis.terminate()
        redis.wait(timeout=30)
        if args.keep:
            print(f"files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"{args.rounds} latency rounds, {args.reloads} reloads under {args.rate} tasks/s (20 ms each); "
          f"3 nodes x -c 2 per kind; {os.cpu_count()} CPUs")
    names = {"native": "ccmulti, native (--watch)", "ccmulti-A": "ccmulti, Celery -A (--watch)",
             "watchmedo": "watchmedo auto-restart + celery"}
    print("| kind | latency median (ms) | min | max | tasks sent | lost (of them in unacked) | duplicated "
          "| interrupted |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, (latencies, counts) in rows.items():
        ms = [x * 1000 for x in latencies]
        print(f"| {names[kind]} | {statistics.median(ms):.0f} | {min(ms):.0f} | {max(ms):.0f} | {counts['sent']} | "
              f"{counts['lost']} ({counts['in_unacked']}) | {counts['duplicated']} | {counts['interrupted']} |")


if __name__ == "__main__":
    main()
