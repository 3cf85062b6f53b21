// Reconnect delays: 0.5 s, 1 s, 2 s ... up to 30 s, with ±20% jitter so the nodes of a cluster do not all knock
// at a restarted Redis in the same instant. reset() after a success.
#pragma once

#include <chrono>

namespace ccmulti::broker::redis {

class Backoff {
public:
    std::chrono::milliseconds next();
    void reset() { attempt_ = 0; }
    int attempts() const { return attempt_; }

private:
    int attempt_ = 0;
};

}  // namespace ccmulti::broker::redis
