// A control-socket request line (supervisor/control_server.hpp documents the protocol), read into a checked
// struct before the master acts on it: a pure function of the line, so it is unit-tested and fuzzed
// (tests/fuzz/control_request_fuzz.cpp) without a master or a socket.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "supervisor/node_spec.hpp"
#include "supervisor/stop_plan.hpp"

namespace ccmulti::supervisor {

struct ControlRequest {
    std::string cmd;                                   // as sent; an unknown one is the server's to answer
    std::vector<std::string> nodes;                    // stop, restart, reload
    StopMode mode = StopMode::warm;                    // stop
    std::optional<std::chrono::milliseconds> timeout;  // stop
    bool wait = false;                                 // stop: default false; restart, reload: default true
    bool all = false;                                  // restart: all at once; reload: unchanged nodes too
    std::vector<NodeSpec> specs;                       // restart ("specs"), add ("nodes")
};

// The answer to a request that cannot be read: `what()` is the error line's text; `closes`: the connection is
// closed after it (a line that is not a request at all), else it stays open (a bad field of a known command).
class BadControlRequest : public std::runtime_error {
public:
    BadControlRequest(const std::string& message, bool closes) : std::runtime_error(message), closes_(closes) {}
    bool closes() const noexcept { return closes_; }

private:
    bool closes_;
};

// Longest stop timeout a request may give: what `ccmulti stop --timeout` accepts (cli/broker_client.hpp), and
// converts to milliseconds safely.
inline constexpr double max_stop_timeout_seconds = 1e9;

// Throws BadControlRequest only.
ControlRequest parse_control_request(const std::string& line);

}  // namespace ccmulti::supervisor
