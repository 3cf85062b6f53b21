"""Runs many `celery multi` command lines in one interpreter, through Celery's own MultiTool — the object
`python3 -m celery multi` hands its arguments to — so the parity test pays Python's and Celery's start-up once
instead of hundreds of times. Input: a JSON list of argument lists on stdin. Output: a JSON list of
{"rc", "stdout"}. test_celery_parity.py checks that this driver and the real command agree."""
import io
import json
import sys

from celery.bin.multi import MultiTool


def run(args):
    out = io.StringIO()
    try:
        rc = MultiTool(quiet=False, no_color=True, stdout=out, stderr=io.StringIO()).execute_from_commandline(
            ["multi", *args]
        )
    except Exception as exc:  # Celery raises on bad input; report it like a failed command
        return {"rc": 1, "stdout": out.getvalue(), "error": f"{type(exc).__name__}: {exc}"}
    return {"rc": rc or 0, "stdout": out.getvalue()}


def main():
    results = [run(args) for args in json.load(sys.stdin)]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
