#include <string>
#include <vector>

#include "cli/app.hpp"

int main(int argc, char** argv) { return ccmulti::cli::run(std::vector<std::string>(argv + 1, argv + argc)); }
