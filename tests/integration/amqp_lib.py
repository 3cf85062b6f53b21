"""What the RabbitMQ tests (test_amqp.py, test_amqp_faults.py) share besides conftest's fixtures: a Python Celery
client, ccmulti nodes in a private directory set with a Redis result backend, and what RabbitMQ and Redis hold."""
import json
import pathlib
import socket
import tempfile

import amqp  # Debian's python3-amqp (py-amqp)
from celery import Celery  # Debian's python3-celery

from conftest import Env

CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"
HOST = socket.gethostname()


def make_app(broker, backend):
    app = Celery("proj", broker=broker, backend=backend)
    app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)
    return app


def node_env(redis):
    env = Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-amqp-nodes-")))
    env.env["CCMULTI_RESULT_BACKEND"] = redis.url
    return env


def meta(redis, task_id):
    text = redis.cli("GET", f"celery-task-meta-{task_id}")
    return json.loads(text) if text else None


def results(redis, ids):
    """The stored result (meta) of each of `ids`, None where there is none yet."""
    values = redis.cli("MGET", *[f"celery-task-meta-{i}" for i in ids]).splitlines()
    if len(values) != len(ids):
        return [None] * len(ids)
    return [json.loads(v) if v else None for v in values]


def queue_depths(rabbit):
    """Ready + unacked messages by queue, as RabbitMQ counts them (rabbitmqctl: about half a second)."""
    depths = {}
    for line in rabbit.ctl("list_queues", "-q", "--no-table-headers", "name", "messages").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def queue_depth(rabbit, queue):
    return queue_depths(rabbit).get(queue)


def ready_and_consumers(rabbit, queue):
    """(ready messages, consumers) of `queue`, from a passive queue.declare over py-amqp: milliseconds, where
    rabbitmqctl boots an Erlang VM (seconds on a loaded machine). Unacked messages are not counted."""
    with amqp.Connection(host=f"127.0.0.1:{rabbit.port}", userid="guest", password="guest",
                         connect_timeout=5) as connection:
        connection.connect()
        _, ready, consumers = connection.channel().queue_declare(queue, passive=True)
        return ready, consumers
