// Where the dashboard listens and who may use it. It shows and acts on every node of a run dir, so it listens
// on loopback unless told otherwise, and an address other machines can reach is refused unless a token guards
// it: a dashboard open to the network by mistake must be impossible, not merely discouraged.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "broker/connect.hpp"

namespace ccmulti::dashboard {

inline constexpr const char* default_bind = "127.0.0.1:5555";

struct Bind {
    std::string host;  // "127.0.0.1", "::1", "0.0.0.0", "localhost"
    int port = 0;      // 0: any free port (the command prints the one it got)
};

// "HOST:PORT", "[IPv6]:PORT", or ":PORT" / "PORT" (loopback). Throws UsageError naming `what` otherwise.
Bind parse_bind(const std::string& text, const std::string& what = "--bind");

// 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

// Where the dashboard looks: the run dir of the master (its control socket) and the broker of its nodes.
struct Source {
    std::filesystem::path run_dir;
    broker::BrokerOptions broker;
};

struct AccessOptions {
    Bind bind;
    std::optional<std::string> token;  // required of every request but /healthz when set
};

// The token from --auth-token, else the first line of --auth-token-file (which must not be readable by
// others). Throws UsageError for an unreadable or empty file, or a non-loopback bind without a token.
AccessOptions access_options(const std::string& bind, const std::optional<std::string>& token,
                             const std::optional<std::string>& token_file);

// "http://127.0.0.1:5555/", "http://[::1]:5555/".
std::string url_of(const std::string& host, int port);

}  // namespace ccmulti::dashboard
