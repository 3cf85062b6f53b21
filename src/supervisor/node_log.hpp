// A node's log file, owned by its node shim. The program's stdout and stderr are a pipe; the shim appends what
// comes out of it to the log file (the shim's own fds 1 and 2, O_APPEND). A program cannot be made to reopen its fd 1
// from outside, but the shim can reopen the file by path: that is how log rotation works without losing a line
// (rename the file, then SIGUSR1 to the shim). The reopen happens at a line boundary, so a line is never split
// between the old file and the new one (a line that does not end within a second is split anyway).
//
// A failed write (ENOSPC, EIO) drops that output and is reported once per streak through `report` (the master
// logs it); it never stops the node. At the program's exit, drain() appends what is still in the pipe.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "platform/fd.hpp"

namespace ccmulti::supervisor {

class NodeLog {
public:
    using Report = std::function<void(const std::string& message)>;

    // `pipe` is the read end (made non-blocking here). The log is open on `outputs` (the shim: 1 and 2), which
    // the first is written to; a reopen dup2s the new file onto each. A pending reopen waits at most `line_wait`
    // for the end of the line under way.
    NodeLog(std::filesystem::path path, UniqueFd pipe, Report report, std::vector<int> outputs = {1, 2},
            std::chrono::milliseconds line_wait = std::chrono::seconds(1));

    // The pipe, for poll(); -1 once every writer has closed it.
    int fd() const { return pipe_.get(); }

    // Appends what the pipe holds now (non-blocking).
    void pump();

    // SIGUSR1: reopen `path` now if the last byte written ended a line, else at the next line end.
    void request_reopen();
    // How long poll() may sleep before on_timeout() must run; nullopt: no deadline.
    std::optional<std::chrono::milliseconds> timeout() const;
    void on_timeout();

    // After the program exited: appends everything left in the pipe, waiting for more while some arrives within
    // `quiet` (a grandchild may still hold the pipe), at most `limit` in all.
    void drain(std::chrono::milliseconds quiet, std::chrono::milliseconds limit);

private:
    void append(const char* data, std::size_t size);
    void write_out(const char* data, std::size_t size);
    void reopen();

    using Clock = std::chrono::steady_clock;
    std::filesystem::path path_;
    UniqueFd pipe_;
    Report report_;
    std::vector<int> outputs_;
    std::chrono::milliseconds line_wait_;
    bool at_line_start_ = true;
    std::optional<Clock::time_point> reopen_by_;  // a reopen is pending until then
    std::uintmax_t dropped_ = 0;                  // bytes lost in the current streak of failed writes
};

}  // namespace ccmulti::supervisor
