#include "supervisor/node_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "platform/read_file.hpp"

namespace ccmulti::supervisor {

NodeLog::NodeLog(std::filesystem::path path, UniqueFd pipe, Report report, std::vector<int> outputs,
                 std::chrono::milliseconds line_wait)
    : path_(std::move(path)),
      pipe_(std::move(pipe)),
      report_(std::move(report)),
      outputs_(std::move(outputs)),
      line_wait_(line_wait) {
    int flags = ::fcntl(pipe_.get(), F_GETFL);
    if (flags >= 0) ::fcntl(pipe_.get(), F_SETFL, flags | O_NONBLOCK);
}

void NodeLog::pump() {
    // Bounded per call, so a program that writes without pause cannot keep the shim from its signals.
    char buffer[65536];
    for (int round = 0; round < 16 && pipe_; ++round) {
        ssize_t n = ::read(pipe_.get(), buffer, sizeof buffer);
        if (n > 0) {
            append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0) report_("cannot read the program's output: " + std::string(std::strerror(errno)));
        pipe_.reset();  // end of file: every writer (the program and its children) closed it
    }
}

void NodeLog::append(const char* data, std::size_t size) {
    if (size == 0) return;
    if (reopen_by_) {
        if (const void* newline = std::memchr(data, '\n', size)) {
            const auto head = static_cast<std::size_t>(static_cast<const char*>(newline) - data) + 1;
            write_out(data, head);  // the line that was under way ends in the old file
            reopen();
            data += head;
            size -= head;
        }
    }
    if (size == 0) {
        at_line_start_ = true;
        return;
    }
    write_out(data, size);
    at_line_start_ = data[size - 1] == '\n';
}

void NodeLog::write_out(const char* data, std::size_t size) {
    if (write_all(outputs_.front(), data, size)) {
        if (dropped_ > 0) {
            report_("the log " + path_.string() + " is writable again; " + std::to_string(dropped_) +
                    " bytes of output were lost");
            dropped_ = 0;
        }
        return;
    }
    if (dropped_ == 0)
        report_("cannot write to the log " + path_.string() + ": " + std::strerror(errno) +
                "; the node's output is dropped until it can be written");
    dropped_ += size;
}

void NodeLog::request_reopen() {
    if (at_line_start_) {
        reopen();
        return;
    }
    if (!reopen_by_) reopen_by_ = Clock::now() + line_wait_;
}

std::optional<std::chrono::milliseconds> NodeLog::timeout() const {
    if (!reopen_by_) return std::nullopt;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*reopen_by_ - Clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

void NodeLog::on_timeout() {
    if (reopen_by_ && Clock::now() >= *reopen_by_) reopen();
}

void NodeLog::reopen() {
    reopen_by_.reset();
    auto file = open_regular_file(path_, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (!file.fd) {
        report_("cannot reopen the log " + path_.string() + ": " + file.why +
                "; still writing to the file that was open");
        return;
    }
    UniqueFd fresh = std::move(file.fd);
    // dup2 replaces each fd atomically: the shim's own messages (fd 2) follow the program's output.
    for (int fd : outputs_)
        if (::dup2(fresh.get(), fd) < 0)
            report_("cannot switch to the reopened log " + path_.string() + ": " + std::strerror(errno));
}

void NodeLog::drain(std::chrono::milliseconds quiet, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (pipe_) {
        pump();
        if (!pipe_) break;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        pollfd waiting{pipe_.get(), POLLIN, 0};
        int ready = ::poll(&waiting, 1, static_cast<int>(std::min(quiet, left).count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) break;  // quiet for `quiet`: whoever still holds the pipe is not writing
    }
}

}  // namespace ccmulti::supervisor
