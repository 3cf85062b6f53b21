#include "dashboard/live.hpp"

#include <spdlog/spdlog.h>

#include "util/strings.hpp"

namespace ccmulti::dashboard {

using nlohmann::json;

namespace {

double dashboard_unix_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Tasks finished per node, from `inspect stats` ("total": {task: count}).
std::map<std::string, long> finished_per_node(const json& stats) {
    std::map<std::string, long> out;
    for (const auto& [node, reply] : stats.items()) {
        if (!reply.is_object() || !reply.contains("total") || !reply["total"].is_object()) continue;
        long sum = 0;
        for (const auto& [task, count] : reply["total"].items())
            if (count.is_number_integer()) sum += count.get<long>();
        out[node] = sum;
    }
    return out;
}

}  // namespace

json to_json(const Point& point) {
    return {
        {"time", point.time}, {"throughput", point.throughput}, {"failures", point.failures}, {"depth", point.depth}};
}

Live::Live(const Api& api, std::chrono::milliseconds interval, bool sample_now) : api_(api), interval_(interval) {
    if (sample_now) round();
    thread_ = std::thread([this, sample_now] { run(!sample_now); });
}

Live::~Live() {
    stop();
    if (thread_.joinable()) thread_.join();
}

void Live::stop() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    changed_.notify_all();
}

bool Live::stopped() const {
    std::lock_guard lock(mutex_);
    return stop_;
}

Snapshot Live::latest() const {
    std::lock_guard lock(mutex_);
    return latest_;
}

std::vector<Point> Live::points() const {
    std::lock_guard lock(mutex_);
    return {points_.begin(), points_.end()};
}

std::vector<Point> Live::wait_points(std::uint64_t& seen, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return stop_ || count_ > seen; });
    if (stop_ || count_ <= seen) return {};
    std::size_t fresh = std::min<std::size_t>(count_ - seen, points_.size());
    seen = count_;
    return {points_.end() - static_cast<std::ptrdiff_t>(fresh), points_.end()};
}

void Live::run(bool sample_first) {
    if (sample_first) round();
    std::unique_lock lock(mutex_);
    while (!stop_) {
        changed_.wait_for(lock, interval_, [&] { return stop_; });
        if (stop_) break;
        lock.unlock();
        round();
        lock.lock();
    }
}

void Live::round() {
    Snapshot snapshot;
    snapshot.time = dashboard_unix_seconds();
    try {
        snapshot.status = api_.status();
        snapshot.master = !snapshot.status["master"].is_null();
        if (!snapshot.master) snapshot.errors.push_back(snapshot.status.value("error", std::string("no master")));
    } catch (const std::exception& e) {
        snapshot.errors.push_back(std::string("master: ") + e.what());
    }
    std::set<std::string> failures;
    try {
        snapshot.queues = api_.queues();
        auto connection = broker::connect(api_.source().broker);
        for (const auto& meta : connection.results->recent(recent_window)) {
            ++snapshot.results_by_state[std::string(protocol::to_string(meta.status))];
            if (meta.status == protocol::TaskState::failure) failures.insert(meta.task_id);
        }
        snapshot.broker = true;
    } catch (const std::exception& e) {
        snapshot.errors.push_back(std::string("broker: ") + e.what());
    }
    try {
        snapshot.stats = api_.inspect("stats", std::chrono::milliseconds(1000));
    } catch (const std::exception& e) {
        snapshot.errors.push_back(std::string("inspect stats: ") + e.what());
    }

    std::string error = join(snapshot.errors, "; ");
    if (error != last_error_) {
        if (error.empty())
            spdlog::info("dashboard: the master and the broker answer again");
        else
            spdlog::warn("dashboard: {} (retrying every {} ms)", error, interval_.count());
        last_error_ = error;
    }

    Point point;
    point.time = snapshot.time;
    for (const auto& queue : snapshot.queues) point.depth += queue.value("ready", 0L) + queue.value("scheduled", 0L);
    auto totals = finished_per_node(snapshot.stats);
    std::lock_guard lock(mutex_);
    if (have_previous_) {
        double elapsed = std::max(0.001, snapshot.time - latest_.time);
        long finished = 0;
        for (const auto& [node, total] : totals) {
            auto before = previous_totals_.find(node);
            // A node that restarted counts from zero again; a node new to the list: its tasks are not this second's.
            if (before != previous_totals_.end()) finished += total >= before->second ? total - before->second : total;
        }
        long failed = 0;
        if (snapshot.broker)
            for (const auto& id : failures) failed += previous_failures_.contains(id) ? 0 : 1;
        point.throughput = static_cast<double>(finished) / elapsed;
        point.failures = static_cast<double>(failed) / elapsed;
    }
    for (const auto& [node, total] : totals) previous_totals_[node] = total;
    std::erase_if(previous_totals_, [&](const auto& entry) { return !totals.contains(entry.first); });
    if (snapshot.broker) previous_failures_ = std::move(failures);
    have_previous_ = true;
    latest_ = std::move(snapshot);
    points_.push_back(point);
    if (points_.size() > history) points_.pop_front();
    ++count_;
    changed_.notify_all();
}

}  // namespace ccmulti::dashboard
