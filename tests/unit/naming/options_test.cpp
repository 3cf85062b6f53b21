#include "naming/options.hpp"

#include <gtest/gtest.h>

#include "util/error.hpp"

namespace ccmulti::naming {

namespace {
std::optional<std::string> value_of(const Options& options, const std::string& name) {
    const Option* found = options.find(name);
    EXPECT_NE(found, nullptr) << name;
    return found ? found->value : std::nullopt;
}
}  // namespace

TEST(ParseArgs, NamesOptionsAndPassthrough) {
    auto parsed = parse_args({"w1", "w2", "-c", "4", "--loglevel=INFO", "--", "--foo", "bar"});
    EXPECT_EQ(parsed.names, (std::vector<std::string>{"w1", "w2"}));
    EXPECT_EQ(value_of(parsed.options, "-c"), "4");
    EXPECT_EQ(value_of(parsed.options, "--loglevel"), "INFO");
    EXPECT_EQ(parsed.passthrough, (std::vector<std::string>{"--", "--foo", "bar"}));
}

TEST(ParseArgs, ShortOptionSwallowsNextNonDashToken) {
    auto parsed = parse_args({"-c", "w1", "-Q", "-l", "info"});
    EXPECT_TRUE(parsed.names.empty());
    EXPECT_EQ(value_of(parsed.options, "-c"), "w1");
    EXPECT_EQ(value_of(parsed.options, "-Q"), std::nullopt);
    EXPECT_EQ(value_of(parsed.options, "-l"), "info");
}

TEST(ParseArgs, LongOptionTakesSpaceSeparatedValueOnlyWhenKnownToTakeOne) {
    auto parsed = parse_args({"--logfile", "x.log", "--detach", "w1"});
    EXPECT_EQ(value_of(parsed.options, "--logfile"), "x.log");
    EXPECT_EQ(value_of(parsed.options, "--detach"), std::nullopt);
    EXPECT_EQ(parsed.names, (std::vector<std::string>{"w1"}));
}

TEST(ParseArgs, NamespacedOptions) {
    auto parsed = parse_args({"-c:w1", "4", "-Q:w1,w2", "high", "--logfile:w2=x"});
    ASSERT_NE(parsed.namespaces.find("w1"), nullptr);
    EXPECT_EQ(value_of(*parsed.namespaces.find("w1"), "-c"), "4");
    EXPECT_EQ(value_of(*parsed.namespaces.find("w1,w2"), "-Q"), "high");
    EXPECT_EQ(value_of(*parsed.namespaces.find("w2"), "--logfile"), "x");
}

TEST(ParseArgs, LastRepeatedOptionWinsButKeepsFirstPosition) {
    auto parsed = parse_args({"-c", "1", "-l", "info", "-c", "2"});
    ASSERT_EQ(parsed.options.items().size(), 2u);
    EXPECT_EQ(parsed.options.items()[0].name, "-c");
    EXPECT_EQ(parsed.options.items()[0].value, "2");
}

TEST(ParseArgs, WatchOptionsAddUpAndTakeTheirValueAfterASpace) {
    auto parsed = parse_args({"w1", "--watch", "src", "-c", "2", "--watch=lib", "--watch-ignore", "*.txt",
                              "--watch-debounce", "50ms", "--watch", "src"});
    EXPECT_EQ(parsed.names, (std::vector<std::string>{"w1"}));
    EXPECT_EQ(parsed.options.values("--watch"), (std::vector<std::string>{"src", "lib", "src"}));
    EXPECT_EQ(parsed.options.values("--watch-ignore"), std::vector<std::string>{"*.txt"});
    EXPECT_EQ(value_of(parsed.options, "--watch-debounce"), "50ms");
    EXPECT_EQ(value_of(parsed.options, "--watch"), "src");  // find: the first
}

TEST(ParseArgs, ARepeatableOptionOfANamespaceReplacesTheGlobalOnes) {
    Options global;
    global.set("--watch", "a");
    global.set("--watch", "b");
    global.set("-c", "1");
    Options own;
    own.set("--watch", "c");
    global.update(own);
    EXPECT_EQ(global.values("--watch"), std::vector<std::string>{"c"});
    EXPECT_EQ(global.values("-c"), std::vector<std::string>{"1"});
}

TEST(ParseArgs, EmptyArgumentsAreDropped) {
    auto parsed = parse_args({"", "w1", ""});
    EXPECT_EQ(parsed.names, (std::vector<std::string>{"w1"}));
}

TEST(ParseArgs, LoneDashIsAUsageError) { EXPECT_THROW(parse_args({"w1", "-"}), UsageError); }

}  // namespace ccmulti::naming
