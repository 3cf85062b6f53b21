// Facts about the machine and the running executable.
#pragma once

#include <string>

namespace ccmulti {

std::string hostname();         // gethostname(2), as Celery's %h uses it
std::string self_executable();  // absolute path of the running ccmulti binary (/proc/self/exe)

}  // namespace ccmulti
