// The words Celery puts in front of `multi`, read as Celery reads them, so the command lines of existing
// deployments run unchanged with ccmulti as CELERY_BIN:
//
//   celery -A proj multi start w1 --pidfile=/var/run/celery/%n.pid     (Celery's systemd unit)
//   celery multi --verbose start w1 ...                                 (its init script's dryrun)
//
// - the word `multi` is skipped (ccmulti *is* multi);
// - Celery's global options (-A/--app, -b/--broker, --result-backend, --loader, --workdir, --config MODULE) become
//   node options, as `celery multi` makes them (it moves them after the node arguments, and its workers put them
//   before `worker`); a --config naming a .toml/.yaml/.yml file is ccmulti's own configuration file instead;
// - multi's reserved flags (-q/--quiet, --verbose, --no-color, --nosplash) are ccmulti's output switches, before
//   the subcommand and, for node commands, anywhere among the node arguments (as MultiTool removes them).
// Pure: no I/O, unit-tested in tests/unit/cli/celery_front_test.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace ccmulti::cli {

struct CeleryFront {
    std::vector<std::string> args;          // ccmulti's own global options, then the subcommand and its arguments
    std::vector<std::string> node_options;  // Celery globals that are node options, as tokens ("-A", "proj")
    bool quiet = false, verbose = false, no_color = false;
};

// `own_takes_value(flag)`: whether `flag` is one of ccmulti's global options that takes a value (so the next
// word is its value, not the subcommand). Unknown options are left in `args` for the CLI parser to report.
CeleryFront read_celery_front(const std::vector<std::string>& args,
                              const std::function<bool(const std::string&)>& own_takes_value);

// Removes multi's reserved flags from a node command's arguments (up to a `--`), recording them in `front`.
std::vector<std::string> take_reserved_flags(const std::vector<std::string>& node_args, CeleryFront& front);

// Inserts Celery's global node options into a node command's arguments: after the node arguments, before a
// `--` (what follows `--` goes to the worker unparsed).
void add_node_options(std::vector<std::string>& node_args, const std::vector<std::string>& node_options);

}  // namespace ccmulti::cli
