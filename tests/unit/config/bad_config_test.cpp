// Table-driven: each bad configuration, in TOML or YAML, and the exact lines `config check` prints for it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/loader.hpp"

namespace ccmulti::config {

namespace {

struct BadConfig {
    const char* name;
    Format format;
    const char* text;
    std::vector<std::string> errors;
};

void PrintTo(const BadConfig& c, std::ostream* os) {
    *os << c.name;
}

const std::vector<BadConfig> bad_configs = {
    // ---- unknown keys ----
    {"unknown_key_suggests",
     Format::toml,
     "[nodes.w1]\nconcurency = 4\n",
     {"c.toml:2:1: unknown key 'concurency' in [nodes.w1] — did you mean 'concurrency'?"}},
    {"unknown_top_key_suggests",
     Format::toml,
     "ap = \"shop\"\n",
     {"c.toml:1:1: unknown key 'ap' at the top level — did you mean 'app'?"}},
    {"key_in_wrong_section",
     Format::toml,
     "concurrency = 4\n",
     {"c.toml:1:1: unknown key 'concurrency' at the top level — it belongs in [defaults] or [nodes.NAME]"}},
    {"unknown_key_lists_known",
     Format::toml,
     "[watch]\nfrobnicate = 1\n",
     {"c.toml:2:1: unknown key 'frobnicate' in [watch] (known keys: paths, ignore, debounce, debounce_ms)"}},
    {"unknown_section_suggests",
     Format::toml,
     "[node.w1]\nconcurrency = 2\n",
     {"c.toml:1:2: unknown key 'node' at the top level — did you mean 'nodes'?"}},
    {"yaml_unknown_key_suggests",
     Format::yaml,
     "nodes:\n  w1:\n    concurency: 4\n",
     {"c.yaml:3:5: unknown key 'concurency' in [nodes.w1] — did you mean 'concurrency'?"}},
    {"yaml_unknown_task_key",
     Format::yaml,
     "tasks:\n  app.add:\n    time_limt: 5\n",
     {"c.yaml:3:5: unknown key 'time_limt' in [tasks.\"app.add\"] — did you mean 'time_limit'?"}},

    // ---- wrong types ----
    {"string_for_integer",
     Format::toml,
     "[defaults]\nconcurrency = \"four\"\n",
     {"c.toml:2:15: 'concurrency' in [defaults]: expected integer, got string \"four\""}},
    {"yaml_plain_word_for_integer",
     Format::yaml,
     "defaults:\n  concurrency: four\n",
     {"c.yaml:2:16: 'concurrency' in [defaults]: expected integer, got string \"four\""}},
    {"yaml_quoted_number_is_a_string",
     Format::yaml,
     "defaults:\n  concurrency: \"4\"\n",
     {"c.yaml:2:16: 'concurrency' in [defaults]: expected integer, got string \"4\""}},
    {"float_for_integer",
     Format::toml,
     "[nodes.w1]\nconcurrency = 2.5\n",
     {"c.toml:2:15: 'concurrency' in [nodes.w1]: expected integer, got float 2.5"}},
    {"yaml_null_for_integer",
     Format::yaml,
     "defaults:\n  concurrency: ~\n",
     {"c.yaml:2:16: 'concurrency' in [defaults]: expected integer, got null"}},
    {"date_for_string",
     Format::toml,
     "app = 1979-05-27\n",
     {"c.toml:1:7: 'app': expected string, got date-time 1979-05-27"}},
    {"string_for_seconds",
     Format::toml,
     "[defaults]\nstop_timeout = \"30s\"\n",
     {"c.toml:2:16: 'stop_timeout' in [defaults]: expected number of seconds, got string \"30s\""}},
    {"yaml_yes_is_not_a_boolean",
     Format::yaml,
     "tasks:\n  t:\n    acks_late: yes\n",
     {"c.yaml:3:16: 'acks_late' in [tasks.t]: expected boolean, got string \"yes\" (write true or false)"}},
    {"string_for_array",
     Format::toml,
     "[watch]\npaths = \"/srv\"\n",
     {"c.toml:2:9: 'paths' in [watch]: expected array, got string \"/srv\""}},
    {"section_not_a_table",
     Format::toml,
     "nodes = [\"w1\", \"w2\"]\n",
     {"c.toml:1:9: 'nodes': expected table, got array"}},
    {"yaml_node_not_a_table",
     Format::yaml,
     "nodes:\n  w1: 4\n",
     {"c.yaml:2:7: 'w1' in [nodes]: expected table, got integer 4"}},
    {"queues_wrong_type",
     Format::toml,
     "[defaults]\nqueues = 5\n",
     {"c.toml:2:10: 'queues' in [defaults]: expected array of queue names, got integer 5"}},
    {"env_value_array",
     Format::toml,
     "[defaults.env]\nA = [1]\n",
     {"c.toml:2:5: 'env' in [defaults]: variable A: expected string, got array"}},
    {"command_wrong_type",
     Format::toml,
     "[tasks.t]\ncommand = 5\n",
     {"c.toml:2:11: 'command' in [tasks.t]: expected string (a shell command) or array (an argv), got integer 5"}},

    // ---- out of range ----
    {"negative_concurrency",
     Format::toml,
     "[defaults]\nconcurrency = -2\n",
     {"c.toml:2:15: 'concurrency' in [defaults]: must be between 1 and 1024, got -2"}},
    {"yaml_concurrency_too_big",
     Format::yaml,
     "nodes:\n  w1:\n    concurrency: 5000\n",
     {"c.yaml:3:18: 'concurrency' in [nodes.w1]: must be between 1 and 1024, got 5000"}},
    {"zero_timeout",
     Format::toml,
     "[nodes.w1]\nstop_timeout = 0\n",
     {"c.toml:2:16: 'stop_timeout' in [nodes.w1]: must be more than 0 and at most 86400 seconds, got 0"}},
    {"yaml_infinite_timeout",
     Format::yaml,
     "defaults:\n  start_timeout: .inf\n",
     {"c.yaml:2:18: 'start_timeout' in [defaults]: must be more than 0 and at most 86400 seconds, got float inf"}},
    {"negative_expires",
     Format::toml,
     "[results]\nexpires = -1\n",
     {"c.toml:2:11: 'expires' in [results]: must be between 0 and 315360000, got -1"}},
    {"debounce_too_long",
     Format::yaml,
     "watch:\n  debounce_ms: 600000\n",
     {"c.yaml:2:16: 'debounce_ms' in [watch]: must be between 0 and 60000, got 600000"}},
    {"negative_debounce",
     Format::toml,
     "[watch]\ndebounce = -1\n",
     {"c.toml:2:12: 'debounce' in [watch]: expected a duration from 0 to 60 seconds (0.3, \"300ms\", \"0.3s\"), got "
      "integer -1"}},
    {"node_debounce_not_a_duration",
     Format::toml,
     "[nodes.w1]\nwatch_debounce = \"soon\"\n",
     {"c.toml:2:18: 'watch_debounce' in [nodes.w1]: expected a duration from 0 to 60 seconds (0.3, \"300ms\", "
      "\"0.3s\"), got string \"soon\""}},
    {"empty_watch_path",
     Format::yaml,
     "defaults:\n  watch: [src, \"\"]\n",
     {"c.yaml:2:16: 'watch' in [defaults]: empty path"}},
    {"yaml_integer_overflow",
     Format::yaml,
     "defaults:\n  max_tasks_per_child: 99999999999999999999\n",
     {"c.yaml:2:24: integer 99999999999999999999 does not fit in 64 bits",
      "c.yaml:2:24: 'max_tasks_per_child' in [defaults]: expected integer, got null"}},

    // ---- values with meaning ----
    {"unknown_loglevel",
     Format::toml,
     "[defaults]\nloglevel = \"verbose\"\n",
     {"c.toml:2:12: 'loglevel' in [defaults]: unknown log level \"verbose\" (one of debug, info, warning, error, "
      "critical)"}},
    {"yaml_misspelt_loglevel",
     Format::yaml,
     "nodes:\n  w1:\n    loglevel: warnig\n",
     {"c.yaml:3:15: 'loglevel' in [nodes.w1]: unknown log level \"warnig\" — did you mean 'warning'? (one of debug, "
      "info, warning, error, critical)"}},
    {"queue_with_space",
     Format::toml,
     "[defaults]\nqueues = \"high prio,low\"\n",
     {"c.toml:2:10: 'queues' in [defaults]: queue name \"high prio\" contains a space"}},
    {"empty_queue_in_list_text",
     Format::toml,
     "[defaults]\nqueues = \"high,,low\"\n",
     {"c.toml:2:10: 'queues' in [defaults]: empty queue name in string \"high,,low\""}},
    {"yaml_empty_queue_item",
     Format::yaml,
     "defaults:\n  queues: [high, \"\"]\n",
     {"c.yaml:2:18: 'queues' in [defaults]: empty queue name"}},
    {"no_queues",
     Format::toml,
     "[nodes.w1]\nqueues = []\n",
     {"c.toml:2:10: 'queues' in [nodes.w1]: needs at least one queue"}},
    {"queue_item_with_comma",
     Format::yaml,
     "defaults:\n  queues: [\"a,b\"]\n",
     {"c.yaml:2:12: 'queues' in [defaults]: queue name \"a,b\" contains a comma; list each queue as its own item"}},
    {"task_queue_with_space",
     Format::toml,
     "[tasks.t]\nqueue = \"a b\"\n",
     {"c.toml:2:9: 'queue' in [tasks.t]: queue name \"a b\" contains a space"}},
    {"bad_template",
     Format::toml,
     "[defaults]\nlogfile = \"%n%x.log\"\n",
     {"c.toml:2:11: 'logfile' in [defaults]: unknown template %x in '%n%x.log' (from logfile); known: %n %N %h %p "
      "%d %i %I, and %% for a literal %"}},
    {"empty_exec", Format::toml, "[nodes.w1]\nexec = \"\"\n", {"c.toml:2:8: 'exec' in [nodes.w1]: must not be empty"}},
    {"url_without_scheme",
     Format::toml,
     "[broker]\nurl = \"localhost:6379\"\n",
     {"c.toml:2:7: 'url' in [broker]: expected a URL such as redis://localhost, got string \"localhost:6379\""}},
    {"yaml_misspelt_scheme",
     Format::yaml,
     "results:\n  url: reddis://localhost/1\n",
     {"c.yaml:2:8: 'url' in [results]: unknown URL scheme 'reddis' — did you mean 'redis'? (supported: redis, "
      "rediss, sentinel, sqlite, rpc)"}},
    {"user_with_space",
     Format::toml,
     "user = \"web user\"\n",
     {"c.toml:1:8: 'user': not a user or group name: string \"web user\""}},
    {"env_bad_name",
     Format::yaml,
     "defaults:\n  env:\n    9LIVES: x\n",
     {"c.yaml:3:5: 'env' in [defaults]: \"9LIVES\" is not an environment variable name (letters, digits, _)"}},
    {"control_character",
     Format::toml,
     "app = \"shop\\u0007\"\n",
     {"c.toml:1:7: 'app': must not contain control characters, got string \"shop\\x07\""}},

    // ---- nodes and tasks ----
    {"yaml_duplicate_node",
     Format::yaml,
     "nodes:\n  w1: {}\n  w1: {}\n",
     {"c.yaml:3:3: duplicate node 'w1' in [nodes] (first at line 2)"}},
    {"duplicate_node_with_host",
     Format::toml,
     "[nodes.w1]\n[nodes.\"w1@%h\"]\n",
     {"c.toml:2:8: duplicate node 'w1@%h' in [nodes] (same node as 'w1' at line 1)"}},
    {"yaml_duplicate_key",
     Format::yaml,
     "defaults:\n  concurrency: 2\n  concurrency: 3\n",
     {"c.yaml:3:3: duplicate key 'concurrency' in [defaults] (first at line 2)"}},
    {"numeric_node_name",
     Format::toml,
     "[nodes.1]\n",
     {"c.toml:1:8: bad node name \"1\" in [nodes]: all digits, which the command line reads as a node count; use "
      "e.g. w1"}},
    {"node_name_with_colon",
     Format::yaml,
     "nodes:\n  \"w1:x\": {}\n",
     {"c.yaml:2:3: bad node name \"w1:x\" in [nodes]: contains '/', ':' or ','"}},
    {"node_name_bad_template",
     Format::toml,
     "[nodes.\"w1@%x\"]\n",
     {"c.toml:1:8: bad node name \"w1@%x\" in [nodes]: unknown template %x in 'w1@%x' (from node name); known: %n "
      "%N %h %p %d %i %I, and %% for a literal %"}},
    {"task_command_and_plugin",
     Format::toml,
     "[tasks.t]\ncommand = \"true\"\nplugin = \"t.so\"\n",
     {"c.toml:3:1: task 't' sets both 'command' and 'plugin'; a task runs one or the other"}},
    {"soft_limit_above_hard",
     Format::yaml,
     "tasks:\n  t:\n    time_limit: 10\n    soft_time_limit: 30\n",
     {"c.yaml:4:22: task 't': soft_time_limit (30) must be less than time_limit (10)"}},
    {"empty_argv",
     Format::toml,
     "[tasks.t]\ncommand = []\n",
     {"c.toml:2:11: 'command' in [tasks.t]: needs at least the program to run"}},

    // ---- syntax and document shape ----
    {"toml_syntax_error",
     Format::toml,
     "[defaults]\nconcurrency = \n",
     {"c.toml:2:15: TOML syntax error: Error while parsing key-value pair: expected value, saw '\\n'"}},
    {"toml_redefined_table",
     Format::toml,
     "[nodes.w1]\n[nodes.w1]\n",
     {"c.toml:2:1: TOML syntax error: Error while parsing table header: cannot redefine existing table 'nodes.w1'"}},
    {"yaml_syntax_error",
     Format::yaml,
     "defaults: [1\n",
     {"c.yaml:2:1: YAML syntax error: end of sequence flow not found"}},
    {"yaml_top_level_list",
     Format::yaml,
     "- w1\n- w2\n",
     {"c.yaml:1:1: expected a table of settings at the top level, got array"}},
    {"yaml_two_documents",
     Format::yaml,
     "app: a\n---\napp: b\n",
     {"c.yaml:2:1: more than one YAML document; ccmulti reads a single one"}},
    // yaml-cpp's own LoadAll loops forever on these (found by the fuzzer).
    {"yaml_stray_comma", Format::yaml, ",\n", {"c.yaml:1:1: YAML syntax error: unexpected ','"}},
    {"yaml_comma_after_flow", Format::yaml, "[a],\n", {"c.yaml:1:4: YAML syntax error: unexpected ','"}},
    {"yaml_merge_key",
     Format::yaml,
     "base: &b {concurrency: 2}\ndefaults:\n  <<: *b\n",
     {"c.yaml:1:1: unknown key 'base' at the top level (known keys: app, run_dir, log_dir, state_dir, workdir, user, "
      "group, worker_send_task_events, task_send_sent_event, defaults, nodes, broker, results, tasks, watch, "
      "dashboard)",
      "c.yaml:3:3: YAML merge keys (<<) are not supported; use [defaults] for shared settings"}},
    {"yaml_unsupported_tag", Format::yaml, "app: !shop x\n", {"c.yaml:1:6: unsupported YAML tag '!shop'"}},
    {"yaml_invalid_utf8",
     Format::yaml,
     "app: \"\xff\"\nnodes:\n  \"w\xc3\x28\":\n",
     {"c.yaml:1:6: not valid UTF-8", "c.yaml:1:6: 'app': expected string, got null",
      "c.yaml:3:3: key is not valid UTF-8"}},
    {"toml_invalid_utf8",
     Format::toml,
     "app = \"\xff\"\n",
     {"c.toml:1:7: TOML syntax error: Encountered invalid utf-8 sequence"}},
    {"yaml_complex_key", Format::yaml, "? [a, b]\n: 1\n", {"c.yaml:1:3: keys must be plain strings"}},

    // ---- every error of a file, in file order ----
    {"all_errors_reported",
     Format::toml,
     "app = 5\n[defaults]\nconcurrency = 0\nloglevel = \"loud\"\n[nodes.w1]\nqueus = [\"a\"]\n",
     {"c.toml:1:7: 'app': expected string, got integer 5",
      "c.toml:3:15: 'concurrency' in [defaults]: must be between 1 and 1024, got 0",
      "c.toml:4:12: 'loglevel' in [defaults]: unknown log level \"loud\" (one of debug, info, warning, error, "
      "critical)",
      "c.toml:6:1: unknown key 'queus' in [nodes.w1] — did you mean 'queues'?"}},
};

class BadConfigTest : public testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, ReportsExactly) {
    const BadConfig& c = GetParam();
    ConfigErrors errors;
    parse_config(c.text, c.format == Format::toml ? "c.toml" : "c.yaml", c.format, errors);
    EXPECT_EQ(errors.lines(), c.errors);
}

TEST_P(BadConfigTest, ThrowsOneUsageErrorWithEveryLine) {
    const BadConfig& c = GetParam();
    try {
        parse_config(c.text, c.format == Format::toml ? "c.toml" : "c.yaml", c.format);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.code(), Exit::usage);
        EXPECT_EQ(e.lines(), c.errors);
    }
}

INSTANTIATE_TEST_SUITE_P(Config, BadConfigTest, testing::ValuesIn(bad_configs),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(BadConfig, TableIsLargeAndCoversBothFormats) {
    std::size_t toml = 0, yaml = 0;
    for (const auto& c : bad_configs) (c.format == Format::toml ? toml : yaml)++;
    EXPECT_GE(toml + yaml, 30u);
    EXPECT_GE(toml, 10u);
    EXPECT_GE(yaml, 10u);
}

}  // namespace

}  // namespace ccmulti::config
