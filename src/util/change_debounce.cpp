#include "util/change_debounce.hpp"

#include <algorithm>

namespace ccmulti {

void ChangeDebounce::note(Clock::time_point now) {
    if (!first_) first_ = now;
    // A clock never runs backwards, but a caller passing an older time must not pull the deadline earlier.
    last_ = last_ ? std::max(*last_, now) : now;
}

std::optional<ChangeDebounce::Clock::time_point> ChangeDebounce::due() const {
    if (!first_) return std::nullopt;
    return std::min(*last_ + policy_.quiet, *first_ + policy_.ceiling);
}

bool ChangeDebounce::take(Clock::time_point now) {
    auto when = due();
    if (!when || now < *when) return false;
    first_.reset();
    last_.reset();
    return true;
}

}  // namespace ccmulti
