// One connection to a Redis server: an RAII hiredis context that connects with a timeout, authenticates, selects
// the URL's database and keeps TCP keepalive on (so a peer that vanished is noticed even on an idle connection).
//
// Two ways to use it:
//  - request/response: command() and pipeline() block for the reply, bounded by the command timeout;
//  - split send/read, for a connection an event loop watches (a BRPOP parked on the server, a SUBSCRIBE):
//    set_nonblocking(), send(), then read_available() whenever fd() is readable. That never blocks.
//
// Errors: when the connection itself fails (refused, reset, closed, timed out) a ConnectionError is thrown and
// the connection is broken() for good: make a new one (see Backoff). A server error reply to command() throws a
// plain Error, or a ConnectionError when it says the server cannot do it now (is_transient_reply: OOM, READONLY,
// ...); try_command() returns it instead. Messages read "redis 127.0.0.1:6379: connection refused".
// A reply saying the server is no longer the master (READONLY, or UNBLOCKED for a blocked command when it was
// demoted) is a connection failure too, wherever it is read: reconnecting finds the new master.
//
// For a sentinel:// URL the constructor asks the sentinels for the master's address and checks its ROLE
// (broker/redis/sentinel.hpp), so every reconnect follows a failover.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/redis/reply.hpp"
#include "broker/redis/url.hpp"
#include "util/error.hpp"

struct redisContext;

namespace ccmulti::broker::redis {

// The server is unreachable or the connection broke: worth retrying later with a new connection.
class ConnectionError : public Error {
public:
    using Error::Error;
};

using Command = std::vector<std::string>;

// An error reply that says the server cannot do it now, not that the command is wrong: OOM (maxmemory reached
// under noeviction), MISCONF (it cannot persist), READONLY (a replica: its master failed over), BUSY (a script
// runs), LOADING, MASTERDOWN, NOREPLICAS, TRYAGAIN, CLUSTERDOWN. Retried like a broken connection, on a new one
// (which, after a failover, finds the new master).
bool is_transient_reply(std::string_view error);

class Connection {
public:
    static constexpr std::chrono::milliseconds default_timeout{5000};

    // Connects (within `timeout`, also the command timeout), AUTH, SELECT. Throws ConnectionError when the
    // server cannot be reached, Error when it refuses the password or the database.
    explicit Connection(RedisUrl url, std::chrono::milliseconds timeout = default_timeout);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const RedisUrl& url() const noexcept { return url_; }
    int fd() const noexcept;
    bool broken() const noexcept { return broken_; }
    // A sentinel-managed master this process has since learnt was replaced (a failover): reconnect.
    bool stale() const noexcept;
    const std::string& server() const noexcept { return server_; }    // "127.0.0.1:6379", the one connected to
    std::string prefix() const { return "redis " + server_ + ": "; }  // for messages

    Reply command(std::initializer_list<std::string_view> args);  // throws Error on an error reply
    Reply command(const Command& args);
    Reply try_command(std::initializer_list<std::string_view> args);  // error replies returned, not thrown
    Reply try_command(const Command& args);
    // Sends all commands, then reads all replies (one round trip). Error replies are returned.
    std::vector<Reply> pipeline(const std::vector<Command>& commands);

    // A pipeline whose replies nobody waits for now: sent at once, its replies read (and given to `check`)
    // before the next reply anyone reads on this connection, or by read_deferred(). A writer that sends a batch
    // per turn of its loop so overlaps the server's work with its own. `check` throws ConnectionError to give
    // up on the connection (it is broken afterwards). Request/response use only.
    using RepliesCheck = std::function<void(const std::vector<Reply>& replies)>;
    void send_deferred(const std::vector<Command>& commands, RepliesCheck check);
    void read_deferred();

    // Split use. After set_nonblocking() only send/read_available/read may be used.
    void set_nonblocking();
    void send(const Command& args);
    std::optional<Reply> read_available();  // a complete reply if one is buffered or readable now
    std::optional<Reply> read(std::chrono::milliseconds timeout);  // waits up to `timeout` for one reply

    // The server's answer to this connection's failure, for callers that catch and log.
    [[noreturn]] void fail(const std::string& what = "");
    // Throws the error reply `reply` to `what` ("publish to celery"): a ConnectionError when it is transient
    // (the connection is then given up, so that callers reconnect), else an Error.
    [[noreturn]] void refuse(const std::string& what, const ReplyView& reply);

private:
    void append(const std::string_view* args, std::size_t count);
    Reply read_blocking();
    Reply read_one();
    Reply checked(Reply reply);
    Reply screened(Reply reply);

    RedisUrl url_;
    std::chrono::milliseconds timeout_;
    std::string server_;
    std::uint64_t generation_ = 0;
    redisContext* context_ = nullptr;
    bool broken_ = false;
    bool nonblocking_ = false;
    struct Deferred {
        std::size_t replies;
        RepliesCheck check;
    };
    std::deque<Deferred> deferred_;
};

// A client's connection (publish, results, stats): opened on first use, and reopened once when it has gone
// stale (server restarted, idle timeout). A call that fails on a fresh connection is not retried: it never
// worked, and trying again at once would only fail again. Throws ConnectionError then.
class OnDemandConnection {
public:
    explicit OnDemandConnection(RedisUrl url) : url_(std::move(url)) {}

    template <typename F>
    auto with(F&& body) {
        if (connection_ && connection_->stale()) connection_.reset();  // a failover: to the new master
        bool fresh = !connection_;
        if (!connection_) connection_ = std::make_unique<Connection>(url_);
        try {
            return body(*connection_);
        } catch (const ConnectionError&) {
            connection_.reset();
            if (fresh) throw;
        }
        connection_ = std::make_unique<Connection>(url_);
        return body(*connection_);
    }

    void reset() { connection_.reset(); }  // the next call opens a new connection

private:
    RedisUrl url_;
    std::unique_ptr<Connection> connection_;
};

}  // namespace ccmulti::broker::redis
