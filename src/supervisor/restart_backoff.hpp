// When a node that died on its own is started again. Exponential backoff with jitter that never gives up:
//
//   attempt 1: initial (0.5 s)   2: 1 s   3: 2 s   …   capped at max (60 s), for ever
//   each delay is scaled by a random factor in [1 - jitter, 1 + jitter] (0.2), so nodes that crashed
//   together (a broker outage) do not come back in lockstep
//   a run that stayed up at least reset_after (60 s) counts as healthy: the next crash starts at attempt 1
//
// supervisord gives up after startretries and marks FATAL, and people find dead workers days later
// (see the supervision lessons in the shared docs); ccmulti keeps trying at the cap and shows `backoff` in `status`.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace ccmulti::supervisor {

struct RestartPolicy {
    std::chrono::milliseconds initial{500};
    std::chrono::milliseconds max{60'000};
    std::chrono::milliseconds reset_after{60'000};
    double jitter = 0.2;
};

class RestartBackoff {
public:
    explicit RestartBackoff(RestartPolicy policy = {}, std::uint64_t seed = std::random_device{}())
        : policy_(policy), random_(seed) {}

    // The delay before the next start of a node that just died after running for `uptime`.
    std::chrono::milliseconds next_delay(std::chrono::steady_clock::duration uptime);

    // Consecutive crashes counted so far (1 after the first crash; back to 0 by a healthy run).
    int attempts() const { return attempts_; }
    void reset() { attempts_ = 0; }
    const RestartPolicy& policy() const { return policy_; }

    // The delay of attempt `n` (1-based) before jitter: initial * 2^(n-1), at most max.
    static std::chrono::milliseconds base_delay(const RestartPolicy& policy, int n);

private:
    RestartPolicy policy_;
    std::mt19937_64 random_;
    int attempts_ = 0;
};

}  // namespace ccmulti::supervisor
