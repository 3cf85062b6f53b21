"""A tiny Celery application for interop tests. The broker and result backend come from the environment
(CCMULTI_TEST_BROKER, and CCMULTI_TEST_BACKEND when results go elsewhere), so a test points it at its own
servers."""
import os
import time

from celery import Celery

url = os.environ.get("CCMULTI_TEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("proj", broker=url, backend=os.environ.get("CCMULTI_TEST_BACKEND", url))
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="proj.add")
def add(x, y):
    return x + y


@app.task(name="proj.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="proj.fail")
def fail(message):
    raise ValueError(message)
