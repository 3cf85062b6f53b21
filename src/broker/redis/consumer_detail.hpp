// What the parts of RedisConsumer share (redis_consumer.cpp: connection, doorbell, heartbeat, shutdown;
// redis_claiming.cpp: claims and eta parking; redis_settling.cpp: results and acks). Private to them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis::consumer_detail {

// Eta messages are claimed without counting against `max`; bound how many one reserve() pulls in.
constexpr int max_claim_rounds = 64;
// Claims one script call takes at most (Lua's unpack() of the records has a stack limit of a few thousand).
constexpr std::size_t max_claim = 1000;
// Sentinel: settled batches kept to send again to a new master. A failover's window (the promoted replica takes
// writes while the old master still does, until the sentinels announce the switch) lasts about a second; kept
// longer for slow sentinels, and bounded so a busy node keeps a few MB at most.
constexpr std::chrono::seconds recent_window{10};
constexpr std::size_t max_recent = 5000;
// While claims bring only eta messages, each round asks for twice as many, up to this many times the window.
constexpr std::size_t eta_claim_growth = 64;

inline std::string score(double seconds) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
    return buffer;
}

// The first error reply of a pipeline, or of the EXEC of a transaction in it (an error queued in a MULTI comes
// back as its own reply, and EXEC then answers EXECABORT: the first one says why).
inline std::optional<std::string> first_error(const std::vector<Reply>& replies) {
    for (const auto& reply : replies) {
        if (reply.is_error()) return reply.string();
        if (reply.is_array())
            for (std::size_t i = 0; i < reply.size(); ++i)
                if (reply[i].is_error()) return reply[i].string();
    }
    return std::nullopt;
}

}  // namespace ccmulti::broker::redis::consumer_detail
