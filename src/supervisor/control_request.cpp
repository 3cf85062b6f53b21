#include "supervisor/control_request.hpp"

#include <cmath>

namespace ccmulti::supervisor {

using nlohmann::json;

namespace {

std::vector<std::string> requested_nodes(const json& request) {
    if (!request.contains("nodes")) return {};
    return request["nodes"].get<std::vector<std::string>>();
}

bool request_flag(const json& request, const char* name, bool otherwise) {
    if (!request.contains(name) || request[name].is_null()) return otherwise;
    return request[name].get<bool>();
}

void read_stop_fields(const json& request, ControlRequest& out) {
    out.nodes = requested_nodes(request);
    std::string mode = request.value("mode", "warm");
    if (mode == "cold")
        out.mode = StopMode::cold;
    else if (mode == "kill")
        out.mode = StopMode::kill;
    else if (mode != "warm")
        throw std::runtime_error("unknown mode '" + mode + "'");
    if (request.contains("timeout") && !request["timeout"].is_null()) {
        const double seconds = request["timeout"].get<double>();
        // NaN, negative or huge would be undefined in the conversion below (or a stop that never escalates).
        if (!std::isfinite(seconds) || seconds < 0 || seconds > max_stop_timeout_seconds)
            throw std::runtime_error("\"timeout\" must be a number of seconds from 0 to 1e9");
        out.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
    }
    out.wait = request_flag(request, "wait", false);
}

}  // namespace

ControlRequest parse_control_request(const std::string& line) {
    json request;
    try {
        request = json::parse(line);
    } catch (const std::exception& e) {
        throw BadControlRequest(std::string("bad request: ") + e.what(), true);
    }
    if (!request.is_object()) throw BadControlRequest("bad request: not a JSON object", true);
    if (request.contains("cmd") && !request["cmd"].is_string())
        throw BadControlRequest("bad request: \"cmd\" must be a string", true);
    ControlRequest out;
    out.cmd = request.value("cmd", "");
    try {
        if (out.cmd == "stop") {
            try {
                read_stop_fields(request, out);
            } catch (const std::exception& e) {
                throw BadControlRequest(std::string("bad stop request: ") + e.what(), false);
            }
        } else if (out.cmd == "restart") {
            out.nodes = requested_nodes(request);
            out.all = request_flag(request, "all", false);
            out.wait = request_flag(request, "wait", true);
            if (request.contains("specs"))
                for (const auto& item : request["specs"]) out.specs.push_back(item.get<NodeSpec>());
        } else if (out.cmd == "reload") {
            out.nodes = requested_nodes(request);
            out.all = request_flag(request, "all", false);
            out.wait = request_flag(request, "wait", true);
        } else if (out.cmd == "add") {
            for (const auto& item : request.at("nodes")) out.specs.push_back(item.get<NodeSpec>());
            if (out.specs.empty()) throw std::runtime_error("no nodes to add");
        }
    } catch (const BadControlRequest&) {
        throw;
    } catch (const std::exception& e) {
        throw BadControlRequest(std::string("bad request: ") + e.what(), true);
    }
    return out;
}

}  // namespace ccmulti::supervisor
