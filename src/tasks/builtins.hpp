// The tasks every node has, for smoke tests and examples:
//   ccmulti.ping              -> "pong"
//   ccmulti.echo(x)           -> x; with several arguments or keyword arguments -> {"args": [...], "kwargs": {...}}
//   ccmulti.sleep(seconds)    -> seconds, after sleeping them (stops at the soft time limit:
//                                SoftTimeLimitExceeded)
//   ccmulti.fail(message[, type]) -> FAILURE type: message (type defaults to RuntimeError)
//   ccmulti.retry(times[, countdown]) -> retries `times` times, `countdown` s apart, then returns `times`
#pragma once

#include "tasks/registry.hpp"

namespace ccmulti::tasks {

void add_builtin_tasks(Registry& registry);

}  // namespace ccmulti::tasks
