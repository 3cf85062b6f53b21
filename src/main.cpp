#include <string>
#include <string_view>
#include <vector>

#include "cli/app.hpp"
#include "platform/proc_title.hpp"
#include "supervisor/node_shim.hpp"

int main(int argc, char** argv) {
    ccmulti::init_proc_title(argc, argv);  // before anything keeps pointers into argv or environ
    // The node shim is internal (started by the master only) and needs argv itself, for its title.
    if (argc > 1 && std::string_view(argv[1]) == ccmulti::supervisor::node_shim_command)
        return ccmulti::supervisor::node_shim_main(argc, argv);
    return ccmulti::cli::run(std::vector<std::string>(argv + 1, argv + argc));
}
