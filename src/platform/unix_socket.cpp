#include "platform/unix_socket.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "util/error.hpp"

namespace ccmulti {

sockaddr_un unix_address(const std::filesystem::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = path.string();
    if (text.size() >= sizeof address.sun_path)
        throw Error("socket path " + text + " is longer than the " + std::to_string(sizeof address.sun_path - 1) +
                    " bytes Unix sockets allow; use a shorter run dir (--run-dir or CCMULTI_RUN_DIR)");
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    return address;
}

namespace {

UniqueFd bound_socket(const std::filesystem::path& path, int type) {
    sockaddr_un address = unix_address(path);
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw SystemError("socket", errno);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw SystemError("cannot replace " + path.string(), errno);
    // Mode 0600 from the start: umask for the bind, so there is no window with a wider mode.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
    int bind_errno = errno;
    ::umask(old);
    if (rc != 0) throw SystemError("cannot bind " + path.string(), bind_errno);
    return fd;
}

}  // namespace

UniqueFd listen_unix(const std::filesystem::path& path) {
    UniqueFd fd = bound_socket(path, SOCK_STREAM);
    if (::listen(fd.get(), 64) != 0) throw SystemError("listen " + path.string(), errno);
    return fd;
}

UniqueFd bind_unix_datagram(const std::filesystem::path& path) {
    UniqueFd fd = bound_socket(path, SOCK_DGRAM);
    int on = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) throw SystemError("SO_PASSCRED", errno);
    return fd;
}

UniqueFd connect_unix(const std::filesystem::path& path, std::chrono::milliseconds patience) {
    sockaddr_un address = unix_address(path);
    // Non-blocking: a listener whose backlog is full (a hung or swamped server) answers EAGAIN instead of keeping
    // the caller waiting for ever. A Unix socket has no connect-in-progress to poll for, so try again a little
    // later, until `patience` is over.
    const auto deadline = std::chrono::steady_clock::now() + patience;
    auto pause = std::chrono::milliseconds(5);
    for (;;) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) throw SystemError("socket", errno);
        int rc;
        do rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
        while (rc != 0 && errno == EINTR);
        if (rc == 0) {
            const int flags = ::fcntl(fd.get(), F_GETFL);
            if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) throw SystemError("fcntl", errno);
            return fd;
        }
        if (errno == ENOENT || errno == ECONNREFUSED) return UniqueFd();
        if (errno != EAGAIN || std::chrono::steady_clock::now() + pause > deadline)
            throw SystemError("cannot connect to " + path.string() +
                                  (errno == EAGAIN ? " (its listener takes no more connections)" : ""),
                              errno);
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(200));
    }
}

PeerCredentials peer_credentials(int fd) {
    ucred cred{};
    socklen_t size = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) throw SystemError("SO_PEERCRED", errno);
    return {cred.pid, cred.uid, cred.gid};
}

}  // namespace ccmulti
