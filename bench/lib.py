"""What the benchmarks share: a private redis-server, private ccmulti directories, the Python Celery app both
sides run, and reading a group of processes from /proc (memory, CPU time, context switches).

Not a test module: bench/run (report.py) and redis_throughput.py import it. Debian's /usr/bin/python3 only."""
import datetime
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The Celery side's app: an echo task named as ccmulti's built-in one, so one client drives both.
PY_APP = '''
from celery import Celery
import os
url = os.environ["BENCH_BROKER"]
app = Celery("benchapp", broker=url, backend=os.environ.get("BENCH_BACKEND", url))  # RabbitMQ: results in Redis
app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")))


@app.task(name="ccmulti.echo")
def echo(*args, **kwargs):
    # As ccmulti.echo: one positional argument comes back as it is, anything else as {"args", "kwargs"}.
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": list(args), "kwargs": kwargs}
'''

# Celery's optional start-up and idle chatter, off on the Celery side everywhere: each would only cost it more
# (mingle alone waits about a second for replies at start).
CELERY_QUIET = ["--without-mingle", "--without-gossip", "--without-heartbeat"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.005):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Workspace:
    """A temporary directory with a private redis-server (no persistence) and the environment both sides run in:
    ccmulti's run/log/state dirs inside it, the Celery app on PYTHONPATH. A context manager: everything stops and
    the directory is removed at the end."""

    def __init__(self, ccmulti):
        self.ccmulti_bin = str(ccmulti)
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-bench-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        (self.root / "benchapp.py").write_text(PY_APP)
        self.env = dict(os.environ, CCMULTI_RUN_DIR=str(self.root / "run"), CCMULTI_LOG_DIR=str(self.root / "log"),
                        CCMULTI_STATE_DIR=str(self.root / "state"), BENCH_BROKER=self.url,
                        PYTHONPATH=str(self.root), NO_COLOR="1")
        for name in ("CCMULTI_CONFIG", "CCMULTI_BROKER_URL", "CCMULTI_RESULT_BACKEND"):
            self.env.pop(name, None)
        self.redis = None

    def __enter__(self):
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(self.root)], stdout=subprocess.DEVNULL)
        wait_for(lambda: self.redis_cli("PING") == "PONG", 10, "redis-server", interval=0.02)
        return self

    def __exit__(self, *exc):
        for name in ("ccmulti", "ccmulti-sqlite", "ccmulti-amqp"):
            run_dir = self.root / name / "run"
            if run_dir.exists():
                subprocess.run([self.ccmulti_bin, "--run-dir", str(run_dir), "kill"], env=self.env,
                               capture_output=True, timeout=30)
        subprocess.run([self.ccmulti_bin, "kill"], env=self.env, capture_output=True, timeout=30)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *map(str, args)], capture_output=True,
                              text=True).stdout.strip()

    def ccmulti(self, *args, timeout=120, **kwargs):
        return subprocess.run([self.ccmulti_bin, *map(str, args)], env=self.env, cwd=self.root, check=True,
                              capture_output=True, text=True, timeout=timeout, **kwargs)

    def celery(self, *args, timeout=300, check=True):
        return subprocess.run([sys.executable, "-m", "celery", "-A", "benchapp", *map(str, args)], env=self.env,
                              cwd=self.root, capture_output=True, text=True, timeout=timeout, check=check)

    def flush(self):
        self.redis_cli("FLUSHALL")


# --- a group of processes, from /proc ---

def _children(pid):
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def process_tree(roots):
    """The pids of `roots` and all their descendants that exist now."""
    seen, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


def memory(pids):
    """(RSS, PSS) in bytes summed over `pids`, from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Rss":
                        rss += int(rest.split()[0]) * 1024
                    elif key == "Pss":
                        pss += int(rest.split()[0]) * 1024
        except OSError:
            pass
    return rss, pss


def cpu_and_switches(pids):
    """(CPU seconds, context switches) summed over every thread of `pids`: run time from
    /proc/PID/task/TID/schedstat (nanoseconds, finer than stat's ticks), voluntary + involuntary switches (each a
    wakeup or a preemption) from its status."""
    cpu_ns = switches = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    cpu_ns += int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            switches += int(line.split()[1])
            except OSError:
                pass
    return cpu_ns / 1e9, switches


def result_metas(client, ids):
    """The stored results of `ids` (Celery's celery-task-meta-<id> keys, read in chunks), None where missing."""
    metas = []
    for n in range(0, len(ids), 2000):
        keys = [f"celery-task-meta-{i}" for i in ids[n:n + 2000]]
        metas += [json.loads(v) if v is not None else None for v in client.mget(keys)]
    return metas


def check_results(metas, expected):
    for meta in metas:
        if meta is None or meta["status"] != "SUCCESS" or meta["result"] != expected:
            raise RuntimeError(f"unexpected result: {meta}")


def date_done_span(metas):
    """Seconds from the first to the last result's date_done (the workers' own clock)."""
    done = sorted(datetime.datetime.fromisoformat(m["date_done"]).timestamp() for m in metas)
    return done[0], done[-1]


def summary(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "values": values}


def close_celery_app(app):
    """Lets a Celery client let go of Redis while it still runs (AsyncResult.__del__ unsubscribes)."""
    import gc
    gc.collect()
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer._pubsub.close()
        consumer._pubsub = None
    app.close()
