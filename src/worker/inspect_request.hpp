// One request line on a node's inspect socket (worker/inspect.hpp): {"method":"ping"}. Read by a pure function,
// so it is unit-tested and fuzzed (tests/fuzz/inspect_request_fuzz.cpp) without a node.
#pragma once

#include <stdexcept>
#include <string>

namespace ccmulti::worker {

// The request cannot be read; what() is the error the reply carries.
class BadInspectRequest : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The method asked for (unknown ones are the caller's to refuse). Throws BadInspectRequest only.
std::string parse_inspect_request(const std::string& line);

}  // namespace ccmulti::worker
