// Which configuration file to read:
//   -C/--config FILE, else $CCMULTI_CONFIG, else the first that exists of
//   ./ccmulti.toml ./ccmulti.yaml $XDG_CONFIG_HOME/ccmulti/ccmulti.{toml,yaml} /etc/ccmulti/ccmulti.{toml,yaml}
// ($XDG_CONFIG_HOME defaults to ~/.config). A file named explicitly must exist; none found is fine (built-in
// defaults). Only existence is checked here; reading is the loader's business.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/env.hpp"

namespace ccmulti::config {

struct ConfigFile {
    std::filesystem::path path;  // to open
    std::string name;            // in messages: as given, or relative to the working directory when found there
    std::string origin;          // "-C", "$CCMULTI_CONFIG", "search"
};

// The places searched when no file is named, in order.
std::vector<std::filesystem::path> search_path(const Environment& env, const std::filesystem::path& cwd);

// Throws UsageError when a named file does not exist. `warnings` gets a note when the search finds more
// than one candidate in the same directory (ccmulti.toml beside ccmulti.yaml), since only the first is read.
std::optional<ConfigFile> locate_config(const std::optional<std::string>& flag, const Environment& env,
                                        const std::filesystem::path& cwd, std::vector<std::string>& warnings);

}  // namespace ccmulti::config
