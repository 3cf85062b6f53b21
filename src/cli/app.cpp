#include "cli/app.hpp"

#include <cstdlib>
#include <iostream>

#include "cli/celery_front.hpp"
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

// -q: std::cout writes into this while a QuietCout lives.
class NullBuffer : public std::streambuf {
protected:
    int overflow(int c) override { return traits_type::not_eof(c); }
    std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

// Points std::cout at `sink` while it lives (no sink: leaves it alone).
class QuietCout {
public:
    explicit QuietCout(std::streambuf* sink) : saved_(sink ? std::cout.rdbuf(sink) : nullptr) {}
    ~QuietCout() {
        if (saved_) std::cout.rdbuf(saved_);
    }
    QuietCout(const QuietCout&) = delete;
    QuietCout& operator=(const QuietCout&) = delete;

private:
    std::streambuf* saved_;
};

}  // namespace

int run(const std::vector<std::string>& args) {
    Context context;
    context.invocation = args;
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
    add_restart_command(app, context);
    add_reload_command(app, context);
    add_status_command(app, context);
    add_ps_command(app, context);
    add_reopen_command(app, context);
    add_config_commands(app, context);
    add_worker_command(app, context);
    add_inspect_command(app, context);
    add_dashboard_command(app, context);

    // Celery's words in front of the subcommand (`celery -A proj multi start ...`): cli/celery_front.hpp.
    CeleryFront front = read_celery_front(args, [&](const std::string& flag) {
        const auto* option = app.get_option_no_throw(flag);
        return option && option->get_expected_min() > 0;
    });
    // Global options may come before the subcommand; the first bare word is the subcommand.
    const std::vector<std::string>& words = front.args;
    std::vector<std::string> cli_args;
    std::size_t i = 0;
    for (; i < words.size(); ++i) {
        cli_args.push_back(words[i]);
        if (!words[i].starts_with("-")) break;
        const auto* option = app.get_option_no_throw(words[i].substr(0, words[i].find('=')));
        if (option && option->get_expected_min() > 0 && words[i].find('=') == std::string::npos && i + 1 < words.size())
            cli_args.push_back(words[++i]);
    }
    // A node command may be nested one level: "config show w1 -c:w1 4".
    bool nested = i + 1 < words.size() && context.node_commands.contains(words[i] + " " + words[i + 1]);
    if (i < words.size() && (nested || context.node_commands.contains(words[i]))) {
        CLI::App* sub = app.get_subcommand(words[i]);
        if (nested) {
            cli_args.push_back(words[++i]);
            sub = sub->get_subcommand(words[i]);
        }
        auto tail = take_reserved_flags({words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end()}, front);
        auto own = split_node_args(*sub, tail, context.node_args);
        cli_args.insert(cli_args.end(), own.begin(), own.end());
        add_node_options(context.node_args, front.node_options);
    } else if (i < words.size()) {
        cli_args.insert(cli_args.end(), words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end());
        cli_args.insert(cli_args.end(), front.node_options.begin(), front.node_options.end());
    }
    if (front.no_color) disable_color();
    context.verbose = front.verbose;
    // -q: errors only. What the subcommand prints on stdout goes nowhere (its exit code still says it all).
    NullBuffer null_sink;
    QuietCout quiet(front.quiet ? &null_sink : nullptr);

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
