// Precedence across the four layers: built-in < file ([defaults] < [nodes.NAME]) < CCMULTI_* < command line.
#include <gtest/gtest.h>

#include "config/env.hpp"
#include "config/loader.hpp"
#include "config/node_settings.hpp"
#include "naming/cluster.hpp"

namespace ccmulti::config {

namespace {

constexpr const char* toml_file = R"(
run_dir = "/file/run"
app = "shop"
[defaults]
concurrency = 2
loglevel = "info"
queues = ["file"]
stop_timeout = 10
[nodes.w1]
concurrency = 3
max_tasks_per_child = 10
[nodes.w1.env]
A = "node"
[defaults.env]
A = "defaults"
B = "defaults"
)";

constexpr const char* yaml_file = R"(
run_dir: /file/run
app: shop
defaults:
  concurrency: 2
  loglevel: info
  queues: [file]
  stop_timeout: 10
  env: {A: defaults, B: defaults}
nodes:
  w1:
    concurrency: 3
    max_tasks_per_child: 10
    env: {A: node}
)";

Settings layered(const char* text, Format format, const Environment& env) {
    Settings settings = builtin_settings();
    overlay(settings, parse_config(text, format == Format::toml ? "c.toml" : "c.yaml", format));
    ConfigErrors errors;
    std::vector<std::string> warnings;
    overlay(settings, read_environment(env, errors, warnings));
    errors.throw_if_any();
    return settings;
}

std::vector<naming::Node> nodes(const std::vector<std::string>& args) {
    return naming::build_nodes(naming::parse_args(args), {"host.example", "", ""});
}

class Precedence : public testing::TestWithParam<Format> {
protected:
    const char* text() const { return GetParam() == Format::toml ? toml_file : yaml_file; }
    std::string file() const { return GetParam() == Format::toml ? "c.toml" : "c.yaml"; }
    NodeSettings builtin = builtin_node_settings("/run/x", "/log/x");
};

TEST_P(Precedence, BuiltinThenDefaultsThenNodeTable) {
    Settings settings = layered(text(), GetParam(), {});
    auto all = nodes({"w1", "w2"});
    NodeSettings w1 = effective_node_settings(settings, all[0], builtin);
    NodeSettings w2 = effective_node_settings(settings, all[1], builtin);

    EXPECT_EQ(*w1.concurrency, 3);  // [nodes.w1] over [defaults]
    EXPECT_TRUE(w1.concurrency.origin.starts_with(file() + ":"));
    EXPECT_EQ(*w2.concurrency, 2);  // [defaults]
    EXPECT_EQ(*w1.stop_timeout, 10);
    EXPECT_EQ(*w1.start_timeout, 60);  // built-in
    EXPECT_EQ(w1.start_timeout.origin, "default");
    EXPECT_EQ(*w1.pidfile, "/run/x/%n.pid");
    EXPECT_EQ(*w1.max_tasks_per_child, 10);
    EXPECT_FALSE(w2.max_tasks_per_child.is_set());
    EXPECT_EQ(*w1.env.at("A"), "node");  // env tables merge variable by variable
    EXPECT_EQ(*w1.env.at("B"), "defaults");
    EXPECT_EQ(*w2.env.at("A"), "defaults");
}

TEST_P(Precedence, EnvironmentOverFileForEveryNode) {
    Settings settings = layered(text(), GetParam(),
                                {{"CCMULTI_LOGLEVEL", "error"},
                                 {"CCMULTI_CONCURRENCY", "5"},
                                 {"CCMULTI_RUN_DIR", "/env/run"},
                                 {"CCMULTI_BROKER_URL", "redis://env/0"}});
    EXPECT_EQ(*settings.run_dir, "/env/run");
    EXPECT_EQ(settings.run_dir.origin, "$CCMULTI_RUN_DIR");
    EXPECT_EQ(*settings.app, "shop");  // untouched by the environment
    EXPECT_EQ(settings.app.origin, file() + ":3");
    EXPECT_EQ(*settings.broker.url, "redis://env/0");

    auto all = nodes({"w1", "w2"});
    for (const auto& node : all) {
        NodeSettings effective = effective_node_settings(settings, node, builtin);
        EXPECT_EQ(*effective.loglevel, "ERROR");
        EXPECT_EQ(effective.loglevel.origin, "$CCMULTI_LOGLEVEL");
        EXPECT_EQ(*effective.concurrency, 5);  // above [nodes.w1] too
        EXPECT_EQ(effective.concurrency.origin, "$CCMULTI_CONCURRENCY");
    }
}

TEST_P(Precedence, CommandLineOverEverything) {
    Settings settings = layered(text(), GetParam(), {{"CCMULTI_CONCURRENCY", "5"}, {"CCMULTI_QUEUES", "env1,env2"}});
    auto all = nodes({"w1", "w2", "-c:w1", "7", "-Q", "cli", "--stop-timeout=2.5", "--loglevel", "debug"});
    NodeSettings w1 = effective_node_settings(settings, all[0], builtin);
    NodeSettings w2 = effective_node_settings(settings, all[1], builtin);
    EXPECT_EQ(*w1.concurrency, 7);
    EXPECT_EQ(w1.concurrency.origin, "command line -c");
    EXPECT_EQ(*w2.concurrency, 5);
    EXPECT_EQ(*w1.queues, std::vector<std::string>{"cli"});
    EXPECT_EQ(w1.queues.origin, "command line -Q");
    EXPECT_EQ(*w2.stop_timeout, 2.5);
    EXPECT_EQ(w2.stop_timeout.origin, "command line --stop-timeout");
    EXPECT_EQ(*w2.loglevel, "DEBUG");

    Settings no_env = layered(text(), GetParam(), {{"CCMULTI_QUEUES", "env1,env2"}});
    NodeSettings plain = effective_node_settings(no_env, nodes({"w2"})[0], builtin);
    EXPECT_EQ(*plain.queues, (std::vector<std::string>{"env1", "env2"}));
}

INSTANTIATE_TEST_SUITE_P(Config, Precedence, testing::Values(Format::toml, Format::yaml),
                         [](const auto& p) { return std::string(p.param == Format::toml ? "toml" : "yaml"); });

TEST(NodeTable, MatchesFullNameTemplateOrShortName) {
    Settings settings = parse_config(
        "[nodes.\"w1@%h\"]\nconcurrency = 4\n[nodes.\"w2@other\"]\nconcurrency = 5\n"
        "[nodes.w3]\nconcurrency = 6\n",
        "c.toml", Format::toml);
    auto all = nodes({"w1", "w2@other", "w3", "w2"});
    NodeSettings builtin = builtin_node_settings("/r", "/l");
    EXPECT_EQ(*effective_node_settings(settings, all[0], builtin).concurrency, 4);
    EXPECT_EQ(*effective_node_settings(settings, all[1], builtin).concurrency, 5);
    EXPECT_EQ(*effective_node_settings(settings, all[2], builtin).concurrency, 6);
    EXPECT_EQ(node_table_name(settings, all[3]), nullptr);  // w2@host.example is not w2@other
}

TEST(NodeTable, ConfiguredNamesKeepFileOrder) {
    Settings toml = parse_config("[nodes.zeta]\n[nodes.alpha]\n[nodes.w10]\n[nodes.w2]\n", "c.toml", Format::toml);
    EXPECT_EQ(configured_node_names(toml), (std::vector<std::string>{"zeta", "alpha", "w10", "w2"}));
    Settings yaml = parse_config("nodes:\n  zeta:\n  alpha: {}\n  w10:\n  w2:\n", "c.yaml", Format::yaml);
    EXPECT_EQ(configured_node_names(yaml), configured_node_names(toml));
}

TEST(CommandLine, BadValuesFailLikeFileValues) {
    Settings settings;
    NodeSettings builtin = builtin_node_settings("/r", "/l");
    auto fails = [&](std::vector<std::string> args) -> std::string {
        try {
            effective_node_settings(settings, nodes(args)[0], builtin);
        } catch (const UsageError& e) {  // ConfigError, or the naming layer's own (templates)
            EXPECT_EQ(e.code(), Exit::usage);
            return e.what();
        }
        return "no error";
    };
    EXPECT_EQ(fails({"w1", "-c", "four"}), "command line -c: expected integer, got string \"four\"");
    EXPECT_EQ(fails({"w1", "-c:w1", "0"}), "command line -c: must be between 1 and 1024, got 0");
    EXPECT_EQ(fails({"w1", "-Q", "a,,b"}), "command line -Q: empty queue name in string \"a,,b\"");
    EXPECT_EQ(fails({"w1", "--loglevel=loud"}),
              "command line --loglevel: unknown log level \"loud\" (one of debug, info, warning, error, critical)");
    EXPECT_EQ(fails({"w1", "--stop-timeout=-3"}),
              "command line --stop-timeout: must be more than 0 and at most 86400 seconds, got -3");
    EXPECT_EQ(fails({"w1", "--logfile=%x"}),
              "unknown template %x in '%x' (from --logfile); known: %n %N %h %p %d %i %I, and %% for a literal %");
    EXPECT_EQ(fails({"w1", "-c"}), "command line -c: needs a value");
    EXPECT_EQ(fails({"w1", "-c", "2", "--concurrency=3"}), "no error");
}

TEST(WorkerOptions, ConfiguredValuesBecomeFlagsUnlessGivenOnTheCommandLine) {
    Settings settings =
        parse_config("[defaults]\nconcurrency = 3\nqueues = [\"a\", \"b\"]\nexec = \"prog\"\n", "c.toml", Format::toml);
    NodeSettings builtin = builtin_node_settings("/r", "/l");
    auto node = nodes({"w1", "-Q", "cli"})[0];
    add_worker_options(effective_node_settings(settings, node, builtin), node.options);
    // `exec` becomes --exec (what the node runs; never passed on to a worker: cli/node_spec.cpp).
    EXPECT_EQ(node.worker_args(),
              (std::vector<std::string>{"-Q", "cli", "-n", "w1@host.example", "--concurrency=3", "--exec=prog",
                                        "--pidfile=/r/w1.pid", "--logfile=/l/w1%I.log"}));
}

}  // namespace

}  // namespace ccmulti::config
