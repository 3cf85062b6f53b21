#include "cli/celery_runner.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>

#include "util/shell_split.hpp"
#include "util/strings.hpp"

namespace ccmulti::cli {

namespace {

// Belong to the `celery` program, not to `worker`: Celery's multi moves them before the subcommand.
constexpr std::array<const char*, 12> celery_app_options = {
    "-A", "--app",      "-b",        "--broker", "--result-backend", "--loader", "--config",
    "-C", "--no-color", "--workdir", "-q",       "--quiet"};
// ccmulti's, or replaced by ccmulti: never passed to Celery.
constexpr std::array<const char*, 14> celery_withheld = {
    "--exec", "--stop-timeout", "--start-timeout", "--python", "--celery", "--pidfile",      "--logfile",
    "-f",     "--detach",       "--uid",           "--gid",    "--watch",  "--watch-ignore", "--watch-debounce"};

bool listed(const auto& list, const std::string& name) {
    return std::any_of(list.begin(), list.end(), [&](const char* o) { return name == o; });
}

void append_option(std::vector<std::string>& out, const std::string& flag, const std::string& value) {
    if (value.empty())
        out.push_back(flag);
    else if (flag.starts_with("--"))
        out.push_back(flag + "=" + value);
    else {
        out.push_back(flag);
        out.push_back(value);
    }
}

std::string default_python() {
    if (const char* python = std::getenv("CCMULTI_PYTHON"); python && *python) return python;
    if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return "python3";
}

}  // namespace

bool runs_celery(const naming::Node& node) {
    const auto* exec = node.options.find("--exec");
    if (exec && exec->value && !exec->value->empty()) return false;
    auto app = node.option({"-A", "--app"});
    return app && !app->empty();
}

std::vector<std::string> celery_argv(const naming::Node& node) {
    std::vector<std::string> argv;
    if (auto program = node.option({"--celery"}); program && !program->empty()) {
        argv = shell_split(*program, "--celery of " + node.name);
    } else {
        auto python = node.option({"--python"});
        argv = {python && !python->empty() ? *python : default_python(), "-m", "celery"};
    }
    std::vector<std::string> app, worker;
    for (const auto& [flag, value] : node.options.items()) {
        if (listed(celery_withheld, flag)) continue;
        append_option(listed(celery_app_options, flag) ? app : worker, flag, node.expand(value.value_or(""), flag));
    }
    argv.insert(argv.end(), app.begin(), app.end());
    argv.push_back("worker");
    argv.insert(argv.end(), worker.begin(), worker.end());
    argv.push_back("--pidfile=");  // the pid file is ccmulti's (the node shim's, locked)
    argv.insert(argv.end(), node.passthrough.begin(), node.passthrough.end());
    if (node.append) argv.push_back(node.expand(*node.append, "--append"));
    return argv;
}

std::string celery_ready_pattern(const naming::Node& node) {
    auto level = node.option({"-l", "--loglevel"});
    std::string lower = level.value_or("warning");
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower != "debug" && lower != "info") return "";
    return node.name + " ready.";
}

}  // namespace ccmulti::cli
