#include "worker/task_totals.hpp"

namespace ccmulti::worker {

void TaskTotals::count(const std::string& task) {
    if (auto it = totals_.find(task); it != totals_.end()) {
        ++it->second;
        return;
    }
    if (registered_(task)) {
        totals_.emplace(task, 1);
    } else if (unregistered_ < max_unregistered && task != other_unregistered) {
        ++unregistered_;
        totals_.emplace(task, 1);
    } else {
        ++totals_[other_unregistered];
    }
}

}  // namespace ccmulti::worker
