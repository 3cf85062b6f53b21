#include "supervisor/stop_nodes.hpp"

#include <poll.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <map>
#include <set>

#include "platform/pidfd.hpp"
#include "platform/pidfile.hpp"
#include "platform/proc.hpp"
#include "platform/signals.hpp"
#include "supervisor/containment.hpp"
#include "supervisor/control_client.hpp"
#include "supervisor/group_locks.hpp"
#include "supervisor/node_spec.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string seconds_text(double seconds) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
    return buffer;
}

const char* mode_name(StopMode mode) {
    switch (mode) {
        case StopMode::warm:
            return "warm";
        case StopMode::cold:
            return "cold";
        case StopMode::kill:
            return "kill";
    }
    return "warm";
}

std::string waiting_line(const std::set<std::string>& pending, Clock::time_point began) {
    return "waiting for " + std::to_string(pending.size()) + " node" + (pending.size() == 1 ? "" : "s") + " (" +
           seconds_text(std::chrono::duration<double>(Clock::now() - began).count()) +
           "): " + join(std::vector<std::string>(pending.begin(), pending.end()), " ");
}

// A line a second while a stop is young, then one every 10 s: a stopwait that waits minutes for a long task
// (no deadline by default) does not flood a journal.
Clock::duration progress_interval(Clock::time_point began) {
    return Clock::now() - began < std::chrono::seconds(10) ? Clock::duration(std::chrono::seconds(1))
                                                           : Clock::duration(std::chrono::seconds(10));
}

// --- through the master ----------------------------------------------------------------------------------

// How long the master has to accept a stop request before the pid files are used instead.
constexpr auto master_answer_timeout = std::chrono::seconds(5);

// nullopt when the master did not take the request: it did not answer in time (hung), or it is busy (all its
// control connections taken). `why` says which; the caller falls back to the pid files.
std::optional<StopOutcome> stop_through_master(ControlClient& client, const StopRequest& request,
                                               const std::function<void(const std::string&)>& progress,
                                               std::string& why) {
    json names = json::array();
    for (const auto& target : request.targets) names.push_back(target.name);
    json message = {{"cmd", "stop"}, {"nodes", names}, {"mode", mode_name(request.mode)}, {"wait", request.wait}};
    if (request.timeout) message["timeout"] = std::chrono::duration<double>(*request.timeout).count();
    try {
        client.send(message);
    } catch (const SystemError&) {
        // Closed on us: a busy master answers and closes at once, before it reads. What it said is still there.
    }

    StopOutcome outcome;
    outcome.through_master = true;
    json reply;
    if (client.receive(reply, master_answer_timeout) != ControlClient::Status::message) {
        why = "does not answer within " + std::to_string(master_answer_timeout.count()) + "s";
        return std::nullopt;
    }
    if (reply.value("busy", false)) {
        why = "is busy (" + reply.value("error", std::string("?")) + ")";
        return std::nullopt;
    }
    if (!reply.value("ok", true)) throw Error("the master refused: " + reply.value("error", std::string("?")));
    std::set<std::string> pending;
    for (const auto& name : reply.value("stopping", std::vector<std::string>{})) pending.insert(name);
    const auto began = Clock::now();
    auto next_progress = began + std::chrono::seconds(1);
    for (;;) {
        auto status = client.receive(reply, std::chrono::ceil<std::chrono::milliseconds>(next_progress - Clock::now()));
        if (status == ControlClient::Status::timeout) {
            if (!pending.empty()) progress(waiting_line(pending, began));
            next_progress += progress_interval(began);
            continue;
        }
        if (status == ControlClient::Status::closed) {
            for (const auto& name : pending)
                outcome.failed.push_back({name, "the master closed the connection before it was gone"});
            return outcome;
        }
        const std::string event = reply.value("event", "");
        if (event == "signal") {
            if (Clock::now() - began > std::chrono::seconds(1))
                progress(reply.value("node", "") + ": SIG" + reply.value("signal", "") + " sent");
        } else if (event == "gone") {
            pending.erase(reply.value("node", ""));
        } else if (reply.value("done", false)) {
            for (const auto& name : reply.value("not_running", std::vector<std::string>{}))
                outcome.not_running.push_back({name, "not running"});
            if (!request.wait) {
                for (const auto& name : reply.value("stopping", std::vector<std::string>{}))
                    outcome.signalled.push_back(
                        {name, request.mode == StopMode::kill
                                   ? "SIGKILL sent"
                                   : std::string("stopping (") + mode_name(request.mode) + ")"});
                return outcome;
            }
            for (const auto& item : reply.value("stopped", json::array()))
                outcome.stopped.push_back({item.value("node", ""), item.value("status", "") + " after " +
                                                                       seconds_text(item.value("seconds", 0.0))});
            for (const auto& item : reply.value("failed", json::array()))
                outcome.failed.push_back({item.value("node", ""), item.value("error", "")});
            return outcome;
        }
    }
}

// --- from the pid files ----------------------------------------------------------------------------------

struct Tracked {
    StopTarget target;
    std::optional<ProcessHandle> handle;
    StopPlan plan;
    bool quit_sent = false, kill_sent = false, done = false;
};

std::vector<StopTarget> discover_targets(const std::filesystem::path& run_dir) {
    std::vector<StopTarget> targets;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(run_dir, ec)) {
        const auto path = entry.path();
        if (path.extension() != ".pid" || path.filename() == "master.pid") continue;
        // The name comes from the running node's title; a stale file is reported under its file name.
        std::string name = path.stem().string();
        auto check = check_pidfile(path, any_node_title_prefix);
        if (check.running()) {
            auto argv = read_cmdline(check.pid);
            if (!argv.empty()) {
                auto words = split(argv.front(), ' ');
                if (words.size() >= 3) name = words[2];  // "ccmulti:" "node" NAME ...
            }
        }
        targets.push_back({name, path, std::nullopt});
    }
    return targets;
}

void kill_group(pid_t pgid) {
    // Our handle on the leader keeps its pid (the group id) from being reused while the leader is unreaped;
    // once reaped, the group id stays reserved as long as any member lives, so this never hits a stranger.
    if (::kill(-pgid, SIGKILL) != 0 && errno != ESRCH) throw SystemError("kill(-" + std::to_string(pgid) + ")", errno);
}

StopOutcome stop_from_pidfiles(const std::filesystem::path& run_dir, const StopRequest& request,
                               const std::function<void(const std::string&)>& progress) {
    StopOutcome outcome;
    auto targets = request.targets.empty() ? discover_targets(run_dir) : request.targets;
    const auto began = Clock::now();
    std::vector<Tracked> tracked;
    for (const auto& target : targets) {
        const std::string prefix =
            request.targets.empty() ? std::string(any_node_title_prefix) : node_title_prefix(target.name);
        auto check = check_pidfile(target.pidfile, prefix);
        if (!check.running()) {
            outcome.not_running.push_back({target.name, "not running (" + check.reason + ")"});
            continue;
        }
        auto handle = ProcessHandle::open(check.pid);
        std::string why;
        // Checked again now that the handle pins the process: it is the one the pid file names.
        if (!handle || !same_process(check.pid, check.start_time, prefix, why)) {
            outcome.not_running.push_back({target.name, "not running (" + (why.empty() ? "exited" : why) + ")"});
            continue;
        }
        Tracked t{target, std::move(handle),
                  plan_stop(began, request.timeout ? request.timeout : target.stop_timeout, request.mode)};
        if (request.mode == StopMode::kill) {
            kill_group(check.pid);
            t.kill_sent = t.quit_sent = true;
        } else {
            t.handle->send_signal(request.mode == StopMode::cold ? SIGQUIT : SIGTERM);
            t.quit_sent = request.mode == StopMode::cold;
        }
        if (!request.wait) {
            outcome.signalled.push_back({target.name, request.mode == StopMode::kill   ? "SIGKILL sent"
                                                      : request.mode == StopMode::cold ? "SIGQUIT sent"
                                                                                       : "SIGTERM sent"});
            continue;
        }
        tracked.push_back(std::move(t));
    }

    auto next_progress = began + std::chrono::seconds(1);
    for (;;) {
        std::vector<pollfd> fds;
        std::vector<Tracked*> owners;
        auto wake = next_progress;
        std::set<std::string> pending;
        for (auto& t : tracked) {
            if (t.done) continue;
            pending.insert(t.target.name);
            fds.push_back({t.handle->fd(), POLLIN, 0});
            owners.push_back(&t);
            if (!t.quit_sent) wake = std::min(wake, t.plan.quit_at);
            if (!t.kill_sent) wake = std::min(wake, t.plan.kill_at);
            wake = std::min(wake, t.plan.give_up_at);
        }
        if (fds.empty()) break;
        auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
        int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(timeout, 0)));
        if (n < 0 && errno != EINTR) throw SystemError("poll", errno);
        const auto now = Clock::now();
        for (std::size_t i = 0; i < fds.size(); ++i) {
            Tracked& t = *owners[i];
            if (fds[i].revents) {
                t.done = true;
                outcome.stopped.push_back(
                    {t.target.name, "gone after " + seconds_text(std::chrono::duration<double>(now - began).count())});
                continue;
            }
            if (!t.quit_sent && now >= t.plan.quit_at) {
                t.quit_sent = true;
                t.handle->send_signal(SIGQUIT);
                progress(t.target.name + ": SIGQUIT sent (deadline near)");
            }
            if (!t.kill_sent && now >= t.plan.kill_at) {
                t.kill_sent = true;
                kill_group(t.handle->pid());
                progress(t.target.name + ": SIGKILL sent to its process group");
            }
            if (now >= t.plan.give_up_at) {
                t.done = true;
                auto stat = read_proc_stat(t.handle->pid());
                outcome.failed.push_back({t.target.name, "pid " + std::to_string(t.handle->pid()) +
                                                             " is still there after SIGKILL" +
                                                             (stat ? ", state " + describe_state(stat->state) : "")});
            }
        }
        if (now >= next_progress) {
            if (!pending.empty()) progress(waiting_line(pending, began));
            next_progress += progress_interval(began);
        }
    }
    return outcome;
}

}  // namespace

StopOutcome stop_nodes(const std::filesystem::path& run_dir, const StopRequest& request,
                       const std::function<void(const std::string&)>& progress) {
    std::optional<ControlClient> client;
    std::string why;
    try {
        client = ControlClient::connect(run_dir);
    } catch (const SystemError& error) {
        if (error.errnum() != EAGAIN) throw;
        why = "takes no more connections";
    }
    if (client) {
        if (auto outcome = stop_through_master(*client, request, progress, why)) return *outcome;
    }
    if (!why.empty())
        progress("the master " + why + " on " + control_socket(run_dir).string() + "; stopping from the pid files");
    auto outcome = stop_from_pidfiles(run_dir, request, progress);
    if (request.mode == StopMode::kill) {
        std::vector<std::string> names;
        for (const auto& target : request.targets) names.push_back(target.name);
        auto left = end_leftovers(run_dir, names);
        for (const auto& [node, count] : left.by_node)
            outcome.leftovers.push_back({node.empty() ? std::string("?") : node,
                                         std::to_string(count) + " leftover process" + (count == 1 ? "" : "es") +
                                             " of a master that died, killed"});
    }
    return outcome;
}

}  // namespace ccmulti::supervisor
