#include "cli/node_spec.hpp"

#include <gtest/gtest.h>

#include "naming/cluster.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

namespace {

std::vector<naming::Node> nodes(const std::vector<std::string>& args) {
    return naming::build_nodes(naming::parse_args(args), {"host.example", "/run/x/%n.pid", "/log/%n%I.log"});
}

const NativeWorker native{"/usr/bin/ccmulti", {"--run-dir", "/run/x"}};

supervisor::NodeSpec make_node_spec(const naming::Node& node, const std::filesystem::path& cwd,
                                    std::chrono::milliseconds start_secs) {
    return cli::make_node_spec(node, cwd, start_secs, native);
}

}  // namespace

TEST(NodeSpec, FromTheGrammar) {
    auto all = nodes({"w1", "w2", "-Q", "high,low", "-c", "2", "--exec", "prog --name '%n at %d' -i %i%I",
                      "--stop-timeout:w2=2.5"});
    auto spec = make_node_spec(all[0], "/work", std::chrono::milliseconds(1500));
    EXPECT_EQ(spec.name, "w1@host.example");
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"prog", "--name", "w1 at host.example", "-i", "0"}));
    EXPECT_EQ(spec.queues, (std::vector<std::string>{"high", "low"}));
    EXPECT_EQ(spec.concurrency, 2);
    EXPECT_EQ(spec.pidfile, "/run/x/w1.pid");
    EXPECT_EQ(spec.logfile, "/log/w1.log");
    EXPECT_EQ(spec.cwd, "/work");
    EXPECT_EQ(spec.stop_timeout, std::chrono::seconds(60));
    EXPECT_EQ(spec.start_secs, std::chrono::milliseconds(1500));
    EXPECT_EQ(make_node_spec(all[1], "/work", std::chrono::seconds(1)).stop_timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(supervisor::node_title(spec), "ccmulti: node w1@host.example -Q high,low");
}

TEST(NodeSpec, RelativeFilesFollowTheWorkdir) {
    auto all = nodes({"w1", "--exec", "prog", "--workdir", "/srv/app", "--pidfile", "run/%n.pid"});
    auto spec = make_node_spec(all[0], "/elsewhere", std::chrono::seconds(1));
    EXPECT_EQ(spec.cwd, "/srv/app");
    EXPECT_EQ(spec.pidfile, "/srv/app/run/w1.pid");
    EXPECT_EQ(make_stop_target(all[0], "/elsewhere").pidfile, "/srv/app/run/w1.pid");
}

TEST(NodeSpec, WithoutExecTheNativeWorkerRunsWithTheWorkerOptions) {
    auto all = nodes({"w1", "-Q:w1", "high", "-c", "2", "--max-tasks-per-child=10", "--stop-timeout", "5",
                      "--logfile", "/l/%n.log", "-l", "debug"});
    auto spec = make_node_spec(all[0], "/work", std::chrono::seconds(1));
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"/usr/bin/ccmulti", "--run-dir", "/run/x", "worker", "-c", "2",
                                                   "--max-tasks-per-child=10", "-l", "debug", "-Q", "high", "-n",
                                                   "w1@host.example"}));
    EXPECT_EQ(spec.logfile, "/l/w1.log");
    EXPECT_GE(spec.start_secs, std::chrono::seconds(30));  // readiness comes from READY=1
}

TEST(NodeSpec, Errors) {
    EXPECT_THROW(make_node_spec(nodes({"w1", "--exec", "'x"})[0], "/", std::chrono::seconds(1)), UsageError);
    EXPECT_THROW(make_node_spec(nodes({"w1", "--exec", "x", "-c", "many"})[0], "/", std::chrono::seconds(1)),
                 UsageError);
    EXPECT_THROW(
        make_node_spec(nodes({"w1", "--exec", "x", "--stop-timeout", "soon"})[0], "/", std::chrono::seconds(1)),
        UsageError);
}

}  // namespace ccmulti::cli
