// The asking side of Celery's remote-control mailbox (pidbox.hpp): what `celery inspect` does, for
// `ccmulti inspect` against Redis. Works with ccmulti nodes and Python Celery workers alike.
//
// A private reply queue is bound (kombu's binding set) under a fresh routing key, the request is PUBLISHed to
// the mailbox channel with that key as reply_to, and replies are BRPOPped from the queue until every named
// destination has answered or the timeout passes (with no destination, until the timeout, as Celery does).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "broker/redis/url.hpp"

namespace ccmulti::broker::redis {

// Replies by node name. `destination` empty: every node. Throws ConnectionError when Redis is unreachable.
// Two processes of one node name (a node being replaced) answer both: their replies are merged (add_node_reply),
// and once every destination answered, a second reply is waited for 100 ms more.
std::map<std::string, nlohmann::json> broadcast(const RedisUrl& url, const std::string& method,
                                                const std::vector<std::string>& destination,
                                                std::chrono::milliseconds timeout, const std::string& app = "celery");

}  // namespace ccmulti::broker::redis
