// Who to wake after a commit, and the orphan restore every consumer runs. Shared by the broker, its consumers
// and the result store of the SQLite transport. Wake lists are read inside the writing transaction and rung after
// COMMIT, so a woken reader always sees the change it was woken for.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "broker/sqlite/database.hpp"

namespace ccmulti::broker::sqlite {

std::vector<std::string> queue_wakes(Database& db, const std::string& queue);  // consumers of `queue`
std::vector<std::string> all_consumer_wakes(Database& db);
void ring(const std::vector<std::string>& wakes);

// Returns the claims of dead consumers to their queues and forgets those consumers. A consumer is dead when its
// process is gone (same boot and pid namespace: checked exactly, pid reuse included) or, for a consumer of
// another machine/namespace, when its heartbeat is older than its lease. Also frees claims whose consumer row is
// missing. Cheap when nothing is dead (reads only). Returns how many messages went back.
std::size_t restore_orphans(Database& db);

double unix_now();

}  // namespace ccmulti::broker::sqlite
