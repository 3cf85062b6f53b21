// What the client commands (call, result, queues, purge) share: opening the broker a command names and reading
// durations and JSON operands.
//
// The broker URL: --broker URL > $CCMULTI_BROKER_URL > the configuration's [broker] url > sqlite:// (the
// embedded database in the state dir).
// The result backend: --result-backend URL > $CCMULTI_RESULT_BACKEND > the configuration's [results] url > the
// broker's own store. `call --wait` and `result` read where the nodes store (docs/configuration.md).
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "broker/connect.hpp"
#include "broker/transport_options.hpp"
#include "cli/context.hpp"

namespace ccmulti::cli {

struct BrokerFlag {
    std::optional<std::string> url;
    std::optional<std::string> result_backend;
};

// Adds --broker to `command`.
void add_broker_option(CLI::App& command, BrokerFlag& flag);
// Adds --result-backend to `command` (those that store or read results).
void add_result_backend_option(CLI::App& command, BrokerFlag& flag);

// The result backend URL by precedence, "" for the broker's own store. `settings` holds the file with the
// CCMULTI_* variables on top (Context::settings()).
std::string result_backend_url(const std::optional<std::string>& flag, const config::Settings& settings);

// `url` with the configuration's `[broker] transport_options` / `[results] transport_options` (master_name,
// visibility_timeout) added where the URL does not give them (broker/connect.hpp: with_transport_options).
std::string broker_url_with_options(const std::string& url, const config::Settings& settings);
broker::TransportOptions transport_options(const config::TransportSettings& settings);
std::string result_url_with_options(const std::string& url, const config::Settings& settings);

// The broker a command names, with the state dir created (0700) when sqlite:// needs it.
broker::BrokerOptions broker_options(const Context& context, const BrokerFlag& flag);
broker::Connection open_broker(const Context& context, const BrokerFlag& flag);

// "2.5" -> 2.5 seconds; UsageError naming `option` for anything else or a negative number.
// Seconds from 0 to max_seconds (about 31 years): NaN, infinities, negatives and absurd values are usage errors,
// never overflowed into a deadline in the past (an instant kill) or undefined behaviour.
inline constexpr double max_seconds = 1e9;
double parse_seconds(const std::string& text, const std::string& option);
// The same as a CLI11 check, between `min` and `max` (CLI::Range lets NaN through).
CLI::Validator seconds_between(double min, double max);

// A JSON operand (`what` names it in errors).
nlohmann::json parse_json_operand(const std::string& text, const std::string& what);

}  // namespace ccmulti::cli
