// kombu's Redis key layout (celery-protocol.md §2), so Python Celery and ccmulti share queues, claims and results:
//   <queue>                  list, priority 0 (the highest on Redis); producers LPUSH, consumers pop the right end
//   <queue>\x06\x16<3|6|9>   lists of the lower priorities
//   _kombu.binding.<exch>    set of "routing_key\x06\x16pattern\x06\x16queue"
//   unacked / unacked_index  hash delivery_tag -> [payload, exchange, routing_key]; zset delivery_tag -> time
//   unacked_mutex            lock held while restoring expired claims
//   celery-task-meta-<id>    result JSON, also the pub/sub channel its updates are published on
// Plus one key of ccmulti's own, which kombu never reads:
//   _ccmulti.consumers       hash consumer id -> {"node", "queues", "expires"}: who consumes what (`ccmulti queues`)
//   _ccmulti.parked.<id>     zset claim tag -> eta: a consumer's claims of eta messages not due for a while, whose
//                            payloads it does not keep in memory (redis_consumer.hpp); expires with the consumer
// And Redis's own channel of client-side-caching invalidations, a consumer's doorbell (redis_consumer.hpp):
//   __redis__:invalidate     names the keys written under the prefixes a connection tracks
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace ccmulti::broker::redis {

inline constexpr std::string_view sep = "\x06\x16";
inline constexpr std::array<int, 4> priority_steps{0, 3, 6, 9};
inline constexpr const char* unacked_key = "unacked";
inline constexpr const char* unacked_index_key = "unacked_index";
inline constexpr const char* unacked_mutex_key = "unacked_mutex";
inline constexpr const char* consumers_key = "_ccmulti.consumers";
inline constexpr const char* binding_prefix = "_kombu.binding.";
inline constexpr const char* result_prefix = "celery-task-meta-";
inline constexpr const char* invalidation_channel = "__redis__:invalidate";

// The largest step <= priority, after clamping to 0..9 (kombu's _q_for_pri).
int priority_step(int priority);
// The list a message of `priority` waits in: "q" for step 0, else "q\x06\x16<step>".
std::string queue_key(std::string_view queue, int priority);
// The queue a list key belongs to (the key without its priority suffix).
std::string queue_of_key(std::string_view key);

std::string binding_key(std::string_view exchange);
// Celery's declaration of a direct queue: exchange and routing key both named after the queue.
std::string binding_member(std::string_view routing_key, std::string_view queue);

std::string result_key(std::string_view task_id);
std::string parked_key(std::string_view consumer_id);

}  // namespace ccmulti::broker::redis
