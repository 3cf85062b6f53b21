// The same logical configuration in TOML and YAML means the same settings: etc/ccmulti.toml and
// etc/ccmulti.yaml, and smaller pairs written here.
#include <gtest/gtest.h>

#include "config/json.hpp"
#include "config/loader.hpp"
#include "platform/read_file.hpp"

namespace ccmulti::config {

namespace {

Settings load_example(const std::string& name) {
    std::string path = std::string(CCMULTI_SOURCE_DIR) + "/etc/" + name;
    return parse_config(read_text_file(path, 1 << 20), name, *format_of(path));
}

nlohmann::json meaning(const Settings& settings) {
    nlohmann::json values = values_only(to_json(settings));
    values.erase("file");
    return values;
}

TEST(Equivalence, ExampleFilesMeanTheSame) {
    Settings toml = load_example("ccmulti.toml");
    Settings yaml = load_example("ccmulti.yaml");
    EXPECT_EQ(meaning(toml).dump(2), meaning(yaml).dump(2));

    // And they say something: every section is populated.
    EXPECT_EQ(toml.node_order, (std::vector<std::string>{"w1", "w2", "legacy"}));
    EXPECT_EQ(*toml.nodes.at("w1").concurrency, 8);
    EXPECT_EQ(*toml.defaults.loglevel, "INFO");
    EXPECT_EQ(*toml.nodes.at("w2").env.at("OMP_NUM_THREADS"), "1");
    EXPECT_EQ(toml.tasks.at("shop.resize").command->argv, (std::vector<std::string>{"convert", "-resize", "50%"}));
    EXPECT_TRUE(*toml.tasks.at("shop.report").ignore_result);
    EXPECT_EQ(*toml.watch.debounce_ms, 500);
    EXPECT_EQ(*toml.broker.url, "redis://localhost:6379/0");
    for (const auto& key : {"app", "run_dir", "log_dir", "state_dir", "workdir", "user", "group"})
        EXPECT_FALSE(meaning(toml)[key].is_null()) << key;
}

TEST(Equivalence, OriginsPointAtEachFile) {
    Settings toml = load_example("ccmulti.toml");
    Settings yaml = load_example("ccmulti.yaml");
    EXPECT_TRUE(toml.app.origin.starts_with("ccmulti.toml:"));
    EXPECT_TRUE(yaml.app.origin.starts_with("ccmulti.yaml:"));
}

struct Pair {
    const char* toml;
    const char* yaml;
};

TEST(Equivalence, SmallPairs) {
    const std::vector<Pair> pairs = {
        {"", ""},
        {"", "# only a comment\n"},
        {"[defaults]\nqueues = \"a,b\"\n", "defaults:\n  queues: [a, b]\n"},
        {"[defaults]\nstop_timeout = 1.5\n", "defaults: {stop_timeout: 1.5}\n"},
        {"[defaults]\nstop_timeout = 2\n", "defaults:\n  stop_timeout: 2.0\n"},
        {"[nodes.w1]\n[nodes.w2]\n", "nodes:\n  w1:\n  w2: {}\n"},
        {"[tasks.\"a.b\"]\ncommand = \"echo hi\"\nacks_late = false\n",
         "tasks:\n  a.b:\n    command: echo hi\n    acks_late: false\n"},
        {"[defaults.env]\nN = 5\nF = true\n", "defaults:\n  env:\n    N: 5\n    F: true\n"},
        {"app = \"x\"\n", "app: !!str x\n"},
        {"[defaults]\nconcurrency = 16\n", "defaults:\n  concurrency: 0x10\n"},
        {"[defaults]\nloglevel = \"WARN\"\n", "defaults:\n  loglevel: warning\n"},
        {"[watch]\npaths = [\"a\", \"b\"]\n", "watch:\n  paths:\n    - a\n    - b\n"},
        {"user = \"1000\"\n", "user: \"1000\"\n"},
    };
    for (const auto& pair : pairs) {
        auto toml = meaning(parse_config(pair.toml, "c.toml", Format::toml));
        auto yaml = meaning(parse_config(pair.yaml, "c.yaml", Format::yaml));
        EXPECT_EQ(toml, yaml) << pair.toml << "\n---\n" << pair.yaml;
    }
}

}  // namespace

}  // namespace ccmulti::config
