// The master's own log (spdlog): a file in the log dir opened O_APPEND|O_CLOEXEC by ccmulti itself (spdlog's
// file sinks would leak their fd into every node), plus stderr when the master runs in the foreground.
//
// Under systemd with the journal on stderr ($JOURNAL_STREAM names the device and inode of stderr), a foreground
// master logs everything to stderr instead, without its own timestamps (journald adds them) and with sd-daemon's
// "<N>" priority prefix, and writes no master.log: `journalctl -u UNIT` is the log.
#pragma once

#include <spdlog/logger.h>

#include <filesystem>
#include <memory>

namespace ccmulti::supervisor {

std::shared_ptr<spdlog::logger> make_master_log(const std::filesystem::path& file, bool to_stderr);

// True when stderr is the journal stream systemd set up for us ($JOURNAL_STREAM matches fd 2).
bool stderr_is_journal();

// SIGUSR1 (log rotation): reopens the file by its path. Errors are logged, never thrown.
void reopen_master_log(spdlog::logger& logger);

}  // namespace ccmulti::supervisor
