#include "cli/celery_front.hpp"

#include <gtest/gtest.h>

namespace ccmulti::cli {
namespace {

using Args = std::vector<std::string>;

bool own_takes_value(const std::string& flag) {
    return flag == "-C" || flag == "--run-dir";
}

TEST(CeleryFront, SystemdUnitLineDropsMultiAndMovesTheAppToTheNodes) {
    auto front =
        read_celery_front({"-A", "proj", "multi", "start", "w1", "--pidfile=/run/celery/%n.pid"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"start", "w1", "--pidfile=/run/celery/%n.pid"}));
    EXPECT_EQ(front.node_options, (Args{"-A", "proj"}));
}

TEST(CeleryFront, EveryCeleryGlobalBeforeMultiBecomesANodeOption) {
    auto front =
        read_celery_front({"--app=proj", "-b", "redis://h/0", "--result-backend", "redis://h/1", "--loader=default",
                           "--workdir", "/srv", "--config", "celeryconfig", "multi", "restart", "w1"},
                          own_takes_value);
    EXPECT_EQ(front.args, (Args{"restart", "w1"}));
    EXPECT_EQ(front.node_options, (Args{"--app", "proj", "-b", "redis://h/0", "--result-backend", "redis://h/1",
                                        "--loader", "default", "--workdir", "/srv", "--config", "celeryconfig"}));
}

TEST(CeleryFront, ConfigNamingATomlOrYamlFileIsCcmultisOwn) {
    auto front = read_celery_front({"--config", "etc/ccmulti.toml", "status"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"-C", "etc/ccmulti.toml", "status"}));
    EXPECT_TRUE(front.node_options.empty());
    EXPECT_EQ(read_celery_front({"--config=a.yml", "status"}, own_takes_value).args, (Args{"-C", "a.yml", "status"}));
}

TEST(CeleryFront, ReservedFlagsBeforeTheSubcommandAreOutputSwitches) {
    auto front =
        read_celery_front({"multi", "--verbose", "-q", "--no-color", "--nosplash", "start", "w1"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"start", "w1"}));
    EXPECT_TRUE(front.verbose);
    EXPECT_TRUE(front.quiet);
    EXPECT_TRUE(front.no_color);
}

TEST(CeleryFront, OwnGlobalOptionsKeepTheirValues) {
    // "multi" as the value of --run-dir is a directory, not Celery's word.
    auto front = read_celery_front({"--run-dir", "multi", "-C", "x.toml", "multi", "stop"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"--run-dir", "multi", "-C", "x.toml", "stop"}));
}

TEST(CeleryFront, OnlyTheFirstMultiIsSkipped) {
    // "ccmulti multi names multi" asks for a node called multi.
    auto front = read_celery_front({"multi", "names", "multi"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"names", "multi"}));
}

TEST(CeleryFront, UnknownOptionsAreLeftForTheParserToReport) {
    auto front = read_celery_front({"--bogus", "start"}, own_takes_value);
    EXPECT_EQ(front.args, (Args{"--bogus", "start"}));
}

TEST(CeleryFront, ReservedFlagsAmongNodeArgumentsAreTakenUpToTheSeparator) {
    CeleryFront front;
    auto rest = take_reserved_flags({"w1", "--verbose", "-c", "2", "--", "-q"}, front);
    EXPECT_EQ(rest, (Args{"w1", "-c", "2", "--", "-q"}));
    EXPECT_TRUE(front.verbose);
    EXPECT_FALSE(front.quiet);  // after "--": the worker's
}

TEST(CeleryFront, NodeOptionsGoBeforeTheWorkerPassthrough) {
    Args node_args{"w1", "-c", "2", "--", "--foo"};
    add_node_options(node_args, {"-A", "proj"});
    EXPECT_EQ(node_args, (Args{"w1", "-c", "2", "-A", "proj", "--", "--foo"}));
}

}  // namespace
}  // namespace ccmulti::cli
