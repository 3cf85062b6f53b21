// Readiness from a node's log: watches the log file (inotify, in the master's event loop: no polling) and
// calls back once `pattern` appears in what was written after byte `from`. For programs that say they are
// ready only in their log, like a Celery worker ("w1@host ready.").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "platform/event_loop.hpp"
#include "platform/fd.hpp"

namespace ccmulti::supervisor {

class LogWatch {
public:
    // Throws SystemError when the file cannot be watched or opened.
    LogWatch(EventLoop& loop, const std::filesystem::path& file, std::uintmax_t from, std::string pattern,
             std::function<void()> on_match);
    ~LogWatch();
    LogWatch(const LogWatch&) = delete;
    LogWatch& operator=(const LogWatch&) = delete;

    // Reads what is new now (also done on every inotify event). True once the pattern was seen.
    bool scan();

private:
    EventLoop& loop_;
    UniqueFd inotify_, file_;
    std::uintmax_t offset_;
    std::string pattern_, carry_;
    std::function<void()> on_match_;
    bool matched_ = false;
};

}  // namespace ccmulti::supervisor
