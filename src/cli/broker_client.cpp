#include "cli/broker_client.hpp"

#include <cmath>
#include <cstdlib>

namespace ccmulti::cli {

void add_broker_option(CLI::App& command, BrokerFlag& flag) {
    command.add_option("-b,--broker", flag.url,
                       "Broker URL (default sqlite://, the state dir's database) [env CCMULTI_BROKER_URL]");
}

broker::Connection open_broker(const Context& context, const BrokerFlag& flag) {
    broker::BrokerOptions options;
    if (flag.url) {
        options.url = *flag.url;
    } else if (const char* env = std::getenv("CCMULTI_BROKER_URL"); env && *env) {
        options.url = env;
    }
    if (options.url.starts_with("sqlite:")) {
        Dirs where = context.dirs();
        ensure_private_dir(where.state);
        options.state_dir = where.state.path;
    }
    return broker::connect(options);
}

double parse_seconds(const std::string& text, const std::string& option) {
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value < 0)
        throw UsageError(option + " takes a number of seconds, not '" + text + "'");
    return value;
}

nlohmann::json parse_json_operand(const std::string& text, const std::string& what) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
        throw UsageError(what + " is not valid JSON: " + text);
    }
}

}  // namespace ccmulti::cli
