#include "tasks/command_task.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <cstring>

#include "tasks/command_runner.hpp"
#include "util/strings.hpp"

namespace ccmulti::tasks {

namespace {

using nlohmann::json;

bool is_identifier_path(std::string_view text) {
    if (text.empty()) return false;
    bool start = true;
    for (char c : text) {
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (c == '.') {
            if (start) return false;
            start = true;
            continue;
        }
        if (!letter && !(digit && !start)) return false;
        start = false;
    }
    return !start;
}

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

json run(const std::vector<std::string>& argv, const std::filesystem::path& cwd, const TaskCall& call) {
    json input = {
        {"id", call.id}, {"task", call.name}, {"args", call.args}, {"kwargs", call.kwargs}, {"retries", call.retries}};
    CommandRun result = run_command(argv, input.dump() + "\n", {call.soft_deadline, call.hard_deadline}, cwd);
    if (result.exec_errno)
        throw TaskError("CommandError", "cannot run '" + argv[0] + "': " + std::strerror(result.exec_errno));
    if (result.hard_killed) throw TaskError("TimeLimitExceeded", "hard time limit exceeded", result.err);
    const int status = result.wait_status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        std::string_view out = result.out;
        while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.remove_suffix(1);
        while (!out.empty() && std::isspace(static_cast<unsigned char>(out.front()))) out.remove_prefix(1);
        if (out.empty()) return nullptr;
        try {
            return json::parse(out);
        } catch (const json::exception&) {
            std::string shown(out.substr(0, 200));
            throw TaskError("CommandError", "command succeeded but its stdout is not JSON: " + shown, result.err);
        }
    }
    if (WIFSIGNALED(status) && result.soft_signalled && WTERMSIG(status) == SIGUSR1)
        throw TaskError("SoftTimeLimitExceeded", "soft time limit exceeded", result.err);
    if (auto exception = parse_exception_line(result.err))
        throw TaskError(exception->first, exception->second, result.err);
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by " + signal_name(WTERMSIG(status));
    throw TaskError("CommandError", shell_join(argv) + ": " + how, result.err);
}

}  // namespace

std::optional<std::pair<std::string, std::string>> parse_exception_line(const std::string& stderr_text) {
    std::string_view text = stderr_text;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    if (text.empty()) return std::nullopt;
    auto newline = text.rfind('\n');
    std::string_view line = newline == std::string_view::npos ? text : text.substr(newline + 1);
    if (auto colon = line.find(": "); colon != std::string_view::npos && is_identifier_path(line.substr(0, colon)))
        return std::pair{std::string(line.substr(0, colon)), std::string(line.substr(colon + 2))};
    if (is_identifier_path(line) && (line.ends_with("Error") || line.ends_with("Exception") || line.ends_with("Exit") ||
                                     line.ends_with("Interrupt")))
        return std::pair{std::string(line), std::string()};
    return std::nullopt;
}

Task command_task(const std::string& name, std::vector<std::string> argv, std::filesystem::path cwd) {
    std::string origin = "command: " + shell_join(argv);
    return {name, origin,
            [argv = std::move(argv), cwd = std::move(cwd)](const TaskCall& call) { return run(argv, cwd, call); }};
}

}  // namespace ccmulti::tasks
