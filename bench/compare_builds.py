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
from lib import Workspace, close_celery_app, result_metas, check_results, date_done_span  # noqa: E402


def redis_drain(ws, app, tasks):
    worker = throughput.CcmultiWorker(ws)
    ids, _ = throughput.publish(ws, worker.queue, tasks)
    worker.start()
    try:
        throughput.wait_drained(ws, worker.queue, timeout=max(120, tasks / 100))
    finally:
        worker.stop()
    metas = result_metas(app.backend.client, ids)
    check_results(metas, throughput.ECHO_ARG)
    first, last = date_done_span(metas)
    app.backend.client.delete(*[f"celery-task-meta-{i}" for i in ids])
    return (len(ids) - 1) / (last - first)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30000)
    args = parser.parse_args()
    from celery import Celery
    rates = {b: {"redis": [], "sqlite": []} for b in args.binaries}
    with Workspace(os.path.abspath(args.binaries[0])) as ws:
        app = Celery("bench", broker=ws.url, backend=ws.url)
        try:
            for n in range(args.rounds):
                order = args.binaries if n % 2 == 0 else args.binaries[::-1]
                for binary in order:
                    ws.ccmulti_bin = os.path.abspath(binary)
                    rates[binary]["redis"].append(redis_drain(ws, app, args.tasks))
                    rates[binary]["sqlite"].append(throughput.measure_sqlite(ws, args.tasks)["sqlite_drain"])
                    print(f"round {n + 1}: {binary}: redis {rates[binary]['redis'][-1]:.0f}/s, "
                          f"sqlite {rates[binary]['sqlite'][-1]:.0f}/s", flush=True)
        finally:
            close_celery_app(app)
    print(f"\n{args.tasks} tasks, {args.rounds} rounds; tasks/s median (min–max)")
    print("| binary | Redis drain | SQLite drain |\n|---|--:|--:|")
    for binary, figures in rates.items():
        cells = [f"{statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f})" for v in figures.values()]
        print(f"| {binary} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
