// status: what the master of this run dir says about its nodes. One table, the master on top; the exit
// code says whether everything is ready (0) or not (3, also when no master runs), for scripts and health
// checks. A node in backoff shows how it last ended and the tail of its log, so a crash loop is never silent.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/context.hpp"
#include "cli/output.hpp"
#include "platform/proc_table.hpp"
#include "reports/reports.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

using nlohmann::json;

Color state_color(const std::string& state) {
    if (state == "ready") return Color::green;
    if (state == "starting" || state == "stopping") return Color::yellow;
    if (state == "stopped") return Color::dim;
    return Color::red;  // backoff, failed, exited
}

std::string or_dash(const std::string& text) {
    return text.empty() ? "-" : text;
}

void no_master(Context& context, const reports::StatusReport& report) {
    context.exit = Exit::not_ready;
    if (context.json) return print_json(report.document);
    auto elsewhere = report.document.value("masters_elsewhere", std::vector<std::string>{});
    std::string hint = elsewhere.empty() ? "(`ccmulti ps` finds every running ccmulti process)"
                                         : "(masters run in: " + join(elsewhere, ", ") + ")";
    print_error(report.error +
                "; start nodes with `ccmulti start NODES ...`, or pass the --run-dir or --pidfile they were "
                "started with " +
                hint);
}

void print_status(const json& reply, const std::vector<std::string>& only) {
    const json& master = reply["master"];
    std::cout << paint("master", Color::bold) << "  pid " << master.value("pid", 0) << "  up "
              << format_duration(master.value("uptime", 0.0)) << "  rss "
              << format_bytes(master.value("rss", std::uint64_t{0})) << "  run dir "
              << master.value("run_dir", std::string()) << '\n';
    // How the nodes are contained, and so what MEM is.
    if (master.contains("containment")) {
        const json& how = master["containment"];
        std::cout << "containment  " << how.value("mode", std::string("?")) << "  "
                  << (how.value("mode", "") == "cgroup" ? how.value("path", std::string())
                                                        : "(" + how.value("reason", std::string()) + ")")
                  << "  memory: " << how.value("memory", std::string("?")) << '\n';
    }
    if (master.contains("dashboard")) std::cout << "dashboard  " << master.value("dashboard", std::string()) << '\n';
    std::cout << '\n';
    std::vector<std::vector<std::string>> rows{
        {"NODE", "PID", "STATE", "UPTIME", "RESTARTS", "QUEUES", "CONC", "MEM", "LOG"}};
    std::vector<const json*> shown;
    for (const auto& node : reply["nodes"]) {
        if (!only.empty() && std::find(only.begin(), only.end(), node.value("name", "")) == only.end()) continue;
        const bool running = !node["pid"].is_null();
        rows.push_back({node.value("name", ""), running ? std::to_string(node["pid"].get<long>()) : "-",
                        node.value("state", ""), running ? format_duration(node.value("uptime", 0.0)) : "-",
                        std::to_string(node.value("restarts", 0)),
                        or_dash(join(node.value("queues", std::vector<std::string>{}), ",")),
                        node["concurrency"].is_null() ? "-" : std::to_string(node["concurrency"].get<int>()),
                        running ? format_bytes(node.value("memory", node.value("rss", std::uint64_t{0}))) : "-",
                        node.value("logfile", "")});
        shown.push_back(&node);
    }
    print_table(rows, [&](std::size_t row, std::size_t column) {
        return column == 2 ? state_color(rows[row][2]) : Color::none;
    });
    // Why a node is not running, where a crash loop would otherwise hide; and a reload that failed.
    for (const json* node : shown) {
        const std::string state = node->value("state", "");
        if (node->contains("reload")) {
            const json& reload = (*node)["reload"];
            const std::string error = reload.value("error", std::string());
            std::cout << '\n'
                      << paint(node->value("name", ""), Color::bold)
                      << ": reload failed: " << error.substr(0, error.find('\n')) << " (pid "
                      << node->value("pid", json(0)).dump()
                      << " serves on with the previous spec; fix it and reload again)\n";
            auto tail = reload.value("log_tail", std::vector<std::string>{});
            if (!tail.empty()) {
                std::cout << "  last lines of its replacement in " << node->value("logfile", "") << ":\n";
                for (const auto& line : tail) std::cout << "    " << line << '\n';
            }
        }
        if (state == "ready" || state == "starting" || state == "stopping") continue;
        std::cout << '\n' << paint(node->value("name", ""), Color::bold) << ": " << state;
        if (node->contains("status")) std::cout << ", last run " << node->value("status", "");
        if (node->contains("backoff")) {
            const json& backoff = (*node)["backoff"];
            char when[32];
            std::snprintf(when, sizeof when, "%.1fs", backoff.value("restart_in", 0.0));
            std::cout << "; crash " << backoff.value("attempt", 0) << " in a row, next start in " << when;
        }
        std::cout << '\n';
        auto tail = node->value("log_tail", std::vector<std::string>{});
        if (!tail.empty()) {
            std::cout << "  last lines of " << node->value("logfile", "") << ":\n";
            for (const auto& line : tail) std::cout << "    " << line << '\n';
        }
    }
    std::cout << std::flush;
}

void status_command(Context& context) {
    std::vector<std::string> only;
    if (context.names_nodes())
        for (const auto& node : context.nodes()) only.push_back(node.name);
    auto report = reports::status_report(context.group_dirs().run.path, only);
    if (!report.master) return no_master(context, report);
    for (const auto& name : report.unknown) print_warning(name + " is not a node of this master");
    context.exit = report.ready ? Exit::ok : Exit::not_ready;
    if (context.json) return print_json(report.document);
    print_status(report.document, only);
}

}  // namespace

void add_status_command(CLI::App& app, Context& context) {
    auto* status =
        add_node_command(app, context, "status",
                         "Show the master and its nodes (all, or NODES): state, pid, uptime, restarts, "
                         "memory, containment; exit 0 when every node is ready, 3 when not (or no master runs)");
    status->add_flag("--json", context.json, "Machine-readable output");
    status->callback([&context] { status_command(context); });
}

}  // namespace ccmulti::cli
