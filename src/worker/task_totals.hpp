// Tasks finished per task name, for `inspect stats` ("total", as Celery reports it). The names come from the
// broker: anyone who can publish can send ten thousand made-up ones. So the table is bounded: a registered
// task always has its own line (the registry is finite), the first max_unregistered names the node does not
// know get theirs, and every further unknown name is counted under other_unregistered. Memory stays a few
// hundred lines whatever arrives; the sum of the counts is still every task the node finished.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>

namespace ccmulti::worker {

class TaskTotals {
public:
    static constexpr std::size_t max_unregistered = 100;
    static constexpr const char* other_unregistered = "(other unregistered tasks)";

    // `registered` tells a task the node runs from a name only the broker knows.
    explicit TaskTotals(std::function<bool(const std::string&)> registered) : registered_(std::move(registered)) {}

    void count(const std::string& task);
    const std::map<std::string, long>& totals() const { return totals_; }

private:
    std::function<bool(const std::string&)> registered_;
    std::map<std::string, long> totals_;
    std::size_t unregistered_ = 0;  // names in totals_ that are not registered
};

}  // namespace ccmulti::worker
