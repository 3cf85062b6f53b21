#!/usr/bin/python3
"""What Celery events cost a native node: drain throughput of one node (`-c 2`, Redis, ccmulti.echo, late acks,
results on) with task events off and on (-E), in alternating rounds, while a monitor listens (a PSUBSCRIBE to
/0.celeryev/*, as `celery events` and Flower do, so Redis really delivers every event). The target is a cost of
at most 10%: on/off ≥ 0.90.

Not a test (ctest and CI never run it). Quick: about 20 s with the defaults.

    /usr/bin/python3 bench/events.py [--tasks 20000] [--rounds 3] [--ccmulti build/release/src/ccmulti]

The drain rate is the node's own: N tasks queued (`ccmulti call --count N`) before it starts, from its first to
its last result's date_done, the same measure as bench/throughput.py's drain."""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

import redis as redis_client

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from lib import (ROOT, Workspace, check_results, cpu_and_switches, date_done_span, process_tree,  # noqa: E402
                 result_metas, wait_for)

QUEUE = "bench_events"


def publishes(client):
    return client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)


def drain(ws, tasks, events_on):
    """The node's drain rate; CPU µs per task of the node (every process) and of redis-server; and how many
    PUBLISHes Redis took meanwhile (results' and events')."""
    client = redis_client.Redis(port=ws.port)
    ids = ws.ccmulti("call", "ccmulti.echo", "[1]", "-Q", QUEUE, "--count", tasks, "--broker", ws.url).stdout.split()
    before = publishes(client)
    redis_cpu = cpu_and_switches([ws.redis.pid])[0]
    ws.ccmulti("start", "w1", "-c", 2, "--broker", ws.url, "-Q", QUEUE, "-l", "WARNING", *(["-E"] if events_on else []))
    try:
        wait_for(lambda: ws.redis_cli("EVAL", "return redis.call('LLEN', KEYS[1]) + redis.call('HLEN', KEYS[2])", 2,
                                      QUEUE, "unacked") == "0", max(120, tasks / 100), "the queue to drain", 0.01)
        metas = result_metas(client, ids)
        check_results(metas, 1)
        first, last = date_done_span(metas)
        shim = int((ws.root / "run" / "w1.pid").read_text())
        node_cpu = cpu_and_switches(process_tree([shim]))[0]
        redis_cpu = cpu_and_switches([ws.redis.pid])[0] - redis_cpu
        return ((len(ids) - 1) / (last - first), node_cpu / tasks * 1e6, redis_cpu / tasks * 1e6,
                publishes(client) - before)
    finally:
        ws.ccmulti("stopwait")
        client.close()
        ws.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ccmulti", default=str(ROOT / "build/release/src/ccmulti"))
    args = parser.parse_args()
    rates, cpus = {False: [], True: []}, {False: [], True: []}
    with Workspace(pathlib.Path(args.ccmulti).resolve()) as ws:
        monitor = subprocess.Popen(["redis-cli", "-p", str(ws.port), "PSUBSCRIBE", "/0.celeryev/*"],
                                   stdout=subprocess.DEVNULL)
        try:
            wait_for(lambda: ws.redis_cli("PUBSUB", "NUMPAT") == "1", 10, "the monitor to subscribe", 0.02)
            for round_ in range(args.rounds):
                for events_on in ((False, True) if round_ % 2 == 0 else (True, False)):
                    rate, node_us, redis_us, published = drain(ws, args.tasks, events_on)
                    rates[events_on].append(rate)
                    cpus[events_on].append(node_us + redis_us)
                    print(f"round {round_ + 1}, events {'on ' if events_on else 'off'}: {rate:,.0f} tasks/s, CPU per "
                          f"task {node_us:.0f} µs node + {redis_us:.0f} µs redis ({published:,} PUBLISHes: results "
                          "and events)", flush=True)
        finally:
            monitor.terminate()
            monitor.wait()
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    cpu_off, cpu_on = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"\n| task events | drain, tasks/s | CPU µs per task (node + redis) |\n|---|---|---|\n"
          f"| off | {off:,.0f} | {cpu_off:.0f} |\n| on (-E) | {on:,.0f} | {cpu_on:.0f} |\n\n"
          f"medians of {args.rounds} rounds; throughput on/off = {on / off:.2f} (target ≥ 0.90), "
          f"CPU per task on/off = {cpu_on / cpu_off:.2f}")
    print(json.dumps({"off": rates[False], "on": rates[True], "ratio": on / off,
                      "cpu_off": cpus[False], "cpu_on": cpus[True]}))


if __name__ == "__main__":
    main()
