#include "platform/fd.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/resource.h>

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

int fd_ceiling() noexcept {
    constexpr rlim_t cap = 1 << 20;  // the kernel's default nr_open: no fd is numbered higher
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > cap)
        return static_cast<int>(cap);
    return static_cast<int>(limit.rlim_cur);
}

bool cloexec_from(int low, int ceiling) noexcept {
    if (::close_range(static_cast<unsigned>(low), ~0U, CLOSE_RANGE_CLOEXEC) == 0) return true;
    if (errno != ENOSYS && errno != EINVAL) return false;  // EINVAL: a kernel without the flag
    for (int fd = low; fd < ceiling; ++fd) {
        int flags = ::fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC) && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return false;
    }
    return true;
}

bool close_from(int low, int ceiling) noexcept {
    if (::close_range(static_cast<unsigned>(low), ~0U, 0) == 0) return true;
    if (errno != ENOSYS && errno != EINVAL) return false;
    for (int fd = low; fd < ceiling; ++fd) ::close(fd);  // EBADF for the numbers not in use
    return true;
}

}  // namespace ccmulti
