"""Shared fixtures for integration tests: the ccmulti binary, private directories, and helpers that poll
with a deadline instead of sleeping."""
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

CCMULTI = os.environ.get("CCMULTI_BIN", "")
PYTHON = os.environ.get("CCMULTI_PYTHON", "/usr/bin/python3")


def pytest_configure(config):
    if not CCMULTI or not os.access(CCMULTI, os.X_OK):
        raise pytest.UsageError("set CCMULTI_BIN to the ccmulti binary (ctest does this)")


class Env:
    """A private run/log/state dir set for one test, and a way to run ccmulti in it."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.run_dir = root / "run"
        self.log_dir = root / "log"
        self.state_dir = root / "state"
        self.env = dict(os.environ)
        self.env.update(
            CCMULTI_RUN_DIR=str(self.run_dir),
            CCMULTI_LOG_DIR=str(self.log_dir),
            CCMULTI_STATE_DIR=str(self.state_dir),
            NO_COLOR="1",
        )
        self.env.pop("CCMULTI_CONFIG", None)

    def run(self, *args, check=False, timeout=60, input=None, **kwargs):
        proc = subprocess.run(
            [CCMULTI, *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
            input=input,
            **kwargs,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ccmulti {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def env():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-it-"))
    try:
        yield Env(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
