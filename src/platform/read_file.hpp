// Opening files that live where others may write (a shared log dir, a state dir, a config file): a symlink
// planted there must not redirect root's writes, a FIFO must not hang the opener in open(2), and a device
// (/dev/full) or a kernel file (/proc/self/mem) is not a log. Every such file is opened here: O_NOFOLLOW where a
// symlink is refused, always O_NONBLOCK (a FIFO's open returns at once) and O_CLOEXEC, then checked to be a
// regular file before a byte is read or written.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>

#include "platform/fd.hpp"

namespace ccmulti {

// The file's bytes (following symlinks: a configuration file may well be one). Throws SystemError naming the path
// when it cannot be opened or read, and Error when it is not a regular file or is larger than `limit` bytes.
std::string read_text_file(const std::filesystem::path& path, std::size_t limit);

// Opens a regular file never through a symlink: `flags` (O_RDONLY, O_WRONLY|O_CREAT|O_APPEND, …) plus O_NOFOLLOW,
// O_CLOEXEC and O_NOCTTY; O_NONBLOCK only while opening. On failure the fd is empty and `why` says what is wrong
// in a few words ("it is a symlink", "it is a FIFO, not a regular file", "Permission denied").
struct RegularFile {
    UniqueFd fd;
    std::string why;
};
RegularFile open_regular_file(const std::filesystem::path& path, int flags, mode_t mode = 0644);

// A log file for appending (created 0644), by open_regular_file. Throws Error "refusing log file PATH: WHY" with
// the fix when it is a symlink or not a regular file, SystemError otherwise. `what` names it ("log file").
UniqueFd open_log_file(const std::filesystem::path& path, const std::string& what = "log file");

// Why `path` cannot be a log file, judged without opening it (for the command line, before anything starts):
// empty when it does not exist yet or is a writable regular file outside /proc and /sys.
std::string log_path_problem(const std::filesystem::path& path);

}  // namespace ccmulti
