// config check [FILE]: validate a configuration and report every problem, compiler style.
// config show [--json] [NODES…]: the effective settings, per node, and where each value came from.
#include <iostream>
#include <memory>

#include "broker/connect.hpp"
#include "cli/broker_client.hpp"
#include "cli/context.hpp"
#include "cli/output.hpp"
#include "config/json.hpp"
#include "config/load.hpp"
#include "config/node_settings.hpp"
#include "config/schema.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

// A {"value", "from"} pair's value as one cell of text.
std::string cell(const std::string& key, const nlohmann::json& value) {
    if (value.is_null()) return "-";
    if (value.is_string()) return value.get<std::string>();
    if (value.is_array()) {
        std::vector<std::string> items;
        for (const auto& item : value) items.push_back(item.is_string() ? item.get<std::string>() : item.dump());
        return key.ends_with("command") ? shell_join(items) : join(items, ",");
    }
    return value.dump();
}

// Rows of SETTING VALUE FROM for every {"value", "from"} pair under `document`, named by their dotted path.
void collect_rows(const nlohmann::json& document, const std::string& path,
                  std::vector<std::vector<std::string>>& rows) {
    if (!document.is_object()) return;
    if (document.contains("value") && document.contains("from")) {
        rows.push_back({path, cell(path, document["value"]), document["from"].get<std::string>()});
        return;
    }
    for (const auto& [key, value] : document.items()) collect_rows(value, path.empty() ? key : path + "." + key, rows);
}

nlohmann::json dir_json(const Dir& dir) {
    return {{"value", dir.path.string()}, {"from", dir.origin}};
}

// Everything that is not per node: top-level keys (with the dirs as resolved), broker, results, tasks, watch.
nlohmann::json global_json(const Context& context) {
    const config::Settings& settings = context.settings();
    Dirs dirs = context.dirs();
    nlohmann::json all = config::to_json(settings);
    nlohmann::json out;
    out["app"] = all["app"];
    out["run_dir"] = dir_json(dirs.run);
    out["log_dir"] = dir_json(dirs.log);
    out["state_dir"] = dir_json(dirs.state);
    out["workdir"] =
        settings.workdir.is_set()
            ? nlohmann::json{{"value", context.workdir().string()}, {"from", settings.workdir.origin}}
            : nlohmann::json{{"value", context.workdir().string()}, {"from", "default (current directory)"}};
    out["user"] = all["user"];
    out["group"] = all["group"];
    out["broker"] = all["broker"];
    out["results"] = all["results"];
    out["tasks"] = all["tasks"];
    out["watch"] = all["watch"];
    return out;
}

void show(Context& context) {
    const config::Settings& settings = context.settings();
    nlohmann::json global = global_json(context);

    // Per-node settings for the nodes named (or configured); with none, what a node would get.
    std::vector<ConfiguredNode> nodes;
    if (!context.node_args.empty() || !settings.node_order.empty()) nodes = context.configured_nodes();
    Dirs dirs = context.dirs();
    config::NodeSettings defaults = config::builtin_node_settings(dirs.run.path, dirs.log.path);
    defaults.overlay(settings.defaults);
    defaults.overlay(settings.overrides);

    if (context.json) {
        nlohmann::json out = {{"file", settings.file.empty() ? nlohmann::json(nullptr) : nlohmann::json(settings.file)},
                              {"settings", global},
                              {"defaults", config::to_json(defaults)},
                              {"nodes", nlohmann::json::array()}};
        for (const auto& [node, node_settings] : nodes) {
            const std::string* table = config::node_table_name(settings, node);
            out["nodes"].push_back({{"name", node.name},
                                    {"table", table ? nlohmann::json(*table) : nlohmann::json(nullptr)},
                                    {"settings", config::to_json(node_settings)}});
        }
        return print_json(out);
    }

    std::cout << "configuration file: "
              << (settings.file.empty() ? "none (built-in defaults and environment)" : settings.file) << "\n\n";
    std::vector<std::vector<std::string>> rows{{"SETTING", "VALUE", "FROM"}};
    collect_rows(global, "", rows);
    print_table(rows);
    auto node_table = [](const config::NodeSettings& node_settings) {
        std::vector<std::vector<std::string>> node_rows{{"SETTING", "VALUE", "FROM"}};
        collect_rows(config::to_json(node_settings), "", node_rows);
        print_table(node_rows);
    };
    if (nodes.empty()) {
        std::cout << "\nno nodes configured; every node gets:\n";
        node_table(defaults);
    }
    for (const auto& [node, node_settings] : nodes) {
        const std::string* table = config::node_table_name(settings, node);
        std::cout << "\nnode " << paint(node.name, Color::bold)
                  << (table ? " " + config::node_section(*table) : std::string(" (no [nodes] table)")) << '\n';
        node_table(node_settings);
    }
}

}  // namespace

void add_config_commands(CLI::App& app, Context& context) {
    auto* config = app.add_subcommand("config", "Check or show the configuration (see docs/configuration.md)");
    config->require_subcommand(1);

    auto file = std::make_shared<std::string>();
    auto* check = config->add_subcommand(
        "check", "Validate the configuration and the CCMULTI_* variables: print OK, or every error (exit 2)");
    check->add_option("FILE", *file, "File to check instead of the one ccmulti would read");
    check->callback([&context, file] {
        auto env = config::current_environment();
        auto cwd = std::filesystem::current_path();
        config::Loaded loaded = file->empty() ? config::load_config(context.config, env, cwd)
                                              : config::load_config_file({cwd / *file, *file, "argument"}, env);
        for (const auto& warning : loaded.warnings) print_warning(warning);
        std::vector<std::string> lines = loaded.errors.lines();
        // Past the schema: a result backend must be one the native nodes can store in (the same check as start's).
        if (const auto& results = loaded.settings.results.url; lines.empty() && results.is_set()) {
            try {
                const auto& broker = loaded.settings.broker.url;
                broker::check_result_url(result_url_with_options(*results, loaded.settings),
                                         broker.is_set() ? *broker : broker::default_broker_url);
            } catch (const UsageError& e) {
                lines.push_back(results.origin + ": " + e.what());
            }
        }
        // And the broker must be one they consume from (a Sentinel URL needs a master name, here or in [broker]
        // transport_options).
        if (const auto& url = loaded.settings.broker.url; lines.empty() && url.is_set()) {
            try {
                broker::check_broker_url(broker_url_with_options(*url, loaded.settings));
            } catch (const UsageError& e) {
                lines.push_back(url.origin + ": " + e.what());
            }
        }
        if (!lines.empty()) {
            // Bare "FILE:LINE:COLUMN: message" lines, which editors and CI annotate.
            std::fflush(stdout);
            for (const auto& line : lines) std::cerr << line << '\n';
            std::size_t count = lines.size();
            print_error(std::to_string(count) + (count == 1 ? " error" : " errors") +
                        (loaded.file ? " in " + loaded.file->name : std::string()));
            context.exit = Exit::usage;
            return;
        }
        if (loaded.file)
            std::cout << "OK: " << loaded.file->name << '\n';
        else
            std::cout << "OK: no configuration file found; built-in defaults apply\n";
    });

    auto* show_command = add_node_command(*config, context, "show",
                                          "Print the effective settings per node and where each value came from");
    show_command->add_flag("--json", context.json, "Machine-readable output");
    show_command->callback([&context] { show(context); });
}

}  // namespace ccmulti::cli
