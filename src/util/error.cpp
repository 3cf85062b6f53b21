#include "util/error.hpp"

#include <cstring>

namespace ccmulti {

SystemError::SystemError(const std::string& what, int errnum)
    : Error(what + ": " + std::strerror(errnum)), errnum_(errnum) {}

}  // namespace ccmulti
