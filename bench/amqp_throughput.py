#!/usr/bin/python3
"""Throughput and round trips of a trivial task (ccmulti.echo) on one private RabbitMQ (rabbit_server.py): one ccmulti
node vs one Celery prefork worker (Debian's celery over py-amqp), both `-c 2`, late acks, prefetch multiplier 4
(basic.qos 8; ccmulti 8 times that while it holds only quick tasks, as on Redis), results in the same private redis-server (`--result-backend redis://…`; Celery
`backend=redis://…`: RabbitMQ keeps no results), heartbeats/mingle/gossip off, log level WARNING.

Both sides get the very same messages: `ccmulti call --count N --broker amqp://…` publishes N Celery v2 messages
over one connection, all sent before it waits for the publisher confirms, to the task queue declared as kombu
declares it (durable, persistent messages), so the publisher is not what is measured.
  - drain: N tasks queued before the worker starts; the worker's own rate, from its first to its last result's
    date_done; every result is checked; RabbitMQ's CPU per task over the drain (beam.smp, /proc);
  - round trip: the worker up and idle, single calls one at a time from a Python Celery client (py-amqp to
    RabbitMQ, results from Redis): send_task(...).get(), p50 and p99 in milliseconds, after 5 unmeasured calls
    (the client's connection and the worker's first task).

report.py runs it in its rounds (bench/run; `bench/run --only amqp` runs nothing else and rewrites only the
RabbitMQ section of docs/benchmarks.md); run alone, it prints one table:

    /usr/bin/python3 bench/amqp_throughput.py [--rounds 3 --tasks 30000 --celery-tasks 3000 --latency-calls 300]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from lib import CELERY_QUIET, check_results, cpu_and_switches, date_done_span, percentile, result_metas, summary, \
    wait_for

ECHO_ARG = 1
WARMUP_CALLS = 5
RESULTS_DB = 2  # a database of their own in the workspace's Redis, flushed between measurements


def results_url(ws):
    return ws.url.rsplit("/", 1)[0] + f"/{RESULTS_DB}"


def publish(ws, rabbit, queue, count):
    """`count` echo tasks into `queue` with ccmulti call --count (confirmed); returns (ids, seconds)."""
    started = time.monotonic()
    out = ws.ccmulti("call", "ccmulti.echo", json.dumps([ECHO_ARG]), "-Q", queue, "--count", count, "--broker",
                     rabbit.url, timeout=max(120, count / 200))
    return out.stdout.split(), time.monotonic() - started


def wait_results(ws, client, ids, timeout):
    """The results of `ids`, once every one is SUCCESS (a non-quick task may show STARTED first on ccmulti)."""
    wait_for(lambda: client.dbsize() >= len(ids), timeout, f"{len(ids)} results in Redis", interval=0.02)

    def done():
        metas = result_metas(client, ids)
        return metas if all(m is not None and m["status"] == "SUCCESS" for m in metas) else None
    return wait_for(done, timeout, "every result SUCCESS", interval=0.05)


class CcmultiWorker:
    name = "ccmulti"
    queue = "bench_amqp_ccmulti"

    def __init__(self, ws, rabbit):
        self.ws, self.rabbit = ws, rabbit
        base = ws.root / "ccmulti-amqp"
        self.dirs = ["--run-dir", base / "run", "--log-dir", base / "log", "--state-dir", base / "state"]

    def start(self):
        # --without-heartbeat as Celery's side runs (CELERY_QUIET): no worker events on either side.
        self.ws.ccmulti(*self.dirs, "start", "w1", "-c", 2, "--prefetch-multiplier", 4, "--broker", self.rabbit.url,
                        "--result-backend", results_url(self.ws), "-Q", self.queue, "-l", "WARNING",
                        "--without-heartbeat")

    def stop(self):
        self.ws.ccmulti(*self.dirs, "stopwait")


class CeleryWorker:
    name = "celery"
    queue = "bench_amqp_celery"

    def __init__(self, ws, rabbit):
        self.ws, self.rabbit = ws, rabbit
        self.proc = None

    def start(self):
        env = dict(self.ws.env, BENCH_BROKER=self.rabbit.url, BENCH_BACKEND=results_url(self.ws))
        with open(self.ws.root / "celery-amqp-worker.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchapp", "worker", "-c", "2", "--prefetch-multiplier", "4",
                 "--pool", "prefork", "-Q", self.queue, "-n", "pyamqp@%h", *CELERY_QUIET, "-l", "WARNING"],
                env=env, cwd=self.ws.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown: its last acks go out
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def client_app(ws, rabbit):
    """The Python Celery client of the round trips (and of report.py): py-amqp to RabbitMQ, results from Redis."""
    from celery import Celery
    app = Celery("bench-amqp", broker=rabbit.url, backend=results_url(ws))
    app.conf.update(broker_connection_retry_on_startup=True)
    return app


def round_trips(app, queue, calls):
    latencies = []
    for i in range(-WARMUP_CALLS, calls):
        t0 = time.perf_counter()
        value = app.send_task("ccmulti.echo", args=[i], queue=queue).get(timeout=60)
        if i >= 0:
            latencies.append((time.perf_counter() - t0) * 1000)
        if value != i:
            raise RuntimeError(f"round trip {i} on {queue} returned {value!r}")
    return latencies


def measure(ws, rabbit, app, worker, tasks, latency_calls):
    """One side's figures: amqp_drain (tasks/s), amqp_rabbit_us (RabbitMQ CPU µs per task), amqp_p50/p99 (ms)."""
    client = app.backend.client
    client.flushdb()
    ids, publish_seconds = publish(ws, rabbit, worker.queue, tasks)
    out = {"amqp_publish": len(ids) / publish_seconds}
    cpu0 = cpu_and_switches([rabbit.pid()])[0]
    worker.start()
    try:
        metas = wait_results(ws, client, ids, timeout=max(120, tasks / 50))
        out["amqp_rabbit_us"] = (cpu_and_switches([rabbit.pid()])[0] - cpu0) / len(ids) * 1e6
        check_results(metas, ECHO_ARG)
        first, last = date_done_span(metas)
        out["amqp_drain"] = (len(ids) - 1) / (last - first)
        client.flushdb()
        latencies = round_trips(app, worker.queue, latency_calls)
        out["amqp_p50"] = statistics.median(latencies)
        out["amqp_p99"] = percentile(latencies, 0.99)
    finally:
        worker.stop()
        client.flushdb()
    return out


def worker_for(side, ws, rabbit):
    return CeleryWorker(ws, rabbit) if side == "celery" else CcmultiWorker(ws, rabbit)


def main():
    from lib import ROOT, Workspace, close_celery_app
    from rabbit_server import RabbitMQ
    parser = argparse.ArgumentParser(description="ccmulti vs Celery on one private RabbitMQ")
    parser.add_argument("--ccmulti", default=str(ROOT / "build/release/src/ccmulti"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30000, help="ccmulti's drain count")
    parser.add_argument("--celery-tasks", type=int, default=3000, help="Celery's drain count")
    parser.add_argument("--latency-calls", type=int, default=300)
    args = parser.parse_args()
    results = {"celery": {}, "ccmulti": {}}
    with Workspace(args.ccmulti) as ws, RabbitMQ() as rabbit:
        version = rabbit.version()
        app = client_app(ws, rabbit)
        try:
            for n in range(args.rounds):
                for side in (["celery", "ccmulti"] if n % 2 == 0 else ["ccmulti", "celery"]):
                    print(f"round {n + 1}/{args.rounds}: {side}", flush=True)
                    tasks = args.celery_tasks if side == "celery" else args.tasks
                    for key, value in measure(ws, rabbit, app, worker_for(side, ws, rabbit), tasks,
                                              args.latency_calls).items():
                        results[side].setdefault(key, []).append(value)
        finally:
            close_celery_app(app)
    print(f"RabbitMQ {version}; {args.tasks} tasks (Celery {args.celery_tasks}), "
          f"{args.latency_calls} single calls, {args.rounds} round(s), median (min-max)")
    for key, label, fmt in (("amqp_drain", "drain (tasks/s)", "{:.0f}"), ("amqp_p50", "round trip p50 (ms)", "{:.2f}"),
                            ("amqp_p99", "round trip p99 (ms)", "{:.2f}"),
                            ("amqp_rabbit_us", "RabbitMQ CPU per task in the drain (µs)", "{:.1f}")):
        cells = []
        for side in ("celery", "ccmulti"):
            s = summary(results[side][key])
            cells.append(f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})")
        print(f"{label:42} celery {cells[0]:>24}   ccmulti {cells[1]:>24}")


if __name__ == "__main__":
    main()
