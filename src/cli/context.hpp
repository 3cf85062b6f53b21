// What every subcommand shares: the global options, the celery-multi arguments given after the subcommand,
// and the exit code the subcommand settles on.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "naming/cluster.hpp"
#include "platform/dirs.hpp"
#include "util/error.hpp"

namespace ccmulti::cli {

struct Context {
    std::optional<std::string> config, run_dir, log_dir, state_dir;
    std::vector<std::string> node_args;     // celery-multi grammar tokens ("w1 w2 -c:w1 4 ...")
    std::set<std::string> node_commands;    // subcommands that take such tokens
    bool json = false;                      // --json, offered by every listing command
    Exit exit = Exit::ok;

    Dirs dirs() const;
    std::vector<naming::Node> nodes() const;  // from node_args; UsageError when they name no node
};

// Declares a subcommand whose unrecognised arguments are celery-multi node arguments rather than errors.
CLI::App* add_node_command(CLI::App& app, Context& context, const std::string& name, const std::string& help);

void add_naming_commands(CLI::App& app, Context& context);  // show, names, expand, get
void add_dirs_command(CLI::App& app, Context& context);
void add_supervise_commands(CLI::App& app, Context& context);  // start, stop, stopwait, kill

}  // namespace ccmulti::cli
