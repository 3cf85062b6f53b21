#include "cli/node_spec.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "naming/cluster.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

namespace {

std::vector<naming::Node> nodes(const std::vector<std::string>& args) {
    return naming::build_nodes(naming::parse_args(args), {"host.example", "/run/x/%n.pid", "/log/%n%I.log"});
}

const NativeWorker native{"/usr/bin/ccmulti", {"--run-dir", "/run/x"}, ""};

supervisor::NodeSpec make_node_spec(const naming::Node& node, const std::filesystem::path& cwd,
                                    std::chrono::milliseconds start_secs) {
    return cli::make_node_spec(node, cwd, start_secs, native);
}

}  // namespace

TEST(NodeSpec, FromTheGrammar) {
    auto all = nodes(
        {"w1", "w2", "-Q", "high,low", "-c", "2", "--exec", "prog --name '%n at %d' -i %i%I", "--stop-timeout:w2=2.5"});
    auto spec = make_node_spec(all[0], "/work", std::chrono::milliseconds(1500));
    EXPECT_EQ(spec.name, "w1@host.example");
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"prog", "--name", "w1 at host.example", "-i", "0"}));
    EXPECT_EQ(spec.queues, (std::vector<std::string>{"high", "low"}));
    EXPECT_EQ(spec.concurrency, 2);
    EXPECT_EQ(spec.pidfile, "/run/x/w1.pid");
    EXPECT_EQ(spec.logfile, "/log/w1.log");
    EXPECT_EQ(spec.cwd, "/work");
    EXPECT_EQ(spec.stop_timeout, std::nullopt);  // no deadline: a warm stop waits for the running tasks
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
    auto all = nodes({"w1", "-Q:w1", "high", "-c", "2", "--max-tasks-per-child=10", "--stop-timeout", "5", "--logfile",
                      "/l/%n.log", "-l", "debug"});
    auto spec = make_node_spec(all[0], "/work", std::chrono::seconds(1));
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"/usr/bin/ccmulti", "--run-dir", "/run/x", "worker", "-c", "2",
                                                   "--max-tasks-per-child=10", "-l", "debug", "-Q", "high", "-n",
                                                   "w1@host.example"}));
    EXPECT_EQ(spec.logfile, "/l/w1.log");
    EXPECT_TRUE(spec.notifies);  // readiness comes from READY=1 only, sent once it consumes
    EXPECT_EQ(spec.start_timeout, std::chrono::seconds(60));
    auto timed = make_node_spec(nodes({"w1", "--start-timeout", "2.5"})[0], "/work", std::chrono::seconds(1));
    EXPECT_EQ(timed.start_timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(std::count(timed.argv.begin(), timed.argv.end(), "--start-timeout=2.5"),
              0);  // the master's, not the worker's
}

TEST(NodeSpec, Errors) {
    EXPECT_THROW(make_node_spec(nodes({"w1", "--exec", "'x"})[0], "/", std::chrono::seconds(1)), UsageError);
    EXPECT_THROW(make_node_spec(nodes({"w1", "--exec", "x", "-c", "many"})[0], "/", std::chrono::seconds(1)),
                 UsageError);
    EXPECT_THROW(
        make_node_spec(nodes({"w1", "--exec", "x", "--stop-timeout", "soon"})[0], "/", std::chrono::seconds(1)),
        UsageError);
}

TEST(NodeSpec, CeleryRunnerPassesTheOptionsThroughAsCeleryMultiDoes) {
    auto all = nodes({"w1", "w2", "-A", "proj", "-Q", "high,low", "-c", "4", "-l", "info", "-c:w2", "2", "--python",
                      "/opt/py/bin/python", "--stop-timeout", "5", "--", "--without-mingle"});
    auto spec = make_node_spec(all[1], "/work", std::chrono::seconds(1));
    const auto& argv = spec.argv;
    ASSERT_GE(argv.size(), 6u);
    EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.begin() + 6),
              (std::vector<std::string>{"/opt/py/bin/python", "-m", "celery", "-A", "proj", "worker"}));
    auto has = [&](const std::vector<std::string>& run) {
        return std::search(argv.begin(), argv.end(), run.begin(), run.end()) != argv.end();
    };
    EXPECT_TRUE(has({"-Q", "high,low"}));
    EXPECT_TRUE(has({"-c", "2"}));  // the namespaced value
    EXPECT_TRUE(has({"-l", "info"}));
    EXPECT_TRUE(has({"-n", "w2@host.example"}));
    EXPECT_TRUE(has({"--pidfile="}));
    EXPECT_EQ(argv.back(), "--without-mingle");
    for (const auto& word : argv) {  // ccmulti's own options and files stay with ccmulti
        EXPECT_FALSE(word.starts_with("--logfile")) << word;
        EXPECT_FALSE(word.starts_with("--pidfile=/")) << word;
        EXPECT_FALSE(word.starts_with("--python") || word.starts_with("--stop-timeout")) << word;
    }
    EXPECT_EQ(spec.ready_pattern, "w2@host.example ready.");
    EXPECT_EQ(spec.pidfile, "/run/x/w2.pid");
    EXPECT_EQ(spec.stop_timeout, std::chrono::seconds(5));

    // Quieter than INFO, the ready line never comes: --start-secs decides. --exec wins over -A.
    EXPECT_EQ(make_node_spec(nodes({"w1", "-A", "proj"})[0], "/", std::chrono::seconds(1)).ready_pattern, "");
    EXPECT_EQ(
        make_node_spec(nodes({"w1", "-A", "proj", "--celery", "/venv/bin/celery"})[0], "/", std::chrono::seconds(1))
            .argv.front(),
        "/venv/bin/celery");
    EXPECT_EQ(make_node_spec(nodes({"w1", "-A", "proj", "--exec", "prog"})[0], "/", std::chrono::seconds(1)).argv,
              std::vector<std::string>{"prog"});
}

TEST(NodeSpec, WatchPathsResolveAgainstTheCwdAndMustExist) {
    const std::filesystem::path source = CCMULTI_SOURCE_DIR;
    auto spec = make_node_spec(nodes({"w1", "--watch", "src/", "--watch", "docs", "--watch", "src", "--watch-ignore",
                                      "*.md", "--watch-debounce", "50ms", "-A", "proj"})[0],
                               source, std::chrono::seconds(1));
    EXPECT_EQ(spec.watch, (std::vector<std::filesystem::path>{source / "src", source / "docs"}));
    ASSERT_GE(spec.watch_ignore.size(), 3u);
    EXPECT_EQ(spec.watch_ignore[0], "*.md");
    // Its own files: the pid file, and the logs of the main and pool processes (%I).
    EXPECT_EQ(spec.watch_ignore[1], "/run/x/w1.pid");
    EXPECT_EQ(spec.watch_ignore[2], "/log/w1*.log");
    EXPECT_EQ(spec.watch_debounce, std::chrono::milliseconds(50));
    for (const auto& word : spec.argv) EXPECT_FALSE(word.starts_with("--watch")) << word;  // not Celery's

    auto plain = make_node_spec(nodes({"w1"})[0], source, std::chrono::seconds(1));
    EXPECT_TRUE(plain.watch.empty());  // nothing watched by default
    EXPECT_TRUE(plain.watch_ignore.empty());
    EXPECT_EQ(plain.watch_debounce, std::chrono::milliseconds(300));
    EXPECT_EQ(
        make_node_spec(nodes({"w1", "--watch", "src", "--watch-debounce", "0.5"})[0], source, std::chrono::seconds(1))
            .watch_debounce,
        std::chrono::milliseconds(500));

    auto fails = [&](std::vector<std::string> args) -> std::string {
        try {
            make_node_spec(nodes(args)[0], source, std::chrono::seconds(1));
        } catch (const UsageError& e) {
            return e.what();
        }
        return "no error";
    };
    EXPECT_EQ(fails({"w1", "--watch", "nowhere"}),
              "--watch path nowhere of w1@host.example does not exist; watch an existing directory or file");
    EXPECT_EQ(fails({"w1", "--watch="}),
              "--watch of w1@host.example needs a path: a directory (watched recursively) or a file");
    EXPECT_EQ(fails({"w1", "--watch", "src", "--watch-ignore="}),
              "--watch-ignore of w1@host.example needs a glob, e.g. '*.log' or 'data/'");
    for (const char* bad : {"-1", "-0.1s", "soon", "61s", "60001ms", "nan", "inf", "1e308", "", "ms", "+1"})
        EXPECT_NE(fails({"w1", "--watch", "src", std::string("--watch-debounce=") + bad}), "no error") << bad;
    EXPECT_EQ(fails({"w1", "--watch", "src", "--watch-debounce=60s"}), "no error");
}

TEST(NodeSpec, JsonRoundTripForTheControlSocket) {
    auto spec =
        make_node_spec(nodes({"w1", "-A", "proj", "-l", "info", "-c", "3"})[0], "/srv", std::chrono::seconds(2));
    nlohmann::json json = spec;
    auto back = json.get<supervisor::NodeSpec>();
    EXPECT_EQ(back.name, spec.name);
    EXPECT_EQ(back.argv, spec.argv);
    EXPECT_EQ(back.pidfile, spec.pidfile);
    EXPECT_EQ(back.concurrency, 3);
    EXPECT_EQ(back.start_secs, std::chrono::seconds(2));
    EXPECT_EQ(back.ready_pattern, spec.ready_pattern);
    EXPECT_TRUE(back.watch.empty());
    spec.watch = {"/srv/proj", "/srv/lib"};
    spec.watch_ignore = {"*.txt"};
    spec.watch_debounce = std::chrono::milliseconds(75);
    auto watching = nlohmann::json(spec).get<supervisor::NodeSpec>();
    EXPECT_EQ(watching.watch, spec.watch);
    EXPECT_EQ(watching.watch_ignore, spec.watch_ignore);
    EXPECT_EQ(watching.watch_debounce, spec.watch_debounce);
    EXPECT_TRUE(watching.can_overlap) << "a Celery node is replaced start-before-stop";
    EXPECT_TRUE(supervisor::same_spec(watching, spec));
    EXPECT_FALSE(supervisor::same_spec(back, spec)) << "other watches make another spec";
    json.erase("watch");  // from a master of an older version: nothing watched
    EXPECT_TRUE(json.get<supervisor::NodeSpec>().watch.empty());
    watching.env.push_back("X=1");
    EXPECT_FALSE(supervisor::same_spec(watching, spec)) << "a changed environment is a changed spec";
    EXPECT_TRUE(make_node_spec(nodes({"w1"})[0], "/srv", std::chrono::seconds(1)).can_overlap)
        << "two native workers of one name coexist";
    EXPECT_TRUE(make_node_spec(nodes({"w1", "--exec", "prog"})[0], "/srv", std::chrono::seconds(1)).can_overlap);
    json.erase("can_overlap");
    EXPECT_FALSE(json.get<supervisor::NodeSpec>().can_overlap) << "an older client's spec: stop, then start";
    json.erase("argv");
    EXPECT_THROW(json.get<supervisor::NodeSpec>(), std::exception);
}

}  // namespace ccmulti::cli
