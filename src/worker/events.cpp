#include "worker/events.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

namespace ccmulti::worker {

NodeEvents::NodeEvents(EventLoop& loop, std::unique_ptr<broker::EventPublisher> publisher, std::string hostname,
                       bool task_events, bool worker_events, std::function<protocol::WorkerStatus()> status)
    : loop_(loop),
      publisher_(std::move(publisher)),
      sender_(std::move(hostname), static_cast<int>(::getpid())),
      task_events_(task_events && publisher_),
      worker_events_(worker_events && publisher_),
      status_(std::move(status)) {
    if (task_events && !publisher_)
        spdlog::warn("{}: task events (-E, worker_send_task_events) are on, but this broker carries no Celery events "
                     "(they need a Redis or RabbitMQ broker): none are sent",
                     sender_.hostname());
}

NodeEvents::~NodeEvents() {
    if (heartbeat_timer_) loop_.cancel(heartbeat_timer_);
}

void NodeEvents::queue(std::string_view type, std::string event) {
    publisher_->send(type, std::move(event));
    if (flush_pending_) return;
    flush_pending_ = true;
    loop_.defer([this] {
        flush_pending_ = false;
        publisher_->flush();
    });
}

void NodeEvents::online() {
    if (!worker_events_ || online_) return;
    online_ = true;
    queue("worker-online", protocol::worker_event(sender_, "worker-online", status_()));
    heartbeat_timer_ =
        loop_.after(std::chrono::milliseconds(static_cast<int>(protocol::heartbeat_interval_seconds * 1000)),
                    [this] { heartbeat(); });
}

void NodeEvents::heartbeat() {
    heartbeat_timer_ =
        loop_.after(std::chrono::milliseconds(static_cast<int>(protocol::heartbeat_interval_seconds * 1000)),
                    [this] { heartbeat(); });
    queue("worker-heartbeat", protocol::worker_event(sender_, "worker-heartbeat", status_()));
}

void NodeEvents::offline() {
    if (!online_) return;
    online_ = false;
    if (heartbeat_timer_) loop_.cancel(heartbeat_timer_);
    heartbeat_timer_ = 0;
    publisher_->send("worker-offline", protocol::worker_event(sender_, "worker-offline", status_()));
    publisher_->flush();
}

std::optional<nlohmann::json> NodeEvents::control(const std::string& method) {
    if (method != "enable_events" && method != "disable_events") return std::nullopt;
    if (!publisher_) throw std::runtime_error("this broker carries no Celery events (they need a Redis or RabbitMQ broker)");
    bool enable = method == "enable_events";
    std::string word = enable ? "enabled" : "disabled";
    if (task_events_ == enable) return nlohmann::json{{"ok", "task events already " + word}};
    task_events_ = enable;
    spdlog::info("{}: task events {} by remote control", sender_.hostname(), word);
    return nlohmann::json{{"ok", "task events " + word}};
}

}  // namespace ccmulti::worker
