// kombu's transport options that ccmulti knows, from the configuration (`[broker] transport_options`,
// `[results] transport_options`). The CLI adds them to a URL's query (connect.hpp: with_transport_options), so a
// URL alone says everything a transport needs; options a transport does not know are ignored by it.
#pragma once

#include <optional>
#include <string>

namespace ccmulti::broker {

struct TransportOptions {
    std::optional<std::string> master_name;       // Redis sentinel: the master's name
    std::optional<long long> visibility_timeout;  // Redis: seconds before an unacked message is given back
};

}  // namespace ccmulti::broker
