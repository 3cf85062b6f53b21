// ccmulti's public API for C++ task plugins.
//
// A plugin is a shared object that registers named tasks; a node loads it with `--plugin PATH` or
// `[tasks] plugins = ["PATH"]` in the configuration, in a fresh process image on every (re)start:
//
//     #include <ccmulti/task.hpp>
//
//     CCMULTI_PLUGIN(registrar) {
//         registrar.add("shop.add", [](const ccmulti::TaskCall& call) -> nlohmann::json {
//             return call.args.at(0).get<long>() + call.args.at(1).get<long>();
//         });
//     }
//
// A task returns its result as JSON, or fails by throwing ccmulti::TaskError(type, message): the result is then
// FAILURE {"exc_type": type, "exc_message": [message]}, as a Python task raising that exception would store. Any
// other exception fails the task too (its type name and what()). Tasks run in pool child processes, one at a
// time per process, so they may block; they must not fork threads that outlive the call.
//
// The header is self-contained (nlohmann::json is the only dependency) and everything in it is inline, so the
// plugin shares no symbols with ccmulti beyond the two extern "C" entry points. Build the plugin with the same
// compiler and standard library as ccmulti; the ABI version guards the layout of these types.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace ccmulti {

// Bumped whenever TaskCall, TaskError or TaskRegistrar change layout; a plugin built for another is refused.
inline constexpr int plugin_abi_version = 1;

// One invocation of a task.
struct TaskCall {
    std::string id;    // the task id (result key)
    std::string name;  // the registered name
    nlohmann::json args = nlohmann::json::array();
    nlohmann::json kwargs = nlohmann::json::object();
    int retries = 0;  // how many times this task was retried before this run

    // The soft time limit: a long task should call check_soft_time_limit() now and then. The hard limit is
    // enforced from outside (the process running the task is killed).
    std::optional<std::chrono::steady_clock::time_point> soft_deadline;
    std::optional<std::chrono::steady_clock::time_point> hard_deadline;

    // Throws TaskError("SoftTimeLimitExceeded") once the soft time limit has passed.
    void check_soft_time_limit() const;
};

// Thrown by a task to fail with a typed exception, as a Python task raising `type(message)` would.
class TaskError : public std::runtime_error {
public:
    // `type` is a Python-style exception name ("ValueError", or "myapp.errors.Oops" with its module).
    TaskError(std::string type, std::string message, std::string traceback = "")
        : std::runtime_error(type + ": " + message),
          type_(std::move(type)),
          message_(std::move(message)),
          traceback_(std::move(traceback)) {}

    const std::string& type() const noexcept { return type_; }
    const std::string& message() const noexcept { return message_; }
    const std::string& traceback() const noexcept { return traceback_; }  // may be empty

private:
    std::string type_, message_, traceback_;
};

// Thrown by a task to run again later, as Celery's `self.retry(countdown=...)`: the call is sent again with
// retries + 1, not to start before `countdown` seconds, and meanwhile its state is RETRY. A node retries a task
// at most max_retries times (3); one more fails it with MaxRetriesExceededError. The wire form is the
// exception type "Retry" with the message "in 5s: reason", so a command task can ask for the same by printing
// `Retry: in 5s` as its last stderr line.
class TaskRetry : public TaskError {
public:
    explicit TaskRetry(double countdown, const std::string& reason = "")
        : TaskError("Retry", "in " + format_seconds(countdown) + "s" + (reason.empty() ? "" : ": " + reason)),
          countdown_(countdown) {}

    double countdown() const noexcept { return countdown_; }

private:
    static std::string format_seconds(double seconds) {
        std::string text = std::to_string(seconds);
        text.erase(text.find_last_not_of('0') + 1);
        if (!text.empty() && text.back() == '.') text.pop_back();
        return text;
    }
    double countdown_;
};

inline void TaskCall::check_soft_time_limit() const {
    if (soft_deadline && std::chrono::steady_clock::now() >= *soft_deadline)
        throw TaskError("SoftTimeLimitExceeded", "soft time limit exceeded");
}

using TaskFunction = std::function<nlohmann::json(const TaskCall&)>;

// Handed to a plugin's registration function.
class TaskRegistrar {
public:
    virtual ~TaskRegistrar() = default;
    // Registers `name`; a name registered twice (by two plugins, or a built-in) is a configuration error.
    virtual void add(const std::string& name, TaskFunction function) = 0;
};

}  // namespace ccmulti

// Defines the plugin's entry points; the body registers its tasks with `registrar`.
#define CCMULTI_PLUGIN(registrar)                 \
    extern "C" int ccmulti_plugin_abi_version() { \
        return ::ccmulti::plugin_abi_version;     \
    }                                             \
    extern "C" void ccmulti_register_tasks(::ccmulti::TaskRegistrar& registrar)
