// The configuration below the command line, assembled: built-in defaults (implicit) < file < CCMULTI_*
// environment. The command-line layer is per node and comes last (node_settings.hpp).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/env.hpp"
#include "config/errors.hpp"
#include "config/locate.hpp"
#include "config/settings.hpp"

namespace ccmulti::config {

inline constexpr std::size_t max_config_size = 1 << 20;

struct Loaded {
    Settings settings;
    std::optional<ConfigFile> file;     // the file read, if any
    std::vector<std::string> warnings;  // unknown CCMULTI_* variables, ambiguous files
    ConfigErrors errors;                // every problem of the file and the variables; see throw_if_any()
};

// Reads `file` (format by extension) into Settings, reporting every problem to `errors`.
Settings read_config_file(const ConfigFile& file, ConfigErrors& errors);

// Locates the file (locate.hpp), reads it and puts the environment on top. Problems of the file and the
// variables are collected in `errors`, not thrown, so the warnings can be shown as well; only a named file
// that does not exist throws (UsageError).
Loaded load_config(const std::optional<std::string>& flag, const Environment& env, const std::filesystem::path& cwd);

// The same with the file given (`ccmulti config check FILE`), instead of located.
Loaded load_config_file(const ConfigFile& file, const Environment& env);

}  // namespace ccmulti::config
