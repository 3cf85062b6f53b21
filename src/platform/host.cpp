#include "platform/host.hpp"

#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "util/error.hpp"

namespace ccmulti {

std::string hostname() {
    char buffer[HOST_NAME_MAX + 1] = {};
    if (gethostname(buffer, sizeof buffer - 1) != 0) throw SystemError("gethostname", errno);
    return buffer;
}

std::string self_executable() {
    std::error_code ec;
    auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) throw Error("cannot find the ccmulti executable via /proc/self/exe: " + ec.message());
    return path.string();
}

}  // namespace ccmulti
