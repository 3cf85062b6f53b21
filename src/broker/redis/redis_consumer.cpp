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
#include "broker/redis/consumer_detail.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/scripts.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

using namespace consumer_detail;

namespace {

std::string seconds_text(std::chrono::milliseconds delay) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1fs", static_cast<double>(delay.count()) / 1000.0);
    return buffer;
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
        command->refuse("turning on client tracking of the queues (CLIENT TRACKING needs Redis 6 or later)", tracking);
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
        for (std::size_t i = 0; i < keys.size() && !ours; ++i)
            ours = queue_keys_.count(std::string(keys[i].text())) > 0;
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

bool RedisConsumer::give_back(const std::string& tag, const Held& held) {
    json parsed = json::parse(held.payload, nullptr, false);
    std::string payload = parsed.is_object() ? redelivered_payload(parsed) : held.payload;
    Reply done =
        eval(*command_, restore_script, {unacked_key, unacked_index_key, held.return_key}, {tag, payload, "", ""});
    return done.integer() == 1;
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
        const bool late =
            last_heartbeat_ != std::chrono::steady_clock::time_point{} && began - last_heartbeat_ > 2 * interval_;
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
