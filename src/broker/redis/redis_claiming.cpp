// RedisConsumer (redis_consumer.hpp): claiming messages with the claim script, ahead of need while the queues have
// more, holding or parking eta messages, and reserve().
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
#include "broker/redis/redis_consumer.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/scripts.hpp"

namespace ccmulti::broker::redis {

using nlohmann::json;

using namespace consumer_detail;

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
    if (down_) return out;             // what we already hold can run; acks are queued until Redis is back
    if (armed_ && !rung_) return out;  // the queues were dry at the last claim, and no message came since
    rung_ = false;                     // a push from now on rings again
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

}  // namespace ccmulti::broker::redis
