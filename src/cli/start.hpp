// `start`: from the node arguments to a running group. It plans the nodes (specs, dirs, the user they run as),
// locks the group, then runs the master in the foreground or as a daemon whose start report it relays; when a
// master already runs in the group's dir, it hands that master the new nodes over the control socket instead.
// `restart` (cmd_restart.cpp) shares the plan and the hand-over.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "cli/context.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/master.hpp"

namespace ccmulti::cli {

struct StartOptions {
    bool foreground = false;
    double start_secs = 1.0;
    double backoff_initial = 0.5, backoff_max = 60, backoff_reset = 60;
    // --dashboard[=BIND]: the master serves the dashboard ("" for the configuration's bind, else 127.0.0.1:5555).
    bool dashboard = false;
    std::string dashboard_bind;
};

std::chrono::milliseconds to_ms(double seconds);

// The master's configuration for the nodes of the command line, their pid and log dirs created (owned by the
// nodes' user when root starts them for one). With --verbose, prints each node's command line; nullopt for a
// dry run (C_FAKEFORK set, as Celery's init script's `dryrun` does), which prints them and starts nothing.
std::optional<supervisor::MasterConfig> plan_start(const Context& context, const StartOptions& options);

// Hands nodes to the master already running in config.run_dir; prints the same lines as a first start. Nodes
// that already run there are reported on stdout, not as errors (exit 0, as celery multi).
Exit add_to_master(const supervisor::MasterConfig& config, pid_t master_pid);
Exit add_to_master(const supervisor::MasterConfig& config, pid_t master_pid, supervisor::ControlClient client);

void start_command(Context& context, const StartOptions& options);

}  // namespace ccmulti::cli
