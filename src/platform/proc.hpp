// Reading /proc: what a pid is right now (state, parent, group, start time) and its command line. The
// start time (clock ticks since boot, field 22 of /proc/PID/stat) never changes for a process and differs
// for the next process that gets the same pid, so (pid, start time) names one process for good.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ccmulti {

struct ProcStat {
    pid_t pid = 0;
    std::string comm;  // the 15-char name
    char state = '?';  // R S D Z T t X I ...
    pid_t ppid = 0;
    pid_t pgrp = 0;
    std::uint64_t start_time = 0;

    bool zombie() const { return state == 'Z' || state == 'X'; }
};

// nullopt when the process does not exist (or cannot be read).
std::optional<ProcStat> read_proc_stat(pid_t pid);

// Parses the text of a /proc/PID/stat file; nullopt when malformed. Separate for tests.
std::optional<ProcStat> parse_proc_stat(const std::string& text);

// argv of `pid` as /proc/PID/cmdline shows it (after any process-title rewrite); empty when unreadable.
std::vector<std::string> read_cmdline(pid_t pid);

// A /proc file's text ("" when the process is gone). /proc files report size 0, so they are read as streams.
std::string read_proc_file(const std::string& path);

// The start time of this process, for our own pid files.
std::uint64_t self_start_time();

// "S (sleeping)", "D (uninterruptible sleep)"... for messages about a process that will not die.
std::string describe_state(char state);

}  // namespace ccmulti
