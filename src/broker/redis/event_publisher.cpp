#include "broker/redis/event_publisher.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "protocol/base64.hpp"
#include "protocol/events.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker::redis {

RedisEventPublisher::RedisEventPublisher(RedisUrl url, std::string hostname) : url_(std::move(url)) {
    headers_ = nlohmann::json{{"hostname", std::move(hostname)}}.dump(-1, ' ', false,
                                                                      nlohmann::json::error_handler_t::replace);
}

RedisEventPublisher::~RedisEventPublisher() {
    flush();
    if (!connection_) return;
    try {
        connection_->read_deferred();  // the last events reach Redis before the connection closes
    } catch (const Error&) {
        // best-effort: nothing to do about it now
    }
}

std::string RedisEventPublisher::channel(int db, std::string_view routing_key) {
    return fmt::format("/{}.{}/{}", db, protocol::event_exchange, routing_key);
}

void RedisEventPublisher::send(std::string_view type, std::string event) {
    if (type.starts_with("task-")) {
        batch_.push_back(std::move(event));
        if (batch_.size() >= task_batch) close_batch();
        return;
    }
    close_batch();  // events keep their order
    publish(protocol::event_routing_key(type), event, 1);
}

void RedisEventPublisher::close_batch() {
    if (batch_.empty()) return;
    std::string body = protocol::task_batch_body(batch_);
    publish(protocol::task_batch_routing_key, body, batch_.size());
    batch_.clear();
}

void RedisEventPublisher::publish(std::string_view routing_key, const std::string& body, std::size_t events) {
    std::string envelope = fmt::format(
        "{{\"body\": \"{}\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
        "\"headers\": {}, \"properties\": {{\"delivery_mode\": 1, \"delivery_info\": {{\"exchange\": \"{}\", "
        "\"routing_key\": \"{}\"}}, \"priority\": 0, \"body_encoding\": \"base64\", \"delivery_tag\": \"{}\"}}}}",
        protocol::base64_encode(body), headers_, protocol::event_exchange, routing_key, protocol::new_uuid());
    commands_.push_back({"PUBLISH", channel(url_.db, routing_key), std::move(envelope)});
    queued_ += events;
}

void RedisEventPublisher::flush() {
    close_batch();
    if (commands_.empty()) return;
    try {
        if (connection_ && (connection_->broken() || connection_->stale())) connection_.reset();
        if (!connection_) {
            if (down_ && std::chrono::steady_clock::now() < retry_at_) {
                drop("");
                return;
            }
            connection_ = std::make_unique<Connection>(url_, connect_timeout);
        }
        connection_->read_deferred();
        connection_->send_deferred(commands_, [this](const std::vector<Reply>& replies) {
            for (const auto& reply : replies)
                if (reply.is_error() && is_transient_reply(reply.text())) connection_->refuse("publish events", reply);
        });
        if (down_)
            spdlog::info("{}events are sent again ({} dropped while Redis could not be reached)", connection_->prefix(),
                         dropped_);
        down_ = false;
        backoff_.reset();
        commands_.clear();
        queued_ = 0;
    } catch (const Error& error) {
        connection_.reset();
        drop(error.what());
    }
}

void RedisEventPublisher::drop(const std::string& why) {
    dropped_ += queued_;
    commands_.clear();
    queued_ = 0;
    if (why.empty()) return;  // still waiting to try again
    auto delay = backoff_.next();
    retry_at_ = std::chrono::steady_clock::now() + delay;
    if (!down_ || backoff_.attempts() % 10 == 0)
        spdlog::warn("{} (Celery events); events are dropped until Redis is back, next try in {}ms", why,
                     delay.count());
    down_ = true;
}

}  // namespace ccmulti::broker::redis
