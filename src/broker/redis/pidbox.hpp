// Celery's remote-control mailbox on Redis, so `celery inspect ping|active|stats|registered` (and
// `app.control.inspect()`) see ccmulti nodes exactly as they see Python workers (celery-protocol.md §2).
//
//   request:  PUBLISH /<db>.<app>.pidbox <kombu envelope>, body {"method", "arguments", "destination",
//             "pattern", "matcher", "ticket", "reply_to": {"exchange": "reply.<app>.pidbox", "routing_key": oid}},
//             headers {"clock", "expires"}; a node PSUBSCRIBEs to that channel.
//   reply:    LPUSH to the queue `_kombu.binding.reply.<app>.pidbox` binds `oid` to (`<oid>.reply.<app>.pidbox`)
//             an envelope with body {"<node>": <reply>} and headers {"ticket", "clock"}.
// Requests that expired, or whose destination/pattern does not name this node, are ignored; requests without
// reply_to (broadcast casts such as revoke) run the handler and answer nothing.
//
// Event-loop use, like RedisConsumer: fd() is a private epoll set holding the subscription socket and a
// reconnect timer, stable across reconnects; call on_readable() when it is readable. Never blocks on Redis
// beyond one reply write.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "broker/redis/backoff.hpp"
#include "broker/redis/connection.hpp"
#include "platform/fd.hpp"

namespace ccmulti::broker::redis {

class RedisPidbox {
public:
    // The reply to `method` (Celery's format), or nullopt when the node has no such command. `ping` is answered
    // by the mailbox itself. A handler may throw: the reply is then {"error": message}, as Celery does.
    using Handler =
        std::function<std::optional<nlohmann::json>(const std::string& method, const nlohmann::json& arguments)>;

    RedisPidbox(RedisUrl url, std::string node, Handler handler, std::string app = "celery");
    ~RedisPidbox();
    RedisPidbox(const RedisPidbox&) = delete;
    RedisPidbox& operator=(const RedisPidbox&) = delete;

    int fd() const noexcept { return epoll_.get(); }
    void on_readable();
    const std::optional<std::string>& unavailable() const noexcept { return down_; }
    std::size_t answered() const noexcept { return answered_; }

    // The channel requests arrive on: "/0.celery.pidbox".
    static std::string channel(int db, const std::string& app);

private:
    void connect();
    void go_down(const Error& error);
    void handle(const std::string& payload);
    void reply(const nlohmann::json& request, nlohmann::json value);

    RedisUrl url_;
    std::string node_;
    Handler handler_;
    std::string app_;
    std::unique_ptr<Connection> subscription_, command_;
    UniqueFd epoll_, timer_;
    Backoff backoff_;
    std::optional<std::string> down_;
    long long clock_ = 0;
    std::size_t answered_ = 0;
};

}  // namespace ccmulti::broker::redis
