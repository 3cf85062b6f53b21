#include "supervisor/log_watch.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include "platform/read_file.hpp"
#include "util/error.hpp"

namespace ccmulti::supervisor {

LogWatch::LogWatch(EventLoop& loop, const std::filesystem::path& file, std::uintmax_t from, std::string pattern,
                   std::function<void()> on_match)
    : loop_(loop), offset_(from), pattern_(std::move(pattern)), on_match_(std::move(on_match)) {
    inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_) throw SystemError("inotify_init1", errno);
    if (::inotify_add_watch(inotify_.get(), file.c_str(), IN_MODIFY) < 0)
        throw SystemError("cannot watch " + file.string(), errno);
    auto opened = open_regular_file(file, O_RDONLY);
    if (!opened.fd) throw Error("cannot read " + file.string() + ": " + opened.why);
    file_ = std::move(opened.fd);
    loop_.watch(inotify_.get(), EPOLLIN, [this](std::uint32_t) {
        char events[4096];
        while (::read(inotify_.get(), events, sizeof events) > 0) {
        }
        scan();  // may call on_match_, which may destroy this watch: nothing after it
    });
}

LogWatch::~LogWatch() {
    loop_.unwatch(inotify_.get());
}

bool LogWatch::scan() {
    if (matched_) return true;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::pread(file_.get(), buffer, sizeof buffer, static_cast<off_t>(offset_));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        offset_ += static_cast<std::uintmax_t>(n);
        carry_.append(buffer, static_cast<std::size_t>(n));
        if (carry_.find(pattern_) != std::string::npos) {
            matched_ = true;
            break;
        }
        // Keep only what could be the start of a match split across two reads.
        if (carry_.size() > pattern_.size()) carry_.erase(0, carry_.size() - pattern_.size());
    }
    if (!matched_) return false;
    auto callback = on_match_;  // the callback may destroy this watch: touch no member after it
    callback();
    return true;
}

}  // namespace ccmulti::supervisor
