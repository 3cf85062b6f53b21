#include "cli/broker_client.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

namespace ccmulti::cli {

void add_broker_option(CLI::App& command, BrokerFlag& flag) {
    command.add_option("-b,--broker", flag.url,
                       "Broker URL (default sqlite://, the state dir's database) [env CCMULTI_BROKER_URL]");
}

void add_result_backend_option(CLI::App& command, BrokerFlag& flag) {
    command.add_option("--result-backend", flag.result_backend,
                       "Where results are stored: redis://HOST[:PORT][/DB] or sqlite://[/PATH], or rpc:// (an AMQP "
                       "broker sends them to the caller's reply queue) (default: the broker's own store) "
                       "[env CCMULTI_RESULT_BACKEND]");
}

std::string result_backend_url(const std::optional<std::string>& flag, const config::Settings& settings) {
    if (flag && !flag->empty()) return *flag;
    if (settings.results.url.is_set()) return *settings.results.url;  // the environment's, else the file's
    return "";
}

broker::TransportOptions transport_options(const config::TransportSettings& settings) {
    broker::TransportOptions options;
    if (settings.master_name.is_set()) options.master_name = *settings.master_name;
    if (settings.visibility_timeout.is_set()) options.visibility_timeout = *settings.visibility_timeout;
    return options;
}

std::string broker_url_with_options(const std::string& url, const config::Settings& settings) {
    return broker::with_transport_options(url, transport_options(settings.broker.transport_options));
}

std::string result_url_with_options(const std::string& url, const config::Settings& settings) {
    return broker::with_transport_options(url, transport_options(settings.results.transport_options));
}

broker::BrokerOptions broker_options(const Context& context, const BrokerFlag& flag) {
    broker::BrokerOptions options;
    if (flag.url) {
        options.url = *flag.url;
    } else if (const char* env = std::getenv("CCMULTI_BROKER_URL"); env && *env) {
        options.url = env;
    } else if (const auto& configured = context.settings().broker.url; configured.is_set()) {
        options.url = *configured;
    }
    options.url = broker_url_with_options(options.url, context.settings());
    if (const auto& expires = context.settings().results.expires; expires.is_set())
        options.result_expires = std::chrono::seconds(*expires);
    options.results_url =
        result_url_with_options(result_backend_url(flag.result_backend, context.settings()), context.settings());
    try {
        if (!options.results_url.empty()) broker::check_result_url(options.results_url, options.url);
    } catch (const UsageError& e) {
        bool configured = !flag.result_backend || flag.result_backend->empty();
        throw UsageError(configured ? context.settings().results.url.origin + ": " + e.what() : e.what());
    }
    if (options.url.starts_with("sqlite:") || options.results_url.starts_with("sqlite:")) {
        Dirs where = context.dirs();
        ensure_private_dir(where.state);
        options.state_dir = where.state.path;
    }
    return options;
}

broker::Connection open_broker(const Context& context, const BrokerFlag& flag) {
    return broker::connect(broker_options(context, flag));
}

double parse_seconds(const std::string& text, const std::string& option) {
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(value >= 0 && value <= max_seconds))
        throw UsageError(option + " takes a number of seconds from 0 to " + fmt::format("{:g}", max_seconds) +
                         ", not '" + text + "'");
    return value;
}

CLI::Validator seconds_between(double min, double max) {
    return CLI::Validator(
        [min, max](std::string& text) -> std::string {
            char* end = nullptr;
            double value = std::strtod(text.c_str(), &end);
            if (text.empty() || end != text.c_str() + text.size() || !(value >= min && value <= max))
                return fmt::format("takes a number of seconds from {:g} to {:g}, not '{}'", min, max, text);
            return {};
        },
        "SECONDS");
}

nlohmann::json parse_json_operand(const std::string& text, const std::string& what) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
        throw UsageError(what + " is not valid JSON: " + text);
    }
}

}  // namespace ccmulti::cli
