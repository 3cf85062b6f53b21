#include "worker/task_runtimes.hpp"

namespace ccmulti::worker {

namespace {

constexpr double latest_weight = 0.2;

}  // namespace

void TaskRuntimes::record(const std::string& task, double seconds) {
    auto it = runtimes_.find(task);
    if (it == runtimes_.end()) {
        if (runtimes_.size() >= max_names) return;
        it = runtimes_.emplace(task, Runtime{}).first;
    }
    Runtime& runtime = it->second;
    runtime.average = runtime.runs == 0 ? seconds : (1 - latest_weight) * runtime.average + latest_weight * seconds;
    ++runtime.runs;
}

bool TaskRuntimes::is_quick(const std::string& task) const {
    auto it = runtimes_.find(task);
    return it != runtimes_.end() && it->second.runs >= runs_to_know && it->second.average < quick_seconds;
}

}  // namespace ccmulti::worker
