"""Result backends of native nodes, as a Python Celery deployment sets them: `backend='redis://…/1'` while the
broker is db 0 (or another server, or ccmulti's embedded SQLite broker). A real Python Celery client (Debian's
python3-celery) reads what real ccmulti nodes stored; `ccmulti call --wait` and `ccmulti result` read from the
same backend. The three ways to set it (--result-backend, CCMULTI_RESULT_BACKEND, [results] url) and their
precedence; a backend the nodes cannot use fails `start` and `config check` with exit 2, not the node. A Celery
node (-A) gets --result-backend before `worker`, where `celery` takes it.

Every wait polls with a deadline (conftest.wait_for) or blocks on a result with a timeout."""
import json
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import PYTHON, Env, Redis, release_app, wait_for

HOST = socket.gethostname()
CELERYAPP = pathlib.Path(__file__).parent / "celeryapp"

from celery import Celery  # noqa: E402  (Debian's python3-celery)


def db(server, number):
    return server.url[: -len("/0")] + f"/{number}"


def meta_in(server, number, task_id):
    out = subprocess.run(["redis-cli", "-p", str(server.port), "-n", str(number), "GET", f"celery-task-meta-{task_id}"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    return json.loads(out) if out else None


def client(broker, backend):
    app = Celery("client", broker=broker, backend=backend)
    app.conf.update(broker_connection_retry_on_startup=True)
    return app


@pytest.fixture
def redis():
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-rb-redis-"))
    server = Redis(root)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sup():
    """A private ccmulti env; whatever it started is stopped (killed if need be) afterwards."""
    env = Env(pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-rb-")))
    env.env.pop("CCMULTI_RESULT_BACKEND", None)
    env.env.pop("CCMULTI_BROKER_URL", None)
    yield env
    if env.run("stop", "--wait", "--timeout", "15", timeout=30).returncode != 0:
        env.run("kill", timeout=30)
    shutil.rmtree(env.root, ignore_errors=True)


def start(sup, *args):
    return sup.run("start", "w1", "-c", "2", *args, check=True, timeout=60)


def python_round_trip(broker, backend, server, backend_db):
    """A Python client sends ccmulti.echo through `broker` and reads the result from `backend`."""
    app = client(broker, backend)
    try:
        sent = app.send_task("ccmulti.echo", args=[2, 3], kwargs={"y": 40})
        assert sent.get(timeout=20) == {"args": [2, 3], "kwargs": {"y": 40}}
        stored = meta_in(server, backend_db, sent.id)
        assert stored and stored["status"] == "SUCCESS" and stored["worker"] == f"w1@{HOST}"
        return sent.id
    finally:
        release_app(app)


# --- Redis broker -----------------------------------------------------------------------------------------


def test_redis_broker_with_results_on_another_db(sup, redis):
    broker, backend = db(redis, 0), db(redis, 1)
    start(sup, "--broker", broker, "--result-backend", backend)
    task_id = python_round_trip(broker, backend, redis, 1)
    assert meta_in(redis, 0, task_id) is None, "nothing lands in the broker's db"
    wait_for(lambda: redis.cli("HLEN", "unacked") == "0", timeout=10, what="the message to be acked")
    # The CLI reads the same backend.
    out = sup.run("result", task_id, "--json", "--broker", broker, "--result-backend", backend, check=True)
    assert json.loads(out.stdout)["status"] == "SUCCESS"
    call = sup.run("call", "ccmulti.echo", '["hi"]', "--broker", broker, "--result-backend", backend, "--wait",
                   "--timeout", "20", check=True, timeout=30)
    assert call.stdout.strip() == '"hi"'
    assert "results redis://127.0.0.1:%d/1" % redis.port in (sup.log_dir / "w1.log").read_text()


def test_redis_broker_with_results_on_another_server(sup, redis):
    root = pathlib.Path(tempfile.mkdtemp(prefix="ccmulti-rb-redis2-"))
    other = Redis(root)
    try:
        broker, backend = db(redis, 0), db(other, 3)
        start(sup, "--broker", broker, "--result-backend", backend)
        task_id = python_round_trip(broker, backend, other, 3)
        assert meta_in(redis, 0, task_id) is None
        wait_for(lambda: redis.cli("HLEN", "unacked") == "0", timeout=10, what="the message to be acked")
    finally:
        sup.run("stop", "--wait", "--timeout", "15", timeout=30)
        other.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- SQLite broker ----------------------------------------------------------------------------------------


def test_sqlite_broker_with_a_redis_backend_from_the_environment(sup, redis):
    backend = db(redis, 1)
    sup.env["CCMULTI_RESULT_BACKEND"] = backend
    start(sup)  # the embedded broker in the state dir
    task_id = sup.run("call", "ccmulti.echo", '["from sqlite"]', check=True).stdout.strip()
    app = client(db(redis, 0), backend)  # the broker is not used: the client only reads the result
    try:
        assert app.AsyncResult(task_id).get(timeout=20) == "from sqlite"
    finally:
        release_app(app)
    assert meta_in(redis, 1, task_id)["status"] == "SUCCESS"
    out = sup.run("result", task_id, "--json", check=True)
    assert json.loads(out.stdout)["result"] == "from sqlite"
    call = sup.run("call", "ccmulti.echo", "[7]", "--wait", "--timeout", "20", check=True, timeout=30)
    assert call.stdout.strip() == "7"
    # Without the variable, `result` reads the broker's own store, where nothing was stored.
    del sup.env["CCMULTI_RESULT_BACKEND"]
    assert json.loads(sup.run("result", task_id, "--json").stdout)["status"] == "UNKNOWN"


def test_sqlite_broker_with_a_redis_backend_from_the_config_file(sup, redis):
    (sup.root / "ccmulti.toml").write_text(f'[results]\nurl = "{db(redis, 2)}"\n')
    start(sup)
    task_id = sup.run("call", "ccmulti.echo", '["configured"]', check=True).stdout.strip()
    out = sup.run("result", task_id, "--json", "--wait", "--timeout", "20", check=True, timeout=30)
    assert json.loads(out.stdout)["result"] == "configured"
    assert meta_in(redis, 2, task_id)["status"] == "SUCCESS"


def test_command_line_over_environment_over_file(sup, redis):
    (sup.root / "ccmulti.toml").write_text(f'[results]\nurl = "{db(redis, 2)}"\n')
    sup.env["CCMULTI_RESULT_BACKEND"] = db(redis, 3)
    start(sup, "--result-backend", db(redis, 4))
    task_id = sup.run("call", "ccmulti.echo", "[1]", check=True).stdout.strip()
    wait_for(lambda: meta_in(redis, 4, task_id), timeout=20, what="the result in db 4")
    assert meta_in(redis, 3, task_id) is None and meta_in(redis, 2, task_id) is None
    # A node started without the option uses the environment's, above the file's.
    sup.run("start", "w2", "-c", "1", "-Q", "env", check=True, timeout=60)
    task_id = sup.run("call", "ccmulti.echo", "[2]", "-Q", "env", check=True).stdout.strip()
    out = sup.run("result", task_id, "--json", "--wait", "--timeout", "20", check=True, timeout=30)
    assert json.loads(out.stdout)["result"] == 2
    assert meta_in(redis, 3, task_id)["status"] == "SUCCESS" and meta_in(redis, 2, task_id) is None


# --- errors at start and config check, not at the node ------------------------------------------------------


@pytest.mark.parametrize("url", ["rpc://", "amqp://guest@localhost//", "redis://127.0.0.1:port/1", "rediss://h/1"])
def test_a_backend_the_nodes_cannot_use_fails_start(sup, url):
    out = sup.run("start", "w1", "--result-backend", url, timeout=30)
    assert out.returncode == 2, out
    [line] = out.stderr.splitlines()
    assert line.startswith("ccmulti: error: ") and ("rpc" in line or "amqp" in line or "port" in line or "TLS" in line)
    assert not (sup.run_dir / "w1.pid").exists()


def test_unsupported_backend_from_environment_or_file_fails_start_and_config_check(sup):
    sup.env["CCMULTI_RESULT_BACKEND"] = "rpc://"  # with the embedded broker: rpc:// needs an AMQP one
    for command in (["start", "w1"], ["config", "check"]):
        out = sup.run(*command, timeout=30)
        assert out.returncode == 2, out
        assert "result backend rpc:// sends results over an AMQP broker (amqp://…), not sqlite://" in out.stderr, out
        if command[0] == "start":
            assert len(out.stderr.splitlines()) == 1, out
    assert "$CCMULTI_RESULT_BACKEND: result backend rpc://" in out.stderr, out  # config check names the origin
    del sup.env["CCMULTI_RESULT_BACKEND"]
    (sup.root / "ccmulti.toml").write_text('[results]\nurl = "redis://127.0.0.1:port/1"\n')
    out = sup.run("config", "check")
    assert out.returncode == 2 and "ccmulti.toml:2" in out.stderr and "port" in out.stderr, out
    out = sup.run("start", "w1", timeout=30)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out
    assert not (sup.run_dir / "w1.pid").exists()


# --- Celery nodes (-A) --------------------------------------------------------------------------------------


def test_celery_node_takes_the_result_backend_before_worker(sup, redis):
    broker, backend = db(redis, 0), db(redis, 1)
    sup.env.update(CCMULTI_TEST_BROKER=broker, CCMULTI_PYTHON=PYTHON, PYTHONDONTWRITEBYTECODE="1")
    args = ["w1", "-A", "proj", "-c", "1", "-l", "info", "--result-backend", backend, "--workdir", str(CELERYAPP)]
    [argv] = [node["argv"] for node in json.loads(sup.run("show", "--json", *args, check=True).stdout)]
    assert argv[:3] == [PYTHON, "-m", "celery"]
    assert argv.index(f"--result-backend={backend}") < argv.index("worker")
    sup.run("start", *args, "--start-secs", "60", check=True, timeout=90)
    app = client(broker, backend)  # the app's own backend is db 0: only the option sends results to db 1
    try:
        sent = app.send_task("proj.add", args=[2, 3])
        assert sent.get(timeout=30) == 5
    finally:
        release_app(app)
    assert meta_in(redis, 1, sent.id)["status"] == "SUCCESS" and meta_in(redis, 0, sent.id) is None
