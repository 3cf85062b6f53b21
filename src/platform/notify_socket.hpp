// The receiving end of systemd's notification protocol: the master binds one datagram socket, passes its
// path to every node as NOTIFY_SOCKET, and reads "READY=1", "STOPPING=1", "STATUS=..." lines. SO_PASSCRED
// makes the kernel attach the sender's real pid and uid to each datagram, so a node cannot speak for
// another one: the master maps the pid to a node by its process group. Any sd_notify-aware program works.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "platform/fd.hpp"

namespace ccmulti {

struct NotifyMessage {
    pid_t pid = 0;  // from the kernel, not from the sender
    uid_t uid = 0;
    std::map<std::string, std::string> fields;  // "READY" → "1"
};

// "READY=1\nSTATUS=warming up\n" → {READY: 1, STATUS: warming up}. Lines without '=' are ignored.
std::map<std::string, std::string> parse_notify_fields(const std::string& text);

class NotifySocket {
public:
    explicit NotifySocket(std::filesystem::path path);
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    int fd() const { return fd_.get(); }
    const std::filesystem::path& path() const { return path_; }

    // The next datagram, or nullopt when none is waiting (non-blocking). Datagrams without credentials
    // are skipped.
    std::optional<NotifyMessage> receive();

private:
    std::filesystem::path path_;
    UniqueFd fd_;
};

}  // namespace ccmulti
