"""Throughput and round-trip latency of a trivial task (ccmulti.echo) on one Redis: one ccmulti node vs one
Celery prefork worker, both `-c 2`, late acks, results on, prefetch multiplier 4, log level WARNING; and the
embedded SQLite broker (ccmulti only: Celery has no such broker, its Redis figures are the reference).

Both sides get the very same messages: `ccmulti call --count N` publishes N Celery v2 envelopes over one
connection, pipelined, so the publisher is not what is measured.
  - drain: N tasks queued before the worker starts; the worker's own rate, from its first to its last result's
    date_done;
  - end to end: the worker up and idle, N tasks published; tasks/s from the start of the publish to the moment
    the queue and the unacked hash are empty (every result is stored before its ack); every result is checked;
  - round trip: single calls one at a time from a Python Celery client, send_task(...).get() (woken by the
    result's PUBLISH): p50 and p99 in milliseconds."""
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

from lib import CELERY_QUIET, check_results, date_done_span, percentile, result_metas, wait_for

ECHO_ARG = 1


def publish(ws, queue, count, broker=None, dirs=()):
    """Publishes `count` echo tasks with ccmulti call --count; returns (ids, seconds the publish took)."""
    started = time.monotonic()
    out = ws.ccmulti(*dirs, "call", "ccmulti.echo", json.dumps([ECHO_ARG]), "-Q", queue, "--count", count,
                     "--broker", broker or ws.url)
    return out.stdout.split(), time.monotonic() - started


def wait_drained(ws, queue, timeout):
    # Every result is stored before its ack, so an empty queue and an empty unacked hash mean all results are in.
    def drained():
        return ws.redis_cli("EVAL", "return redis.call('LLEN', KEYS[1]) + redis.call('HLEN', KEYS[2])", 2, queue,
                            "unacked") == "0"
    wait_for(drained, timeout, f"queue {queue} drained", interval=0.01)
    return time.monotonic()


class CcmultiWorker:
    name = "ccmulti"
    queue = "bench_ccmulti"

    def __init__(self, ws):
        self.ws = ws
        base = ws.root / "ccmulti-throughput"
        self.dirs = ["--run-dir", base / "run", "--log-dir", base / "log", "--state-dir", base / "state"]

    def start(self):
        self.ws.ccmulti(*self.dirs, "start", "w1", "-c", 2, "--prefetch-multiplier", 4, "--broker", self.ws.url,
                        "-Q", self.queue, "-l", "WARNING")

    def stop(self):
        self.ws.ccmulti(*self.dirs, "stopwait")


class CeleryWorker:
    name = "celery"
    queue = "bench_celery"

    def __init__(self, ws):
        self.ws = ws
        self.proc = None

    def start(self):
        with open(self.ws.root / "celery-worker.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchapp", "worker", "-c", "2", "--prefetch-multiplier", "4",
                 "--pool", "prefork", "-Q", self.queue, "-n", "py@%h", *CELERY_QUIET, "-l", "WARNING"],
                env=self.ws.env, cwd=self.ws.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def measure_redis(ws, app, worker, tasks, latency_calls):
    client = app.backend.client
    out = {}
    # Drain.
    ids, _ = publish(ws, worker.queue, tasks)
    worker.start()
    try:
        wait_drained(ws, worker.queue, timeout=max(120, tasks / 100))
        metas = result_metas(client, ids)
        check_results(metas, ECHO_ARG)
        first, last = date_done_span(metas)
        out["drain"] = (len(ids) - 1) / (last - first)
        client.delete(*[f"celery-task-meta-{i}" for i in ids])

        # End to end.
        started = time.monotonic()
        ids, publish_seconds = publish(ws, worker.queue, tasks)
        finished = wait_drained(ws, worker.queue, timeout=max(120, tasks / 100))
        check_results(result_metas(client, ids), ECHO_ARG)
        out["e2e"] = len(ids) / (finished - started)
        out["publish"] = len(ids) / publish_seconds
        client.delete(*[f"celery-task-meta-{i}" for i in ids])

        # Round trips.
        latencies = []
        for i in range(latency_calls):
            t0 = time.perf_counter()
            value = app.send_task("ccmulti.echo", args=[i], queue=worker.queue).get(timeout=60)
            latencies.append((time.perf_counter() - t0) * 1000)
            if value != i:
                raise RuntimeError(f"round trip {i} returned {value!r}")
        out["p50"] = statistics.median(latencies)
        out["p99"] = percentile(latencies, 0.99)
    finally:
        worker.stop()
    return out


def measure_sqlite(ws, tasks):
    """ccmulti on its embedded SQLite broker: publish N (one transaction), then one node -c 2 drains them."""
    base = ws.root / "ccmulti-sqlite"
    dirs = ["--run-dir", base / "run", "--log-dir", base / "log", "--state-dir", base / "state"]
    database = base / "state" / "broker.sqlite3"
    broker = f"sqlite://{database}"
    ids, publish_seconds = publish(ws, "bench_sqlite", tasks, broker=broker, dirs=dirs)
    ws.ccmulti(*dirs, "start", "w1", "-c", 2, "--prefetch-multiplier", 4, "--broker", broker, "-Q", "bench_sqlite",
               "-l", "WARNING")
    try:
        def results():
            db = sqlite3.connect(database, timeout=30)
            try:
                return db.execute("SELECT meta FROM results").fetchall()
            finally:
                db.close()
        rows = wait_for(lambda: (r := results()) and len(r) >= len(ids) and r, max(120, tasks / 100),
                        "sqlite results", interval=0.05)
    finally:
        ws.ccmulti(*dirs, "stopwait")
    metas = [json.loads(row[0]) for row in rows]
    check_results(metas, ECHO_ARG)
    first, last = date_done_span(metas)
    database.unlink()
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    return {"sqlite_publish": len(ids) / publish_seconds, "sqlite_drain": (len(ids) - 1) / (last - first)}
