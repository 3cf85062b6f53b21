// When a burst of file changes becomes one reload. An editor's save (vim: a probe file, a backup, a rename), a
// `git checkout` of 500 files or a linker writing a `.so` is a burst of events over tens or hundreds of
// milliseconds; reloading on the first event would load half-written code and reload again a moment later.
//
//   trailing edge: the batch is due `quiet` (300 ms) after the last change, so a burst gives one batch
//   ceiling:       and at most `ceiling` (2 s) after the first change of the batch, so a file rewritten without
//                  pause (a generator in a loop) still reloads instead of waiting for a quiet moment for ever
//
// Passive and clock-driven: the caller says when a change was seen and asks when the batch is due, and arms its
// own timer (FileWatch uses an EventLoop timer). It never reads the clock, so it is tested without sleeping.
#pragma once

#include <chrono>
#include <optional>

namespace ccmulti {

struct DebouncePolicy {
    std::chrono::milliseconds quiet{300};
    std::chrono::milliseconds ceiling{2000};
};

class ChangeDebounce {
public:
    using Clock = std::chrono::steady_clock;

    explicit ChangeDebounce(DebouncePolicy policy = {}) : policy_(policy) {}

    // A change seen at `now`: starts a batch, or extends the pending one (up to the ceiling).
    void note(Clock::time_point now);

    // When the pending batch is due: min(last change + quiet, first change + ceiling). nullopt when none is pending.
    std::optional<Clock::time_point> due() const;

    // True when a batch is pending and due at `now`: the caller delivers it, and the next change starts a new one.
    // False (and nothing changes) otherwise, e.g. for a timer armed before a later change moved the deadline.
    bool take(Clock::time_point now);

    bool pending() const { return first_.has_value(); }
    const DebouncePolicy& policy() const { return policy_; }

private:
    DebouncePolicy policy_;
    std::optional<Clock::time_point> first_, last_;
};

}  // namespace ccmulti
