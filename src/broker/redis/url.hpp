// Redis URLs as Celery and kombu write them:
//   redis://[[user]:password@]host[:port][/db][?visibility_timeout=SECONDS]
//   sentinel://[[user]:password@]host[:port][/db];sentinel://host2[:port2];…[?master_name=NAME&…]
// Defaults: 127.0.0.1, 6379 (26379 for a sentinel), db 0. The password may be percent-encoded. `rediss://` (TLS)
// and unix sockets are refused with a message saying why: Debian's hiredis 0.14 has no TLS, and nodes of other
// hosts need TCP anyway.
//
// Sentinel URLs name the sentinels to ask for the master's address (broker/redis/sentinel.hpp), as kombu's sentinel
// transport does: the password, user and db (of the first URL; the others must agree or give none) are the
// master's, the sentinels are asked without a password. kombu takes the master's name from
// broker_transport_options={'master_name': …}; here it is `?master_name=NAME` (on any of the URLs), or the
// configuration's `[broker] transport_options`, which the CLI adds to the URL (with_transport_options).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/transport_options.hpp"

namespace ccmulti::broker::redis {

struct RedisUrl {
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;
    std::optional<std::string> username, password;
    // kombu's transport option: an unacked message whose holder has not touched it for this long is given back
    // to its queue. Same default as kombu, so ccmulti never steals work from a slow Python worker.
    std::chrono::seconds visibility_timeout{3600};
    // Non-empty for a sentinel:// URL: host and port above are unused, the master is looked up by name.
    std::vector<std::pair<std::string, int>> sentinels;
    std::string master_name;

    bool sentinel() const noexcept { return !sentinels.empty(); }
    // "127.0.0.1:6379", or "master mymaster of sentinels 127.0.0.1:26379,127.0.0.1:26380"; for messages
    std::string address() const;
    // The URL with the password masked: "redis://:***@host:6379/0", "sentinel://:***@h:26379/0;…?master_name=m"
    std::string display() const;
    // Whether two URLs name the same database (same server and db, or same sentinels, master and db; same login).
    bool same_database(const RedisUrl& other) const;
};

std::string host_port(const std::string& host, int port);  // "h:1", "[::1]:1"

// True for redis://, rediss://, sentinel:// and unix-socket forms: the schemes this transport answers for (some to
// refuse).
bool is_redis_url(std::string_view url);
bool is_sentinel_url(std::string_view url);

// Throws UsageError naming the problem and the URL (password masked).
RedisUrl parse_redis_url(std::string_view url);

// `url` with the options the URL does not give itself added to its query (the URL's own win). Other schemes,
// and empty options, give `url` back unchanged.
std::string with_transport_options(const std::string& url, const TransportOptions& options);

}  // namespace ccmulti::broker::redis
