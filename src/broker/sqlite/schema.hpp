// The embedded broker's tables, created or upgraded on open (PRAGMA user_version holds the schema version).
//
//   messages        one row per queued message: the Celery v2 envelope plus the columns queries need.
//                   consumer IS NULL: in its queue; else claimed by that consumer since claimed_at.
//                   deliveries counts claims; the claim handle is (id, deliveries), so a stale ack is a no-op.
//   consumers       registered consumers: node name, process identity (pid + start time + scope) and lease,
//                   the wake socket publishers ring.  consumer_queues: which queues each consumes.
//   results         result meta JSON per task id, with expiry.  result_waiters: wake sockets of `--wait` clients.
// Times are Unix seconds (REAL).
#pragma once

#include "broker/sqlite/database.hpp"

namespace ccmulti::broker::sqlite {

inline constexpr int schema_version = 2;

// Creates the tables when missing; refuses a database made by a newer ccmulti.
void migrate(Database& db);

}  // namespace ccmulti::broker::sqlite
