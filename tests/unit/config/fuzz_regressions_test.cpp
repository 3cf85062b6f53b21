// Inputs the fuzzers (tests/fuzz) found or that guard against known hazards: each must load or fail with a
// ConfigError, never crash, hang or throw anything else.
#include <gtest/gtest.h>

#include <filesystem>

#include "config/json.hpp"
#include "config/loader.hpp"
#include "platform/read_file.hpp"

namespace ccmulti::config {

namespace {

TEST(FuzzRegressions, EveryInputFailsCleanly) {
    std::filesystem::path dir = std::filesystem::path(CCMULTI_SOURCE_DIR) / "tests/fuzz/regressions";
    std::size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        auto format = format_of(entry.path());
        if (!format) continue;
        ++count;
        std::string text = read_text_file(entry.path(), 1 << 20);
        ConfigErrors errors;
        // As the fuzz targets do: load, then render everything stored (config show --json).
        EXPECT_NO_THROW(to_json(parse_config(text, entry.path().filename().string(), *format, errors)).dump())
            << entry.path();
    }
    EXPECT_GT(count, 0u);
}

TEST(FuzzRegressions, HostileShapes) {
    std::string deep_toml = "a = " + std::string(300, '[') + std::string(300, ']') + "\n";
    std::string deep_yaml = "a: " + std::string(3000, '[') + std::string(3000, ']') + "\n";
    // An alias bomb: nine levels of ten aliases would expand to 10^9 values.
    std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'j'; ++c) {
        std::string prev(1, static_cast<char>(c - 1));
        bomb += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" +
                prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
    }
    for (const auto& [text, format] :
         {std::pair{deep_toml, Format::toml}, std::pair{deep_yaml, Format::yaml}, std::pair{bomb, Format::yaml}}) {
        ConfigErrors errors;
        EXPECT_NO_THROW(parse_config(text, "x", format, errors));
        EXPECT_FALSE(errors.empty());
    }
}

}  // namespace

}  // namespace ccmulti::config
