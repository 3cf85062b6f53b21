#include "platform/proc.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace ccmulti {

std::string read_proc_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::optional<ProcStat> parse_proc_stat(const std::string& text) {
    // "PID (COMM) S PPID PGRP ...": COMM may hold spaces and ')', so split at the last ')'.
    auto open = text.find('(');
    auto close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
    ProcStat stat;
    if (std::from_chars(text.data(), text.data() + open - 1, stat.pid).ec != std::errc{}) return std::nullopt;
    stat.comm = text.substr(open + 1, close - open - 1);
    std::istringstream rest(text.substr(close + 1));
    std::string field;
    std::vector<std::string> fields;  // fields[0] is field 3 (state)
    while (rest >> field) fields.push_back(field);
    if (fields.size() < 20 || fields[0].size() != 1) return std::nullopt;
    stat.state = fields[0][0];
    try {
        stat.ppid = std::stoi(fields[1]);
        stat.pgrp = std::stoi(fields[2]);
        stat.start_time = std::stoull(fields[19]);  // field 22
    } catch (const std::exception&) {
        return std::nullopt;
    }
    return stat;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    std::string text = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
    if (text.empty()) return std::nullopt;
    return parse_proc_stat(text);
}

std::vector<std::string> read_cmdline(pid_t pid) {
    std::string text = read_proc_file("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> argv;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\0', start);
        if (end == std::string::npos) end = text.size();
        argv.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    // A rewritten title leaves a run of NULs: trailing empty arguments are padding, not argv.
    while (!argv.empty() && argv.back().empty()) argv.pop_back();
    return argv;
}

std::uint64_t self_start_time() {
    auto stat = read_proc_stat(::getpid());
    return stat ? stat->start_time : 0;
}

std::string describe_state(char state) {
    switch (state) {
        case 'R':
            return "R (running)";
        case 'S':
            return "S (sleeping)";
        case 'D':
            return "D (uninterruptible sleep: it cannot be killed until the kernel call returns)";
        case 'Z':
            return "Z (zombie)";
        case 'T':
            return "T (stopped)";
        case 't':
            return "t (tracing stop)";
        default:
            return std::string(1, state);
    }
}

}  // namespace ccmulti
