#include "worker/inspect_request.hpp"

#include <nlohmann/json.hpp>

namespace ccmulti::worker {

std::string parse_inspect_request(const std::string& line) {
    nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
    if (request.is_discarded()) throw BadInspectRequest("malformed request: not JSON");
    if (!request.is_object()) throw BadInspectRequest("malformed request: not a JSON object");
    auto method = request.find("method");
    if (method == request.end() || !method->is_string())
        throw BadInspectRequest("malformed request: \"method\" must be a string");
    return method->get<std::string>();
}

}  // namespace ccmulti::worker
