#include "broker/redis/connection.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>

#include <cctype>
#include <cerrno>

#include "broker/redis/sentinel.hpp"

namespace ccmulti::broker::redis {

namespace {

timeval to_timeval(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
    return tv;
}

// hiredis's error, as one lower-case phrase: "connection refused", "connection closed by the server".
std::string failure_text(const redisContext* context, int saved_errno) {
    if (!context) return "out of memory";
    if (context->err == REDIS_ERR_EOF) return "connection closed by the server";
    if (context->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
        return "no reply in time (timed out)";
    std::string text = context->errstr;
    if (text.empty()) text = "connection failed";
    if (context->err == REDIS_ERR_PROTOCOL) text = "protocol error: " + text;
    if (!text.empty() && std::isupper(static_cast<unsigned char>(text[0])) &&
        !(text.size() > 1 && std::isupper(static_cast<unsigned char>(text[1]))))
        text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

bool is_transient_reply(std::string_view error) {
    for (std::string_view code : {"OOM", "MISCONF", "READONLY", "BUSY", "LOADING", "MASTERDOWN", "NOREPLICAS",
                                  "TRYAGAIN", "CLUSTERDOWN", "EXECABORT"})
        if (error.starts_with(code) && (error.size() == code.size() || error[code.size()] == ' ')) return true;
    return false;
}

Connection::Connection(RedisUrl url, std::chrono::milliseconds timeout) : url_(std::move(url)), timeout_(timeout) {
    std::string host = url_.host;
    int port = url_.port;
    if (url_.sentinel()) {
        generation_ = master_generation(url_);
        MasterAddress master = resolve_master(url_, timeout_);
        host = master.host;
        port = master.port;
    }
    server_ = host_port(host, port);
    context_ = redisConnectWithTimeout(host.c_str(), port, to_timeval(timeout_));
    if (!context_ || context_->err) {
        int saved = errno;
        std::string text = failure_text(context_, saved);
        if (context_) redisFree(context_);
        context_ = nullptr;
        broken_ = true;
        throw ConnectionError(prefix() + text);
    }
    // hiredis opens its sockets without FD_CLOEXEC: pool children and spawned programs must not inherit them.
    ::fcntl(context_->fd, F_SETFD, FD_CLOEXEC);
    redisSetTimeout(context_, to_timeval(timeout_));
    redisEnableKeepAlive(context_);
    try {  // a constructor that throws runs no destructor: the context is freed here
        if (url_.password) {
            Reply reply = url_.username ? try_command({"AUTH", *url_.username, *url_.password})
                                        : try_command({"AUTH", *url_.password});
            if (reply.is_error()) throw Error(prefix() + "authentication failed: " + reply.string());
        }
        if (url_.db != 0) {
            Reply reply = try_command({"SELECT", std::to_string(url_.db)});
            if (reply.is_error())
                throw Error(prefix() + "cannot select database " + std::to_string(url_.db) + ": " + reply.string());
        }
        if (url_.sentinel()) {
            // The sentinels' answer may predate a failover: make sure this one is the master now.
            Reply role = try_command({"ROLE"});
            if (role.is_error() || role.size() == 0 || role[0].text() != "master")
                throw ConnectionError(prefix() + "the sentinels named it master " + url_.master_name + ", but it is " +
                                      (role.is_error() ? "not answering ROLE (" + role.string() + ")"
                                                       : "a " + std::string(role[0].text())) +
                                      " (a failover under way?)");
        }
    } catch (...) {
        redisFree(context_);
        context_ = nullptr;
        throw;
    }
}

Connection::~Connection() {
    if (context_) redisFree(context_);
}

int Connection::fd() const noexcept {
    return context_ ? context_->fd : -1;
}

bool Connection::stale() const noexcept {
    return url_.sentinel() && master_generation(url_) != generation_;
}

void Connection::fail(const std::string& what) {
    int saved = errno;
    broken_ = true;
    std::string text = what.empty() ? failure_text(context_, saved) : what;
    throw ConnectionError(prefix() + text);
}

void Connection::refuse(const std::string& what, const ReplyView& reply) {
    std::string text = prefix() + (what.empty() ? "" : what + ": ") + reply.string();
    if (!is_transient_reply(reply.text())) throw Error(text);
    broken_ = true;
    throw ConnectionError(text);
}

void Connection::append(const std::string_view* args, std::size_t count) {
    if (broken_) fail("connection is broken");
    std::vector<const char*> pointers(count);
    std::vector<std::size_t> lengths(count);
    for (std::size_t i = 0; i < count; ++i) {
        pointers[i] = args[i].data();
        lengths[i] = args[i].size();
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(count), pointers.data(), lengths.data()) != REDIS_OK) fail();
}

void Connection::send_deferred(const std::vector<Command>& commands, RepliesCheck check) {
    if (nonblocking_) throw Error(prefix() + "deferred replies need a request/response connection");
    for (const auto& args : commands) {
        std::vector<std::string_view> views(args.begin(), args.end());
        append(views.data(), views.size());
    }
    deferred_.push_back({commands.size(), std::move(check)});
    send({});
}

void Connection::read_deferred() {
    while (!deferred_.empty()) {
        Deferred next = std::move(deferred_.front());
        deferred_.pop_front();
        std::vector<Reply> replies;
        replies.reserve(next.replies);
        try {
            for (std::size_t i = 0; i < next.replies; ++i) replies.push_back(read_one());
            next.check(replies);
        } catch (...) {
            broken_ = true;  // replies of this batch, or of later ones, are left unread
            deferred_.clear();
            throw;
        }
    }
}

Reply Connection::read_blocking() {
    read_deferred();  // their replies come first
    return read_one();
}

Reply Connection::read_one() {
    if (nonblocking_) {
        auto reply = read(timeout_);
        if (!reply) fail("no reply in time (timed out)");
        return std::move(*reply);
    }
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || !raw) fail();
    return screened(Reply(static_cast<redisReply*>(raw)));
}

// A master demoted to replica answers writes with READONLY (and blocked commands with UNBLOCKED): the connection is
// of no more use, whatever was asked. Reconnecting (through the sentinels) finds the new master. NOREPLICAS (a
// master with min-replicas-to-write cut off from its replicas, about to be replaced) is treated the same: retried
// with backoff, on whichever server is master by then.
Reply Connection::screened(Reply reply) {
    if (reply.is_error()) {
        std::string_view text = reply.text();
        if (text.starts_with("READONLY") || text.starts_with("UNBLOCKED"))
            fail("no longer the master: " + reply.string());
        if (text.starts_with("NOREPLICAS")) fail("refuses writes: " + reply.string());
    }
    return reply;
}

Reply Connection::checked(Reply reply) {
    if (reply.is_error()) refuse("", reply);
    return reply;
}

Reply Connection::try_command(std::initializer_list<std::string_view> args) {
    append(args.begin(), args.size());
    if (nonblocking_) send({});
    return read_blocking();
}

Reply Connection::try_command(const Command& args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    append(views.data(), views.size());
    if (nonblocking_) send({});
    return read_blocking();
}

Reply Connection::command(std::initializer_list<std::string_view> args) {
    return checked(try_command(args));
}
Reply Connection::command(const Command& args) {
    return checked(try_command(args));
}

std::vector<Reply> Connection::pipeline(const std::vector<Command>& commands) {
    for (const auto& args : commands) {
        std::vector<std::string_view> views(args.begin(), args.end());
        append(views.data(), views.size());
    }
    if (nonblocking_) send({});
    std::vector<Reply> replies;
    replies.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) replies.push_back(read_blocking());
    return replies;
}

void Connection::set_nonblocking() {
    if (broken_) fail("connection is broken");
    int flags = ::fcntl(context_->fd, F_GETFL);
    if (flags < 0 || ::fcntl(context_->fd, F_SETFL, flags | O_NONBLOCK) < 0) fail();
    // hiredis treats EAGAIN as "try later" only on contexts it thinks are non-blocking.
    context_->flags &= ~REDIS_BLOCK;
    nonblocking_ = true;
}

void Connection::send(const Command& args) {
    if (!args.empty()) {
        std::vector<std::string_view> views(args.begin(), args.end());
        append(views.data(), views.size());
    }
    if (!nonblocking_) {
        // A blocking context flushes on the next read; push it out now so the server starts working.
        int done = 0;
        while (!done)
            if (redisBufferWrite(context_, &done) != REDIS_OK) fail();
        return;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    int done = 0;
    while (true) {
        if (redisBufferWrite(context_, &done) != REDIS_OK) fail();
        if (done) return;
        pollfd entry{context_->fd, POLLOUT, 0};
        int ready = ::poll(&entry, 1, remaining_ms(deadline));
        if (ready < 0 && errno != EINTR) fail();
        if (ready == 0) fail("cannot send (timed out)");
    }
}

std::optional<Reply> Connection::read_available() {
    if (broken_) fail("connection is broken");
    void* raw = nullptr;
    if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) fail();
    if (raw) return screened(Reply(static_cast<redisReply*>(raw)));
    if (redisBufferRead(context_) != REDIS_OK) fail();
    if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) fail();
    if (raw) return screened(Reply(static_cast<redisReply*>(raw)));
    return std::nullopt;
}

std::optional<Reply> Connection::read(std::chrono::milliseconds timeout) {
    if (broken_) fail("connection is broken");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    void* raw = nullptr;
    while (true) {
        if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) fail();
        if (raw) return screened(Reply(static_cast<redisReply*>(raw)));
        pollfd entry{context_->fd, POLLIN, 0};
        int ready = ::poll(&entry, 1, remaining_ms(deadline));
        if (ready < 0) {
            if (errno == EINTR) continue;
            fail();
        }
        if (ready == 0) return std::nullopt;
        // Readable: one read(2) takes what is there without blocking, on either kind of socket.
        if (redisBufferRead(context_) != REDIS_OK) fail();
    }
}

}  // namespace ccmulti::broker::redis
