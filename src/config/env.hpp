// The CCMULTI_* environment layer: above the configuration file, below the command line. Per-node
// variables (CCMULTI_CONCURRENCY, …) apply to every node, above its [nodes.NAME] table. A CCMULTI_* name
// ccmulti does not know is warned about with a suggestion, since a misspelt variable is as silent as a
// misspelt key. The environment is passed in as a map so this stays testable; current_environment() reads
// the real one.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/errors.hpp"
#include "config/settings.hpp"

namespace ccmulti::config {

using Environment = std::map<std::string, std::string>;

// The process environment; variables set to "" count as unset, as everywhere in ccmulti.
Environment current_environment();

struct EnvVar {
    std::string_view name;     // "CCMULTI_CONCURRENCY"
    std::string_view setting;  // "app", "broker.url", "node.concurrency"; "" when it is not a setting
    std::string_view help;
};
const std::vector<EnvVar>& environment_variables();

// Settings from the CCMULTI_* variables of `env`: top-level values, and per-node ones in `overrides`, each
// with origin "$NAME". Bad values go to `errors`, unknown CCMULTI_* names to `warnings`.
Settings read_environment(const Environment& env, ConfigErrors& errors, std::vector<std::string>& warnings);

}  // namespace ccmulti::config
