// The Lua scripts that make multi-key steps atomic on the server. kombu does the same steps as separate
// commands (BRPOP then MULTI/HSET, WATCH/MULTI for restores); a script gives the same end state in the same keys,
// without the windows in between, and in one round trip, so Python and ccmulti can share every key.
#pragma once

#include <string>
#include <vector>

#include "broker/redis/connection.hpp"

namespace ccmulti::broker::redis {

struct Script {
    const char* name;
    const char* source;
};

// Pops up to ARGV[1] messages, round-robin across the queues of each priority level (levels in priority order),
// and records each in `unacked` (+ `unacked_index` at ARGV[3]) as kombu's QoS.append does, under a claim tag the
// caller chose: the payload is never decoded here (decoding JSON in Lua cost Redis more than all the rest of a
// task's writes together). The record names the default exchange and the queue it came from as routing key,
// which returns it to that queue when restored (by ccmulti or kombu: both route an empty exchange by routing key).
// KEYS: unacked, unacked_index, then the list keys level by level (ARGV[2] queues per level).
// ARGV: max, queue count, now, then the queue names, then ARGV[1] claim tags (the n-th message popped gets the
// n-th). Returns a flat array of pairs: queue position (0-based), payload.
extern const Script claim_script;

// Gives a claim back: when `unacked` still holds ARGV[1] (and, if ARGV[3] is not empty, holds exactly ARGV[3]),
// removes it from `unacked` and `unacked_index` and RPUSHes ARGV[2] to KEYS[3], to be consumed next.
// KEYS: unacked, unacked_index, list. Returns 1 when restored, 0 when the claim was no longer there.
extern const Script restore_script;

// Takes back parked eta claims (RedisConsumer): the members of the zset KEYS[1] scored up to ARGV[1], at most
// ARGV[2] of them, leave it; each one `unacked` still holds gets `unacked_index` = ARGV[3] (now: a live claim
// again). KEYS: parked zset, unacked, unacked_index. Returns the score of the earliest member left ("" when
// none), then pairs: claim tag, its `unacked` value.
extern const Script unpark_script;

// Celery's result write: keeps a stored SUCCESS, else SET (SETEX when ARGV[2] > 0) and PUBLISH on the key's
// channel, which is what wakes AsyncResult.get(). KEYS: the result key. ARGV: meta JSON, expiry seconds.
// Returns 1 when stored, 0 when a SUCCESS was kept.
extern const Script store_result_script;

// Releases a lock (kombu's unacked_mutex) only if it still holds our token. KEYS: lock. ARGV: token.
extern const Script release_lock_script;

// The script's SHA1 for EVALSHA in a pipeline, loading it into the server first when it was not loaded yet
// (`reload`: again, after a NOSCRIPT reply: the server forgets scripts on restart).
std::string script_sha(Connection& connection, const Script& script, bool reload = false);

// EVALSHA, loading the script first when the server does not know it (first use, or after a restart).
Reply eval(Connection& connection, const Script& script, const std::vector<std::string>& keys,
           const std::vector<std::string>& args);

}  // namespace ccmulti::broker::redis
