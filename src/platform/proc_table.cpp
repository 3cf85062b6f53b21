#include "platform/proc_table.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "platform/proc.hpp"
#include "util/strings.hpp"

namespace ccmulti {

std::optional<std::uint64_t> read_rss(pid_t pid) {
    std::string text = read_proc_file("/proc/" + std::to_string(pid) + "/statm");
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(text.c_str(), "%llu %llu", &size, &resident) != 2) return std::nullopt;
    return static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<ProcEntry> scan_processes() {
    std::vector<ProcEntry> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (!is_digits(name)) continue;
        const pid_t pid = static_cast<pid_t>(std::stol(name));
        auto stat = read_proc_stat(pid);
        if (!stat || stat->zombie()) continue;
        ProcEntry proc;
        proc.pid = pid;
        proc.ppid = stat->ppid;
        proc.pgrp = stat->pgrp;
        proc.state = stat->state;
        proc.start_time = stat->start_time;
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) == 0) proc.uid = st.st_uid;
        proc.rss_bytes = read_rss(pid).value_or(0);
        auto argv = read_cmdline(pid);
        proc.title = argv.empty() ? "[" + stat->comm + "]" : join(argv, " ");
        out.push_back(std::move(proc));
    }
    return out;
}

double process_age_seconds(std::uint64_t start_time) {
    double uptime = 0;
    if (std::sscanf(read_proc_file("/proc/uptime").c_str(), "%lf", &uptime) != 1) return 0;
    double age = uptime - static_cast<double>(start_time) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    return age > 0 ? age : 0;
}

std::string format_bytes(std::uint64_t bytes) {
    char buffer[32];
    const double b = static_cast<double>(bytes);
    if (bytes < 1024 * 1024)
        std::snprintf(buffer, sizeof buffer, "%.0fK", b / 1024);
    else if (bytes < 1024ULL * 1024 * 1024)
        std::snprintf(buffer, sizeof buffer, "%.1fM", b / (1024 * 1024));
    else
        std::snprintf(buffer, sizeof buffer, "%.1fG", b / (1024 * 1024 * 1024));
    return buffer;
}

std::string format_duration(double seconds) {
    auto s = static_cast<long long>(seconds);
    char buffer[32];
    if (s < 60)
        std::snprintf(buffer, sizeof buffer, "%llds", s);
    else if (s < 3600)
        std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        std::snprintf(buffer, sizeof buffer, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
    return buffer;
}

}  // namespace ccmulti
