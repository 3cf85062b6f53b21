// Turning the `ccmulti start` process into a background daemon the classic way (double fork so it can never
// reacquire a terminal, setsid, stdio on /dev/null, a known cwd), while the command the user typed waits for
// the daemon to say how starting went: the daemon writes its report into a pipe, and the original process
// relays it and exits with the right code.
#pragma once

#include <filesystem>
#include <functional>

#include "platform/fd.hpp"

namespace ccmulti {

// In the calling process: returns the read end of the report pipe once the intermediate child has exited
// (EOF on it means the daemon closed it or died). In the daemon: runs `body` with the write end and exits
// with its return value; never returns there. Every fd the caller holds is inherited (locks included).
UniqueFd spawn_daemon(const std::filesystem::path& cwd, const std::function<int(UniqueFd report)>& body);

}  // namespace ccmulti
