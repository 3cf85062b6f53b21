#include "tasks/builtins.hpp"

#include <algorithm>
#include <thread>

namespace ccmulti::tasks {

namespace {

using nlohmann::json;

// Positional argument `index`, or keyword `name`; TypeError like Python's when missing.
const json& argument(const TaskCall& call, std::size_t index, const char* name) {
    if (call.args.size() > index) return call.args[index];
    if (auto it = call.kwargs.find(name); it != call.kwargs.end()) return *it;
    throw TaskError("TypeError", call.name + "() missing required argument: '" + name + "'");
}

json echo(const TaskCall& call) {
    if (call.args.size() == 1 && call.kwargs.empty()) return call.args[0];
    return {{"args", call.args}, {"kwargs", call.kwargs}};
}

json sleep(const TaskCall& call) {
    const json& seconds = argument(call, 0, "seconds");
    if (!seconds.is_number() || !(seconds.get<double>() >= 0 && seconds.get<double>() <= 1e9))
        throw TaskError("ValueError", "seconds must be a number from 0 to 1e9, not " + seconds.dump());
    using namespace std::chrono;
    auto until = steady_clock::now() + duration_cast<steady_clock::duration>(duration<double>(seconds.get<double>()));
    // The soft limit ends the sleep early with SoftTimeLimitExceeded, as Celery raises it inside the task.
    auto wake = call.soft_deadline ? std::min(until, *call.soft_deadline) : until;
    std::this_thread::sleep_until(wake);  // restarts after EINTR on its own
    call.check_soft_time_limit();
    return seconds;
}

json fail(const TaskCall& call) {
    const json& message = argument(call, 0, "message");
    std::string type = "RuntimeError";
    if (call.args.size() > 1 && call.args[1].is_string()) type = call.args[1].get<std::string>();
    if (auto it = call.kwargs.find("type"); it != call.kwargs.end() && it->is_string()) type = it->get<std::string>();
    throw TaskError(type, message.is_string() ? message.get<std::string>() : message.dump());
}

// Succeeds on its `times`-th retry, returning how many retries it took; retries `countdown` seconds apart.
json retry(const TaskCall& call) {
    const json& times = argument(call, 0, "times");
    if (!times.is_number_integer() || times.get<int>() < 0)
        throw TaskError("ValueError", "times must be a non-negative integer, not " + times.dump());
    double countdown = 0;
    if (call.args.size() > 1 && call.args[1].is_number()) countdown = call.args[1].get<double>();
    if (call.retries < times.get<int>()) throw TaskRetry(countdown, "retry " + std::to_string(call.retries + 1));
    return call.retries;
}

}  // namespace

void add_builtin_tasks(Registry& registry) {
    const std::string origin = "built-in";
    registry.add({"ccmulti.ping", origin, [](const TaskCall&) -> json { return "pong"; }});
    registry.add({"ccmulti.echo", origin, echo});
    registry.add({"ccmulti.sleep", origin, sleep});
    registry.add({"ccmulti.fail", origin, fail});
    registry.add({"ccmulti.retry", origin, retry});
}

}  // namespace ccmulti::tasks
