// A reload reads the group's configuration again the way `start` read it: the master runs `ccmulti` with the
// command line that started the group, in the directory it was started in, with CCMULTI_RELOAD_PLAN=1, and
// that process prints the nodes' specs instead of starting them (cli/start.cpp). So a reload sees exactly what a
// fresh `start` would (the configuration file, its includes, CCMULTI_* of the master's environment), the
// master never parses a configuration itself, and a configuration that cannot be read (errors on stderr,
// exit 2, as `ccmulti config check` prints them) changes nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "platform/spawn.hpp"
#include "supervisor/master_impl.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace ccmulti::supervisor {

using nlohmann::json;

namespace {

constexpr auto plan_timeout = std::chrono::seconds(30);

std::vector<std::string> error_lines(const std::string& text) {
    std::vector<std::string> lines;
    for (auto line : split(text, '\n')) {
        for (const char* prefix : {"ccmulti: error: ", "ccmulti: "})
            if (line.starts_with(prefix)) {
                line = line.substr(std::string(prefix).size());
                break;
            }
        if (!line.empty()) lines.push_back(line);
    }
    return lines;
}

}  // namespace

void Master::start_plan(PendingReload request) {
    auto planner = std::make_unique<ReloadPlanner>();
    planner->request = std::move(request);
    try {
        Pipe out = make_pipe(), err = make_pipe();
        SpawnOptions options;
        options.program = "/proc/self/exe";
        options.argv0 = "ccmulti";
        options.args = config_.invocation;
        for (char** e = environ; *e; ++e) {
            std::string_view entry(*e);
            if (entry.starts_with("NOTIFY_SOCKET=") || entry.starts_with(std::string(reload_plan_env) + "=")) continue;
            options.env.emplace_back(entry);
        }
        options.env.push_back(std::string(reload_plan_env) + "=1");
        options.cwd = config_.invocation_cwd;
        options.stdout_fd = out.write.get();
        options.stderr_fd = err.write.get();
        options.new_process_group = true;
        options.parent_death_signal = SIGKILL;
        planner->pid = spawn(options);
        planner->out = std::move(out.read);
        planner->err = std::move(err.read);
    } catch (const Error& e) {
        log_->error("reload: cannot read the configuration again: {}", e.what());
        fail_plan(planner->request, {std::string("cannot read the configuration again: ") + e.what()});
        return;
    }
    planner_ = std::move(planner);
    for (bool err : {false, true}) {
        const int fd = err ? planner_->err.get() : planner_->out.get();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        loop_.watch(fd, EPOLLIN, [this, err](std::uint32_t) { on_planner_output(err); });
    }
    const pid_t pid = planner_->pid;
    planner_->timer = loop_.after(plan_timeout, [this, pid] {
        if (!planner_ || planner_->pid != pid) return;
        planner_->timer = 0;
        log_->error("reload: reading the configuration takes over {}s; killing pid {}", plan_timeout.count(), pid);
        ::kill(pid, SIGKILL);  // our unreaped child: safe
    });
}

void Master::on_planner_output(bool err) {
    if (!planner_) return;
    UniqueFd& fd = err ? planner_->err : planner_->out;
    std::string& text = err ? planner_->err_text : planner_->out_text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n > 0 && text.size() < 4 * 1024 * 1024) {
            text.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n > 0) continue;      // far too much: read and dropped
        loop_.unwatch(fd.get());  // EOF or an error: this pipe is done
        fd.reset();
        maybe_finish_plan();
        return;
    }
}

void Master::maybe_finish_plan() {
    if (!planner_ || !planner_->status || planner_->out || planner_->err) return;
    std::unique_ptr<ReloadPlanner> planner = std::move(planner_);
    if (planner->timer) loop_.cancel(planner->timer);
    const int status = *planner->status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        json plan;
        auto lines = split(planner->out_text, '\n');
        std::erase_if(lines, [](const std::string& line) { return line.empty(); });
        try {
            if (lines.empty()) throw std::runtime_error("no output");
            plan = json::parse(lines.back());
            plan.at("nodes").get<std::vector<NodeSpec>>();  // checked here, once
        } catch (const std::exception& e) {
            fail_plan(planner->request, {std::string("the configuration was read, but not its nodes: ") + e.what()});
            plan = nullptr;
        }
        if (!plan.is_null()) apply_plan(planner->request, plan);
    } else {
        auto errors = error_lines(planner->err_text);
        if (errors.empty())
            errors.push_back("reading the configuration again " +
                             (WIFEXITED(status) ? "exited with code " + std::to_string(WEXITSTATUS(status))
                                                : std::string("was killed")));
        fail_plan(planner->request, errors);
    }
    if (!plans_waiting_.empty()) {
        PendingReload next = std::move(plans_waiting_.front());
        plans_waiting_.pop_front();
        start_plan(std::move(next));
    }
    if (all_gone()) loop_.stop();
}

void Master::fail_plan(const PendingReload& request, const std::vector<std::string>& errors) {
    log_->error("reload ({}): the configuration is not valid; the group keeps running as it is: {}", request.reason,
                join(errors, "; "));
    jobs_[request.job].extra["config_errors"] = errors;
    queue_nodes(request.job, {});
}

// The nodes as the configuration says now, against the nodes as they run: added ones start, removed ones
// stop warm, changed ones (and named ones) are replaced one at a time. Only nodes named in the request, when
// it names any; a node added to the group by a later `start` is never removed by a reload.
void Master::apply_plan(const PendingReload& request, const json& plan) {
    if (shutdown_level_ != "none") return fail_plan(request, {"the group is shutting down: nothing was changed"});
    const auto specs = plan.at("nodes").get<std::vector<NodeSpec>>();
    RestartJob& job = jobs_[request.job];
    auto short_name = [](const std::string& name) { return name.substr(0, name.find('@')); };
    std::set<std::string> matched;
    auto named = [&](const std::string& name) {
        if (request.names.empty()) return true;
        for (const auto& wanted : request.names)
            if (wanted == name || wanted == short_name(name)) {
                matched.insert(wanted);
                return true;
            }
        return false;
    };
    auto exact = [&](const std::string& name) -> MasterNode* {
        for (auto& node : nodes_)
            if (node->spec.name == name) return node.get();
        return nullptr;
    };
    std::vector<NodeSpec> to_add;
    std::vector<MasterNode*> to_replace;
    std::vector<std::string> changed, unchanged;
    json removed = json::array(), added = json::array();
    std::set<std::string> in_plan;
    for (const auto& spec : specs) {
        in_plan.insert(spec.name);
        if (!named(spec.name)) continue;
        MasterNode* node = exact(spec.name);
        if (!node || !active(node->state)) {
            to_add.push_back(spec);
            continue;
        }
        node->from_plan = true;
        if (spec.pidfile != node->spec.pidfile) {
            job.failed.push_back({{"node", spec.name},
                                  {"error", "its pid file would move from " + node->spec.pidfile.string() + " to " +
                                                spec.pidfile.string() + "; stop it, then start it with the new one"}});
            continue;
        }
        if (!same_spec(spec, node->spec)) {
            node->next_spec = spec;
            changed.push_back(spec.name);
            to_replace.push_back(node);
        } else if (!request.names.empty() || request.everything) {
            to_replace.push_back(node);
        } else {
            unchanged.push_back(spec.name);
        }
    }
    for (auto& node : nodes_) {
        if (!node->from_plan || in_plan.count(node->spec.name) || !named(node->spec.name) || !active(node->state))
            continue;
        log_->info("{}: removed from the configuration: warm stop", node->spec.name);
        const StopPlan stop_plan = plan_stop(MasterClock::now(), node->spec.stop_timeout, StopMode::warm);
        apply(*node, NodeEvent::stop, {.reason = "removed by a reload", .plan = stop_plan, .mode = StopMode::warm});
        removed.push_back(node->spec.name);
    }
    if (!to_add.empty()) {
        auto result = add(to_add);
        for (const auto& name : result.starting) {
            added.push_back(name);
            MasterNode* node = exact(name);
            if (!node) continue;
            node->from_plan = true;
            // The reload is done when they are ready too (or have failed): part of the job from their start.
            node->restart_job = request.job;
            node->job_old_pid = 0;
            job.in_flight.insert(node);
            job.adding.insert(node);
        }
        for (const auto& refused : result.refused) job.failed.push_back(refused);
    }
    // A node named that is not the configuration's (added by a later `start`) is replaced as it runs.
    json unknown = json::array();
    for (const auto& wanted : request.names) {
        if (matched.count(wanted)) continue;
        MasterNode* node = find(wanted);
        if (node && active(node->state) &&
            std::find(to_replace.begin(), to_replace.end(), node) == to_replace.end())
            to_replace.push_back(node);
        else if (!node)
            unknown.push_back(wanted);
        else if (!active(node->state))
            job.skipped.push_back(node->spec.name);  // known, but not running: start it
    }
    log_->info(
        "reload ({}): configuration read again: {} added, {} removed, {} changed, {} unchanged{}", request.reason,
        added.size(), removed.size(), changed.size(), unchanged.size(),
        to_replace.empty() ? std::string() : "; replacing " + [&] {
            std::vector<std::string> names;
            for (MasterNode* node : to_replace) names.push_back(node->spec.name);
            return join(names, " ");
        }());
    job.extra["added"] = added;
    job.extra["removed"] = removed;
    job.extra["unchanged"] = unchanged;
    job.extra["unknown"] = unknown;
    queue_nodes(request.job, to_replace);
}

}  // namespace ccmulti::supervisor
