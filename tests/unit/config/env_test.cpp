#include "config/env.hpp"

#include <gtest/gtest.h>

namespace ccmulti::config {

namespace {

struct Read {
    Settings settings;
    std::vector<std::string> errors, warnings;
};

Read read(const Environment& env) {
    Read out;
    ConfigErrors errors;
    out.settings = read_environment(env, errors, out.warnings);
    out.errors = errors.lines();
    return out;
}

TEST(Environment, SettingsCarryTheVariableAsOrigin) {
    auto r = read({{"CCMULTI_APP", "shop"},
                   {"CCMULTI_STATE_DIR", "/s"},
                   {"CCMULTI_RESULT_BACKEND", "redis://r/1"},
                   {"CCMULTI_QUEUES", "a,b"},
                   {"CCMULTI_CONCURRENCY", "0x10"},
                   {"PATH", "/bin"}});
    EXPECT_TRUE(r.errors.empty());
    EXPECT_TRUE(r.warnings.empty());
    EXPECT_EQ(*r.settings.app, "shop");
    EXPECT_EQ(r.settings.app.origin, "$CCMULTI_APP");
    EXPECT_EQ(*r.settings.state_dir, "/s");
    EXPECT_EQ(*r.settings.results.url, "redis://r/1");
    EXPECT_EQ(*r.settings.overrides.queues, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(*r.settings.overrides.concurrency, 16);
    EXPECT_FALSE(r.settings.defaults.concurrency.is_set());  // per-node variables are overrides, not defaults
    EXPECT_TRUE(r.settings.file.empty());
}

TEST(Environment, BadValuesAreErrorsNamingTheVariable) {
    auto r = read({{"CCMULTI_CONCURRENCY", "four"}, {"CCMULTI_BROKER_URL", "localhost"}, {"CCMULTI_LOGLEVEL", "x"}});
    EXPECT_EQ(r.errors, (std::vector<std::string>{
                            "$CCMULTI_BROKER_URL: expected a URL such as redis://localhost, got string \"localhost\"",
                            "$CCMULTI_CONCURRENCY: expected integer, got string \"four\"",
                            "$CCMULTI_LOGLEVEL: unknown log level \"x\" (one of debug, info, warning, error, critical)",
                        }));
}

TEST(Environment, UnknownVariablesAreWarnedAboutWithASuggestion) {
    auto r = read({{"CCMULTI_CONCURENCY", "4"},
                   {"CCMULTI_FROBNICATE", "1"},
                   {"CCMULTI_BIN", "/x"},
                   {"CCMULTI_BUILD_DIR", "/b"},
                   {"CCMULTI_PYTHON", "/p"},
                   {"CCMULTI_NODE", "w1"},
                   {"CCMULTI_CONFIG", "c.toml"},
                   {"CCMULTICONCURRENCY", "4"}});
    EXPECT_EQ(r.warnings, (std::vector<std::string>{
                              "unknown environment variable CCMULTI_CONCURENCY — did you mean CCMULTI_CONCURRENCY?",
                              "unknown environment variable CCMULTI_FROBNICATE (ignored)",
                          }));
    EXPECT_TRUE(r.errors.empty());
}

TEST(Environment, EveryVariableIsDocumented) {
    for (const auto& var : environment_variables()) {
        EXPECT_TRUE(var.name.starts_with("CCMULTI_"));
        EXPECT_FALSE(var.help.empty()) << var.name;
    }
}

}  // namespace

}  // namespace ccmulti::config
