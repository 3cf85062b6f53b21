// The process table as /proc shows it right now, for `ccmulti ps` (which must work with every pid file
// deleted and the master dead) and for the RSS column of `status`. A process may vanish while we read it:
// it is then simply missing from the snapshot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ccmulti {

struct ProcEntry {
    pid_t pid = 0, ppid = 0, pgrp = 0;
    uid_t uid = 0;
    char state = '?';
    std::uint64_t start_time = 0;  // clock ticks since boot
    std::uint64_t rss_bytes = 0;
    std::string title;  // argv joined with spaces (the process title after a rewrite), else [comm]
};

// Every process readable in /proc, zombies excluded.
std::vector<ProcEntry> scan_processes();

// Resident set size of one process; nullopt when it is gone.
std::optional<std::uint64_t> read_rss(pid_t pid);

// Seconds since a process with this start time (ticks since boot) began.
double process_age_seconds(std::uint64_t start_time);

// "4.1M", "812K", "1.2G" for tables.
std::string format_bytes(std::uint64_t bytes);

// "45s", "12m03s", "3h07m", "2d04h" for tables.
std::string format_duration(double seconds);

}  // namespace ccmulti
