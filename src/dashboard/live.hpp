// The dashboard's view over time: a thread that every second asks the master, the broker, the nodes and the
// result store what they hold (one Snapshot), and derives the live chart's points (throughput, failures, queue
// depth) from consecutive snapshots. /metrics renders the latest snapshot, so a scrape costs no round trip to
// every node (Redis inspect waits out its timeout), and the server-sent event stream hands out the points.
//
// The loop never unwinds: whatever fails in a round (no master, broker down) is recorded in that snapshot's
// errors, logged once when it starts failing, and tried again on the next round.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dashboard/api.hpp"

namespace ccmulti::dashboard {

struct Snapshot {
    double time = 0;                                  // unix seconds
    bool master = false, broker = false;              // reached this round
    nlohmann::json status;                            // Api::status()
    nlohmann::json queues = nlohmann::json::array();  // Api::queues()
    nlohmann::json stats = nlohmann::json::object();  // Api::inspect("stats"): {node: stats}
    std::map<std::string, long> results_by_state;     // among the last recent_window stored results
    std::vector<std::string> errors;
};

// One point of the live chart.
struct Point {
    double time = 0;
    double throughput = 0;  // tasks finished per second since the previous point
    double failures = 0;    // FAILURE results stored per second since the previous point
    long depth = 0;         // messages waiting (ready + scheduled) in every queue
};
nlohmann::json to_json(const Point& point);

class Live {
public:
    static constexpr std::size_t recent_window = 200;
    static constexpr std::size_t history = 600;  // points kept: 10 minutes at one a second

    // Takes the first snapshot on the caller's thread (so /metrics has one from the start), then starts the thread;
    // or, `sample_now` false, leaves the first to the thread (the master: its loop must run to answer it).
    Live(const Api& api, std::chrono::milliseconds interval, bool sample_now = true);
    ~Live();  // stops the thread
    Live(const Live&) = delete;
    Live& operator=(const Live&) = delete;

    void stop();  // wakes every waiter; idempotent
    Snapshot latest() const;
    std::vector<Point> points() const;
    // Waits until a point newer than number `seen` exists (or `timeout`, or stop()); returns the points after
    // `seen` and sets `seen` to the newest's number. Empty on timeout or stop.
    std::vector<Point> wait_points(std::uint64_t& seen, std::chrono::milliseconds timeout) const;
    bool stopped() const;

private:
    void round();  // one snapshot and point
    void run(bool sample_first);

    const Api& api_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    bool stop_ = false;
    Snapshot latest_;
    std::deque<Point> points_;
    std::uint64_t count_ = 0;  // points ever made: the number of the newest
    // What the previous round saw, to derive rates: finished tasks per node, and the FAILURE ids in the window.
    std::map<std::string, long> previous_totals_;
    std::set<std::string> previous_failures_;
    bool have_previous_ = false;
    std::string last_error_;  // logged when it changes
    std::thread thread_;
};

}  // namespace ccmulti::dashboard
