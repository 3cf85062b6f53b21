// Reading a whole small file (a configuration file) into memory, with O_CLOEXEC so no descriptor leaks
// into a process forked meanwhile.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace ccmulti {

// The file's bytes. Throws SystemError naming the path when it cannot be opened or read, and Error when it
// is not a regular file or is larger than `limit` bytes.
std::string read_text_file(const std::filesystem::path& path, std::size_t limit);

}  // namespace ccmulti
