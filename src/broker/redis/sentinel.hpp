// Finding the master of a Sentinel-managed Redis (a sentinel:// URL), as Redis documents for clients and redis-py
// does for kombu: ask the sentinels in turn `SENTINEL get-master-addr-by-name NAME`, the first one that answers
// wins (and is asked first next time), then connect to that address and check with ROLE that it is the master
// (a sentinel's view lags a failover by a moment). Connection does this each time it connects, so every reconnect
// (connection lost, a READONLY reply from a demoted master) looks the master up again.
//
// A failover does not tell connected clients: the demoted master keeps accepting writes until the sentinels
// reconfigure it (seconds later), and those writes are lost. So long-lived users also learn of a switch from the
// sentinels' `+switch-master` messages (SwitchWatch) and mark the master's connections stale (master_generation):
// OnDemandConnection then reconnects before its next command, and a consumer reconnects at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "broker/redis/url.hpp"

namespace ccmulti::broker::redis {

class Connection;

struct MasterAddress {
    std::string host;
    int port = 0;
};

// Throws ConnectionError naming every sentinel and why it gave no answer.
MasterAddress resolve_master(const RedisUrl& url, std::chrono::milliseconds timeout);

// Bumped when this process learns that the master of `url` changed; a Connection remembers the value it connected
// under, and is stale once it moved. Always 0 for redis:// URLs.
std::uint64_t master_generation(const RedisUrl& url);
void bump_master_generation(const RedisUrl& url);

// A subscription to `+switch-master` on one of the sentinels, for an event loop: fd() is readable when a message
// came in; switched() reads what is there and, when one was about our master, bumps its generation and returns
// the new master's "host:port". A broken subscription throws ConnectionError from switched(): open another later.
class SwitchWatch {
public:
    explicit SwitchWatch(const RedisUrl& url);
    ~SwitchWatch();
    SwitchWatch(const SwitchWatch&) = delete;
    SwitchWatch& operator=(const SwitchWatch&) = delete;

    int fd() const noexcept;
    std::optional<std::string> switched();

private:
    RedisUrl url_;
    std::unique_ptr<Connection> connection_;
};

}  // namespace ccmulti::broker::redis
