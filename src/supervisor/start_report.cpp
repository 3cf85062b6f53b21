#include "supervisor/start_report.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>

#include "platform/read_file.hpp"

namespace ccmulti::supervisor {

namespace {

// The end of a failure line: the last lines of the node's log, or that there are none.
void print_log_tail(const nlohmann::json& event) {
    auto tail = event.value("log_tail", std::vector<std::string>{});
    if (tail.empty()) {
        std::cerr << " (nothing in its log " << event.value("log", "") << ")\n";
    } else {
        std::cerr << "; last lines of " << event.value("log", "") << ":\n";
        for (const auto& line : tail) std::cerr << "    " << line << '\n';
    }
    std::cerr << std::flush;
}

}  // namespace

bool print_start_event(const nlohmann::json& event) {
    const std::string kind = event.value("event", "");
    if (kind == "ready") {
        std::cout << event.value("node", "") << "  pid " << event.value("pid", 0) << "  ready  log "
                  << event.value("log", "") << std::endl;
    } else if (kind == "failed") {
        std::cout << std::flush;
        std::cerr << "ccmulti: error: " << event.value("node", "") << " failed to start: " << event.value("error", "");
        print_log_tail(event);
    } else if (kind == "not_ready") {
        std::cout << std::flush;
        std::cerr << "ccmulti: error: " << event.value("node", "") << " (pid " << event.value("pid", 0) << ") is "
                  << event.value("error", "not ready")
                  << ": the master keeps it and it becomes ready by itself once it can (a broker that comes up "
                     "later, say); `ccmulti status` shows when";
        print_log_tail(event);
    } else if (kind == "done") {
        return event.value("ok", false);
    }
    return true;
}

std::vector<std::string> log_tail(const std::filesystem::path& file, std::uintmax_t from, std::size_t lines) {
    // Only from the log itself: a symlink or FIFO at its path was refused, and what it points to is not shown.
    auto log = open_regular_file(file, O_RDONLY);
    if (!log.fd) return {};
    struct stat st {};
    if (::fstat(log.fd.get(), &st) != 0) return {};
    auto size = static_cast<std::uintmax_t>(st.st_size);
    if (from > size) from = 0;  // rotated (a new, shorter file at the path) or truncated since `from`
    constexpr std::uintmax_t window = 8192;
    std::uintmax_t start = std::max(from, size > window ? size - window : 0);
    if (start >= size) return {};
    std::string text(static_cast<std::size_t>(size - start), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::pread(log.fd.get(), text.data() + got, text.size() - got, static_cast<off_t>(start + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    std::vector<std::string> all;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        all.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    while (!all.empty() && all.back().empty()) all.pop_back();
    if (all.size() > lines) all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(lines));
    return all;
}

}  // namespace ccmulti::supervisor
