// Unix-domain socket helpers: addresses with a length check that names the path, listening and datagram
// sockets bound in the (0700) run dir with mode 0600, and the peer's credentials.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <filesystem>

#include "platform/fd.hpp"

namespace ccmulti {

// Throws Error when `path` does not fit sun_path (108 bytes), saying which dir to shorten.
sockaddr_un unix_address(const std::filesystem::path& path);

// SOCK_STREAM listener (non-blocking, CLOEXEC), mode 0600. An existing socket file at `path` is replaced:
// call it only while holding the lock that makes this process the path's owner.
UniqueFd listen_unix(const std::filesystem::path& path);

// SOCK_DGRAM receiver with SO_PASSCRED (every datagram carries the sender's pid/uid), mode 0600.
UniqueFd bind_unix_datagram(const std::filesystem::path& path);

// Blocking SOCK_STREAM connection; an invalid UniqueFd when nobody listens (ENOENT, ECONNREFUSED). A listener
// whose backlog is full is tried again for `patience`, then SystemError with EAGAIN.
UniqueFd connect_unix(const std::filesystem::path& path,
                      std::chrono::milliseconds patience = std::chrono::milliseconds(5000));

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};
PeerCredentials peer_credentials(int fd);  // SO_PEERCRED of a connected stream socket

}  // namespace ccmulti
