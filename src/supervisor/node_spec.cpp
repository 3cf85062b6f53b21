#include "supervisor/node_spec.hpp"

#include "util/strings.hpp"

namespace ccmulti::supervisor {

std::string node_title_prefix(const std::string& name) {
    return std::string(any_node_title_prefix) + " " + name;
}

std::string node_title(const NodeSpec& spec) {
    std::string title = node_title_prefix(spec.name);
    if (!spec.queues.empty()) title += " -Q " + join(spec.queues, ",");
    return title;
}

}  // namespace ccmulti::supervisor
