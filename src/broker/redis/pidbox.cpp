#include "broker/redis/pidbox.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cerrno>

#include "broker/control_replies.hpp"
#include "broker/redis/keys.hpp"
#include "protocol/base64.hpp"
#include "protocol/iso_time.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

void set_timer(int fd, std::chrono::milliseconds delay) {
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(delay.count() / 1000);
    spec.it_value.tv_nsec = static_cast<long>(delay.count() % 1000 * 1000000);
    ::timerfd_settime(fd, 0, &spec, nullptr);
}

// The request body: JSON, base64-encoded or not as properties.body_encoding says.
std::optional<json> request_body(const json& envelope) {
    if (!envelope.is_object() || !envelope.contains("body")) return std::nullopt;
    if (envelope.value("content-type", "application/json") != "application/json") return std::nullopt;
    const json& body = envelope["body"];
    if (!body.is_string()) return body;
    std::string text = body.get<std::string>();
    std::string encoding = "utf-8";
    if (envelope.contains("properties") && envelope["properties"].is_object())
        encoding = envelope["properties"].value("body_encoding", "utf-8");
    if (encoding == "base64") text = protocol::base64_decode(text);
    json parsed = json::parse(text, nullptr, false);
    if (parsed.is_discarded()) return std::nullopt;
    return parsed;
}

}  // namespace

std::string RedisPidbox::channel(int db, const std::string& app) {
    return "/" + std::to_string(db) + "." + app + ".pidbox";
}

RedisPidbox::RedisPidbox(RedisUrl url, std::string node, Handler handler, std::string app)
    : url_(std::move(url)),
      node_(std::move(node)),
      handler_(std::move(handler)),
      app_(std::move(app)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (!epoll_) throw SystemError("epoll_create1", errno);
    if (!timer_) throw SystemError("timerfd_create", errno);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = timer_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &event) != 0) throw SystemError("epoll_ctl", errno);
    try {
        connect();
    } catch (const ConnectionError& error) {
        go_down(error);
    }
}

RedisPidbox::~RedisPidbox() = default;

void RedisPidbox::connect() {
    auto command = std::make_unique<Connection>(url_);
    auto subscription = std::make_unique<Connection>(url_);
    // As a Python worker declares its mailbox queue (kombu keeps fanout bindings in the same kind of set).
    command->command({"SADD", binding_key(app_ + ".pidbox"), binding_member("", node_ + "." + app_ + ".pidbox")});
    subscription->set_nonblocking();
    subscription->send({"PSUBSCRIBE", channel(url_.db, app_)});
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = subscription->fd();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, subscription->fd(), &event) != 0)
        throw SystemError("epoll_ctl", errno);
    command_ = std::move(command);
    subscription_ = std::move(subscription);
    if (down_) spdlog::info("{}remote control of {} connected again", command_->prefix(), node_);
    down_.reset();
    backoff_.reset();
}

void RedisPidbox::go_down(const Error& error) {
    if (subscription_ && subscription_->fd() >= 0)
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, subscription_->fd(), nullptr);
    subscription_.reset();
    command_.reset();
    auto delay = backoff_.next();
    if (!down_ || backoff_.attempts() <= 3 || backoff_.attempts() % 10 == 0)
        spdlog::warn("{} (remote control of {}); reconnecting in {}ms", error.what(), node_, delay.count());
    down_ = error.what();
    set_timer(timer_.get(), delay);
}

void RedisPidbox::on_readable() {
    std::uint64_t expirations = 0;
    bool timer_fired = ::read(timer_.get(), &expirations, sizeof expirations) == sizeof expirations;
    try {
        if (down_) {
            if (timer_fired) connect();
            return;
        }
        while (subscription_) {
            auto message = subscription_->read_available();
            if (!message) break;
            // ["pmessage", pattern, channel, payload]; the psubscribe confirmation is ["psubscribe", ...].
            if (message->size() == 4 && (*message)[0].text() == "pmessage") handle((*message)[3].string());
        }
    } catch (const ConnectionError& error) {
        go_down(error);
    } catch (const Error& error) {
        go_down(error);
    }
}

void RedisPidbox::handle(const std::string& payload) {
    json envelope = json::parse(payload, nullptr, false);
    auto request = request_body(envelope);
    if (!request || !request->is_object() || !request->contains("method")) return;
    const json& headers = envelope.value("headers", json::object());
    auto value = answer_control_request(*request, headers, node_, handler_, clock_);
    if (!value) return;
    const json& reply_to = request->value("reply_to", json(nullptr));
    if (reply_to.is_object()) reply(*request, std::move(*value));
}

void RedisPidbox::reply(const json& request, json value) {
    const json& reply_to = request["reply_to"];
    std::string exchange = reply_to.value("exchange", "reply." + app_ + ".pidbox");
    std::string routing_key = reply_to.value("routing_key", "");
    // kombu's direct-exchange routing: the queue the binding set names for this routing key.
    std::string queue;
    Reply members = command_->command({"SMEMBERS", binding_key(exchange)});
    for (std::size_t i = 0; i < members.size() && queue.empty(); ++i) {
        std::string member = members[i].string();
        auto first = member.find(sep);
        if (first == std::string::npos || member.substr(0, first) != routing_key) continue;
        auto last = member.rfind(sep);
        queue = member.substr(last + sep.size());
    }
    if (queue.empty()) return;  // the client is gone (kombu drops such replies too)
    json body = {{node_, std::move(value)}};
    json envelope = {
        {"body", protocol::base64_encode(body.dump())},
        {"content-encoding", "utf-8"},
        {"content-type", "application/json"},
        {"headers", {{"ticket", request.value("ticket", json(nullptr))}, {"clock", ++clock_}}},
        {"properties",
         {{"delivery_mode", 1},
          {"delivery_info", {{"exchange", exchange}, {"routing_key", routing_key}}},
          {"priority", 0},
          {"body_encoding", "base64"},
          {"delivery_tag", protocol::new_uuid()}}},
    };
    command_->command({"LPUSH", queue, envelope.dump()});
    ++answered_;
}

}  // namespace ccmulti::broker::redis
