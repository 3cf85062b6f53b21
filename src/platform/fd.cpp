#include "platform/fd.hpp"

#include <fcntl.h>

#include <cerrno>

#include "util/error.hpp"

namespace ccmulti {

Pipe make_pipe(int extra_flags) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | extra_flags) != 0) throw SystemError("pipe2", errno);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool write_all(int fd, const void* data, std::size_t size) noexcept {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace ccmulti
