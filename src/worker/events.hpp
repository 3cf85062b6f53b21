// A node's Celery events (protocol/events.hpp), so `celery events`, Flower and other monitors see ccmulti nodes as
// they see Python workers:
//  - worker events (worker-online, a worker-heartbeat every 2 s, worker-offline) whenever the broker carries
//    events (Redis, RabbitMQ), as a Python worker sends them without -E; --without-heartbeat turns them off;
//  - task events (task-received, -started, -succeeded, -failed, -retried, -revoked) with -E /
//    `worker_send_task_events`, or once a monitor asks (`celery control enable_events`, and disable_events).
// The node calls one method at each point of a task's life; each is a flag test when task events are off.
// Sending is the publisher's: events queue there and go out once per turn of the node's loop (a deferred
// flush), batched, never waiting for the broker.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "broker/broker.hpp"
#include "platform/event_loop.hpp"
#include "protocol/events.hpp"

namespace ccmulti::worker {

class NodeEvents {
public:
    // `publisher` may be null (the broker carries no events): then every call does nothing. `status` tells a
    // heartbeat how the node is doing.
    NodeEvents(EventLoop& loop, std::unique_ptr<broker::EventPublisher> publisher, std::string hostname,
               bool task_events, bool worker_events, std::function<protocol::WorkerStatus()> status);
    ~NodeEvents();
    NodeEvents(const NodeEvents&) = delete;
    NodeEvents& operator=(const NodeEvents&) = delete;

    // worker-online, then a heartbeat every 2 s until offline().
    void online();
    // worker-offline, sent before this returns (the node is stopping).
    void offline();

    bool tasks() const noexcept { return task_events_; }
    void received(const protocol::TaskMessage& message) {
        if (task_events_) queue("task-received", protocol::task_received(sender_, message));
    }
    void started(const std::string& id) {
        if (task_events_) queue("task-started", protocol::task_started(sender_, id));
    }
    void succeeded(const std::string& id, const nlohmann::json& result, double runtime) {
        if (task_events_) queue("task-succeeded", protocol::task_succeeded(sender_, id, result, runtime));
    }
    void failed(const std::string& id, const protocol::ExceptionInfo& exception, const std::string& traceback) {
        if (task_events_) queue("task-failed", protocol::task_failed(sender_, id, exception, traceback));
    }
    void retried(const std::string& id, const protocol::ExceptionInfo& exception, const std::string& traceback) {
        if (task_events_) queue("task-retried", protocol::task_retried(sender_, id, exception, traceback));
    }
    void revoked(const std::string& id, bool expired) {
        if (task_events_) queue("task-revoked", protocol::task_revoked(sender_, id, expired));
    }

    // The remote-control commands enable_events / disable_events, with Celery's replies
    // ({"ok": "task events enabled"}, "… already enabled", …); nullopt for any other method.
    std::optional<nlohmann::json> control(const std::string& method);

private:
    void queue(std::string_view type, std::string event);
    void heartbeat();

    EventLoop& loop_;
    std::unique_ptr<broker::EventPublisher> publisher_;
    protocol::EventSender sender_;
    bool task_events_;
    bool worker_events_;
    std::function<protocol::WorkerStatus()> status_;
    bool flush_pending_ = false;
    bool online_ = false;
    EventLoop::TimerId heartbeat_timer_ = 0;
};

}  // namespace ccmulti::worker
