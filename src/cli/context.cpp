#include "cli/context.hpp"

#include <unistd.h>

#include "cli/node_spec.hpp"
#include "cli/output.hpp"
#include "config/env.hpp"
#include "config/load.hpp"
#include "config/node_settings.hpp"
#include "platform/host.hpp"

namespace ccmulti::cli {

const config::Settings& Context::settings() const {
    if (!loaded_settings) {
        auto loaded = config::load_config(config, config::current_environment(), std::filesystem::current_path());
        for (const auto& warning : loaded.warnings) print_warning(warning);
        loaded.errors.throw_if_any();
        loaded_settings = std::move(loaded.settings);
    }
    return *loaded_settings;
}

std::filesystem::path Context::workdir() const {
    const auto& workdir = settings().workdir;
    auto cwd = std::filesystem::current_path();
    return workdir.is_set() ? (cwd / *workdir).lexically_normal() : cwd;
}

Dirs Context::dirs() const {
    const config::Settings& s = settings();
    // The file's and the environment's values each carry their own origin ("ccmulti.toml:3",
    // "$CCMULTI_RUN_DIR"): one layer per setting, below the command line.
    std::vector<DirLayer> layers{DirLayer{run_dir, log_dir, state_dir, ""},
                                 DirLayer{s.run_dir.value, std::nullopt, std::nullopt, s.run_dir.origin},
                                 DirLayer{std::nullopt, s.log_dir.value, std::nullopt, s.log_dir.origin},
                                 DirLayer{std::nullopt, std::nullopt, s.state_dir.value, s.state_dir.origin}};
    return resolve_dirs(layers, geteuid(), real_getenv, workdir());
}

namespace {

// The one directory every file of `files` is in; nullopt when they are in several (or there are none).
std::optional<std::filesystem::path> common_parent(const std::vector<std::filesystem::path>& files) {
    std::optional<std::filesystem::path> common;
    for (const auto& file : files) {
        if (common && *common != file.parent_path()) return std::nullopt;
        common = file.parent_path();
    }
    return common;
}

}  // namespace

bool Context::names_nodes() const {
    if (node_args.empty()) return false;
    return !naming::parse_args(node_args).names.empty() || !config::configured_node_names(settings()).empty();
}

Dirs Context::group_dirs() const {
    Dirs where = dirs();
    if (node_args.empty()) return where;
    if (!names_nodes()) {
        // Options alone: the directory of --pidfile/--logfile, when it does not depend on the node.
        const auto options = naming::parse_args(node_args).options;
        auto dir_of = [&](std::initializer_list<const char*> flags) -> std::optional<std::filesystem::path> {
            for (const char* flag : flags)
                if (const auto* option = options.find(flag); option && option->value) {
                    const auto dir = std::filesystem::path(*option->value).parent_path();
                    if (dir.string().find('%') != std::string::npos) return std::nullopt;
                    return (workdir() / dir).lexically_normal();
                }
            return std::nullopt;
        };
        if (auto dir = dir_of({"--pidfile", "-p"}); dir && !run_dir) where.run = {"run", *dir, "--pidfile"};
        if (auto dir = dir_of({"--logfile", "-f"}); dir && !log_dir) where.log = {"log", *dir, "--logfile"};
        return where;
    }
    std::vector<std::filesystem::path> pidfiles, logfiles;
    const auto cwd = std::filesystem::current_path();
    for (const auto& node : nodes()) {
        auto files = node_files(node, cwd);
        pidfiles.push_back(files.pidfile);
        logfiles.push_back(files.logfile);
    }
    if (auto common = common_parent(pidfiles); common && !run_dir && *common != where.run.path)
        where.run = {"run", *common, "the nodes' pid files"};
    if (auto common = common_parent(logfiles); common && !log_dir && *common != where.log.path)
        where.log = {"log", *common, "the nodes' log files"};
    return where;
}

std::optional<Owner> Context::node_owner() const {
    std::optional<std::string> user, group;
    std::string from = "`user`";
    if (const auto& s = settings(); s.user.is_set()) user = *s.user;
    if (const auto& s = settings(); s.group.is_set()) group = *s.group;
    std::optional<std::pair<std::optional<std::string>, std::optional<std::string>>> given;
    for (const auto& node : names_nodes() ? nodes() : std::vector<naming::Node>{}) {
        std::pair ids{node.option({"--uid"}), node.option({"--gid"})};
        if (given && *given != ids)
            throw UsageError("the nodes of one group run as one user: " + node.name +
                             " has other --uid/--gid than the others");
        given = ids;
    }
    if (given && given->first) {
        user = given->first;
        from = "--uid";
    }
    if (given && given->second) group = given->second;
    if (!user && group) throw UsageError("--gid/`group` without --uid/`user`: name the user the nodes run as too");
    if (!user) return std::nullopt;
    Owner owner = resolve_owner(*user, group.value_or(""));
    if (::geteuid() == 0) return owner;
    if (owner.uid == ::geteuid() && owner.gid == ::getegid()) return std::nullopt;  // already that user
    throw UsageError("only root can run nodes as another user (" + from + " " + *user + "); run ccmulti as " +
                     owner.name + " instead, or drop " + from);
}

std::vector<ConfiguredNode> Context::configured_nodes() const {
    const config::Settings& s = settings();
    Dirs where = dirs();
    naming::ParsedArgs parsed = naming::parse_args(node_args);
    if (parsed.names.empty()) parsed.names = config::configured_node_names(s);
    // No pid/log file defaults here: they come from the configuration's layers below.
    auto nodes = naming::build_nodes(std::move(parsed), naming::NamingDefaults{hostname(), "", ""});
    auto builtin = config::builtin_node_settings(where.run.path, where.log.path);
    std::vector<ConfiguredNode> out;
    for (auto& node : nodes) {
        auto settings = config::effective_node_settings(s, node, builtin);
        config::add_worker_options(settings, node.options);
        node.worker_args();  // expands every template now, those from the configuration included
        out.push_back({std::move(node), std::move(settings)});
    }
    return out;
}

std::vector<naming::Node> Context::nodes() const {
    std::vector<naming::Node> out;
    for (auto& configured : configured_nodes()) out.push_back(std::move(configured.node));
    return out;
}

CLI::App* add_node_command(CLI::App& app, Context& context, const std::string& name, const std::string& help) {
    context.node_commands.insert(app.get_parent() ? app.get_name() + " " + name : name);
    auto* sub = app.add_subcommand(name, help);
    sub->footer(
        "Node arguments, as for celery multi: NODES... [OPTIONS] [-- WORKER ARGS], e.g.\n"
        "  w1 w2 -c 2 -Q:w1 high --logfile=%n%I.log      3 -c:2 8 --range-prefix=w\n");
    return sub;
}

}  // namespace ccmulti::cli
