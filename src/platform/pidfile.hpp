// Pid files that cannot lie. A pid file holds "PID STARTTIME\n" (STARTTIME from /proc/PID/stat, field 22)
// and is flock()ed by its owner for the owner's whole life, so:
//   - not locked                                  → stale, whatever pid it names (nobody owns it)
//   - locked, but the pid is gone or a zombie      → not running (zombies count as dead)
//   - locked, pid alive, start time differs        → the pid was recycled: not ours, never signalled
//   - locked, pid alive, start time matches, and the process title is the expected prefix or starts with
//     it followed by a space
//                                                  → running
// Files are opened O_NOFOLLOW|O_CLOEXEC: a symlink planted in the run dir is refused, and no child inherits
// a lock by accident.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "platform/fd.hpp"

namespace ccmulti {

struct PidFileContents {
    pid_t pid = 0;
    std::uint64_t start_time = 0;
};

// Parses "PID STARTTIME" (a bare "PID", as Celery writes, gives start_time 0); nullopt when malformed.
std::optional<PidFileContents> parse_pidfile(const std::string& text);

// A pid file this process has created and locked.
class PidFile {
public:
    // Creates (or takes over a stale) `path` and locks it. nullopt when another process holds the lock.
    // Throws Error when the file cannot be opened (permissions, a symlink...).
    static std::optional<PidFile> try_acquire(const std::filesystem::path& path);

    void write(pid_t pid, std::uint64_t start_time);  // replaces the contents
    // Unlinks the file if it is still ours (same inode at that path) and releases the lock.
    void remove();

    const std::filesystem::path& path() const { return path_; }
    int fd() const { return fd_.get(); }

private:
    PidFile(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
    std::filesystem::path path_;
    UniqueFd fd_;
};

struct PidCheck {
    enum class State { missing, stale, running };
    State state = State::missing;
    pid_t pid = 0;  // as read from the file (0 when missing or malformed)
    std::uint64_t start_time = 0;
    std::string reason;  // for missing/stale: why, e.g. "not locked", "pid 123 is another process (sleep)"

    bool running() const { return state == State::running; }
};

// Checks `path` without taking its lock for longer than an instant. `title_prefix` is what the owner's
// process title must start with, e.g. "ccmulti: node w1@host".
PidCheck check_pidfile(const std::filesystem::path& path, const std::string& title_prefix);

// True when `pid` is alive, not a zombie, started at `start_time` and its title starts with `title_prefix`;
// otherwise false with `why` saying what differs.
bool same_process(pid_t pid, std::uint64_t start_time, const std::string& title_prefix, std::string& why);

}  // namespace ccmulti
