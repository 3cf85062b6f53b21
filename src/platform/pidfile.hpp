// Pid files that cannot lie, in the format every tool reads. A pid file holds the decimal pid and a newline,
// nothing else (`kill -0 $(cat w1.pid)`, init scripts, monitoring agents), and is flock()ed by its owner for the
// owner's whole life, so:
//   - not locked                                  → stale, whatever pid it names (nobody owns it)
//   - locked, but the pid is gone or a zombie      → not running (zombies count as dead)
//   - locked, pid alive, but its title is not the expected one
//                                                  → the pid was recycled: not ours, never signalled
//   - locked, pid alive, and the process title is the expected prefix or starts with it followed by a space
//                                                  → running
// The lock outlives a dead owner only while its master still holds the file (a node in backoff), and a
// recycled pid cannot carry a ccmulti node's title for that very name, which only a holder of the lock starts.
// Between the check and a signal, the start time read then (/proc/PID/stat, field 22) pins the process: a
// caller re-checks it on a pidfd before it signals.
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

// Parses "PID\n" (the newline optional, as Celery writes); nullopt when malformed. For a file written by an
// older ccmulti, "PID STARTTIME" still gives the pid.
std::optional<pid_t> parse_pidfile(const std::string& text);

// A pid file this process has created and locked.
class PidFile {
public:
    // Creates (or takes over a stale) `path` and locks it. nullopt when another process holds the lock.
    // Throws Error when the file cannot be opened (permissions, a symlink...).
    static std::optional<PidFile> try_acquire(const std::filesystem::path& path);

    // The contents are replaced whole: a locked ".NAME.new" beside the file, written and renamed over it, so a
    // reader (an init script's status during a restart) sees the old pid or the new one, never an empty or
    // half-written file, and the lock moves with the contents. prepare_write() makes the replacement first, so
    // its fd can go to a child that holds the lock too (the node shim) before the child's pid is known.
    class Replacement {
    public:
        int fd() const { return fd_.get(); }
        Replacement(Replacement&&) = default;
        Replacement& operator=(Replacement&&) = default;
        ~Replacement();  // removes the file when it was never committed

    private:
        friend class PidFile;
        Replacement(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
        std::filesystem::path path_;
        UniqueFd fd_;
    };
    Replacement prepare_write();
    void commit(Replacement next, pid_t pid);  // "PID\n"
    void write(pid_t pid) { commit(prepare_write(), pid); }

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
    pid_t pid = 0;                 // as read from the file (0 when missing or malformed)
    std::uint64_t start_time = 0;  // of that process, read from /proc when it was found running
    std::string reason;            // for missing/stale: why, e.g. "not locked", "pid 123 is another process (sleep)"

    bool running() const { return state == State::running; }
};

// Checks `path` without taking its lock for longer than an instant. `title_prefix` is what the owner's
// process title must start with, e.g. "ccmulti: node w1@host".
PidCheck check_pidfile(const std::filesystem::path& path, const std::string& title_prefix);

// True when `pid` is alive, not a zombie, and its title starts with `title_prefix` (and, when `start_time` is
// not 0, it started at `start_time`); otherwise false with `why` saying what differs.
bool same_process(pid_t pid, std::uint64_t start_time, const std::string& title_prefix, std::string& why);

}  // namespace ccmulti
