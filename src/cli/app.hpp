// The ccmulti command line: global options, subcommands, and the one place errors become exit codes.
#pragma once

#include <string>
#include <vector>

namespace ccmulti::cli {

// Runs ccmulti with `args` (without the program name) and returns the process exit code.
int run(const std::vector<std::string>& args);

}  // namespace ccmulti::cli
