// Where a native node stores results and `ccmulti call`/`result` read them: --result-backend > CCMULTI_RESULT_BACKEND
// > [results] url > the broker's own store; a backend the nodes cannot use fails `start` (make_node_spec), while a
// Celery node (-A) gets --result-backend as Celery takes it, before `worker`.
#include <gtest/gtest.h>

#include "broker/connect.hpp"
#include "cli/broker_client.hpp"
#include "cli/node_spec.hpp"
#include "config/env.hpp"
#include "config/loader.hpp"
#include "naming/cluster.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

namespace {

config::Settings layered(const char* file, const config::Environment& env) {
    config::Settings settings = config::builtin_settings();
    if (file) config::overlay(settings, config::parse_config(file, "c.toml", config::Format::toml));
    config::ConfigErrors errors;
    std::vector<std::string> warnings;
    config::overlay(settings, config::read_environment(env, errors, warnings));
    errors.throw_if_any();
    return settings;
}

naming::Node node(const std::vector<std::string>& args) {
    return naming::build_nodes(naming::parse_args(args), {"host.example", "/run/x/%n.pid", "/log/%n%I.log"}).front();
}

constexpr const char* file = "[results]\nurl = \"redis://file:6379/1\"\n";

}  // namespace

TEST(ResultBackend, BuiltInIsTheBrokersOwnStore) {
    EXPECT_EQ(result_backend_url(std::nullopt, layered(nullptr, {})), "");
}

TEST(ResultBackend, FileThenEnvironmentThenCommandLine) {
    auto from_file = layered(file, {});
    EXPECT_EQ(result_backend_url(std::nullopt, from_file), "redis://file:6379/1");
    EXPECT_EQ(from_file.results.url.origin, "c.toml:2");

    auto from_env = layered(file, {{"CCMULTI_RESULT_BACKEND", "redis://env:6379/2"}});
    EXPECT_EQ(result_backend_url(std::nullopt, from_env), "redis://env:6379/2");
    EXPECT_EQ(from_env.results.url.origin, "$CCMULTI_RESULT_BACKEND");
    EXPECT_EQ(result_backend_url(std::nullopt, layered(nullptr, {{"CCMULTI_RESULT_BACKEND", "sqlite://"}})),
              "sqlite://");

    EXPECT_EQ(result_backend_url("redis://cli:6379/3", from_env), "redis://cli:6379/3");
    EXPECT_EQ(result_backend_url("", from_env), "redis://env:6379/2");  // an empty flag sets nothing
}

TEST(ResultBackend, OnlyStoresTheNodesCanUseAreAccepted) {
    for (const char* good : {"redis://127.0.0.1:6379/1", "redis://:pw@other:6380", "sqlite://", "sqlite:///tmp/r.db"})
        EXPECT_NO_THROW(broker::check_result_url(good)) << good;
    for (const char* bad : {"rpc://x", "amqp://guest@localhost//", "rediss://host/1", "redis://host:port/1",
                            "sqlite://rel.db", "db+sqlite:///x"})
        EXPECT_THROW(broker::check_result_url(bad), UsageError) << bad;
    // rpc:// sends results over the broker: only an AMQP broker has reply queues.
    EXPECT_NO_THROW(broker::check_result_url("rpc://"));
    EXPECT_NO_THROW(broker::check_result_url("rpc://", "amqp://guest@localhost//"));
    for (const char* broker : {"redis://127.0.0.1:6379/0", "sqlite://"})
        EXPECT_THROW(broker::check_result_url("rpc://", broker), UsageError) << broker;
}

TEST(BrokerUrl, OnlyBrokersTheNodesConsumeFromAreAccepted) {
    for (const char* good : {"redis://127.0.0.1:6379/1", "sqlite://", "sqlite:///tmp/b.db",
                             "sentinel://h:26379;sentinel://g?master_name=m", "amqp://guest@localhost//",
                             "pyamqp://x", "amqps://u:p@h:5671/v"})
        EXPECT_NO_THROW(broker::check_broker_url(good)) << good;
    for (const char* bad : {"rediss://host/1", "sqs://", "kafka://k", "sqlite://rel.db", "sentinel://h:26379"})
        EXPECT_THROW(broker::check_broker_url(bad), UsageError) << bad;
    // `start` refuses a native node's broker before anything runs; a Celery node takes any broker Celery knows.
    const NativeWorker native{"/usr/bin/ccmulti", {}, ""};
    EXPECT_THROW(make_node_spec(node({"w1", "--broker", "sqs://x"}), "/", std::chrono::seconds(1), native),
                 UsageError);
    EXPECT_NO_THROW(
        make_node_spec(node({"w1", "-A", "proj", "--broker", "sqs://x"}), "/", std::chrono::seconds(1), native));
}

TEST(ResultBackend, CheckedForNativeNodesPassedOnToCeleryNodes) {
    const NativeWorker native{"/usr/bin/ccmulti", {"--run-dir", "/run/x"}, ""};
    auto spec = make_node_spec(node({"w1", "--result-backend", "redis://r/1"}), "/", std::chrono::seconds(1), native);
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"/usr/bin/ccmulti", "--run-dir", "/run/x", "worker",
                                                   "--result-backend=redis://r/1", "-n", "w1@host.example"}));
    EXPECT_THROW(make_node_spec(node({"w1", "--result-backend", "rpc://"}), "/", std::chrono::seconds(1), native),
                 UsageError);  // the default broker, sqlite://, has no reply queues
    EXPECT_NO_THROW(make_node_spec(node({"w1", "--result-backend", "rpc://", "-b", "amqp://h//"}), "/",
                                   std::chrono::seconds(1), native));
    // The configured backend (file or environment) is checked too; the worker reads it itself.
    const NativeWorker configured{"/usr/bin/ccmulti", {}, "amqp://x"};
    EXPECT_THROW(make_node_spec(node({"w1"}), "/", std::chrono::seconds(1), configured), UsageError);
    EXPECT_NO_THROW(make_node_spec(node({"w1", "--result-backend=redis://r/1"}), "/", std::chrono::seconds(1),
                                   configured));  // the command line wins over it

    // Celery knows rpc://: a Celery node gets it as `celery --result-backend=URL … worker`.
    auto celery = make_node_spec(node({"w1", "-A", "proj", "--result-backend", "rpc://", "-c", "2"}), "/",
                                 std::chrono::seconds(1), configured);
    auto worker = std::find(celery.argv.begin(), celery.argv.end(), "worker");
    auto backend = std::find(celery.argv.begin(), celery.argv.end(), "--result-backend=rpc://");
    ASSERT_NE(worker, celery.argv.end());
    EXPECT_LT(backend, worker);
    EXPECT_EQ(node_command_line(node({"w1", "-A", "proj", "--result-backend", "rpc://", "-c", "2"}), configured),
              celery.argv);
}

}  // namespace ccmulti::cli
