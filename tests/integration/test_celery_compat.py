"""ccmulti's intentional differences from `celery multi`, each listed in docs/celery-compat.md."""
import json
import socket

import pytest

HOST = socket.gethostname()


def test_long_option_with_space_separated_value(env):
    # Celery would read `x.log` as a second node name.
    out = env.run("show", "--json", "w1", "--logfile", "/tmp/%n.log", check=True)
    [node] = json.loads(out.stdout)
    assert node["logfile"] == "/tmp/w1.log"


def test_double_percent_is_a_literal_percent(env):
    out = env.run("expand", "100%%-%n", "w1", check=True)
    assert out.stdout == "100%-w1\n"


def test_unknown_template_is_one_line_error_naming_template_and_option(env):
    out = env.run("show", "w1", "--logfile=/tmp/%x.log")
    assert out.returncode == 2
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert "%x" in line and "/tmp/%x.log" in line and "--logfile" in line


def test_get_unknown_node_is_an_error(env):
    out = env.run("get", "nope", "w1", "w2")
    assert out.returncode == 2
    assert f"no such node 'nope'; nodes are: w1@{HOST} w2@{HOST}" in out.stderr


def test_get_accepts_short_name(env):
    out = env.run("get", "--json", "w2", "w1", "w2", check=True)
    assert json.loads(out.stdout)["name"] == f"w2@{HOST}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["3", "-c:5", "2"], "no node number 5 in -c:5 (there are 3 nodes)"),
        (["3", "-c:0", "2"], "node numbers start at 1 in -c:0"),
        (["0"], "node count must be between 1 and 9999"),
        (["3", "-Q:1-x", "a"], "bad node number 'x' in -Q:1-x"),
        (["w1", "--cmd=foo"], "--cmd is not supported"),
        ([], "no nodes given"),
        (["w1", "-"], "a lone '-' is not an option"),
        (["w1", "w2", "-c:w9", "4"], "-c:w9 names no node; nodes are: w1@"),
    ],
)
def test_celery_crashes_or_silences_become_usage_errors(env, args, message):
    out = env.run("show", *args)
    assert out.returncode == 2, out
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert message in out.stderr


def test_default_files_live_in_the_run_and_log_dirs(env):
    out = env.run("show", "--json", "w1", check=True)
    [node] = json.loads(out.stdout)
    assert node["pidfile"] == f"{env.run_dir}/w1.pid"
    assert node["logfile"] == f"{env.log_dir}/w1%I.log"


def test_show_quotes_arguments_for_the_shell(env):
    out = env.run("show", "w1", "--", "--loglevel", "two words", check=True)
    assert out.stdout.rstrip().endswith("--loglevel 'two words'")


def test_index_reaches_a_node_named_with_a_host_template(env):
    # Celery files "-c:2" under the raw name "w2@%h" and never applies it.
    out = env.run("show", "--json", "w1", "w2@%h", "-c:2", "5", check=True)
    assert json.loads(out.stdout)[1]["worker_args"][:2] == ["-c", "5"]


def test_short_name_namespace_in_count_mode(env):
    # Celery only knows "-c:2" here and silently ignores "-c:celery2".
    out = env.run("show", "--json", "2", "-c:celery2", "5", check=True)
    assert json.loads(out.stdout)[1]["worker_args"][:2] == ["-c", "5"]
