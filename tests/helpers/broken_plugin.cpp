// A plugin whose registration throws, as a build with a bug in its CCMULTI_PLUGIN body would: loading it fails
// ("plugin … failed to register its tasks: …"). tests/integration/test_reload.py swaps it in for a node's good
// plugin to check that a broken change never takes the serving node down.
#include <stdexcept>

#include <ccmulti/task.hpp>

CCMULTI_PLUGIN(registrar) {
    (void)registrar;
    throw std::runtime_error("broken build: registration throws");
}
