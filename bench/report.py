#!/usr/bin/python3
"""Runs every benchmark of bench/run against Celery, alternately, in rounds, and writes docs/benchmarks.md and
the plots under docs/img/. Run it through bench/run (which installs what is missing and builds Release).

Each round runs the Celery side and the ccmulti side one after the other, never together (the order swaps from
round to round, so neither always runs on a machine the other just warmed up); each figure is shown as the
median of the rounds with their min and max, and the ratio of the medians is the result: absolute figures move
with the machine and whatever else runs on it, ratios from the same run much less."""
import argparse
import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import amqp_throughput  # noqa: E402
import lifecycle  # noqa: E402
import scaling  # noqa: E402
import throughput  # noqa: E402
from lib import ROOT, Workspace, close_celery_app, summary  # noqa: E402
from rabbit_server import RabbitMQ  # noqa: E402

# key, label, unit, scale (raw value -> shown unit), format, higher is better
ROWS = [
    ("start", "start 3 nodes × `-c 2` until all ready", "ms", 1e3, "{:.0f}", False),
    ("restart", "restart 3 nodes (rolling) until all ready", "ms", 1e3, "{:.0f}", False),
    ("stopwait", "stopwait 3 idle nodes", "ms", 1e3, "{:.0f}", False),
    ("rss", "memory of 3 nodes × `-c 2`: RSS", "MB", 1e-6, "{:.1f}", False),
    ("pss", "memory of 3 nodes × `-c 2`: PSS", "MB", 1e-6, "{:.1f}", False),
    ("idle_cpu", "idle CPU of 3 nodes", "% of a CPU", 100, "{:.3f}", False),
    ("wakeups", "idle wakeups of 3 nodes (context switches)", "per s", 1, "{:.1f}", False),
    ("drain", "Redis drain, N queued, `-c 2`, results + late acks", "tasks/s", 1, "{:.0f}", True),
    ("e2e", "Redis end to end: publish N, until the last result", "tasks/s", 1, "{:.0f}", True),
    ("publish", "  the publisher's rate meanwhile (`ccmulti call --count`)", "tasks/s", 1, "{:.0f}", True),
    ("p50", "Redis round trip of one call, p50", "ms", 1, "{:.2f}", False),
    ("p99", "Redis round trip of one call, p99", "ms", 1, "{:.2f}", False),
    ("load_p50", "Redis round trip at 50% load, p50", "ms", 1, "{:.2f}", False),
    ("load_p99", "Redis round trip at 50% load, p99", "ms", 1, "{:.2f}", False),
    ("same_load_p50", "Redis round trip at Celery's 50% load (the same tasks/s), p50", "ms", 1, "{:.2f}", False),
    ("same_load_p99", "Redis round trip at Celery's 50% load (the same tasks/s), p99", "ms", 1, "{:.2f}", False),
    ("idle_rss", "memory of one idle node `-c 2`: RSS", "MB", 1e-6, "{:.1f}", False),
    ("idle_pss", "memory of one idle node `-c 2`: PSS", "MB", 1e-6, "{:.1f}", False),
    ("growth_rss", "RSS growth of one node over the memory run (Celery: —)", "MB", 1e-6, "{:.2f}", False),
    ("sqlite_drain", "embedded SQLite drain, `-c 2` (Celery: its Redis drain)", "tasks/s", 1, "{:.0f}", True),
    ("sqlite_publish", "embedded SQLite publish, one transaction (Celery: —)", "tasks/s", 1, "{:.0f}", True),
]
# The RabbitMQ section's rows (amqp_throughput.py), in the same form.
AMQP_ROWS = [
    ("amqp_drain", "RabbitMQ drain, N queued, `-c 2`, results (Redis) + late acks", "tasks/s", 1, "{:.0f}", True),
    ("amqp_publish", "  the publisher's rate before it (`ccmulti call --count`, confirmed)", "tasks/s", 1, "{:.0f}",
     True),
    ("amqp_rabbit_us", "RabbitMQ's CPU per task during the drain (beam.smp)", "µs", 1, "{:.1f}", False),
    ("amqp_p50", "RabbitMQ round trip of one call, p50", "ms", 1, "{:.2f}", False),
    ("amqp_p99", "RabbitMQ round trip of one call, p99", "ms", 1, "{:.2f}", False),
]
AMQP_TARGET = 15  # issue 17: the drain at least 15 times Celery's
# ccmulti's SQLite figure against Celery's Redis one; ccmulti under Celery's load against Celery under it
REFERENCE = {"sqlite_drain": "drain", "same_load_p50": "load_p50", "same_load_p99": "load_p99"}
ONLY_OURS = {"sqlite_publish", "growth_rss"}  # no Celery counterpart


def versions(ccmulti):
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    import importlib.metadata
    import celery
    commit = first_line(["git", "-C", str(ROOT), "describe", "--always"])
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "include", "cmake",
                              "CMakeLists.txt"], capture_output=True, text=True).stdout.strip()
    if changed:
        commit += " + uncommitted source changes"
    return {
        "ccmulti": first_line([ccmulti, "--version"]).replace("ccmulti ", "") + f" (Release, {commit})",
        "celery": celery.__version__ + " (Debian, prefork)",
        "amqp": importlib.metadata.version("amqp"),
        "kombu": importlib.metadata.version("kombu"),
        "redis": first_line(["redis-server", "--version"]).split()[2].removeprefix("v="),
        "python": platform.python_version(),
    }


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return f"{os.cpu_count()} CPUs ({model}), {mem_gb:.1f} GB, Linux {platform.release()}", load


def run_rounds(args):
    results = {"celery": {}, "ccmulti": {}}

    def add(side, values):
        for key, value in values.items():
            results[side].setdefault(key, []).append(value)

    from celery import Celery
    extra = None
    with Workspace(args.ccmulti) as ws, RabbitMQ() as rabbit:
        args.versions["rabbitmq"] = rabbit.version()
        app = Celery("bench", broker=ws.url, backend=ws.url)
        app.conf.update(broker_connection_retry_on_startup=True)
        amqp_app = amqp_throughput.client_app(ws, rabbit)
        try:
            for n in range(args.rounds):
                order = ["celery", "ccmulti"] if n % 2 == 0 else ["ccmulti", "celery"]
                if not args.only:
                    run_redis_round(args, ws, app, n, order, results, add)
                for side in order:
                    print(f"round {n + 1}/{args.rounds}: {side}: RabbitMQ drain and round trips", flush=True)
                    tasks = args.celery_tasks if side == "celery" else args.tasks
                    worker = amqp_throughput.worker_for(side, ws, rabbit)
                    add(side, amqp_throughput.measure(ws, rabbit, amqp_app, worker, tasks, args.latency_calls))
            if not args.only:
                extra = scaling.run(ws, app, args)
        finally:
            close_celery_app(amqp_app)
            close_celery_app(app)
    if extra is not None:
        for side, (rss, pss) in extra["idle_node"].items():
            add(side, {"idle_rss": rss, "idle_pss": pss})
        growth = extra["memory"]
        add("ccmulti", {"growth_rss": growth[-1][1] - growth[0][1]})
    return {side: {key: summary(values) for key, values in figures.items()} for side, figures in results.items()}, extra


def run_redis_round(args, ws, app, n, order, results, add):
    """Round n of everything on Redis (and the embedded SQLite broker), the sides in `order`."""
    for side in order:
        print(f"round {n + 1}/{args.rounds}: {side}: lifecycle, memory, idle", flush=True)
        group = lifecycle.CeleryGroup(ws) if side == "celery" else lifecycle.CcmultiGroup(ws)
        add(side, lifecycle.session(group, args.idle))
    for side in order:
        print(f"round {n + 1}/{args.rounds}: {side}: Redis throughput and latency", flush=True)
        worker = throughput.CeleryWorker(ws) if side == "celery" else throughput.CcmultiWorker(ws)
        tasks = args.celery_tasks if side == "celery" else args.tasks
        add(side, throughput.measure_redis(ws, app, worker, tasks, args.latency_calls))
    for side in order:
        print(f"round {n + 1}/{args.rounds}: {side}: latency at half its drain rate", flush=True)
        measure = scaling.celery_latency_under_load if side == "celery" else scaling.ccmulti_latency_under_load
        add(side, measure(ws, app, results[side]["drain"][-1], args.load_seconds))
    # Each side at half its own drain rate is the same relative load, but ccmulti then runs ~40 times as many tasks a
    # second; at the rate Celery was given, the two see the same traffic.
    print(f"round {n + 1}/{args.rounds}: ccmulti: latency at Celery's half drain rate", flush=True)
    same = scaling.ccmulti_latency_under_load(ws, app, results["celery"]["drain"][-1], args.load_seconds)
    add("ccmulti", {"same_load_p50": same["load_p50"], "same_load_p99": same["load_p99"]})
    print(f"round {n + 1}/{args.rounds}: ccmulti: embedded SQLite", flush=True)
    add("ccmulti", throughput.measure_sqlite(ws, args.tasks))


def ratio(key, higher_better, celery, ccmulti):
    if celery is None or ccmulti is None:
        return None
    a, b = (ccmulti, celery) if higher_better else (celery, ccmulti)
    return a / b if b else float("inf")


def table_rows(results, spec=ROWS):
    rows = []
    for key, label, unit, scale, fmt, higher in spec:
        ours = results["ccmulti"].get(key)
        theirs = results["celery"].get(REFERENCE.get(key, key))
        if key in ONLY_OURS:
            theirs = None
        if key in ("publish", "amqp_publish"):  # the same publisher on both sides: a check on the row above
            rows.append((key, label, unit, scale, fmt, higher, theirs, ours, None))
            continue
        if ours is None:
            continue
        rows.append((key, label, unit, scale, fmt, higher, theirs, ours,
                     ratio(key, higher, theirs and theirs["median"], ours["median"])))
    return rows


def cell(figure, scale, fmt):
    if figure is None:
        return "—"
    med, lo, hi = (fmt.format(figure[k] * scale) for k in ("median", "min", "max"))
    return med if len(figure["values"]) == 1 else f"{med} ({lo}–{hi})"


def ratio_text(value):
    if value is None:
        return "—"
    if value == float("inf"):
        return "∞ (ccmulti: 0)"
    return f"{value:.1f}×" if value < 100 else f"{value:.0f}×"


def plots(rows, results, img_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    img_dir.mkdir(parents=True, exist_ok=True)

    # How many times better ccmulti is, per metric (log scale).
    shown = [(label.replace("`", ""), r) for key, label, *_, r in rows if r not in (None, float("inf"))]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.2))
    ax.barh([s[0] for s in shown][::-1], [s[1] for s in shown][::-1], color="#2a7ab0")
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("ccmulti's advantage over Celery (× better, log scale; 1 = equal)")
    for y, (_, r) in enumerate(shown[::-1]):
        ax.text(r, y, f" {ratio_text(r)}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(img_dir / "bench-ratios.png", dpi=110)
    plt.close(fig)

    # Tasks/s, side by side.
    keys = [("drain", "Redis drain"), ("e2e", "Redis end to end"), ("sqlite_drain", "SQLite drain")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.38
    for i, (key, _) in enumerate(keys):
        ours = results["ccmulti"].get(key)
        theirs = results["celery"].get(key)
        for offset, figure, colour, name in ((-width / 2, theirs, "#b0502a", "Celery"),
                                             (width / 2, ours, "#2a7ab0", "ccmulti")):
            if figure is None:
                continue
            err = [[figure["median"] - figure["min"]], [figure["max"] - figure["median"]]]
            ax.bar(i + offset, figure["median"], width, yerr=err, color=colour, capsize=3,
                   label=name if i == 0 else None)
            ax.text(i + offset, figure["max"], f"{figure['median']:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(keys)), [k[1] for k in keys])
    ax.set_ylabel("tasks/s (median, bars: min–max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(img_dir / "bench-throughput.png", dpi=110)
    plt.close(fig)


def scaling_lines(args, extra):
    figures, bench = extra["scaling"], extra["redis_benchmark"]
    ceiling = statistics.median(1e6 / f["redis_us"] for f in figures.values())
    best_key = max(figures, key=lambda k: figures[k]["rate"])
    best = figures[best_key]
    calls = statistics.median(f["redis_calls"] for f in figures.values())
    lines = [
        "## Scaling: nodes × concurrency on one Redis",
        "",
        f"The drain of {args.tasks} pre-queued tasks (results + late acks, prefetch multiplier 4) by 1, 2 and 4",
        "nodes at `-c` 1, 2 and 4, all on this machine's 2 CPUs beside the one redis-server; each configuration",
        "once. \"Redis µs/task\" is redis-server's CPU time over the drain divided by the tasks; 1 s divided by it is",
        "the rate at which Redis's single thread would be busy all the time, whatever the workers did.",
        "",
        "![drain by nodes and concurrency](img/bench-scaling.png)",
        "",
        "| nodes \\ `-c` | " + " | ".join(str(c) for c in scaling.CONCURRENCY) + " |",
        "|---|" + "--:|" * len(scaling.CONCURRENCY),
    ]
    for nodes in scaling.NODES:
        lines.append(f"| {nodes} | " + " | ".join(
            f"{figures[(nodes, c)]['rate']:,.0f} ({figures[(nodes, c)]['redis_us']:.1f} µs)"
            for c in scaling.CONCURRENCY) + " |")
    lines += [
        "",
        "Cells: tasks/s (redis-server's CPU µs per task). "
        f"The fastest: {best_key[0]} node(s) × `-c {best_key[1]}`, {best['rate']:,.0f} tasks/s, "
        f"at which redis-server used {best['rate'] * best['redis_us'] / 1e4:.0f}% of a CPU.",
        f"Redis commands per task: {calls:.1f} (INFO commandstats; the claim script's own commands included).",
        f"Redis's one thread would saturate at about {ceiling:,.0f} tasks/s (the median µs/task of the configurations).",
        "`redis-benchmark -P 32` on the same server: " + ", ".join(
            f"{name} {rate:,.0f}/s" for name, rate in bench.items()) +
        f": at {calls:.1f} commands per task, plain commands alone would allow about "
        f"{statistics.median(bench.values()) / calls:,.0f} tasks/s.",
        "On 2 CPUs the workers and Redis share the machine: past 2 busy processes every configuration competes",
        "with redis-server for the same CPUs, so more nodes or pool processes cannot add throughput here.",
        "",
    ]
    return lines


def memory_lines(extra):
    series = extra["memory"]
    first, last = series[0], series[-1]
    lines = [
        f"## Memory over {last[0]:,} tasks",
        "",
        "One node `-c 2` (master, node and both pool processes, `/proc/PID/smaps_rollup`), results stored in their",
        "own Redis database that is flushed between chunks; read after a warm-up and after every chunk.",
        "",
        "![memory by tasks run](img/bench-memory.png)",
        "",
        f"RSS {first[1] / 1e6:.1f} MB after {first[0]:,} tasks, {last[1] / 1e6:.1f} MB after {last[0]:,} "
        f"({(last[1] - first[1]) / 1e6:+.2f} MB); PSS {first[2] / 1e6:.1f} → {last[2] / 1e6:.1f} MB.",
        "",
    ]
    return lines


AMQP_HEADING = "## RabbitMQ: ccmulti vs Celery over py-amqp"


def amqp_lines(args, results, started, finished, load_before):
    """The RabbitMQ section: its own run details, since `--only amqp` rewrites it alone."""
    rows = table_rows(results, AMQP_ROWS)
    drain = next(r for key, *_, r in rows if key == "amqp_drain")
    ver = args.versions
    lines = [
        AMQP_HEADING,
        "",
        f"- run: {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC, {args.rounds} round(s), Celery and ccmulti "
        f"alternately; load average before: {load_before}"
        + ("; **the machine was shared with other work (builds, tests)**: the ratios are what counts" if args.shared
           else ""),
        f"- versions: ccmulti {ver['ccmulti']}; Celery {ver['celery']} over py-amqp {ver['amqp']}, kombu "
        f"{ver['kombu']}; RabbitMQ {ver['rabbitmq']}; results in redis-server {ver['redis']}",
        f"- counts: drain {args.tasks} tasks for ccmulti, {args.celery_tasks} for Celery; {args.latency_calls} single "
        "calls each",
        "",
        "| metric | unit | Celery | ccmulti | ccmulti's advantage |",
        "|---|---|--:|--:|--:|",
    ]
    for key, label, unit, scale, fmt, higher, theirs, ours, r in rows:
        lines.append(f"| {label} | {unit} | {cell(theirs, scale, fmt)} | {cell(ours, scale, fmt)} | {ratio_text(r)} |")
    verdict = "met" if drain is not None and drain >= AMQP_TARGET else "**not met**"
    lines += [
        "",
        f"Target (issue 17): a drain at least {AMQP_TARGET}× Celery's: {verdict} ({ratio_text(drain)} in this run).",
        "",
        "- **RabbitMQ drain**: one private rabbitmq-server (Debian's, default configuration) and a redis-server for",
        "  the results. N tasks published with `ccmulti call --count N --broker amqp://…` (one connection, every",
        "  message sent before it waits for the publisher confirms; the queue durable and the messages persistent,",
        "  as kombu declares and sends them) before the worker starts: one `ccmulti` node (`--result-backend",
        "  redis://…`) or one `celery worker` (`backend=redis://…`), both `-c 2` prefork, late acks, prefetch",
        "  multiplier 4 (`basic.qos` 8; a ccmulti node asks for 8 times that while it holds only tasks known to be",
        "  quick, as it claims 8 times as many on Redis: docs/amqp.md), heartbeats, mingle and gossip off, log level",
        "  WARNING; tasks/s from the first to the last result's `date_done`, every result checked. RabbitMQ's CPU",
        "  per task is beam.smp's CPU time from the worker's start to the last result (start-up included), over N.",
        "- **round trip**: the worker up and idle, single calls one at a time from a Python Celery client (py-amqp",
        "  to RabbitMQ, the result read from Redis, woken by its PUBLISH): `send_task(...).get()`, after 5",
        "  unmeasured calls.",
        "",
    ]
    profile = ROOT / "bench" / "profile-amqp.md"
    if profile.exists():
        lines += [profile.read_text().rstrip(), ""]
    return lines


def splice_section(path, heading, lines):
    """Replaces the section `heading` of the report at `path` (up to the next `## `) with `lines`; a report
    without it gets it before its scaling section (or at the end)."""
    text = path.read_text() if path.exists() else ""
    new = "\n".join(lines).rstrip() + "\n\n"
    start = text.find(heading + "\n")
    if start < 0:
        at = text.find("\n## Scaling")
        at = len(text) if at < 0 else at + 1
        path.write_text(text[:at] + new + text[at:])
        return
    end = text.find("\n## ", start + len(heading))
    path.write_text(text[:start] + new + (text[end + 1:] if end >= 0 else ""))


def write_report(args, results, extra, rows, started, finished, load_before):
    info, _ = machine()
    ver = args.versions
    lines = [
        "# Benchmarks: ccmulti vs Celery, side by side",
        "",
        "Generated by `bench/run` (do not edit by hand: run it again; the profile section comes from",
        "`bench/profile.md`). Every figure is the median of the rounds, with min–max in brackets; **the ratio of",
        "the medians is the result**: absolute figures move with the machine and whatever else runs on it.",
        "",
        f"- machine: {info}; load average before the run: {load_before}",
        f"- date: {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC; {args.rounds} round(s), Celery and ccmulti "
        "alternately (the order swaps every round)",
        f"- versions: ccmulti {ver['ccmulti']}; Celery {ver['celery']}; redis-server {ver['redis']}; "
        f"Python {ver['python']}",
        f"- counts: Redis drain and end to end {args.tasks} tasks for ccmulti, {args.celery_tasks} for Celery "
        f"(it is about 20 times slower: the same count would take minutes); {args.latency_calls} single calls; "
        f"idle over {args.idle} s; SQLite {args.tasks} tasks",
        "",
        "![ccmulti's advantage per metric](img/bench-ratios.png)",
        "",
        "| metric | unit | Celery | ccmulti | ccmulti's advantage |",
        "|---|---|--:|--:|--:|",
    ]
    for key, label, unit, scale, fmt, higher, theirs, ours, r in rows:
        lines.append(f"| {label} | {unit} | {cell(theirs, scale, fmt)} | {cell(ours, scale, fmt)} | {ratio_text(r)} |")
    lines += [
        "",
        "![tasks per second](img/bench-throughput.png)",
        "",
        "## What each row measures",
        "",
        "- **start, restart, stopwait**: `ccmulti start w1 w2 w3 -c 2 --broker redis://…` (returns when every",
        "  node is ready), `ccmulti restart` (rolling: each replacement ready before the next), `ccmulti",
        "  stopwait`; against `celery multi start|restart|stopwait w1 w2 w3 -A benchapp -c 2 --pool=prefork",
        "  --without-mingle --without-gossip --without-heartbeat`, where ready is each node's log saying",
        "  `ready.` (celery multi returns before that). Wall clock, timed by the harness.",
        "- **memory**: RSS and PSS summed over every process of the group (ccmulti: its master, the nodes and",
        "  their pool processes; Celery: each node and its pool processes), from `/proc/PID/smaps_rollup`, half",
        "  a second after all are ready. PSS divides shared pages among the processes sharing them: it is what",
        "  the group really costs the machine.",
        "- **idle CPU and wakeups**: CPU time (`/proc/PID/task/TID/schedstat`) and context switches (voluntary +",
        "  involuntary, `/proc/PID/task/TID/status`) of every thread of the group, over the idle interval.",
        "- **Redis drain**: N tasks published with `ccmulti call --count N` (one connection, pipelined) before",
        "  the worker starts: one `ccmulti` node or one `celery worker`, both `-c 2` prefork, late acks, results",
        "  on, prefetch multiplier 4, log level WARNING; tasks/s from the first to the last result's `date_done`.",
        "- **Redis end to end**: the worker up and idle, N tasks published the same way; tasks/s from the start",
        "  of the publish until the queue and the `unacked` hash are empty (every result is stored before its",
        "  ack); every result is checked. The publisher's own rate is shown below it: when the two are close,",
        "  the publisher is the limit, not the worker.",
        "- **round trip**: single calls one at a time from a Python Celery client, `send_task(...).get()`.",
        "- **embedded SQLite**: `ccmulti call --count N` into the embedded broker (one transaction), then one",
        "  node `-c 2` drains it (from the first to the last result's `date_done`). Celery has no embedded",
        "  broker: its Redis drain is the reference.",
        "- **round trip at 50% load**: single calls (50 a second) while a paced publisher moves tasks into the",
        f"  same queue at half the rate that side drained at in the same round, for {args.load_seconds:g} s",
        "  (each side at half its own capacity: the same relative load). **At Celery's 50% load**: ccmulti under",
        "  the rate Celery was given, the same traffic for both (ccmulti then runs at a few percent of its capacity).",
        "- **one idle node**: `ccmulti start w1 -c 2` (master, node, 2 pool processes) against one",
        "  `celery worker -c 2` (main process, 2 pool processes), after start-up.",
        "",
    ]
    lines += amqp_lines(args, results, started, finished, load_before)
    lines += scaling_lines(args, extra)
    lines += memory_lines(extra)
    profile = ROOT / "bench" / "profile.md"
    if profile.exists():
        lines += [profile.read_text().rstrip(), ""]
    args.out.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description="ccmulti vs Celery: writes docs/benchmarks.md and docs/img/*.png")
    parser.add_argument("--ccmulti", default=str(ROOT / "build/release/src/ccmulti"))
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30000, help="ccmulti's Redis and SQLite task count")
    parser.add_argument("--celery-tasks", type=int, default=3000, help="Celery's Redis task count")
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measured")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="seconds of each 50%% load run")
    parser.add_argument("--memory-tasks", type=int, default=1000000, help="tasks of the memory growth run")
    parser.add_argument("--out", type=pathlib.Path, help="default: docs/benchmarks.md (--quick: build/bench-quick/)")
    parser.add_argument("--img", type=pathlib.Path, help="default: docs/img (--quick: build/bench-quick/img)")
    parser.add_argument("--only", choices=["amqp"],
                        help="amqp: only the RabbitMQ rounds; rewrites only that section of the report")
    parser.add_argument("--shared", action="store_true",
                        help="say in the report that the machine was running other work meanwhile")
    args = parser.parse_args()
    if args.quick:  # never over the committed report
        args.rounds, args.tasks, args.celery_tasks, args.latency_calls, args.idle = 1, 2000, 300, 30, 1.0
        args.load_seconds, args.memory_tasks = 2.0, 20000
        quick = ROOT / "build" / "bench-quick"
        quick.mkdir(parents=True, exist_ok=True)
        args.out = args.out or quick / "benchmarks.md"
        args.img = args.img or quick / "img"
    args.out = args.out or ROOT / "docs" / "benchmarks.md"
    args.img = args.img or ROOT / "docs" / "img"
    args.ccmulti = os.path.abspath(args.ccmulti)
    if not os.access(args.ccmulti, os.X_OK):
        sys.exit(f"bench: no ccmulti binary at {args.ccmulti}: run bench/run, which builds it")

    _, load_before = machine()
    args.versions = versions(args.ccmulti)
    started = datetime.datetime.now(datetime.timezone.utc)
    results, extra = run_rounds(args)
    finished = datetime.datetime.now(datetime.timezone.utc)
    if args.only == "amqp":
        lines = amqp_lines(args, results, started, finished, load_before)
        splice_section(args.out, AMQP_HEADING, lines)
        print("\n".join(lines))
        print(f"bench: rewrote the RabbitMQ section of {args.out}")
        return
    rows = table_rows(results)
    plots(rows, results, args.img)
    scaling.plot_scaling(extra["scaling"], extra["redis_benchmark"], args.img)
    scaling.plot_memory(extra["memory"], args.img)
    write_report(args, results, extra, rows, started, finished, load_before)
    print(args.out.read_text().split("\n## ")[0])
    print(f"bench: wrote {args.out} and {args.img}/bench-*.png")


if __name__ == "__main__":
    main()
