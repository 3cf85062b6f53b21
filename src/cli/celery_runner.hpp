// The Celery runner: a node with -A/--app and no --exec runs a real Celery worker, the drop-in for Python
// users of `celery multi`:
//
//   ccmulti start w1 w2 -A proj -Q high,low -c 4 -l info
//   → per node: PYTHON -m celery -A proj worker -c 4 -Q high,low -l info -n w1@host --pidfile=
//
// Every option of the node (namespaced ones resolved, `-- ARGS` and --append included) is passed through as
// `celery multi` does, app-level options (-A, -b, --result-backend, --loader, --config, --workdir, …) before
// `worker`. ccmulti keeps what it owns: the pid file (Celery writes none: --pidfile=), the log (Celery logs to
// stderr, which goes to the node's log file; --logfile is not passed), signals and shutdown. Its own options
// (--exec, --stop-timeout, --start-timeout, --python, --celery) are not passed.
//
//   --python PATH    the interpreter [$CCMULTI_PYTHON, else /usr/bin/python3 when it exists, else python3]
//   --celery 'PROG'  run this program instead of `PYTHON -m celery` (e.g. /srv/venv/bin/celery)
//
// Readiness: the worker's own "w1@host ready." log line (logged at INFO, so with -l debug or info); at
// quieter levels the node counts as ready after --start-secs, like any program.
#pragma once

#include <string>
#include <vector>

#include "naming/cluster.hpp"

namespace ccmulti::cli {

// True for a node that names an app (-A/--app) and no --exec.
bool runs_celery(const naming::Node& node);

// The worker's argv. Throws UsageError for an unterminated quote in --celery.
std::vector<std::string> celery_argv(const naming::Node& node);

// The log text that says the node is ready, or "" when its log level hides it.
std::string celery_ready_pattern(const naming::Node& node);

}  // namespace ccmulti::cli
