#!/usr/bin/python3
"""ccmulti vs a Python Celery worker on the same Redis: throughput and round-trip latency of a trivial task.

Not a test (ctest and CI never run it). Run with Debian's interpreter, which has python3-celery:

    /usr/bin/python3 bench/redis_throughput.py [--tasks 2000] [--latency-calls 300] [--ccmulti BUILD/src/ccmulti]

It starts a private redis-server on a free port, then, one after the other on that Redis (so they never compete
for the CPUs):
  (a) ccmulti nodes (`ccmulti start w1 … -c 2`, the built-in ccmulti.echo),
  (b) a Python `celery worker -c 2 --pool prefork` with an equivalent echo task (also named ccmulti.echo),
both with late acks, results on and log level WARNING, each on its own queue. One Python Celery client:
  - drain: queues --tasks tasks, then starts the worker; rate from its first to its last result (date_done);
  - end to end: with the worker up and idle, sends --tasks tasks and waits until every result is in Redis
    (tasks/s from the first send to the last result; the client polls EXISTS, cheap next to get() per result);
  - round trip: --latency-calls single calls one at a time, send_task + AsyncResult.get(): p50 and p99.
Prints a Markdown table with the ratio. bench/run measures this and more (lifecycle, memory, idle cost, SQLite)
in alternating rounds and writes docs/benchmarks.md.
"""
import argparse
import datetime
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
import time

from celery import Celery

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from lib import PY_APP, ROOT, close_celery_app, free_port, percentile, wait_for  # noqa: E402

HOST = socket.gethostname()


def wait_results(app, ids, timeout=300):
    """Polls Redis for the result keys (one EXISTS per round, so the client stays out of the workers' way), then
    reads them all."""
    client = app.backend.client
    keys = [f"celery-task-meta-{i}" for i in ids]
    deadline = time.monotonic() + timeout
    while sum(client.exists(*keys[n:n + 1000]) for n in range(0, len(keys), 1000)) < len(keys):
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout}s waiting for {len(keys)} results")
        time.sleep(0.002)
    done = time.monotonic()
    metas = [json.loads(v) for n in range(0, len(keys), 1000) for v in client.mget(keys[n:n + 1000])]
    return done, metas


def check(metas):
    for i, meta in enumerate(metas):
        if meta["status"] != "SUCCESS" or meta["result"] != i:
            sys.exit(f"task {i}: {meta}")


def measure(app, queue, tasks, latency_calls, start_worker):
    # Drain: N tasks queued before the worker starts; the worker's own rate, from its first to its last result.
    ids = [app.send_task("ccmulti.echo", args=[i], queue=queue).id for i in range(tasks)]
    start_worker()
    _, metas = wait_results(app, ids)
    check(metas)
    done = sorted(datetime.datetime.fromisoformat(m["date_done"]).timestamp() for m in metas)
    drain = (tasks - 1) / (done[-1] - done[0])
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])

    # End to end: the worker is up and idle; one client sends N tasks and waits until every result is in.
    started = time.monotonic()
    ids = [app.send_task("ccmulti.echo", args=[i], queue=queue).id for i in range(tasks)]
    sent = time.monotonic()
    finished, metas = wait_results(app, ids)
    check(metas)
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])

    # Round trip of single calls, one at a time: send_task + AsyncResult.get() (woken by the result's PUBLISH).
    latencies = []
    for i in range(latency_calls):
        t0 = time.perf_counter()
        value = app.send_task("ccmulti.echo", args=[i], queue=queue).get(timeout=60)
        latencies.append((time.perf_counter() - t0) * 1000)
        if value != i:
            sys.exit(f"latency call {i} returned {value!r}")
    return {
        "drain": drain,
        "throughput": tasks / (finished - started),
        "send": tasks / (sent - started),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--nodes", type=int, default=1,
                        help="ccmulti nodes sharing --concurrency (2 nodes x -c 1 for -c 2); Python: one worker")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes in all: Celery's -c")
    parser.add_argument("--prefetch-multiplier", type=int, default=4,
                        help="both workers' prefetch multiplier (Celery's worker_prefetch_multiplier; default 4 for both)")
    parser.add_argument("--ccmulti", default=os.environ.get("CCMULTI_BIN", str(ROOT / "build/default/src/ccmulti")))
    args = parser.parse_args()
    args.ccmulti = os.path.abspath(args.ccmulti)
    if args.nodes < 1 or args.concurrency % args.nodes:
        parser.error(f"--concurrency {args.concurrency} cannot be shared evenly by --nodes {args.nodes}")
    per_node = args.concurrency // args.nodes
    if not os.access(args.ccmulti, os.X_OK):
        sys.exit(f"no ccmulti binary at {args.ccmulti} (--ccmulti or CCMULTI_BIN)")

    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-bench-"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(root)], stdout=subprocess.DEVNULL)
    env = dict(os.environ, CCMULTI_RUN_DIR=str(root / "run"), CCMULTI_LOG_DIR=str(root / "log"),
               CCMULTI_STATE_DIR=str(root / "state"), BENCH_BROKER=url, PYTHONPATH=str(root), NO_COLOR="1")
    env.pop("CCMULTI_CONFIG", None)
    app = Celery("bench", broker=url, backend=url)
    app.conf.update(broker_connection_retry_on_startup=True)
    ccmulti = lambda *a, **kw: subprocess.run([args.ccmulti, *map(str, a)], env=env, cwd=root, check=True,
                                               capture_output=True, text=True, **kw)
    python_worker = None
    results = {}
    try:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", 10, "redis-server")

        # (a) ccmulti
        names = [f"w{i + 1}" for i in range(args.nodes)]
        def start_ccmulti():
            ccmulti("start", *names, "--broker", url, "-c", per_node, "--prefetch-multiplier",
                    args.prefetch_multiplier, "-Q", "bench_ccmulti", "-l",
                    "WARNING", timeout=60)
        try:
            results["ccmulti"] = measure(app, "bench_ccmulti", args.tasks, args.latency_calls, start_ccmulti)
        finally:
            subprocess.run([args.ccmulti, "stop", "--wait", "--timeout", "30"], env=env, cwd=root, timeout=60,
                           capture_output=True)

        # (b) Python Celery, prefork
        (root / "benchapp.py").write_text(PY_APP)

        def start_python():
            nonlocal python_worker
            with open(root / "celery-worker.log", "w") as log:
                python_worker = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "benchapp", "worker", "-c", str(args.concurrency),
                     "--prefetch-multiplier", str(args.prefetch_multiplier),
                     "--pool", "prefork", "-Q", "bench_python", "-n", "py@%h", "--without-mingle",
                     "--without-gossip", "--without-heartbeat", "-l", "WARNING"],
                    env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        results["celery"] = measure(app, "bench_python", args.tasks, args.latency_calls, start_python)
    finally:
        if python_worker is not None and python_worker.poll() is None:
            os.killpg(python_worker.pid, signal.SIGTERM)
            try:
                python_worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(python_worker.pid, signal.SIGKILL)
        close_celery_app(app)
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)

    a, b = results["ccmulti"], results["celery"]
    celery_version = __import__("celery").__version__
    print(f"{args.tasks} tasks, {args.latency_calls} single calls; ccmulti: {args.nodes} node(s) x -c "
          f"{per_node}; prefetch multiplier {args.prefetch_multiplier}; celery {celery_version}: 1 worker x -c {args.concurrency} prefork; "
          f"{os.cpu_count()} CPUs")
    rows = [
        ("drain, N pre-queued (tasks/s)", "drain", "{:.0f}", True),
        ("end to end, send to last result (tasks/s)", "throughput", "{:.0f}", True),
        ("  the client's send rate meanwhile (tasks/s)", "send", "{:.0f}", True),
        ("round trip p50 (ms)", "p50", "{:.2f}", False),
        ("round trip p99 (ms)", "p99", "{:.2f}", False),
    ]
    print(f"| {'':<44} | {'ccmulti':>9} | {'celery':>9} | {'ccmulti/celery':>14} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 10}:|{'-' * 15}:|")
    for label, key, fmt, higher_better in rows:
        ratio = a[key] / b[key]
        print(f"| {label:<44} | {fmt.format(a[key]):>9} | {fmt.format(b[key]):>9} | {ratio:>13.2f}x |")


if __name__ == "__main__":
    main()
