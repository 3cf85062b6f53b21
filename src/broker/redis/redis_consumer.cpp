#include "broker/redis/redis_consumer.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "broker/redis/claims.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/scripts.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

namespace {

// Eta messages are claimed without counting against `max`; bound how many one reserve() pulls in.
constexpr int max_claim_rounds = 64;
// Claims one script call takes at most (Lua's unpack() of the records has a stack limit of a few thousand).
constexpr std::size_t max_claim = 1000;
// Sentinel: settled batches kept to send again to a new master. A failover's window (the promoted replica takes
// writes while the old master still does, until the sentinels announce the switch) lasts about a second; kept
// longer for slow sentinels, and bounded so a busy node keeps a few MB at most.
constexpr std::chrono::seconds recent_window{10};
constexpr std::size_t max_recent = 5000;
// While claims bring only eta messages, each round asks for twice as many, up to this many times the window.
constexpr std::size_t eta_claim_growth = 64;

std::string score(double seconds) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
    return buffer;
}

std::string seconds_text(std::chrono::milliseconds delay) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1fs", static_cast<double>(delay.count()) / 1000.0);
    return buffer;
}

// The first error reply of a pipeline, or of the EXEC of a transaction in it (an error queued in a MULTI comes
// back as its own reply, and EXEC then answers EXECABORT: the first one says why).
std::optional<std::string> first_error(const std::vector<Reply>& replies) {
    for (const auto& reply : replies) {
        if (reply.is_error()) return reply.string();
        if (reply.is_array())
            for (std::size_t i = 0; i < reply.size(); ++i)
                if (reply[i].is_error()) return reply[i].string();
    }
    return std::nullopt;
}

// The task id of a payload, for messages that name what is lost.
std::string task_id_of(const std::string& payload) {
    json parsed = json::parse(payload, nullptr, false);
    if (parsed.is_object() && parsed.contains("headers") && parsed["headers"].is_object())
        if (auto id = parsed["headers"].find("id"); id != parsed["headers"].end() && id->is_string()) return *id;
    return "?";
}

}  // namespace

RedisConsumer::RedisConsumer(RedisUrl url, const ConsumerInfo& info)
    : url_(std::move(url)),
      info_(info),
      rotation_(info.queues.begin(), info.queues.end()),
      id_(protocol::new_uuid()),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (info_.queues.empty()) throw UsageError("a consumer needs at least one queue");
    // Broadcast tracking takes prefixes none of which starts another: "celery" covers "celery\x06\x163" and a
    // queue "celery2" too. The doorbell then filters by exact key.
    std::vector<std::string> names(info_.queues.begin(), info_.queues.end());
    std::sort(names.begin(), names.end());
    for (const auto& name : names)
        if (prefixes_.empty() || !name.starts_with(prefixes_.back())) prefixes_.push_back(name);
    for (int step : priority_steps)
        for (const auto& queue : info_.queues) queue_keys_.insert(queue_key(queue, step));
    // Live claims are refreshed every heartbeat and restored once older than the visibility timeout: beat at
    // least three times per timeout, or a short ?visibility_timeout= lets live nodes restore each other's tasks.
    interval_ = std::clamp(url_.visibility_timeout / 3, std::chrono::seconds(1), std::chrono::seconds(10));
    if (!epoll_) throw SystemError("epoll_create1", errno);
    if (!timer_) throw SystemError("timerfd_create", errno);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = timer_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &event) != 0) throw SystemError("epoll_ctl", errno);
    try {
        connect();
    } catch (const ConnectionError& error) {
        // Like a Celery worker with broker_connection_retry_on_startup: start, and keep trying. (Also when the
        // server refuses for now: OOM, READONLY... A wrong password or database is an Error: the node stops.)
        go_down(error);
    }
}

RedisConsumer::~RedisConsumer() {
    try {
        close();
    } catch (...) {
        // Claims left in `unacked` are restored after the visibility timeout by any consumer.
    }
}

void RedisConsumer::connect() {
    auto command = std::make_unique<Connection>(url_);
    auto doorbell = std::make_unique<Connection>(url_);
    doorbell_id_ = doorbell->command({"CLIENT", "ID"}).integer();
    if (Reply subscribed = doorbell->try_command({"SUBSCRIBE", invalidation_channel}); subscribed.is_error())
        doorbell->refuse("subscribing to " + std::string(invalidation_channel), subscribed);
    doorbell->set_nonblocking();

    // Tracking first: the first claim comes after it, so every message pushed later rings the doorbell.
    if (Reply tracking = command->try_command(tracking_command()); tracking.is_error())
        command->refuse("turning on client tracking of the queues (CLIENT TRACKING needs Redis 6 or later)",
                        tracking);
    // As a Celery worker declares its queues: the default exchange of a direct queue is named after it.
    std::vector<Command> setup;
    for (const auto& queue : info_.queues) setup.push_back({"SADD", binding_key(queue), binding_member(queue, queue)});
    // Parked claims survive an outage in Redis (unless the key expired meanwhile: then restore_visible returns
    // them to their queues before they are due). Claims held in memory are re-asserted after this (reassert_claims).
    setup.push_back({"ZRANGE", parked_key(id_), "0", "0", "WITHSCORES"});
    auto replies = command->pipeline(setup);
    for (const auto& reply : replies)
        if (reply.is_error()) command->refuse("declaring queues", reply);
    const Reply& first = replies.back();
    parked_next_.reset();
    if (first.is_array() && first.size() == 2) parked_next_ = std::strtod(first[1].string().c_str(), nullptr);
    const bool moved = !server_.empty() && server_ != command->server();

    command_ = std::move(command);
    doorbell_ = std::move(doorbell);
    tracking_ = true;
    armed_ = false;  // the next reserve() claims
    rung_ = false;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = doorbell_->fd();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, doorbell_->fd(), &event) != 0) throw SystemError("epoll_ctl", errno);

    // Claims first, then anything else: after an outage they are old, and other nodes may restore old claims.
    reassert_claims();
    adopt_orphans();
    if (moved) {
        spdlog::warn("{}the master of {} moved from {}: sending {} recently settled result(s)/ack(s) again",
                     command_->prefix(), url_.master_name, server_, recent_count_);
        resend_recent();
    }
    server_ = command_->server();
    register_self();
    flush_pending();
    watch_failovers();
    if (down_) {
        spdlog::info("{}connected again (consumer of {}, holding {} message(s))", command_->prefix(), info_.node,
                     held_.size());
        // Other live nodes were most likely cut off as long as this one: give them the time to reconnect and
        // re-assert their claims before restoring any old claim.
        no_restore_until_ = std::chrono::steady_clock::now() + outage_grace;
    }
    down_.reset();
    arm_timer(std::chrono::milliseconds(0));
    if (std::chrono::steady_clock::now() >= no_restore_until_) restore_visible(*command_, url_.visibility_timeout);
}

// Claims held across an outage: recorded again unless Redis still has them (a Redis restarted without
// persistence lost them), and their times set to now, in one transaction.
void RedisConsumer::reassert_claims() {
    if (held_.empty()) return;
    const std::string now = score(unix_now());
    std::vector<Command> commands{{"MULTI"}};
    Command index{"ZADD", unacked_index_key};
    for (const auto& [tag, held] : held_) {
        commands.push_back({"HSETNX", unacked_key, tag, unacked_value(held.payload, "", held.queue)});
        index.push_back(now);
        index.push_back(tag);
    }
    commands.push_back(std::move(index));
    commands.push_back({"EXEC"});
    for (const auto& reply : command_->pipeline(commands))
        if (reply.is_error()) command_->refuse("re-asserting claims", reply);
}

// Claim requests whose replies were lost with the connection (timed out, reset) may have run on the server all
// the same, after the connection was given up: what they claimed is under tags of ours. Taken into held_ here,
// after a reconnect and at the next heartbeat, rather than left for the visibility timeout.
void RedisConsumer::adopt_orphans() {
    if (orphans_.empty()) return;
    Command get{"HMGET", unacked_key};
    get.insert(get.end(), orphans_.begin(), orphans_.end());
    Reply values = command_->command(get);
    std::vector<std::string> missing;
    Command bump{"ZADD", unacked_index_key, "XX"};
    const std::string now = score(unix_now());
    for (std::size_t i = 0; i < orphans_.size(); ++i) {
        const std::string& tag = orphans_[i];
        auto entry = i < values.size() && !values[i].is_nil() ? parse_unacked(values[i].text()) : std::nullopt;
        if (!entry) {
            missing.push_back(tag);
            continue;
        }
        if (held_.count(tag)) continue;
        admit(entry->routing_key, entry->payload.dump(), tag, nullptr);
        bump.push_back(now);
        bump.push_back(tag);
    }
    if (bump.size() > 3) {
        command_->command(bump);
        spdlog::warn("{}adopted {} message(s) claimed by {} just before the connection was lost", command_->prefix(),
                     (bump.size() - 3) / 2, info_.node);
    }
    orphans_ = ++orphan_checks_ < 2 ? std::move(missing) : std::vector<std::string>{};
}

void RedisConsumer::go_down(const Error& error) {
    if (doorbell_ && doorbell_->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, doorbell_->fd(), nullptr);
    doorbell_.reset();
    command_.reset();
    tracking_ = armed_ = rung_ = false;
    if (claiming_ahead_ && ahead_) {
        // Its reply is lost with the connection, but Redis may run it yet: look for what it claimed on reconnect.
        orphans_.insert(orphans_.end(), ahead_->args.begin() + static_cast<std::ptrdiff_t>(ahead_->first_tag),
                        ahead_->args.end());
        orphan_checks_ = 0;
    }
    claiming_ahead_ = false;
    ahead_.reset();
    if (!open_) return;
    auto delay = backoff_.next();
    // Once per episode (until a heartbeat goes through again), then every tenth attempt.
    if (!episode_ || backoff_.attempts() % 10 == 0)
        spdlog::warn("{}; {} holds {} message(s), reconnecting in {} (attempt {})", error.what(), info_.node,
                     held_.size(), seconds_text(delay), backoff_.attempts());
    episode_ = true;
    down_ = error.what();
    arm_timer(delay);
}

void RedisConsumer::arm_timer(std::chrono::milliseconds delay) {
    itimerspec spec{};
    if (delay.count() > 0) {
        spec.it_value.tv_sec = static_cast<time_t>(delay.count() / 1000);
        spec.it_value.tv_nsec = static_cast<long>(delay.count() % 1000 * 1000000);
    }
    ::timerfd_settime(timer_.get(), 0, &spec, nullptr);  // all zero disarms
}

void RedisConsumer::register_self() {
    json entry = {{"node", info_.node},
                  {"queues", info_.queues},
                  {"pid", static_cast<long>(::getpid())},
                  {"expires", unix_now() + 3.0 * static_cast<double>(interval_.count())}};
    command_->command({"HSET", consumers_key, id_, entry.dump()});
}

void RedisConsumer::settle(ResultStore& store, const std::vector<ResultMeta>& results,
                           const std::vector<Delivery>& deliveries) {
    auto* redis = dynamic_cast<RedisResultStore*>(&store);
    if (!redis || !redis->same_server(url_) || down_ || !command_) {
        Consumer::settle(store, results, deliveries);
        return;
    }
    Settling batch{redis, results, {}};
    for (const auto& delivery : deliveries)
        if (held_.erase(delivery.tag)) batch.tags.push_back(delivery.tag);
    if (batch.results.empty() && batch.tags.empty()) return;
    settling_.push_back(std::move(batch));
    try {
        command_->send_deferred(settle_commands(settling_.back()), [this](const std::vector<Reply>& replies) {
            // Stored and acked together or not at all: whatever went wrong, send the batch again once reconnected.
            if (auto error = first_error(replies))
                throw ConnectionError(command_->prefix() + "storing results: " + *error);
            keep_recent(std::move(settling_.front()));
            settling_.pop_front();
        });
    } catch (const Error& error) {
        go_down(error);  // the batch stays in settling_, sent again once Redis is back
    }
}

std::vector<Command> RedisConsumer::settle_commands(const Settling& batch) const {
    std::vector<Command> commands{{"MULTI"}};
    for (const auto& meta : batch.results) batch.store->add_to_transaction(commands, meta);
    if (!batch.tags.empty()) {
        Command zrem{"ZREM", unacked_index_key}, hdel{"HDEL", unacked_key};
        zrem.insert(zrem.end(), batch.tags.begin(), batch.tags.end());
        hdel.insert(hdel.end(), batch.tags.begin(), batch.tags.end());
        commands.push_back(std::move(zrem));
        commands.push_back(std::move(hdel));
    }
    commands.push_back({"EXEC"});
    return commands;
}

// One MULTI for any number of acks (a settle without results): ZREM and HDEL take many members. Kept until
// Redis has taken them.
void RedisConsumer::send_acks() {
    if (pending_acks_.empty()) return;
    if (auto error = first_error(command_->pipeline(settle_commands({nullptr, {}, pending_acks_}))))
        throw ConnectionError(command_->prefix() + "acking: " + *error);
    keep_recent({nullptr, {}, std::move(pending_acks_)});
    pending_acks_.clear();
}

void RedisConsumer::keep_recent(Settling batch) {
    if (!url_.sentinel()) return;
    const auto now = std::chrono::steady_clock::now();
    recent_count_ += batch.results.size() + batch.tags.size();
    recent_.push_back({now, std::move(batch)});
    while (!recent_.empty() && (now - recent_.front().when > recent_window || recent_count_ > max_recent)) {
        recent_count_ -= recent_.front().batch.results.size() + recent_.front().batch.tags.size();
        recent_.pop_front();
    }
}

// The batches of the last seconds before the connection was lost (keep_recent prunes only as batches come in, so
// a long outage does not age them out).
void RedisConsumer::resend_recent() {
    for (const auto& [when, batch] : recent_) {
        auto replies = command_->pipeline(settle_commands(batch));
        if (replies.back().is_error() || !replies.back().is_array())
            throw ConnectionError(command_->prefix() + "storing results again: " + replies.back().string());
    }
    recent_.clear();
    recent_count_ = 0;
}

void RedisConsumer::watch_failovers() {
    if (!url_.sentinel() || watch_ || !open_) return;
    try {
        auto watch = std::make_unique<SwitchWatch>(url_);
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = watch->fd();
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, watch->fd(), &event) != 0) throw SystemError("epoll_ctl", errno);
        watch_ = std::move(watch);
    } catch (const ConnectionError& error) {
        // Reconnects still follow a failover, only later (when the old master drops us): try again next beat.
        spdlog::warn("{}; trying again at the next heartbeat", error.what());
    }
}

void RedisConsumer::drop_watch() {
    if (watch_ && watch_->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch_->fd(), nullptr);
    watch_.reset();
}

void RedisConsumer::flush_pending() {
    // Batches settled before the connection broke: whether they landed is unknown, and sending them again is
    // harmless (results are idempotent, acking twice does nothing).
    for (; !settling_.empty(); settling_.pop_front()) {
        if (auto error = first_error(command_->pipeline(settle_commands(settling_.front()))))
            throw ConnectionError(command_->prefix() + "storing results: " + *error);
        keep_recent(std::move(settling_.front()));
    }
    send_acks();
    for (auto it = held_.begin(); it != held_.end();) {
        if (!it->second.requeue_pending) {
            ++it;
            continue;
        }
        give_back(it->first, it->second);
        it = held_.erase(it);
    }
}

void RedisConsumer::rotate(const std::string& queue) {
    auto it = std::find(rotation_.begin(), rotation_.end(), queue);
    if (it == rotation_.end()) return;
    rotation_.erase(it);
    rotation_.push_back(queue);
}

void RedisConsumer::admit(const std::string& queue, std::string payload, std::string tag, std::vector<Delivery>* out) {
    Held held;
    held.queue = queue;
    Delivery delivery;
    delivery.tag = tag;
    try {
        // The fast path: the envelope's fields read straight from the text, no JSON tree (protocol/fast_decode).
        delivery.message = protocol::decode_string(payload);
        held.return_key = queue_key(queue, delivery.message.priority);
    } catch (const protocol::ProtocolError& error) {
        // A message that cannot run: its task name and priority, where it has them, for the FAILURE and the way
        // back to its queue.
        json parsed = json::parse(payload, nullptr, false);
        held.return_key = parsed.is_object() ? restore_key(parsed, queue) : queue_key(queue, 0);
        delivery.decode_error = error.what();
        delivery.message.id = error.task_id();
        if (parsed.is_object() && parsed.contains("headers") && parsed["headers"].is_object())
            if (auto task = parsed["headers"].find("task"); task != parsed["headers"].end() && task->is_string())
                delivery.message.task = *task;
    }
    delivery.message.queue = queue;
    held.payload = std::move(payload);

    const TimePoint now = protocol::now();
    if (!delivery.decode_error && delivery.message.eta && *delivery.message.eta > now) {
        Parking parking{std::move(held), std::move(delivery)};
        if (!down_ && command_ && *parking.delivery.message.eta > now + park_after)
            to_park_.push_back(std::move(parking));  // parked by park_pending(), after this claim
        else
            hold(std::move(parking));
        return;
    }
    held_.emplace(std::move(tag), std::move(held));
    if (out) {
        out->push_back(std::move(delivery));
    } else {
        ready_.push_back(std::move(delivery));
    }
}

void RedisConsumer::hold(Parking parking) {
    const std::string tag = parking.delivery.tag;
    TimePoint eta = *parking.delivery.message.eta;
    held_.emplace(tag, std::move(parking.held));
    scheduled_.emplace(eta, std::move(parking.delivery));
}

void RedisConsumer::park_pending() {
    if (to_park_.empty()) return;
    std::vector<Parking> batch = std::move(to_park_);
    to_park_.clear();
    const double vt = static_cast<double>(url_.visibility_timeout.count());
    const double margin = static_cast<double>(restore_margin.count());
    const std::string key = parked_key(id_);
    Command zadd{"ZADD", key}, index{"ZADD", unacked_index_key, "XX"};
    double earliest = parked_next_.value_or(std::numeric_limits<double>::infinity());
    for (const auto& parking : batch) {
        const double eta = protocol::to_unix(*parking.delivery.message.eta);
        zadd.push_back(score(eta));
        zadd.push_back(parking.delivery.tag);
        index.push_back(score(eta - vt - margin));
        index.push_back(parking.delivery.tag);
        earliest = std::min(earliest, eta);
    }
    const auto expiry = std::max<std::chrono::seconds>(std::chrono::seconds(60), interval_ * 6);
    try {
        auto replies =
            command_->pipeline({{"MULTI"}, zadd, index, {"EXPIRE", key, std::to_string(expiry.count())}, {"EXEC"}});
        if (auto error = first_error(replies))
            throw ConnectionError(command_->prefix() + "parking eta claims: " + *error);
        parked_next_ = earliest;
        parked_count_ += batch.size();
    } catch (const ConnectionError& error) {
        for (auto& parking : batch) hold(std::move(parking));  // held in memory after all
        go_down(error);
    }
}

void RedisConsumer::unpark_due() {
    if (!parked_next_ || down_ || !command_) return;
    const double horizon = unix_now() + static_cast<double>(park_after.count());
    for (int round = 0; round < max_claim_rounds && parked_next_ && *parked_next_ <= horizon; ++round) {
        Reply reply = eval(*command_, unpark_script, {parked_key(id_), unacked_key, unacked_index_key},
                           {score(horizon), std::to_string(max_claim), score(unix_now())});
        if (!reply.is_array() || reply.size() == 0) {
            if (reply.is_error())
                spdlog::error("{}taking back parked eta messages: {}", url_.address(), reply.string());
            parked_next_.reset();  // restore_visible returns them to their queues in time
            return;
        }
        const std::string first = reply[0].string();
        parked_next_.reset();
        if (!first.empty()) parked_next_ = std::strtod(first.c_str(), nullptr);
        for (std::size_t i = 1; i + 1 < reply.size(); i += 2) {
            auto entry = parse_unacked(reply[i + 1].text());
            if (!entry) continue;  // unreadable: restore_visible drops it with an error line
            admit(entry->routing_key, entry->payload.dump(), reply[i].string(), nullptr);
        }
    }
}

RedisConsumer::Claim RedisConsumer::claim_request(std::size_t want) const {
    Claim claim;
    claim.order = rotation_;
    want = std::min(want, max_claim);
    claim.keys = {unacked_key, unacked_index_key};
    for (int step : priority_steps)
        for (const auto& queue : claim.order) claim.keys.push_back(queue_key(queue, step));
    claim.args = {std::to_string(want), std::to_string(claim.order.size()), score(unix_now())};
    claim.args.insert(claim.args.end(), claim.order.begin(), claim.order.end());
    claim.first_tag = claim.args.size();
    for (std::size_t i = 0; i < want; ++i) claim.args.push_back(protocol::new_uuid());
    return claim;
}

std::size_t RedisConsumer::admit_claimed(Claim& claim, const Reply& reply, std::vector<Delivery>* out) {
    const std::size_t want = claim.args.size() - claim.first_tag;
    std::size_t count = 0;
    for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
        auto position = static_cast<std::size_t>(reply[i].integer());
        if (position >= claim.order.size() || count >= want) continue;
        rotate(claim.order[position]);
        admit(claim.order[position], reply[i + 1].string(), std::move(claim.args[claim.first_tag + count]), out);
        ++count;
    }
    return count;
}

std::size_t RedisConsumer::claim(std::size_t want, std::vector<Delivery>& out) {
    Claim claim = claim_request(want);
    Reply reply;
    try {
        reply = eval(*command_, claim_script, claim.keys, claim.args);
    } catch (const ConnectionError&) {
        // Sent, and maybe run after the connection was given up (a server paused longer than our timeout).
        orphans_.insert(orphans_.end(), claim.args.begin() + static_cast<std::ptrdiff_t>(claim.first_tag),
                        claim.args.end());
        orphan_checks_ = 0;
        throw;
    }
    return admit_claimed(claim, reply, &out);
}

void RedisConsumer::claim_ahead(std::size_t want) {
    auto claim = std::make_shared<Claim>(claim_request(want));
    Command command{"EVALSHA", script_sha(*command_, claim_script, std::exchange(reload_claim_script_, false)),
                    std::to_string(claim->keys.size())};
    command.insert(command.end(), claim->keys.begin(), claim->keys.end());
    command.insert(command.end(), claim->args.begin(), claim->args.end());
    claiming_ahead_ = true;
    ahead_ = claim;
    command_->send_deferred({std::move(command)}, [this, claim](const std::vector<Reply>& replies) {
        claiming_ahead_ = false;
        ahead_.reset();
        const Reply& reply = replies.front();
        if (reply.is_error()) {
            // Nothing was popped. NOSCRIPT: Redis restarted and forgot the script; load it for the next claim.
            // Anything else (READONLY, BUSY...): given up on this connection, tried again after a backoff.
            if (!reply.text().starts_with("NOSCRIPT")) command_->refuse("claiming messages", reply);
            reload_claim_script_ = true;
            return;
        }
        admit_claimed(*claim, reply, nullptr);  // into ready_ (or scheduled_), for the next reserve()
    });
}

Command RedisConsumer::tracking_command() const {
    Command command{"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(doorbell_id_), "BCAST"};
    for (const auto& prefix : prefixes_) {
        command.push_back("PREFIX");
        command.push_back(prefix);
    }
    return command;
}

void RedisConsumer::listen_to_doorbell() {
    bool heard = false, ours = false;
    while (doorbell_) {
        auto reply = doorbell_->read_available();
        if (!reply) break;
        if (reply->is_error()) doorbell_->refuse("waiting for messages", *reply);
        // ["message", "__redis__:invalidate", [keys...]]; no keys: the database was flushed
        if (!reply->is_array() || reply->size() != 3 || (*reply)[0].text() != "message") continue;
        heard = true;
        ReplyView keys = (*reply)[2];
        if (!keys.is_array()) ours = true;
        for (std::size_t i = 0; i < keys.size() && !ours; ++i) ours = queue_keys_.count(std::string(keys[i].text())) > 0;
    }
    if (armed_) {
        rung_ = rung_ || ours;
    } else if (heard && tracking_) {
        // Busy (the last claim found messages): no bell is needed until the queues run dry again, and a busy
        // node should not be woken by every push and result write. Turned on again then (reserve()).
        command_->send_deferred({{"CLIENT", "TRACKING", "off"}}, [](const std::vector<Reply>&) {});
        tracking_ = false;
    }
}

void RedisConsumer::drain_wakeups() {
    std::uint64_t expirations = 0;
    bool timer_fired = ::read(timer_.get(), &expirations, sizeof expirations) == sizeof expirations;
    if (!open_) return;
    if (watch_) {
        try {
            if (auto to = watch_->switched(); to && *to != server_) {
                if (!down_) {
                    // The old master still answers: take in the replies on their way (a window claimed ahead), so
                    // those claims are held and recorded again on the new master rather than left in `unacked`
                    // there until the visibility timeout.
                    try {
                        command_->read_deferred();
                    } catch (const ConnectionError&) {
                    }
                    go_down(ConnectionError("redis " + server_ + ": the sentinels switched master " + url_.master_name +
                                            " to another server (failover)"));
                    return;
                }
                timer_fired = true;  // down already (the old master died): the new one is known, go now
            }
        } catch (const ConnectionError& error) {
            spdlog::warn("{} (failover watch); watching again at the next heartbeat", error.what());
            drop_watch();
        }
    }
    if (down_) {
        if (!timer_fired) return;
        try {
            connect();
        } catch (const Error& error) {
            go_down(error);
        }
        return;
    }
    if (timer_fired && armed_) rung_ = true;  // the fallback claim
    try {
        listen_to_doorbell();
    } catch (const Error& error) {
        go_down(error);
    }
}

std::vector<Delivery> RedisConsumer::reserve(std::size_t max) {
    std::vector<Delivery> out;
    if (!open_ || max == 0) return out;
    if (claiming_ahead_ && !down_) {
        try {
            command_->read_deferred();  // the window claimed ahead: usually there by now
        } catch (const Error& error) {
            go_down(error);
        }
    }
    try {
        park_pending();  // what a window claimed ahead brought
        unpark_due();
        park_pending();
    } catch (const ConnectionError& error) {
        go_down(error);
    }
    const TimePoint now = protocol::now();
    while (!scheduled_.empty() && scheduled_.begin()->first <= now) {
        ready_.push_back(std::move(scheduled_.begin()->second));
        scheduled_.erase(scheduled_.begin());
    }
    while (!ready_.empty() && out.size() < max) {
        out.push_back(std::move(ready_.front()));
        ready_.pop_front();
    }
    if (down_) return out;  // what we already hold can run; acks are queued until Redis is back
    if (armed_ && !rung_) return out;  // the queues were dry at the last claim, and no message came since
    rung_ = false;  // a push from now on rings again
    // Idle until now: the pushes that rang this node rang every idle node of the queues. It takes its window and
    // leaves the rest to them rather than claiming the next window ahead too.
    const bool woken = armed_;
    try {
        bool drained = false;
        std::size_t growth = 1;
        for (int round = 0; out.size() < max && round < max_claim_rounds; ++round) {
            std::size_t want = std::min(max_claim, (max - out.size()) * growth);
            std::size_t before = out.size();
            std::size_t got = claim(want, out);
            park_pending();
            if (got < want) {
                drained = true;  // the queues are empty
                break;
            }
            if (out.size() == before) growth = std::min(growth * 2, eta_claim_growth);  // only eta messages
        }
        if (drained && !tracking_) {
            // Tracking was turned off while busy: on again, and one more claim for what was pushed meanwhile.
            // Sent together: one round trip.
            command_->send_deferred({tracking_command()}, [this](const std::vector<Reply>& replies) {
                if (replies.front().is_error())
                    command_->refuse("turning on client tracking of the queues", replies.front());
            });
            tracking_ = true;
            std::size_t want = std::max<std::size_t>(1, max > out.size() ? max - out.size() : 0);
            drained = claim(want, out) < want;
            park_pending();
        }
        // A grown batch may bring more ready messages than asked for: the next reserve() hands them out.
        for (std::size_t i = max; i < out.size(); ++i) ready_.push_back(std::move(out[i]));
        if (out.size() > max) out.resize(max);
        armed_ = drained;
        if (drained) {
            arm_timer(fallback_claim_interval);  // claim now and then even if the doorbell stays silent
        } else {
            if (!claiming_ahead_ && !woken)
                claim_ahead(max);  // the queues had enough: claim the next window while the node works on this one
            // Every round brought eta messages only: come back at once (through wakeup_fd) rather than at the
            // next heartbeat, so what waits behind them is reached soon, without holding up the node's loop.
            if (out.size() < max) arm_timer(std::chrono::milliseconds(1));
        }
    } catch (const Error& error) {
        go_down(error);
    }
    return out;
}

bool RedisConsumer::give_back(const std::string& tag, const Held& held) {
    json parsed = json::parse(held.payload, nullptr, false);
    std::string payload = parsed.is_object() ? redelivered_payload(parsed) : held.payload;
    Reply done =
        eval(*command_, restore_script, {unacked_key, unacked_index_key, held.return_key}, {tag, payload, "", ""});
    return done.integer() == 1;
}

void RedisConsumer::ack(const Delivery& delivery) {
    ack_many({delivery});
}

void RedisConsumer::ack_many(const std::vector<Delivery>& deliveries) {
    for (const auto& delivery : deliveries) {
        auto it = held_.find(delivery.tag);
        if (it == held_.end()) continue;  // not ours (any more)
        pending_acks_.push_back(delivery.tag);
        held_.erase(it);
    }
    if (down_) return;  // sent once Redis is back
    try {
        send_acks();
    } catch (const Error& error) {
        go_down(error);
    }
}

void RedisConsumer::requeue(const Delivery& delivery) {
    auto it = held_.find(delivery.tag);
    if (it == held_.end()) return;
    if (down_) {
        it->second.requeue_pending = true;
        return;
    }
    try {
        if (!give_back(it->first, it->second))
            spdlog::warn("{}task {} was restored by another node meanwhile (this one was presumed dead)",
                         command_->prefix(), it->second.payload.empty() ? "?" : task_id_of(it->second.payload));
        held_.erase(it);
    } catch (const Error& error) {
        it->second.requeue_pending = true;
        go_down(error);
    }
}

std::optional<TimePoint> RedisConsumer::next_eta() {
    std::optional<TimePoint> next;
    if (!scheduled_.empty()) next = scheduled_.begin()->first;
    // Parked claims are taken back park_after before they are due (not while Redis is down: the reconnect wakes
    // the node anyway, and a timer in the past would fire again and again meanwhile).
    if (parked_next_ && !down_) {
        TimePoint take = protocol::from_unix(*parked_next_ - static_cast<double>(park_after.count()));
        if (!next || take < *next) next = take;
    }
    return next;
}

void RedisConsumer::heartbeat() {
    if (!open_ || down_) return;
    watch_failovers();
    const auto began = std::chrono::steady_clock::now();
    try {
        register_self();
        park_pending();
        if (parked_next_)
            command_->command(
                {"EXPIRE", parked_key(id_),
                 std::to_string(std::max<std::chrono::seconds>(std::chrono::seconds(60), interval_ * 6).count())});
        Command bump{"ZADD", unacked_index_key, "XX"};
        const std::string now = score(unix_now());
        for (const auto& [tag, held] : held_) {
            bump.push_back(now);
            bump.push_back(tag);
        }
        if (bump.size() > 3) command_->command(bump);
        adopt_orphans();
        // Redis answered, but late: it stalled (a pause, a fork, a busy script) for less than the command timeout,
        // in this heartbeat or in a command that held up the loop before it, so this node saw no outage while
        // others may have, and their claims went stale meanwhile. Restoring now would run their live tasks twice:
        // give them the grace after an outage to re-assert their claims first.
        const auto now_steady = std::chrono::steady_clock::now();
        const bool slow = now_steady - began > interval_;
        const bool late = last_heartbeat_ != std::chrono::steady_clock::time_point{} &&
                          began - last_heartbeat_ > 2 * interval_;
        if (slow || late) no_restore_until_ = std::max(no_restore_until_, now_steady + outage_grace);
        last_heartbeat_ = now_steady;
        if (now_steady >= no_restore_until_) restore_visible(*command_, url_.visibility_timeout);
        if (episode_) {
            episode_ = false;  // a heartbeat went through: the outage is over
            backoff_.reset();
        }
    } catch (const Error& error) {
        go_down(error);
    }
}

void RedisConsumer::close() {
    if (!open_) return;
    open_ = false;
    arm_timer(std::chrono::milliseconds(0));
    if ((down_ || !command_) && !held_.empty()) {
        try {
            connect();  // Redis may be back by now: giving the messages back beats waiting for the timeout
        } catch (const Error& error) {
            spdlog::warn(
                "{} at shutdown; {} message(s) held by {} go back to their queues after the visibility timeout "
                "({}s)",
                error.what(), held_.size(), info_.node, url_.visibility_timeout.count());
            return;
        }
    }
    if (down_ || !command_) return;
    std::size_t restored = 0, gone = 0;
    try {
        command_->read_deferred();  // a window claimed ahead joins held_ first, to be given back with the rest
        for (auto it = held_.begin(); it != held_.end(); it = held_.erase(it))
            ++(give_back(it->first, it->second) ? restored : gone);
        ready_.clear();
        scheduled_.clear();
        // Parked claims stay claimed: restore_visible returns each to its queue shortly before it is due.
        for (const auto& parking : to_park_) give_back(parking.delivery.tag, parking.held);
        to_park_.clear();
        long long parked = command_->command({"ZCARD", parked_key(id_)}).integer();
        if (parked > 0)
            spdlog::info(
                "redis {}: {} eta message(s) of {} not due for a while stay claimed; each goes back to its queue {}s "
                "before it is due (restored by any node)",
                url_.address(), parked, info_.node, restore_margin.count());
        command_->command({"DEL", parked_key(id_)});
        command_->command({"HDEL", consumers_key, id_});
    } catch (const Error& error) {
        spdlog::warn("{} while giving back {} message(s) at shutdown; the rest return after the visibility timeout",
                     error.what(), held_.size());
    }
    if (restored)
        spdlog::info("redis {}: restored {} unacknowledged message(s) of {}", url_.address(), restored, info_.node);
    if (gone)
        spdlog::warn("redis {}: {} message(s) held by {} had been restored by another node meanwhile", url_.address(),
                     gone, info_.node);
    if (doorbell_ && doorbell_->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, doorbell_->fd(), nullptr);
    doorbell_.reset();
    command_.reset();
    drop_watch();
}

}  // namespace ccmulti::broker::redis
