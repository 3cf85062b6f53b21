#include "platform/proc_environ.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "platform/proc.hpp"

namespace ccmulti {

bool environment_holds(const std::string& environ_text, const std::vector<std::string>& entries) {
    std::vector<bool> matched(entries.size(), false);
    std::size_t start = 0;
    while (start < environ_text.size()) {
        auto end = environ_text.find('\0', start);
        if (end == std::string::npos) end = environ_text.size();
        std::string_view entry(environ_text.data() + start, end - start);
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (entry == entries[i]) matched[i] = true;
        start = end + 1;
    }
    return !entries.empty() && std::find(matched.begin(), matched.end(), false) == matched.end();
}

std::vector<pid_t> processes_with_environment(const std::vector<std::string>& entries) {
    std::vector<pid_t> pids;
    const pid_t self = ::getpid();
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = static_cast<pid_t>(std::stol(name));
        if (pid == self) continue;
        if (!environment_holds(read_proc_file("/proc/" + name + "/environ"), entries)) continue;
        auto stat = read_proc_stat(pid);
        if (stat && !stat->zombie()) pids.push_back(pid);
    }
    return pids;
}

}  // namespace ccmulti
