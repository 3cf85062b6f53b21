// The broker, result-store and event interfaces every transport implements (the embedded SQLite one, Redis).
// Messages are protocol::TaskMessage, stored or sent as the Celery v2 envelope (protocol/task_message.hpp).
//
// Delivery model: at-least-once with late acks. A consumer reserves (claims) messages, runs them, and acks each
// only when it is finished; whatever a consumer still holds when it stops, or when its process dies, goes back to
// its queue and is given out again with `redelivered` set. An ack or requeue of a claim the broker already took
// back (the owner was presumed dead) does nothing, so a claim is never acked by the wrong holder.
//
// Remote control (RemoteControl below) is Celery's pidbox: `celery inspect` and `ccmulti inspect` talk to nodes
// through the broker, on every transport that has a mailbox (connect.hpp: remote_control).
//
// Threading: none of these objects is thread-safe; a node uses them from its one event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/result_meta.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::broker {

using protocol::ResultMeta;
using protocol::TaskMessage;
using protocol::TimePoint;

class ResultStore;
class EventPublisher;
class EventReceiver;

// One message handed to a consumer.
struct Delivery {
    TaskMessage message;  // message.queue is the queue it came from; message.redelivered when given out before
    std::string tag;      // the broker's handle for this claim: pass the Delivery back to ack/requeue
    // Set when the stored envelope could not be decoded. message.id/task/queue are then still filled from what the
    // broker knows, so the worker can store a FAILURE for the id and ack, never dropping it silently.
    std::optional<std::string> decode_error;
};

// Who consumes: shown by `ccmulti queues`, and the identity a dead node's claims are restored by.
struct ConsumerInfo {
    std::string node;                 // "w1@host"
    std::vector<std::string> queues;  // consumed round-robin, in this order to start with
    // How many unacked messages the node holds at most (prefetch multiplier × concurrency): a transport where
    // the broker pushes (AMQP's basic.qos) limits its deliveries to it; 0: the transport's default.
    std::size_t prefetch = 0;
};

// A registered consumer: claims messages from its queues, acks or requeues them, and tells its event loop when a
// message may have arrived. Destroying it (or close()) requeues every message it still holds and unregisters it.
class Consumer {
public:
    virtual ~Consumer() = default;

    // Claims up to `max` messages that are ready now (eta passed), fairly across the queues: after a message is
    // taken from a queue that queue goes to the back of the rotation. Never blocks on an empty queue.
    virtual std::vector<Delivery> reserve(std::size_t max) = 0;
    virtual void ack(const Delivery& delivery) = 0;  // finished: the message leaves the broker
    // Acks them all, in one broker round trip where the transport allows (the node acks in batches).
    virtual void ack_many(const std::vector<Delivery>& deliveries) {
        for (const auto& delivery : deliveries) ack(delivery);
    }
    // How many messages the node wants to hold now, while it holds any (its prefetch limit: larger while it runs
    // only quick tasks). A transport whose broker pushes messages (RabbitMQ's basic.qos) follows it; one the node
    // claims from needs nothing more than reserve()'s `max`.
    virtual void set_window(std::size_t /*messages*/) {}
    // Stores `results` in `store`, then acks `deliveries`: how a node settles what it finished. Throws Error
    // when that cannot be done now (nothing is acked then; settling again later is harmless). A transport may
    // do both in one round trip when `store` lives on the same server (Redis: one MULTI, so the results and
    // the acks land together or not at all).
    virtual void settle(ResultStore& store, const std::vector<ResultMeta>& results,
                        const std::vector<Delivery>& deliveries);
    virtual void requeue(const Delivery& delivery) = 0;  // back to the front of its queue, redelivered

    // Readable when a message may have arrived in one of the queues (or returned to it). No polling: publishers
    // signal it. The loop calls drain_wakeups() and then reserve(); spurious wakeups are possible and harmless.
    virtual int wakeup_fd() const = 0;
    virtual void drain_wakeups() = 0;
    // The earliest eta among unclaimed messages of the queues that is still in the future: arm a timer for it.
    virtual std::optional<TimePoint> next_eta() = 0;

    // Proves this consumer is alive (call every heartbeat_interval()); also restores claims of dead consumers.
    virtual void heartbeat() = 0;
    virtual std::chrono::seconds heartbeat_interval() const = 0;

    // Requeues everything still held and unregisters. Idempotent; the destructor calls it.
    virtual void close() = 0;

    // Why the broker cannot be reached now, for `status` (a networked transport keeps its claims meanwhile,
    // queues acks, and reconnects by itself); nullopt while it is reachable.
    virtual std::optional<std::string> unavailable() const { return std::nullopt; }
};

// Where a message with a given task id is, for `ccmulti result` to tell PENDING from UNKNOWN.
struct MessageLocation {
    std::string queue;
    bool reserved = false;  // claimed by a consumer, not yet acked
};

struct QueueStats {
    std::string name;
    std::size_t ready = 0;               // claimable now
    std::size_t scheduled = 0;           // waiting for their eta
    std::size_t reserved = 0;            // claimed by a consumer, not yet acked
    std::vector<std::string> consumers;  // nodes consuming the queue
};

class Broker {
public:
    virtual ~Broker() = default;

    virtual std::string url() const = 0;  // for messages and `inspect stats`

    // Enqueues `message` on message.queue and wakes the queue's consumers.
    virtual void publish(const TaskMessage& message) = 0;
    // Publishes them all, in order: in as few round trips / transactions as the transport allows (`call --count`
    // publishes thousands so that the client is not what a benchmark measures).
    virtual void publish_many(const std::vector<TaskMessage>& messages) {
        for (const auto& message : messages) publish(message);
    }

    // Registers a consumer of info.queues (first restoring dead consumers' claims).
    virtual std::unique_ptr<Consumer> consume(const ConsumerInfo& info) = 0;

    // Returns the messages of consumers that are gone (process dead, or heartbeat lease expired) to their queues.
    // Consumers do this on start and on every heartbeat; clients may too. Returns how many were restored.
    virtual std::size_t restore_orphans() = 0;

    // Deletes the queue's unclaimed messages (claimed ones finish normally). Returns how many were deleted.
    virtual std::size_t purge(const std::string& queue) = 0;

    // Every queue that has messages or consumers, sorted by name.
    virtual std::vector<QueueStats> queue_stats() = 0;
    // The nodes consuming `queue` now.
    virtual std::vector<std::string> consumers_of(const std::string& queue) = 0;
    virtual std::optional<MessageLocation> locate(const std::string& task_id) = 0;

    // Celery's event stream on this broker, sent as `hostname` (the header monitors know the sender by), or
    // nullptr when the transport carries no events (the embedded SQLite broker: no monitor could read them).
    // Throws nothing: it connects on its first flush.
    virtual std::unique_ptr<EventPublisher> events(const std::string& hostname);
    // The same stream as a monitor reads it (`celery events`, Flower, the dashboard): every event sent on this
    // broker from now on, or nullptr when the transport carries none. Throws nothing: it connects by itself, and
    // again after an outage.
    virtual std::unique_ptr<EventReceiver> event_stream();
};

// Publishes Celery's events (protocol/events.hpp makes them) on the event exchange, `celeryev`, where
// `celery events`, Flower and other monitors listen. Batched inside: send() only queues, flush() sends what is
// queued in one round trip and does not wait for the broker's reply (read at the next flush). Task events
// ("task-…") travel as the Python worker sends them from its event loop: a list of up to task_batch of them in one
// message, routing key "task.multi"; any other event alone, routed by its type ("worker-heartbeat" →
// "worker.heartbeat").
// Best-effort, as events are in Celery: while the broker cannot be reached flush() drops what is queued (logged
// once per outage) and connects again later with backoff. Neither call throws; the destructor waits briefly for
// the last flush's reply, so that a short-lived client's event is not lost with its connection.
class EventPublisher {
public:
    static constexpr std::size_t task_batch = 24;  // Celery's EventDispatcher buffer_limit

    virtual ~EventPublisher() = default;
    // `event` is one event's JSON object text; `type` its "type" field.
    virtual void send(std::string_view type, std::string event) = 0;
    virtual void flush() = 0;
    virtual std::size_t dropped() const = 0;  // events lost to broker outages so far
};

inline std::unique_ptr<EventPublisher> Broker::events(const std::string&) {
    return nullptr;
}

// Receives Celery's events, for a monitor's loop or thread: wait for fd() to be readable, then receive(). Events
// sent while the broker could not be reached are lost (as they are to every Celery monitor).
class EventReceiver {
public:
    virtual ~EventReceiver() = default;
    // Readable when events may have arrived, or when it is time to connect again; the same fd for its whole life.
    virtual int fd() const = 0;
    // The events that arrived, oldest first, each the JSON object its sender sent (batches unpacked). Never
    // blocks, never throws: a broken connection is logged and retried with backoff (fd() wakes the caller).
    virtual std::vector<nlohmann::json> receive() = 0;
    // Why events cannot be received now, for the page; nullopt while subscribed.
    virtual std::optional<std::string> unavailable() const = 0;
};

inline std::unique_ptr<EventReceiver> Broker::event_stream() {
    return nullptr;
}

// Task results with expiry. get() returns nullopt for an id with no (unexpired) result; the caller tells PENDING
// (Broker::locate finds a message) from UNKNOWN.
class ResultStore {
public:
    virtual ~ResultStore() = default;

    // Stores `meta` for meta.task_id, expiring after the store's result expiry. A stored SUCCESS is never
    // replaced by another state (a task re-run after a crash must not turn a success back into STARTED).
    // Wakes waiters. Returns false when the store kept an existing SUCCESS instead.
    virtual bool store(const ResultMeta& meta) = 0;
    // Stores them all in order, in one round trip where the transport allows. Throws Error when the store
    // cannot be reached; storing them again after that is harmless.
    virtual void store_many(const std::vector<ResultMeta>& metas) {
        for (const auto& meta : metas) store(meta);
    }
    virtual std::optional<ResultMeta> get(const std::string& task_id) = 0;
    // The most recently stored (unexpired) results, newest first, at most `limit`: the dashboard's task list. A
    // store that cannot list them returns none. Costs a scan of the store: for monitoring, not for task paths.
    virtual std::vector<ResultMeta> recent(std::size_t limit) {
        (void)limit;
        return {};
    }

    // Blocks until the task's result is ready (SUCCESS, FAILURE, REVOKED) or `timeout` passes (then returns the
    // latest non-ready result, or nullopt). No timeout waits for ever. Waiters are woken, not polling.
    virtual std::optional<ResultMeta> wait(const std::string& task_id,
                                           std::optional<std::chrono::milliseconds> timeout) = 0;

    // What a client sets as a task message's reply_to (TaskMessage::reply_to) before publishing a task it will
    // wait() for: a store that sends results to the sender's own queue (Celery's rpc://) declares this process's
    // queue on the first call and names it; a store keyed by task id needs none (nullopt). Throws Error when the
    // queue cannot be declared.
    virtual std::optional<std::string> reply_to() { return std::nullopt; }
};

// ---- Remote control: Celery's pidbox (celery-protocol.md §2) ----

// A node's mailbox, answering requests on the node's event loop: fd() is stable for the mailbox's life (across
// reconnects); call on_readable() when it is readable. Never blocks the loop beyond one reply write.
class ControlMailbox {
public:
    virtual ~ControlMailbox() = default;
    virtual int fd() const = 0;
    virtual void on_readable() = 0;
    // Why the broker cannot be reached now (the mailbox reconnects by itself); nullopt while it is reachable.
    virtual std::optional<std::string> unavailable() const { return std::nullopt; }
};

class RemoteControl {
public:
    // The reply to `method` (Celery's shape), or nullopt when the node has no such command (the requester then
    // reads {"error": …}); `ping` is answered by the mailbox itself. A handler may throw: the reply is then
    // {"error": message}, as Celery does.
    using Handler =
        std::function<std::optional<nlohmann::json>(const std::string& method, const nlohmann::json& arguments)>;

    virtual ~RemoteControl() = default;

    // Starts listening as `node` (Celery's `<node>.celery.pidbox` queue). Throws Error only for what retrying
    // cannot fix; a broker that is down is retried in the background (unavailable()).
    virtual std::unique_ptr<ControlMailbox> mailbox(const std::string& node, Handler handler) = 0;

    // The asking side (`celery inspect`): sends `method` to `destination` (every node when empty) and collects
    // the replies by node name until every destination answered (and a short grace for a second process of one
    // name, merged: control_replies.hpp add_node_reply) or `timeout` passes. Throws Error when the broker cannot
    // be reached.
    virtual std::map<std::string, nlohmann::json> broadcast(const std::string& method,
                                                            const std::vector<std::string>& destination,
                                                            std::chrono::milliseconds timeout) = 0;

    // What `inspect stats` shows of the broker (as kombu's Connection.info()).
    virtual nlohmann::json broker_info() const = 0;
};

inline void Consumer::settle(ResultStore& store, const std::vector<ResultMeta>& results,
                             const std::vector<Delivery>& deliveries) {
    store.store_many(results);
    ack_many(deliveries);
}

}  // namespace ccmulti::broker
