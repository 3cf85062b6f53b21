#include "broker/redis/event_receiver.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cerrno>

#include "protocol/base64.hpp"
#include "protocol/events.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds connect_timeout{2000};

void arm(int fd, std::chrono::milliseconds delay) {
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(delay.count() / 1000);
    spec.it_value.tv_nsec = static_cast<long>(delay.count() % 1000 * 1000000);
    ::timerfd_settime(fd, 0, &spec, nullptr);
}

}  // namespace

std::string RedisEventReceiver::pattern(int db) {
    return "/" + std::to_string(db) + "." + protocol::event_exchange + "/*";
}

std::vector<json> RedisEventReceiver::decode(const std::string& payload) {
    json envelope = json::parse(payload, nullptr, false);
    if (!envelope.is_object() || !envelope.contains("body")) return {};
    if (envelope.value("content-type", "application/json") != "application/json") return {};
    json body = envelope["body"];
    if (body.is_string()) {
        std::string text = body.get<std::string>();
        const json properties = envelope.value("properties", json::object());
        if (properties.is_object() && properties.value("body_encoding", "") == "base64") {
            try {
                text = protocol::base64_decode(text);
            } catch (const std::exception&) {
                return {};
            }
        }
        body = json::parse(text, nullptr, false);
    }
    return protocol::events_in(std::move(body));
}

RedisEventReceiver::RedisEventReceiver(RedisUrl url)
    : url_(std::move(url)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (!epoll_) throw SystemError("epoll_create1", errno);
    if (!timer_) throw SystemError("timerfd_create", errno);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = timer_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &event) != 0) throw SystemError("epoll_ctl", errno);
    // The first connection is made by the first receive(): the constructor never waits on Redis.
    down_ = "connecting to " + url_.display();
    arm(timer_.get(), std::chrono::milliseconds(1));
}

RedisEventReceiver::~RedisEventReceiver() = default;

std::optional<std::string> RedisEventReceiver::unavailable() const {
    if (down_) return down_;
    if (!subscribed_) return "subscribing to " + pattern(url_.db);
    return std::nullopt;
}

void RedisEventReceiver::connect() {
    auto subscription = std::make_unique<Connection>(url_, connect_timeout);
    subscription->set_nonblocking();
    subscription->send({"PSUBSCRIBE", pattern(url_.db)});
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = subscription->fd();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, subscription->fd(), &event) != 0)
        throw SystemError("epoll_ctl", errno);
    subscription_ = std::move(subscription);
    if (down_ && backoff_.attempts() > 0) spdlog::info("{}receiving Celery events again", subscription_->prefix());
    down_.reset();
    subscribed_ = false;
    backoff_.reset();
}

void RedisEventReceiver::go_down(const Error& error) {
    if (subscription_ && subscription_->fd() >= 0)
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, subscription_->fd(), nullptr);
    subscription_.reset();
    subscribed_ = false;
    auto delay = backoff_.next();
    if (backoff_.attempts() <= 1 || backoff_.attempts() % 10 == 0)
        spdlog::warn("{} (Celery events); events sent meanwhile are lost; reconnecting in {}ms", error.what(),
                     delay.count());
    down_ = error.what();
    arm(timer_.get(), delay);
}

std::vector<json> RedisEventReceiver::receive() {
    std::vector<json> events;
    std::uint64_t expirations = 0;
    const bool timer_fired = ::read(timer_.get(), &expirations, sizeof expirations) == sizeof expirations;
    try {
        if (!subscription_) {
            if (timer_fired) connect();
            return events;
        }
        while (subscription_ && events.size() < max_per_receive) {
            auto message = subscription_->read_available();
            if (!message) break;
            // ["pmessage", pattern, channel, payload]; the confirmation is ["psubscribe", pattern, count].
            if (message->size() == 4 && (*message)[0].text() == "pmessage") {
                for (auto& event : decode((*message)[3].string())) events.push_back(std::move(event));
            } else if (message->size() == 3 && (*message)[0].text() == "psubscribe") {
                subscribed_ = true;
            } else if (message->is_error()) {
                subscription_->refuse("PSUBSCRIBE " + pattern(url_.db), *message);
            }
        }
        // More than one turn's worth is buffered: come back at once (epoll may not say so again).
        if (events.size() >= max_per_receive) arm(timer_.get(), std::chrono::milliseconds(1));
    } catch (const Error& error) {
        go_down(error);
    }
    return events;
}

}  // namespace ccmulti::broker::redis
