#!/usr/bin/python3
"""Before/after of a change: the Redis drain and the embedded SQLite drain of one node at -c 2 (as bench/run
measures them), for two or more ccmulti binaries, alternately in rounds on one private Redis, so that every
binary meets the same machine. Not a test.

    /usr/bin/python3 bench/compare_builds.py /tmp/ccmulti-before build/release/src/ccmulti [--rounds 3 --tasks 30000]
"""
import argparse
import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import throughput  # noqa: E402
from lib import (Workspace, close_celery_app, result_metas, check_results, date_done_span,  # noqa: E402
                 process_tree, cpu_and_switches)


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def node_cpu(worker):
    """CPU seconds so far of the node's loop (ccmulti-worker) and of its pool processes (ccmulti-pool)."""
    master = int((worker.dirs[1] / "master.pid").read_text().split()[0])
    pids = process_tree([master])
    loop = cpu_and_switches([p for p in pids if comm(p) == "ccmulti-worker"])[0]
    pool = cpu_and_switches([p for p in pids if comm(p) == "ccmulti-pool"])[0]
    return loop, pool


def redis_drain(ws, app, tasks):
    worker = throughput.CcmultiWorker(ws)
    ids, _ = throughput.publish(ws, worker.queue, tasks)
    redis_before = cpu_and_switches([ws.redis.pid])[0]
    worker.start()
    try:
        throughput.wait_drained(ws, worker.queue, timeout=max(120, tasks / 100))
        loop, pool = node_cpu(worker)  # from its start: the start-up is a few ms of it
        redis = cpu_and_switches([ws.redis.pid])[0] - redis_before
    finally:
        worker.stop()
    metas = result_metas(app.backend.client, ids)
    check_results(metas, throughput.ECHO_ARG)
    first, last = date_done_span(metas)
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])
    per_task = [seconds * 1e6 / len(ids) for seconds in (loop, pool, redis)]
    return (len(ids) - 1) / (last - first), per_task


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30000)
    args = parser.parse_args()
    from celery import Celery
    rates = {b: {"redis": [], "sqlite": []} for b in args.binaries}
    cpu = {b: [] for b in args.binaries}  # per round: µs per task of the node's loop, its pool, redis-server
    with Workspace(os.path.abspath(args.binaries[0])) as ws:
        app = Celery("bench", broker=ws.url, backend=ws.url)
        try:
            for n in range(args.rounds):
                order = args.binaries if n % 2 == 0 else args.binaries[::-1]
                for binary in order:
                    ws.ccmulti_bin = os.path.abspath(binary)
                    rate, per_task = redis_drain(ws, app, args.tasks)
                    rates[binary]["redis"].append(rate)
                    cpu[binary].append(per_task)
                    rates[binary]["sqlite"].append(throughput.measure_sqlite(ws, args.tasks)["sqlite_drain"])
                    print(f"round {n + 1}: {binary}: redis {rates[binary]['redis'][-1]:.0f}/s, "
                          f"sqlite {rates[binary]['sqlite'][-1]:.0f}/s; Redis drain CPU µs/task: node loop "
                          f"{per_task[0]:.1f}, pool {per_task[1]:.1f}, redis-server {per_task[2]:.1f}", flush=True)
        finally:
            close_celery_app(app)
    print(f"\n{args.tasks} tasks, {args.rounds} rounds; tasks/s median (min–max)")
    print("CPU µs per task of the Redis drain (node loop + pool processes + redis-server), median (min–max)")
    print("| binary | Redis drain | SQLite drain | Redis CPU µs/task | loop | pool | redis-server |\n"
          "|---|--:|--:|--:|--:|--:|--:|")
    for binary, figures in rates.items():
        cells = [f"{statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f})" for v in figures.values()]
        totals = [sum(r) for r in cpu[binary]]
        cells.append(f"{statistics.median(totals):.1f} ({min(totals):.1f}–{max(totals):.1f})")
        cells += [f"{statistics.median(r[i] for r in cpu[binary]):.1f}" for i in range(3)]
        print(f"| {binary} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
