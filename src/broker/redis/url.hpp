// Redis URLs as Celery and kombu write them:
//   redis://[[user]:password@]host[:port][/db][?visibility_timeout=SECONDS]
// Defaults: 127.0.0.1, 6379, db 0. The password may be percent-encoded. `rediss://` (TLS) and unix sockets are
// refused with a message saying why: Debian's hiredis 0.14 has no TLS, and nodes of other hosts need TCP anyway.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ccmulti::broker::redis {

struct RedisUrl {
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;
    std::optional<std::string> username, password;
    // kombu's transport option: an unacked message whose holder has not touched it for this long is given back
    // to its queue. Same default as kombu, so ccmulti never steals work from a slow Python worker.
    std::chrono::seconds visibility_timeout{3600};

    std::string address() const;  // "127.0.0.1:6379", for messages
    std::string display() const;  // the URL with the password masked: "redis://:***@host:6379/0"
};

// True for redis://, rediss:// and unix-socket forms: the schemes this transport answers for (some to refuse).
bool is_redis_url(std::string_view url);

// Throws UsageError naming the problem and the URL (password masked).
RedisUrl parse_redis_url(std::string_view url);

}  // namespace ccmulti::broker::redis
