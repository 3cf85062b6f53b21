"""Where the ceiling is, and what stays flat: the measurements of bench/run beyond one node at `-c 2`.

  - scaling: the Redis drain of N tasks for nodes 1, 2, 4 x concurrency 1, 2, 4 on the same Redis, with what the
    drain cost redis-server (its CPU seconds per task, the Redis commands per task from INFO commandstats) and so
    the rate at which Redis's one thread would be the limit; `redis-benchmark` on the same server says what that
    thread does with plain commands;
  - latency under load: round trips of single calls while a paced publisher keeps the worker at half the rate it
    drains at (ccmulti and Celery, each at half its own capacity);
  - memory growth: one node's RSS/PSS after a warm-up and after every chunk of 1,000,000 tasks (must stay flat);
  - one idle node: RSS/PSS of `ccmulti start w1 -c 2` (master, node, pool) against one `celery worker -c 2`.

Not a test module: report.py runs it. Debian's /usr/bin/python3 only."""
import contextlib
import multiprocessing
import statistics
import subprocess
import time

from lib import check_results, cpu_and_switches, date_done_span, memory, percentile, process_tree, result_metas, \
    wait_for
from throughput import ECHO_ARG, CeleryWorker, publish, wait_drained

NODES = (1, 2, 4)
CONCURRENCY = (1, 2, 4)
RESULTS_DB = 1  # the memory run's results: a database of their own, flushed between chunks


class CcmultiGroup:
    """`ccmulti start` of `nodes` nodes x `-c concurrency` in private directories; a context manager."""

    def __init__(self, ws, name, nodes, concurrency, queue, *extra):
        self.ws, self.queue = ws, queue
        self.base = ws.root / name
        self.dirs = ["--run-dir", self.base / "run", "--log-dir", self.base / "log", "--state-dir", self.base / "state"]
        self.args = [str(nodes), "-c", concurrency, "--prefetch-multiplier", 4, "--broker", ws.url, "-Q", queue,
                     "-l", "WARNING", *extra]

    def __enter__(self):
        self.ws.ccmulti(*self.dirs, "start", *self.args)
        return self

    def __exit__(self, *exc):
        self.ws.ccmulti(*self.dirs, "stopwait")

    def pids(self):
        return process_tree([int((self.base / "run" / "master.pid").read_text().split()[0])])


def redis_cpu(ws):
    return cpu_and_switches([ws.redis.pid])[0]


def redis_calls(ws):
    """Commands redis-server has run (INFO commandstats, commands run by scripts included)."""
    calls = 0
    for line in ws.redis_cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            calls += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return calls


def drain(ws, app, nodes, concurrency, tasks):
    """One drain of `tasks` pre-queued tasks by `nodes` x `-c concurrency`: tasks/s and Redis's cost per task."""
    queue = f"bench_scale_{nodes}x{concurrency}"
    ids, _ = publish(ws, queue, tasks)
    cpu0, calls0 = redis_cpu(ws), redis_calls(ws)
    with CcmultiGroup(ws, "ccmulti-scaling", nodes, concurrency, queue):
        wait_drained(ws, queue, timeout=max(120, tasks / 100))
    cpu, calls = redis_cpu(ws) - cpu0, redis_calls(ws) - calls0
    metas = result_metas(app.backend.client, ids)
    check_results(metas, ECHO_ARG)
    first, last = date_done_span(metas)
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])
    return {"rate": (len(ids) - 1) / (last - first), "redis_us": cpu / len(ids) * 1e6,
            "redis_calls": calls / len(ids)}


def scaling(ws, app, tasks):
    """{(nodes, concurrency): drain figures}, each configuration once, in a fixed order."""
    out = {}
    for nodes in NODES:
        for concurrency in CONCURRENCY:
            print(f"  scaling: {nodes} node(s) x -c {concurrency}", flush=True)
            out[(nodes, concurrency)] = drain(ws, app, nodes, concurrency, tasks)
    return out


def redis_benchmark(ws, requests=200000):
    """Plain commands/s of the same redis-server, pipelined 32 deep (as the node pipelines its writes)."""
    out = subprocess.run(["redis-benchmark", "-p", str(ws.port), "-q", "-n", str(requests), "-P", "32",
                          "-t", "set,lpush,rpop", "--csv"], capture_output=True, text=True, check=True).stdout
    rates = {}
    for line in out.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        rates[cells[0]] = float(cells[1])
    ws.redis_cli("FLUSHDB")
    return rates


# --- latency under a sustained load ---

def _pace(port, staging, queue, rate, count):
    """Moves `count` messages from `staging` to `queue` at `rate` per second (a process of its own)."""
    import redis
    client = redis.Redis(port=port)
    started, moved = time.monotonic(), 0
    while moved < count:
        due = min(count, int((time.monotonic() - started) * rate))
        if due > moved:
            pipe = client.pipeline(transaction=False)
            for _ in range(due - moved):
                pipe.lmove(staging, queue, "RIGHT", "LEFT")  # the oldest first, to where LPUSH would put it
            pipe.execute()
            moved = due
        time.sleep(0.002)


def latency_under_load(ws, app, queue, capacity, seconds, probes_per_second=50):
    """p50/p99 of single calls while a paced publisher sends at half of `capacity` tasks/s for `seconds`."""
    rate = capacity / 2
    count = int(rate * seconds)
    staging = queue + "_staging"
    ids, _ = publish(ws, staging, count)
    pacer = multiprocessing.Process(target=_pace, args=(ws.port, staging, queue, rate, count))
    latencies, n = [], 0
    pacer.start()
    try:
        started = time.monotonic()
        while pacer.is_alive():
            t0 = time.perf_counter()
            value = app.send_task("ccmulti.echo", args=[n], queue=queue).get(timeout=60)
            latencies.append((time.perf_counter() - t0) * 1000)
            if value != n:
                raise RuntimeError(f"probe {n} returned {value!r}")
            n += 1
            time.sleep(max(0.0, started + n / probes_per_second - time.monotonic()))
        elapsed = time.monotonic() - started
    finally:
        pacer.join()
    wait_drained(ws, queue, timeout=120)
    check_results(result_metas(app.backend.client, ids), ECHO_ARG)
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])
    # The premise: the load was sustained for the whole run (the pacer kept up), not a burst then nothing.
    if elapsed < seconds * 0.9:
        raise RuntimeError(f"the paced load ended after {elapsed:.1f}s of {seconds}s")
    return {"load_rate": rate, "load_p50": statistics.median(latencies), "load_p99": percentile(latencies, 0.99),
            "load_probes": len(latencies)}


def ccmulti_latency_under_load(ws, app, capacity, seconds):
    with CcmultiGroup(ws, "ccmulti-load", 1, 2, "bench_load_ccmulti"):
        return latency_under_load(ws, app, "bench_load_ccmulti", capacity, seconds)


def celery_latency_under_load(ws, app, capacity, seconds):
    worker = CeleryWorker(ws)
    worker.queue = "bench_load_celery"
    worker.start()
    try:
        wait_for(lambda: app.control.ping(timeout=0.5), 60, "the celery worker answering ping", interval=0.2)
        return latency_under_load(ws, app, worker.queue, capacity, seconds)
    finally:
        worker.stop()


# --- memory ---

def memory_growth(ws, total, chunk, warmup=10000):
    """[(tasks run, RSS, PSS)] of one node `-c 2` (every process of the group): after a warm-up, then per chunk."""
    results = ws.url.rsplit("/", 1)[0] + f"/{RESULTS_DB}"
    queue = "bench_memory"
    series = []
    with CcmultiGroup(ws, "ccmulti-memory", 1, 2, queue, "--result-backend", results) as group:
        done = 0
        for n in [warmup] + [chunk] * (total // chunk):
            ids, _ = publish(ws, queue, n)
            wait_drained(ws, queue, timeout=max(120, n / 100))
            done += len(ids)
            ws.redis_cli("-n", RESULTS_DB, "FLUSHDB")
            time.sleep(0.2)  # the node settles its last turn's bookkeeping before memory is read
            rss, pss = memory(group.pids())
            series.append((done, rss, pss))
            print(f"  memory: {done:,} tasks: RSS {rss / 1e6:.1f} MB, PSS {pss / 1e6:.1f} MB", flush=True)
    return series


def idle_node_memory(ws, side):
    """(RSS, PSS) of one idle node `-c 2` with every process it needs: ccmulti's master, node and pool processes;
    a celery worker and its pool processes."""
    if side == "ccmulti":
        with CcmultiGroup(ws, "ccmulti-idle", 1, 2, "bench_idle", "--without-heartbeat") as group:
            time.sleep(0.5)
            return memory(group.pids())
    worker = CeleryWorker(ws)
    worker.queue = "bench_idle"
    worker.start()
    try:
        wait_for(lambda: (ws.root / "celery-worker.log").exists() and
                 len(process_tree([worker.proc.pid])) >= 3, 60, "celery worker and its pool")
        time.sleep(2.0)  # its pool processes finish importing
        return memory(process_tree([worker.proc.pid]))
    finally:
        worker.stop()


def plot_scaling(figures, benchmark, img):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for nodes in NODES:
        ax.plot(CONCURRENCY, [figures[(nodes, c)]["rate"] for c in CONCURRENCY], marker="o",
                label=f"{nodes} node(s)")
    ceiling = statistics.median(1e6 / f["redis_us"] for f in figures.values())
    ax.axhline(ceiling, color="#b0502a", linestyle="--", linewidth=1)
    ax.text(CONCURRENCY[0], ceiling, f" Redis's one thread saturated: ~{ceiling:,.0f} tasks/s", va="bottom",
            fontsize=8, color="#b0502a")
    ax.set_xticks(CONCURRENCY)
    ax.set_xlabel("pool processes per node (-c)")
    ax.set_ylabel("drain, tasks/s")
    ax.set_ylim(0, max(ceiling, max(f["rate"] for f in figures.values())) * 1.15)
    ax.legend()
    ax.set_title("Redis drain by nodes and concurrency (2 CPUs shared with redis-server)", fontsize=9)
    fig.tight_layout()
    fig.savefig(img / "bench-scaling.png", dpi=110)
    plt.close(fig)


def plot_memory(series, img):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([s[0] for s in series], [s[1] / 1e6 for s in series], marker="o", label="RSS")
    ax.plot([s[0] for s in series], [s[2] / 1e6 for s in series], marker="o", label="PSS")
    ax.set_xlabel("tasks run")
    ax.set_ylabel("MB (master + node + 2 pool processes)")
    ax.set_ylim(0, max(s[1] for s in series) / 1e6 * 1.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(img / "bench-memory.png", dpi=110)
    plt.close(fig)


@contextlib.contextmanager
def section(title):
    print(title, flush=True)
    started = time.monotonic()
    yield
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


def run(ws, app, args):
    """Everything above, once; returns the figures report.py writes."""
    out = {}
    with section("scaling: nodes x concurrency"):
        out["scaling"] = scaling(ws, app, args.tasks)
    with section("redis-benchmark"):
        out["redis_benchmark"] = redis_benchmark(ws)
    with section("memory growth"):
        out["memory"] = memory_growth(ws, args.memory_tasks, max(1000, args.memory_tasks // 10))
    with section("one idle node"):
        out["idle_node"] = {side: idle_node_memory(ws, side) for side in ("celery", "ccmulti")}
    return out

