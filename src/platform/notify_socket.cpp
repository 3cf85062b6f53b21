#include "platform/notify_socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "platform/unix_socket.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti {

std::map<std::string, std::string> parse_notify_fields(const std::string& text) {
    std::map<std::string, std::string> fields;
    for (const auto& line : split(text, '\n')) {
        auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        fields[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return fields;
}

NotifySocket::NotifySocket(std::filesystem::path path) : path_(std::move(path)), fd_(bind_unix_datagram(path_)) {}

NotifySocket::~NotifySocket() {
    ::unlink(path_.c_str());
}

std::optional<NotifyMessage> NotifySocket::receive() {
    for (;;) {
        char data[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{data, sizeof data - 1};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(fd_.get(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
            throw SystemError("recvmsg on " + path_.string(), errno);
        }
        const ucred* cred = nullptr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
        if (!cred || cred->pid <= 0) continue;
        NotifyMessage result;
        result.pid = cred->pid;
        result.uid = cred->uid;
        result.fields = parse_notify_fields(std::string(data, static_cast<std::size_t>(n)));
        return result;
    }
}

}  // namespace ccmulti
