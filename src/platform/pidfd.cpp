#include "platform/pidfd.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "util/error.hpp"

namespace ccmulti {

// Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks C linkage for C++ callers.
namespace {
int sys_pidfd_open(pid_t pid, unsigned int flags) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}
int sys_pidfd_send_signal(int fd, int sig) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0));
}
}  // namespace

std::optional<ProcessHandle> ProcessHandle::open(pid_t pid) {
    int fd = sys_pidfd_open(pid, 0);  // pidfds are always close-on-exec
    if (fd >= 0) return ProcessHandle(pid, UniqueFd(fd));
    if (errno == ESRCH) return std::nullopt;
    throw SystemError("pidfd_open(" + std::to_string(pid) + ")", errno);
}

bool ProcessHandle::send_signal(int sig) const {
    if (sys_pidfd_send_signal(fd_.get(), sig) == 0) return true;
    if (errno == ESRCH) return false;
    throw SystemError("pidfd_send_signal(" + std::to_string(pid_) + ")", errno);
}

bool ProcessHandle::exited() const {
    pollfd entry{fd_.get(), POLLIN, 0};
    int n;
    do n = ::poll(&entry, 1, 0);
    while (n < 0 && errno == EINTR);
    return n > 0;
}

}  // namespace ccmulti
