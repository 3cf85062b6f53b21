#include "cli/app.hpp"

#include <iostream>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "config/errors.hpp"

namespace ccmulti::cli {

namespace {

const CLI::Option* find_option(const CLI::App* app, const std::string& name) {
    for (; app; app = app->get_parent())
        if (const auto* option = app->get_option_no_throw(name)) return option;
    return nullptr;
}

// For a node command, separates ccmulti's own options (which CLI11 parses) from celery-multi node
// arguments (which the naming module parses): "-c:w1 4" is nothing CLI11 could understand.
std::vector<std::string> split_node_args(const CLI::App& sub, const std::vector<std::string>& tail,
                                         std::vector<std::string>& node_args) {
    std::vector<std::string> own;
    for (std::size_t i = 0; i < tail.size(); ++i) {
        const std::string& arg = tail[i];
        if (arg == "--") {
            node_args.insert(node_args.end(), tail.begin() + static_cast<std::ptrdiff_t>(i), tail.end());
            break;
        }
        std::string name = arg.substr(0, arg.find('='));
        const CLI::Option* option = arg.starts_with("-") ? find_option(&sub, name) : nullptr;
        if (!option) {
            node_args.push_back(arg);
            continue;
        }
        own.push_back(arg);
        if (option->get_expected_min() > 0 && name == arg && i + 1 < tail.size()) own.push_back(tail[++i]);
    }
    return own;
}

}  // namespace

int run(const std::vector<std::string>& args) {
    Context context;
    CLI::App app{"ccmulti: start, stop and watch task-queue worker nodes (celery multi, done right)", "ccmulti"};
    app.require_subcommand(1);
    app.fallthrough();
    app.set_version_flag("--version", "ccmulti " CCMULTI_VERSION);
    app.add_option("-C,--config", context.config, "Configuration file (TOML or YAML)");
    app.add_option("--run-dir", context.run_dir, "Pid files and control socket [env CCMULTI_RUN_DIR]");
    app.add_option("--log-dir", context.log_dir, "Log files [env CCMULTI_LOG_DIR]");
    app.add_option("--state-dir", context.state_dir, "Embedded broker database [env CCMULTI_STATE_DIR]");
    app.footer("Node arguments follow celery multi: see docs/celery-compat.md. Exit codes: docs/exit-codes.md.");

    add_naming_commands(app, context);
    add_dirs_command(app, context);
    add_call_command(app, context);
    add_result_command(app, context);
    add_queue_commands(app, context);
    add_supervise_commands(app, context);
    add_status_command(app, context);
    add_ps_command(app, context);
    add_reopen_command(app, context);
    add_config_commands(app, context);
    add_worker_command(app, context);
    add_inspect_command(app, context);

    // Global options may come before the subcommand; the first bare word is the subcommand.
    std::vector<std::string> cli_args;
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
        cli_args.push_back(args[i]);
        if (!args[i].starts_with("-")) break;
        const auto* option = app.get_option_no_throw(args[i].substr(0, args[i].find('=')));
        if (option && option->get_expected_min() > 0 && args[i].find('=') == std::string::npos && i + 1 < args.size())
            cli_args.push_back(args[++i]);
    }
    // A node command may be nested one level: "config show w1 -c:w1 4".
    bool nested = i + 1 < args.size() && context.node_commands.contains(args[i] + " " + args[i + 1]);
    if (i < args.size() && (nested || context.node_commands.contains(args[i]))) {
        CLI::App* sub = app.get_subcommand(args[i]);
        if (nested) {
            cli_args.push_back(args[++i]);
            sub = sub->get_subcommand(args[i]);
        }
        std::vector<std::string> tail(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
        auto own = split_node_args(*sub, tail, context.node_args);
        cli_args.insert(cli_args.end(), own.begin(), own.end());
    } else if (i < args.size()) {
        cli_args.insert(cli_args.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
    }

    try {
        std::vector<std::string> reversed(cli_args.rbegin(), cli_args.rend());  // CLI11 pops from the back
        app.parse(reversed);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        print_error(e.what() + std::string(" (see ccmulti --help)"));
        return static_cast<int>(Exit::usage);
    } catch (const config::ConfigError& e) {
        for (const auto& line : e.lines()) print_error(line);  // every problem, one per line
        return static_cast<int>(e.code());
    } catch (const Error& e) {
        print_error(e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        print_error(std::string("internal error: ") + e.what());
        return static_cast<int>(Exit::failure);
    }
    return static_cast<int>(context.exit);
}

}  // namespace ccmulti::cli
