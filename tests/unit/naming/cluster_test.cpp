#include "naming/cluster.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace ccmulti::naming {

namespace {

const NamingDefaults defaults{"box", "/run/cc/%n.pid", "/log/cc/%n%I.log"};

std::vector<Node> nodes(std::vector<std::string> args) {
    return build_nodes(parse_args(args), defaults);
}

std::vector<std::string> names(const std::vector<Node>& list) {
    std::vector<std::string> out;
    for (const auto& node : list) out.push_back(node.name);
    return out;
}

std::optional<std::string> opt(const Node& node, const char* name) {
    return node.option({name});
}

}  // namespace

TEST(Cluster, WatchPerNodeReplacesTheGlobalList) {
    auto list =
        nodes({"w1", "w2", "w3", "--watch", "src", "--watch", "lib", "--watch:w2", "api", "--watch:w3,w2", "x"});
    EXPECT_EQ(list[0].option_values("--watch"), (std::vector<std::string>{"src", "lib"}));
    EXPECT_EQ(list[1].option_values("--watch"), std::vector<std::string>{"x"});  // the later namespace wins
    EXPECT_EQ(list[2].option_values("--watch"), std::vector<std::string>{"x"});
    EXPECT_EQ(nodes({"w1", "--watch", "%n/src"})[0].option_values("--watch"), std::vector<std::string>{"w1/src"});
}

TEST(Cluster, CountMakesCeleryNodes) {
    EXPECT_EQ(names(nodes({"3"})), (std::vector<std::string>{"celery1@box", "celery2@box", "celery3@box"}));
    EXPECT_EQ(names(nodes({"2", "--range-prefix=w"})), (std::vector<std::string>{"w1@box", "w2@box"}));
}

TEST(Cluster, NamesWithHostParts) {
    EXPECT_EQ(names(nodes({"w1@%h", "w2@example.com", "w3"})),
              (std::vector<std::string>{"w1@box", "w2@example.com", "w3@box"}));
}

TEST(Cluster, HostnamePrefixSuffix) {
    EXPECT_EQ(names(nodes({"a", "-n", "other"})), (std::vector<std::string>{"a@other"}));
    EXPECT_EQ(names(nodes({"a", "--prefix=p-", "--suffix=s.example"})), (std::vector<std::string>{"p-a@s.example"}));
    EXPECT_EQ(names(nodes({"a", "--suffix=\"\""})), (std::vector<std::string>{"a@"}));
    // In count mode the range prefix replaces --prefix, as in Celery.
    EXPECT_EQ(names(nodes({"1", "--prefix=p-"})), (std::vector<std::string>{"celery1@box"}));
}

TEST(Cluster, PerNodeOptionsByNameIndexAndRange) {
    auto list = nodes({"w1", "w2", "w3", "-c", "2", "-c:w1", "4", "-Q:w1,w2", "high", "-c:3", "8"});
    EXPECT_EQ(opt(list[0], "-c"), "4");
    EXPECT_EQ(opt(list[1], "-c"), "2");
    EXPECT_EQ(opt(list[2], "-c"), "8");
    EXPECT_EQ(opt(list[0], "-Q"), "high");
    EXPECT_EQ(opt(list[1], "-Q"), "high");
    EXPECT_FALSE(opt(list[2], "-Q"));

    auto counted = nodes({"4", "-Q:1-3", "images", "-c:2", "8"});
    EXPECT_EQ(opt(counted[0], "-Q"), "images");
    EXPECT_EQ(opt(counted[2], "-Q"), "images");
    EXPECT_FALSE(opt(counted[3], "-Q"));
    EXPECT_EQ(opt(counted[1], "-c"), "8");
}

TEST(Cluster, RangeAndListNamespacesOverrideSingleOnes) {
    auto counted = nodes({"3", "-c:2", "8", "-c:1-3", "4"});
    EXPECT_EQ(opt(counted[1], "-c"), "4");
}

TEST(Cluster, IndexReachesNodeNamedWithHostTemplate) {
    auto list = nodes({"w1", "w2@%h", "-c:2", "5"});
    EXPECT_EQ(opt(list[1], "-c"), "5");
}

TEST(Cluster, ShortNameNamespaceInCountMode) {
    auto list = nodes({"2", "-c:celery2", "5"});
    EXPECT_EQ(opt(list[1], "-c"), "5");
}

TEST(Cluster, FullNodeNameNamespace) {
    auto list = nodes({"w1", "w2", "-c:w1@box", "3"});
    EXPECT_EQ(opt(list[0], "-c"), "3");
}

TEST(Cluster, DefaultsAndTemplatesInFiles) {
    auto list = nodes({"w1", "--logfile=/l/%n-%d%I.log"});
    EXPECT_EQ(list[0].pidfile(), "/run/cc/w1.pid");
    EXPECT_EQ(list[0].logfile(), "/l/w1-box%I.log");
    auto short_flags = nodes({"w1", "-p", "/p/%n.pid", "-f", "/f/%n.log"});
    EXPECT_EQ(short_flags[0].pidfile(), "/p/w1.pid");
    EXPECT_FALSE(short_flags[0].options.contains("--pidfile"));
}

TEST(Cluster, WorkerArgsMoveAppOptionsFirstReversedLikeCelery) {
    auto list = nodes({"w1", "-c", "2", "-A", "proj", "-b", "redis://x", "--", "--extra"});
    EXPECT_EQ(list[0].worker_args(),
              (std::vector<std::string>{"-b", "redis://x", "-A", "proj", "-c", "2", "-n", "w1@box",
                                        "--pidfile=/run/cc/w1.pid", "--logfile=/log/cc/w1%I.log", "--", "--extra"}));
}

TEST(Cluster, Errors) {
    EXPECT_THROW(nodes({}), UsageError);
    EXPECT_THROW(nodes({"0"}), UsageError);
    EXPECT_THROW(nodes({"3", "-c:0", "2"}), UsageError);
    EXPECT_THROW(nodes({"3", "-c:5", "2"}), UsageError);
    EXPECT_THROW(nodes({"3", "-c:1-x", "2"}), UsageError);
    EXPECT_THROW(nodes({"w1", "--logfile=%q.log"}), UsageError);
    EXPECT_THROW(nodes({"w1", "--cmd=foo"}), UsageError);
    EXPECT_THROW(nodes({"w1", "-n"}), UsageError);
    EXPECT_THROW(nodes({"w1", "w2", "-c:w9", "4"}), UsageError);
}

TEST(Cluster, NamesThatCannotBeFilesOrLinesAreRefused) {
    EXPECT_THROW(nodes({"../outside/evil"}), UsageError);
    EXPECT_THROW(nodes({"a/b"}), UsageError);
    EXPECT_THROW(nodes({"a\nb"}), UsageError);
    EXPECT_THROW(nodes({"tab\there"}), UsageError);
    EXPECT_THROW(nodes({".."}), UsageError);
    EXPECT_THROW(nodes({"@host"}), UsageError);
    EXPECT_THROW(nodes({std::string(max_node_name, 'x')}), UsageError);  // with "@box" it is too long
    EXPECT_NO_THROW(nodes({std::string(max_node_name - 4, 'x')}));
    EXPECT_NO_THROW(nodes({"w-1.high_prio@host.example"}));
    try {
        nodes({"x/y"});
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "bad node name 'x/y@box': a '/' would put its files outside their directories");
    }
}

TEST(Cluster, FindNodeByFullOrShortName) {
    auto list = nodes({"w1", "w2@other"});
    EXPECT_EQ(find_node(list, "w2@other").shortname, "w2");
    EXPECT_EQ(find_node(list, "w1").name, "w1@box");
    EXPECT_THROW(find_node(list, "nope"), UsageError);
}

}  // namespace ccmulti::naming
