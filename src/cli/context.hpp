// What every subcommand shares: the global options, the celery-multi arguments given after the subcommand,
// and the exit code the subcommand settles on.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "config/settings.hpp"
#include "naming/cluster.hpp"
#include "platform/dirs.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

// A node with its effective settings (config/node_settings.hpp): built-in < [defaults] < [nodes.NAME] <
// CCMULTI_* < node options, each value with its origin.
struct ConfiguredNode {
    naming::Node node;  // options include the configured worker options (--concurrency=4 from the file)
    config::NodeSettings settings;
};

struct Context {
    std::optional<std::string> config, run_dir, log_dir, state_dir;
    std::vector<std::string> node_args;   // celery-multi grammar tokens ("w1 w2 -c:w1 4 ...")
    std::set<std::string> node_commands;  // subcommands that take such tokens
    bool json = false;                    // --json, offered by every listing command
    bool verbose = false;                 // --verbose (celery multi's): say what each node runs
    Exit exit = Exit::ok;
    std::vector<std::string> invocation;  // the arguments ccmulti was run with (a master re-reads its config so)

    Dirs dirs() const;  // --run-dir … > CCMULTI_*_DIR > config file > defaults, relative to workdir()
    // Where the group's master lives (master.pid, master.sock) and logs (master.log): --run-dir/--log-dir on the
    // command line; else the directory the nodes' pid files (log files) share, as given with --pidfile
    // (--logfile), so groups whose pid files live in different directories are independent, as with celery
    // multi; else the run (log) dir.
    Dirs group_dirs() const;
    // Whether the node arguments name nodes: `stopwait --pidfile=/var/run/celery/%n.pid` has node arguments but
    // names none, and means every node of the group living there.
    bool names_nodes() const;
    // As root: the user the nodes run as and who owns what is created for them (--uid/--gid, else the `user`/
    // `group` settings); nullopt when none is set. UsageError when nodes name different users, or when a normal
    // user names another user.
    std::optional<Owner> node_owner() const;
    // From node_args, or the configured [nodes] when node_args name none; UsageError when there are no nodes.
    std::vector<naming::Node> nodes() const;
    std::vector<ConfiguredNode> configured_nodes() const;  // the same, with each node's settings

    // The configuration file (-C, $CCMULTI_CONFIG or found) with the CCMULTI_* variables on top, read on first
    // use; warnings are printed then, and errors throw one config::ConfigError (exit 2) listing them all.
    const config::Settings& settings() const;
    std::filesystem::path workdir() const;  // the `workdir` setting (relative to the cwd), else the cwd

    mutable std::optional<config::Settings> loaded_settings;  // settings()'s cache
};

// Declares a subcommand whose unrecognised arguments are celery-multi node arguments rather than errors.
// `app` may itself be a subcommand ("config" for "config show").
CLI::App* add_node_command(CLI::App& app, Context& context, const std::string& name, const std::string& help);

void add_naming_commands(CLI::App& app, Context& context);  // show, names, expand, get
void add_dirs_command(CLI::App& app, Context& context);
void add_call_command(CLI::App& app, Context& context);        // call
void add_result_command(CLI::App& app, Context& context);      // result
void add_queue_commands(CLI::App& app, Context& context);      // queues, purge
void add_supervise_commands(CLI::App& app, Context& context);  // start, stop, stopwait, kill
void add_restart_command(CLI::App& app, Context& context);     // restart
void add_reload_command(CLI::App& app, Context& context);      // reload
void add_status_command(CLI::App& app, Context& context);      // status
void add_ps_command(CLI::App& app, Context& context);          // ps
void add_reopen_command(CLI::App& app, Context& context);      // reopen
void add_config_commands(CLI::App& app, Context& context);     // config check, config show
void add_worker_command(CLI::App& app, Context& context);      // worker
void add_inspect_command(CLI::App& app, Context& context);     // inspect
void add_dashboard_command(CLI::App& app, Context& context);   // dashboard

}  // namespace ccmulti::cli
