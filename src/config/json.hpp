// Settings as JSON, each value as {"value": …, "from": origin}: the body of `ccmulti config show --json`,
// and the way tests compare what two files mean (values_only() drops the origins).
#pragma once

#include <nlohmann/json.hpp>

#include "config/settings.hpp"

namespace ccmulti::config {

nlohmann::json to_json(const NodeSettings& node);
nlohmann::json to_json(const TaskSettings& task);
// Top-level values, [broker], [results], [tasks] and [watch]; [defaults] and [nodes] as read, not merged.
nlohmann::json to_json(const Settings& settings);

// The same document with every {"value", "from"} pair replaced by its value.
nlohmann::json values_only(const nlohmann::json& document);

}  // namespace ccmulti::config
