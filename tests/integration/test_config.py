"""Strict configuration through the real binary: config check / config show, precedence of command line >
CCMULTI_* > file > defaults, unknown keys and variables, and the configured [nodes] driving bare commands."""
import json
import pathlib
import socket

import pytest

ETC = pathlib.Path(__file__).resolve().parents[2] / "etc"


def values(document):
    """Drops the origins of a `config show --json` document: {"value", "from"} pairs become their value."""
    if isinstance(document, dict):
        if set(document) == {"value", "from"}:
            return document["value"]
        return {key: values(item) for key, item in document.items()}
    if isinstance(document, list):
        return [values(item) for item in document]
    return document


def show_json(env, *args):
    return json.loads(env.run("config", "show", "--json", *args, check=True).stdout)


@pytest.mark.parametrize("name", ["ccmulti.toml", "ccmulti.yaml"])
def test_check_accepts_the_examples(env, name):
    out = env.run("config", "check", ETC / name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: ")


def test_check_reports_every_error_with_position(env):
    (env.root / "ccmulti.toml").write_text(
        'app = "shop"\n'
        "[defaults]\n"
        'concurrency = "four"\n'
        'loglevel = "loud"\n'
        "[nodes.w1]\n"
        "concurency = 4\n"
    )
    out = env.run("config", "check")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        "ccmulti.toml:3:15: 'concurrency' in [defaults]: expected integer, got string \"four\"",
        "ccmulti.toml:4:12: 'loglevel' in [defaults]: unknown log level \"loud\" "
        "(one of debug, info, warning, error, critical)",
        "ccmulti.toml:6:1: unknown key 'concurency' in [nodes.w1] — did you mean 'concurrency'?",
        "ccmulti: error: 3 errors in ccmulti.toml",
    ]


def test_other_commands_refuse_a_bad_file_with_every_error(env):
    (env.root / "ccmulti.yaml").write_text("nodes:\n  w1:\n    concurency: 4\n    queues: ['a b']\n")
    out = env.run("names", "w1")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "ccmulti: error: ccmulti.yaml:3:5: unknown key 'concurency' in [nodes.w1] — did you mean 'concurrency'?",
        "ccmulti: error: ccmulti.yaml:4:14: 'queues' in [nodes.w1]: queue name \"a b\" contains a space",
    ]


def test_check_without_a_file(env):
    env.env["XDG_CONFIG_HOME"] = str(env.root / "xdg")
    out = env.run("config", "check", check=True)
    assert out.stdout.startswith("OK: no configuration file found")


def test_missing_named_file_is_a_usage_error(env):
    out = env.run("-C", "nope.toml", "names", "w1")
    assert out.returncode == 2
    assert out.stderr.strip() == "ccmulti: error: configuration file nope.toml (from -C) does not exist"


def test_unknown_variable_is_warned_about(env):
    env.env["CCMULTI_CONCURENCY"] = "4"
    out = env.run("names", "w1", check=True)
    assert out.stdout.split() == [f"w1@{socket.gethostname()}"]
    assert (
        "ccmulti: warning: unknown environment variable CCMULTI_CONCURENCY — did you mean CCMULTI_CONCURRENCY?"
        in out.stderr
    )


def test_bad_variable_is_a_usage_error(env):
    env.env["CCMULTI_CONCURRENCY"] = "four"
    out = env.run("show", "w1")
    assert out.returncode == 2
    assert out.stderr.strip() == 'ccmulti: error: $CCMULTI_CONCURRENCY: expected integer, got string "four"'


def test_bad_option_value_is_one_line(env):
    out = env.run("show", "w1", "-c", "four")
    assert out.returncode == 2
    assert out.stderr.strip() == 'ccmulti: error: command line -c: expected integer, got string "four"'


CONFIG = """\
log_dir = "logs"
[defaults]
concurrency = 2
loglevel = "info"
[nodes.w1]
concurrency = 3
queues = ["high"]
[nodes.w2]
"""


def test_precedence_across_four_layers(env):
    (env.root / "ccmulti.toml").write_text(CONFIG)
    del env.env["CCMULTI_LOG_DIR"]
    env.env["CCMULTI_LOGLEVEL"] = "error"
    shown = show_json(env, "-Q:w2", "cli", "--max-tasks-per-child=5")
    assert shown["file"] == "ccmulti.toml"
    settings = shown["settings"]
    assert settings["log_dir"] == {"value": str(env.root / "logs"), "from": "ccmulti.toml:1"}
    assert settings["run_dir"] == {"value": str(env.run_dir), "from": "$CCMULTI_RUN_DIR"}
    nodes = {node["name"].split("@")[0]: node["settings"] for node in shown["nodes"]}
    assert list(nodes) == ["w1", "w2"]  # the configured nodes, in file order
    w1, w2 = nodes["w1"], nodes["w2"]
    assert w1["concurrency"] == {"value": 3, "from": "ccmulti.toml:6"}  # [nodes.w1] over [defaults]
    assert w2["concurrency"] == {"value": 2, "from": "ccmulti.toml:3"}
    assert w1["loglevel"] == {"value": "ERROR", "from": "$CCMULTI_LOGLEVEL"}  # environment over file
    assert w1["queues"] == {"value": ["high"], "from": "ccmulti.toml:7"}
    assert w2["queues"] == {"value": ["cli"], "from": "command line -Q"}  # command line over everything
    assert w1["max_tasks_per_child"] == {"value": 5, "from": "command line --max-tasks-per-child"}
    assert w1["start_timeout"] == {"value": 60.0, "from": "default"}
    assert w1["pidfile"]["value"] == str(env.run_dir / "%n.pid")

    # The same layers shape the worker command line.
    argv = json.loads(env.run("show", "--json", "-Q:w2", "cli", check=True).stdout)
    w1_args = argv[0]["argv"]
    assert "--concurrency=3" in w1_args and "--queues=high" in w1_args and "--loglevel=ERROR" in w1_args
    assert argv[0]["logfile"] == str(env.root / "logs" / "w1%I.log")
    assert "-Q" in argv[1]["argv"] and "--queues=high" not in argv[1]["argv"]


def test_command_line_names_override_configured_nodes(env):
    (env.root / "ccmulti.toml").write_text(CONFIG)
    out = env.run("names", "w3", check=True)
    assert out.stdout.split() == [f"w3@{socket.gethostname()}"]
    shown = show_json(env, "w1", "-c", "9")
    assert [values(node["settings"])["concurrency"] for node in shown["nodes"]] == [9]


def test_text_show_names_each_origin(env):
    (env.root / "ccmulti.toml").write_text(CONFIG)
    out = env.run("config", "show", check=True).stdout
    assert "configuration file: ccmulti.toml" in out
    assert "[nodes.w1]" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["concurrency", "3", "ccmulti.toml:6"] in rows


def test_yaml_and_toml_examples_show_the_same(env):
    toml = show_json(env, "-C", ETC / "ccmulti.toml")
    yaml = show_json(env, "-C", ETC / "ccmulti.yaml")
    assert toml["file"] != yaml["file"]
    for shown in (toml, yaml):
        del shown["file"]
    assert values(toml) == values(yaml)
    assert [node["name"].split("@")[0] for node in toml["nodes"]] == ["w1", "w2", "legacy"]


def test_config_file_from_variable(env):
    (env.root / "other.yaml").write_text("nodes:\n  a1:\n  a2:\n")
    env.env["CCMULTI_CONFIG"] = "other.yaml"
    assert env.run("names", check=True).stdout.split() == [
        f"a1@{socket.gethostname()}",
        f"a2@{socket.gethostname()}",
    ]


def test_dirs_take_the_file_layer_relative_to_workdir(env):
    (env.root / "ccmulti.toml").write_text('workdir = "srv"\nstate_dir = "state-from-file"\n')
    (env.root / "srv").mkdir()
    del env.env["CCMULTI_STATE_DIR"]
    out = json.loads(env.run("dirs", "--json", check=True).stdout)
    dirs = {d["kind"]: d for d in out["dirs"]}
    assert dirs["state"]["path"] == str(env.root / "srv" / "state-from-file")
    assert dirs["state"]["from"] == "ccmulti.toml:2"
    assert dirs["run"]["from"] == "$CCMULTI_RUN_DIR"
