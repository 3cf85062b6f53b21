// Reading configuration text: TOML with toml++, YAML with yaml-cpp, both into the same document tree and
// then the same schema. The loaders take text in memory and a name for messages, so they can be tested and
// fuzzed without files; nothing here touches the file system.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "config/document.hpp"
#include "config/settings.hpp"

namespace ccmulti::config {

enum class Format { toml, yaml };

// By extension: .toml, .yaml or .yml; nullopt otherwise.
std::optional<Format> format_of(const std::filesystem::path& path);

// The document tree of `text`; a syntax error is reported to `errors` (with its position) and gives
// nullopt. `file` names the text in positions and messages.
std::optional<Value> parse_toml_document(std::string_view text, const std::string& file, ConfigErrors& errors);
std::optional<Value> parse_yaml_document(std::string_view text, const std::string& file, ConfigErrors& errors);

// Parses and validates, reporting every problem to `errors`.
Settings parse_config(std::string_view text, const std::string& file, Format format, ConfigErrors& errors);

// The same, throwing one ConfigError (exit 2) that lists every problem.
Settings parse_config(std::string_view text, const std::string& file, Format format);

}  // namespace ccmulti::config
