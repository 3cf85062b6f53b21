#include "tasks/command_output.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <cctype>
#include <cstring>

#include <ccmulti/task.hpp>

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

// How deep arrays and objects nest in `text`, outside strings (a cheap scan before the parser builds it).
std::size_t nesting_depth(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

}  // namespace

json command_result(const CommandRun& result, const std::vector<std::string>& argv) {
    const std::string program = argv.empty() ? std::string("the command") : argv[0];
    if (result.exec_errno)
        throw TaskError("CommandError", "cannot run '" + program + "': " + std::strerror(result.exec_errno));
    if (result.hard_killed) throw TaskError("TimeLimitExceeded", "hard time limit exceeded", result.err);
    const int status = result.wait_status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        std::string_view out = result.out;
        while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.remove_suffix(1);
        while (!out.empty() && std::isspace(static_cast<unsigned char>(out.front()))) out.remove_prefix(1);
        if (out.empty()) return nullptr;
        if (nesting_depth(out) > max_result_depth)
            throw TaskError("CommandError",
                            "command succeeded but its stdout nests arrays or objects deeper than " +
                                std::to_string(max_result_depth) + " levels",
                            result.err);
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

}  // namespace ccmulti::tasks
