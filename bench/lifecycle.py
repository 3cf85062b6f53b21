"""Lifecycle, footprint and idle cost of a group of 3 nodes x -c 2: `ccmulti` vs `celery multi`, on one Redis.

One session per side and round: start until every node is ready, memory (RSS and PSS of every process of the
group, /proc/PID/smaps_rollup), idle CPU and context switches over --idle seconds, a restart until every node is
ready again, stopwait. Times are wall-clock from running the command to the condition, measured here
(time.monotonic) the same way for both sides."""
import os
import re
import time

from lib import CELERY_QUIET, cpu_and_switches, memory, process_tree, wait_for

NODES = ["w1", "w2", "w3"]
CONCURRENCY = 2


class CcmultiGroup:
    name = "ccmulti"

    def __init__(self, ws):
        self.ws = ws
        base = ws.root / "ccmulti"
        self.dirs = ["--run-dir", base / "run", "--log-dir", base / "log", "--state-dir", base / "state"]

    def run(self, *args):
        return self.ws.ccmulti(*self.dirs, *args)

    def start(self):  # `ccmulti start` returns when every node is ready (exit 0), else fails
        # --without-heartbeat as Celery's side runs (CELERY_QUIET): no worker events every 2 s on either side.
        self.run("start", *NODES, "-c", CONCURRENCY, "--broker", self.ws.url, "-Q", "bench_lifecycle", "-l", "WARNING",
                 "--without-heartbeat")

    def restart(self):  # rolling, each node's replacement ready before the next: as celery multi restart
        self.run("restart")

    def stopwait(self):
        self.run("stopwait")

    def pids(self):
        pidfile = self.ws.root / "ccmulti" / "run" / "master.pid"
        return process_tree([int(pidfile.read_text().split()[0])]) if pidfile.exists() else []


class CeleryGroup:
    name = "celery"
    READY = re.compile(r"\bready\.")

    def __init__(self, ws):
        self.ws = ws
        self.dir = ws.root / "celery-multi"
        self.dir.mkdir(exist_ok=True)
        self.node_args = [*NODES, "-A", "benchapp", "-c", CONCURRENCY, "--pool=prefork", "-Q", "bench_lifecycle",
                          "-l", "INFO", *CELERY_QUIET,
                          f"--pidfile={self.dir}/%n.pid", f"--logfile={self.dir}/%n%I.log"]

    def multi(self, command):
        out = self.ws.celery("multi", command, *self.node_args)
        if "FAILED" in out.stdout or "ERROR" in out.stdout:  # celery multi exits 0 even then
            raise RuntimeError(f"celery multi {command} failed:\n{out.stdout}{out.stderr}")

    def ready_counts(self):
        counts = []
        for node in NODES:
            log = self.dir / f"{node}.log"
            counts.append(len(self.READY.findall(log.read_text(errors="replace"))) if log.exists() else 0)
        return counts

    def start(self):
        # celery multi start returns once it forked the nodes: ready is when each node's log says "ready."
        before = self.ready_counts()
        self.multi("start")
        wait_for(lambda: all(a > b for a, b in zip(self.ready_counts(), before)), 120, "celery nodes ready")

    def restart(self):
        before = self.ready_counts()
        self.multi("restart")
        wait_for(lambda: all(a > b for a, b in zip(self.ready_counts(), before)), 120, "celery nodes ready")

    def stopwait(self):
        self.multi("stopwait")

    def pids(self):
        roots = []
        for node in NODES:
            pidfile = self.dir / f"{node}.pid"
            if pidfile.exists():
                roots.append(int(pidfile.read_text().split()[0]))
        return process_tree(roots)


def timed(action):
    started = time.monotonic()
    action()
    return time.monotonic() - started


def session(group, idle_seconds):
    """One round for one side: returns its measurements."""
    out = {"start": timed(group.start)}
    time.sleep(0.5)  # both sides settle (Celery's pool processes finish importing) before memory is read
    pids = group.pids()
    out["processes"] = len(pids)
    out["rss"], out["pss"] = memory(pids)
    cpu0, sw0 = cpu_and_switches(pids)
    time.sleep(idle_seconds)
    cpu1, sw1 = cpu_and_switches(pids)
    out["idle_cpu"] = (cpu1 - cpu0) / idle_seconds  # CPU seconds per second (all 3 nodes)
    out["wakeups"] = (sw1 - sw0) / idle_seconds  # context switches per second
    out["restart"] = timed(group.restart)
    running = group.pids()
    out["stopwait"] = timed(group.stopwait)
    wait_for(lambda: not [pid for pid in running if os.path.exists(f"/proc/{pid}")], 10,
             f"{group.name}: every process gone after stopwait")
    return out
