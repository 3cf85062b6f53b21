// The master's own log (spdlog): a file in the log dir opened O_APPEND|O_CLOEXEC by ccmulti itself (spdlog's
// file sinks would leak their fd into every node), plus stderr when the master runs in the foreground.
#pragma once

#include <spdlog/logger.h>

#include <filesystem>
#include <memory>

namespace ccmulti::supervisor {

std::shared_ptr<spdlog::logger> make_master_log(const std::filesystem::path& file, bool to_stderr);

}  // namespace ccmulti::supervisor
