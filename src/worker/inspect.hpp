// Answers `ccmulti inspect` (and, on a broker with a mailbox, Celery's `celery inspect` /
// app.control.inspect()): ping, active, reserved, stats, registered, in Celery's reply shapes
// (broker/control_replies.hpp).
//
// Where requests come from depends on the broker: where it has a mailbox (broker.hpp: RemoteControl), Celery's
// pidbox (so Python tools see the node); on the embedded broker, a Unix socket in the run dir,
// `inspect-<node>~<pid>.sock` (mode 0600), one JSON line {"method": "stats"} in, one JSON line out ({"ok": true,
// "reply": …} or {"ok": false, "error": …}). One socket per process, not per name: while a node is replaced, its new
// process runs beside the old one's warm stop under the same name, both answer, and neither removes the other's socket
// when it exits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/event_loop.hpp"
#include "protocol/task_message.hpp"

namespace ccmulti::worker {

struct WorkerOptions;

struct InspectTask {
    protocol::TaskMessage message;
    pid_t pid = 0;  // the pool process running it (0: reserved, not started)
    protocol::TimePoint started{};
    bool acknowledged = false;
};

// A snapshot of what a node knows about itself.
struct InspectState {
    std::string node;
    std::vector<std::string> queues;
    int concurrency = 0;
    std::size_t prefetch = 0;
    std::string broker_url;
    std::chrono::seconds uptime{0};
    std::map<std::string, long> totals;
    std::vector<std::string> registered;
    std::optional<double> soft_time_limit, time_limit;
    std::int64_t max_tasks_per_child = 0;
    std::vector<int> pool_pids;
    std::vector<InspectTask> active, reserved;
};

class InspectSource {
public:
    virtual ~InspectSource() = default;
    virtual InspectState inspect_state() const = 0;
    // A remote-control command that changes the node (enable_events, disable_events): its reply, or nullopt
    // when the node has no such command. Asked before the inspect methods.
    virtual std::optional<nlohmann::json> control(const std::string& /*method*/) { return std::nullopt; }
};

// The reply to `method`, or nullopt for a method nodes do not answer.
std::optional<nlohmann::json> inspect_reply(const InspectState& state, const std::string& method);

class InspectServer {
public:
    virtual ~InspectServer() = default;
};

// Starts answering on the loop: the broker's mailbox where it has one, else the socket options.control_socket (none
// when that is empty).
std::unique_ptr<InspectServer> start_inspect_server(const WorkerOptions& options, InspectSource& source,
                                                    EventLoop& loop);

// The socket the process `pid` of a node of the embedded broker answers on.
std::filesystem::path inspect_socket_path(const std::filesystem::path& run_dir, const std::string& node, pid_t pid);
// The node of an inspect socket's file name ("inspect-w1@host~123.sock", or "inspect-w1@host.sock" as older
// versions named it); nullopt for a file that is not one.
std::optional<std::string> inspect_socket_node(const std::string& file);
inline constexpr const char* inspect_socket_prefix = "inspect-";

}  // namespace ccmulti::worker
