#include "supervisor/restart_backoff.hpp"

#include <algorithm>

namespace ccmulti::supervisor {

std::chrono::milliseconds RestartBackoff::base_delay(const RestartPolicy& policy, int n) {
    auto delay = policy.initial;
    for (int i = 1; i < n && delay < policy.max; ++i) delay *= 2;
    return std::min(delay, policy.max);
}

std::chrono::milliseconds RestartBackoff::next_delay(std::chrono::steady_clock::duration uptime) {
    if (uptime >= policy_.reset_after) attempts_ = 0;
    if (attempts_ < 1'000'000) ++attempts_;
    auto base = base_delay(policy_, attempts_);
    std::uniform_real_distribution<double> factor(1.0 - policy_.jitter, 1.0 + policy_.jitter);
    auto jittered =
        std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * factor(random_)));
    // Jitter may spread the delay, never past the cap the user set.
    return std::clamp(jittered, std::chrono::milliseconds(0), policy_.max);
}

}  // namespace ccmulti::supervisor
