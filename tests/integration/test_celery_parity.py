"""Parity with the real thing: Debian's `python3 -m celery multi show|names|expand|get` and ccmulti must agree
on node names, per-node options and template expansions for every command line below. Only the program prefix
is normalised (Celery's `python3 -m celery ... worker --detach` and `--executable=`; ccmulti's `show --json` gives
the node's options as `worker_args`, beside the `argv` that `start` executes), and Celery's hard-coded default
pid/log directories are mapped to ccmulti's run and log dirs, which differ by design (docs/celery-compat.md)."""
import json
import os
import pathlib
import socket
import subprocess

import pytest

from conftest import CCMULTI, PYTHON

HOST = socket.gethostname()

# {T} is a private temporary directory, {H} this machine's host name.
CASES = [
    "3",
    "3 -c 2",
    "w1 w2 -Q high,low",
    "w1 w2 w3 -c 2 -c:w1 4",
    "w1 w2 -Q:w1,w2 high",
    "4 -c:2 8",
    "4 -Q:1-3 images",
    "3 -Q:1-3 images -c:2 8 --loglevel=DEBUG",
    "w1@%h w2@example.com",
    "a b -n example.org",
    "a b --hostname=example.org",
    "a b --prefix=pre- --suffix=sfx.example",
    "2 --range-prefix=worker",
    "w1 -c 1 -c 2 -c 3",
    "w1 w2 -A proj -- --foo bar",  # a Celery worker takes what follows --; a native node refuses --foo (exit 2)
    "w1 --logfile={T}/x/%n%I.log --pidfile={T}/x/%n.pid",
    "w1 -A proj -b redis://localhost:6379/0 -c 2",
    "w1 w2 --app=proj --result-backend=redis://x -l info",
    "w1 -l info -Ofair --without-gossip",
    "w1 w2 -c:w2@{H} 5",
    "3 -c:1,3 7",
    "3 --range-prefix=node -Q:2-3 q2",
    "w1 w2 -c:1 3",
    "w1.a w2.b -c 2",
    "x@a.b.c y@d.e --logfile={T}/%d/%n.log",
    "w1 --loglevel=INFO --concurrency=10 --max-tasks-per-child=100",
    "w1 w2 -Q:w1 a -Q:w2 b -Q c",
    "5 -c:1-2 1 -c:3-5 2",
    "w1 --statedb={T}/%n-%h.state",
    "w1 -p {T}/p/%n.pid -f {T}/f/%n.log",
    "w1 w2 --append=%n-tail",
    "w1 -Q:w1 high -Q:w1 low",
    "3 -n foo.example.com",
    "w1@%h.localdomain w2",
    "w1 -E -B -c 3 --autoscale=10,3",
    "2 -c:1-2 4 -c:2 9",
    "alpha beta gamma -Q:beta,gamma slow -c:gamma 1 --time-limit=300",
]

TEMPLATES = ["%n.pid", "%h", "%d", "%p-%N", "{T}/log/%n%I.log", "%n-%i"]


def sh(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


DRIVER = pathlib.Path(__file__).with_name("celery_multi_driver.py")


def celery_batch(arg_lists, tmp):
    """Runs each argument list through Celery's multi implementation; returns [(rc, stdout)]."""
    # HOME and cwd in the test dir so Celery reads no user configuration and creates its dirs there.
    env = dict(os.environ, HOME=str(tmp))
    proc = sh([PYTHON, str(DRIVER)], cwd=tmp, env=env, input=json.dumps(arg_lists))
    assert proc.returncode == 0, proc.stderr
    return [(r["rc"], r["stdout"]) for r in json.loads(proc.stdout)]


def ccmulti(args, env):
    return sh([CCMULTI, *args], env=env.env, cwd=env.root)


def normalise_celery(line, env):
    tokens = line.split()
    out, skipped = [], {"-m": 1, "celery": 1, "worker": 1, "--detach": 1}
    for i, token in enumerate(tokens):
        if i == 0 and token.startswith("/"):
            continue  # the python executable
        if skipped.get(token):
            skipped[token] -= 1
            continue
        if token.startswith("--executable="):
            continue
        token = token.replace("=/var/run/celery/", f"={env.run_dir}/").replace("=/var/log/celery/", f"={env.log_dir}/")
        out.append(token)
    return out


def case_args(case, env):
    return case.replace("{T}", str(env.root)).replace("{H}", HOST).split()


def check_case(args, env, answers):
    """`answers`: Celery's output for names, show, each template, and get of the last node, in that order."""
    (rc, names_out), (rc_show, show_out), *expands, (rc_get, get_out) = answers
    assert rc == 0 and rc_show == 0 and rc_get == 0
    celery_names = names_out.split()

    ours = ccmulti(["names", *args], env)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split() == celery_names

    celery_lines = [normalise_celery(line, env) for line in show_out.splitlines() if line.strip()]
    ours = ccmulti(["show", "--json", *args], env)
    assert ours.returncode == 0, ours.stderr
    assert [node["worker_args"] for node in json.loads(ours.stdout)] == celery_lines

    for template, (rc, theirs) in zip(TEMPLATES, expands):
        assert rc == 0
        ours = ccmulti(["expand", template.replace("{T}", str(env.root)), *args], env)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout.splitlines() == theirs.splitlines(), template

    ours = ccmulti(["get", "--json", celery_names[-1], *args], env)
    assert ours.returncode == 0, ours.stderr
    assert json.loads(ours.stdout)["worker_args"] == normalise_celery(get_out.strip(), env)


def test_parity(env):
    """Every case, with Celery's answers computed in one batch."""
    cases = [case_args(case, env) for case in CASES]
    names = celery_batch([["names", *args] for args in cases], env.root)
    requests = []
    for args, (_, names_out) in zip(cases, names):
        requests += [["names", *args], ["show", *args]]
        requests += [["expand", t.replace("{T}", str(env.root)), *args] for t in TEMPLATES]
        requests += [["get", names_out.split()[-1], *args]]
    answers = celery_batch(requests, env.root)
    per_case = len(TEMPLATES) + 3
    failures = []
    for i, (case, args) in enumerate(zip(CASES, cases)):
        try:
            check_case(args, env, answers[i * per_case:(i + 1) * per_case])
        except AssertionError as e:
            failures.append(f"{case}: {e}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("command", ["names", "show", "expand", "get"])
def test_driver_matches_the_real_command(command, env):
    """The in-process driver gives what `python3 -m celery multi` prints."""
    args = case_args("w1 w2 -c:w1 4 -Q:w1,w2 high --logfile={T}/%n%I.log", env)
    if command == "expand":
        args = ["%n-%h-%d", *args]
    elif command == "get":
        args = [f"w2@{HOST}", *args]
    real = sh([PYTHON, "-m", "celery", "multi", command, *args], cwd=env.root, env=dict(os.environ, HOME=str(env.root)))
    assert real.returncode == 0, real.stderr
    [(rc, driven)] = celery_batch([[command, *args]], env.root)
    assert rc == 0
    assert driven == real.stdout


def test_enough_cases():
    assert len(CASES) >= 30
