#include "broker/amqp/amqp_consumer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "broker/amqp/codec.hpp"
#include "broker/amqp/topology.hpp"

namespace ccmulti::broker::amqp {

namespace {
constexpr std::size_t amqp_default_prefetch = 4;
constexpr std::size_t amqp_max_prefetch = 65535;  // basic.qos's prefetch-count is 16 bits
}  // namespace

AmqpConsumer::AmqpConsumer(AmqpUrl url, const ConsumerInfo& info)
    : info_(info),
      prefetch_(static_cast<std::uint16_t>(
          std::clamp<std::size_t>(info.prefetch ? info.prefetch : amqp_default_prefetch, 1, amqp_max_prefetch))),
      window_(prefetch_) {
    if (info_.queues.empty()) info_.queues = {"celery"};
    per_consumer_qos_ = queue_arguments(url).value("x-queue-type", "") == "quorum";
    for (const auto& queue : info_.queues) queue_of_[info_.node + "/" + queue] = queue;
    link_ = std::make_unique<Link>(
        std::move(url), "ccmulti " + info_.node, info_.node, [this](Connection& connection) { setup(connection); },
        [this](Message&& message) { received(std::move(message)); },
        [this] {
            // RabbitMQ gives back what the dead connection held; what the node holds is acked into the void.
            ready_.clear();
            waiting_.clear();
            unsettled_.clear();
            qos_ = 0;
        });
}

AmqpConsumer::~AmqpConsumer() {
    try {
        close();
    } catch (const Error& e) {
        spdlog::warn("{}: closing the AMQP consumer: {}", info_.node, e.what());
    }
}

void AmqpConsumer::setup(Connection& connection) {
    for (const auto& queue : info_.queues) declare_task_queue(connection, queue);
    qos_ = static_cast<std::uint16_t>(std::min<std::size_t>(window_ + waiting_.size(), amqp_max_prefetch));
    connection.qos(per_consumer_qos_ ? prefetch_ : qos_, !per_consumer_qos_);
    try {
        for (const auto& [tag, queue] : queue_of_) connection.consume(queue, tag, false);
    } catch (const ConnectionError& error) {
        // A quorum queue declared by someone else: per-consumer limits from the next connection on.
        if (!per_consumer_qos_ && std::string_view(error.what()).find("global qos") != std::string_view::npos) {
            spdlog::info("{}: a queue does not support global QoS (a quorum queue): prefetch is per consumer now",
                         info_.node);
            per_consumer_qos_ = true;
        }
        throw;
    }
}

void AmqpConsumer::received(Message&& message) {
    auto queue = queue_of_.find(message.consumer_tag);
    unsettled_.insert(unsettled_.end(), message.delivery_tag);  // tags grow: an insert at the end
    std::string tag = std::to_string(link_->generation()) + "." + std::to_string(message.delivery_tag);
    Delivery delivery =
        decode_task(message, queue != queue_of_.end() ? queue->second : message.routing_key, std::move(tag));
    if (!delivery.decode_error && delivery.message.eta && *delivery.message.eta > protocol::now()) {
        auto eta = *delivery.message.eta;
        waiting_.emplace(eta, std::move(delivery));
    } else {
        ready_.push_back(std::move(delivery));
    }
}

void AmqpConsumer::settle_qos() {
    auto wanted = static_cast<std::uint16_t>(std::min<std::size_t>(window_ + waiting_.size(), amqp_max_prefetch));
    if (per_consumer_qos_ || wanted == qos_ || !link_->connected()) return;
    if (link_->use([wanted](Connection& connection) { connection.qos(wanted, true); })) qos_ = wanted;
}

void AmqpConsumer::drain_wakeups() {
    link_->on_readable();
    settle_qos();
}

std::vector<Delivery> AmqpConsumer::reserve(std::size_t max) {
    link_->pump();
    std::vector<Delivery> out;
    // Due eta messages first: they arrived before what is ready now.
    auto now = protocol::now();
    while (out.size() < max && !waiting_.empty() && waiting_.begin()->first <= now) {
        out.push_back(std::move(waiting_.begin()->second));
        waiting_.erase(waiting_.begin());
    }
    while (out.size() < max && !ready_.empty()) {
        out.push_back(std::move(ready_.front()));
        ready_.pop_front();
    }
    settle_qos();
    return out;
}

std::optional<std::uint64_t> AmqpConsumer::current_tag(const Delivery& delivery) const {
    auto dot = delivery.tag.find('.');
    if (dot == std::string::npos || !link_->connected()) return std::nullopt;
    std::uint64_t generation = 0, tag = 0;
    const char* text = delivery.tag.data();
    if (std::from_chars(text, text + dot, generation).ec != std::errc() || generation != link_->generation())
        return std::nullopt;
    if (std::from_chars(text + dot + 1, text + delivery.tag.size(), tag).ec != std::errc()) return std::nullopt;
    return tag;
}

void AmqpConsumer::set_window(std::size_t messages) {
    window_ = static_cast<std::uint16_t>(std::clamp<std::size_t>(messages, prefetch_, amqp_max_prefetch));
    settle_qos();
}

void AmqpConsumer::ack(const Delivery& delivery) {
    if (auto tag = current_tag(delivery)) {
        unsettled_.erase(*tag);
        link_->use([&](Connection& connection) { connection.ack(*tag); });
    }
}

void AmqpConsumer::ack_many(const std::vector<Delivery>& deliveries) {
    std::vector<std::uint64_t> tags;
    tags.reserve(deliveries.size());
    for (const auto& delivery : deliveries)
        if (auto tag = current_tag(delivery)) tags.push_back(*tag);
    if (tags.empty()) return;
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());  // a tag acked twice would close the channel
    // The lowest unsettled tags that are all in the batch: one ack with multiple=true covers exactly them.
    std::size_t covered = 0;
    for (auto it = unsettled_.begin(); covered < tags.size() && it != unsettled_.end() && *it == tags[covered]; ++it)
        ++covered;
    for (auto tag : tags) unsettled_.erase(tag);
    link_->use([&](Connection& connection) {
        if (covered > 0) connection.ack(tags[covered - 1], true);
        for (std::size_t i = covered; i < tags.size(); ++i) connection.ack(tags[i]);
    });
}

void AmqpConsumer::requeue(const Delivery& delivery) {
    if (auto tag = current_tag(delivery)) {
        unsettled_.erase(*tag);
        link_->use([&](Connection& connection) { connection.reject(*tag, true); });
    }
}

std::optional<TimePoint> AmqpConsumer::next_eta() {
    if (waiting_.empty()) return std::nullopt;
    return waiting_.begin()->first;
}

void AmqpConsumer::heartbeat() {
    link_->pump();
    settle_qos();
}

void AmqpConsumer::close() {
    if (closed_) return;
    closed_ = true;
    // What it holds and the node never took goes back at once (closing would too, a moment later).
    for (const auto& delivery : ready_) requeue(delivery);
    for (const auto& [eta, delivery] : waiting_) requeue(delivery);
    ready_.clear();
    waiting_.clear();
    link_->close();
}

}  // namespace ccmulti::broker::amqp
