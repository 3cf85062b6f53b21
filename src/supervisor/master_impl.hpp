// The master's insides (supervisor/master.hpp), one class split over files by concept, so that no file holds
// all of it: master.cpp (the loop, signals, stop and add requests), master_run.cpp (a node's processes: the
// lifecycle table's side, spawning, readiness, stopping, reaping), master_jobs.cpp (restart and reload jobs,
// the replacement of a node start-before-stop), master_reload_plan.cpp (re-reading the group's configuration
// for a reload) and master_describe.cpp (status, the start report, notify messages). Nothing outside the
// master includes this.
#pragma once

#include <spdlog/logger.h>
#include <sys/types.h>

#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/event_loop.hpp"
#include "platform/fd.hpp"
#include "platform/notify_socket.hpp"
#include "platform/pidfile.hpp"
#include "supervisor/code_watch.hpp"
#include "supervisor/containment.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/log_watch.hpp"
#include "supervisor/master.hpp"
#include "supervisor/node_lifecycle.hpp"

namespace ccmulti::supervisor {

using MasterClock = std::chrono::steady_clock;

// One process of a node (its shim, leading the process group): the node's own, its successor during a
// replacement, or a retiring one (replaced, on its warm stop).
struct NodeRun {
    pid_t pid = 0;     // 0: none (a successor that has exited)
    std::string unit;  // its containment: cgroup and CCMULTI_UNIT marker (the node's name, or "name~N" beside another)
    MasterClock::time_point started, stop_began;
    std::uintmax_t log_start = 0;  // log size when this run began, for the failure report
    std::string program_exit;      // how the program ended, from the shim (CCMULTI_PROGRAM_EXIT)
    std::optional<StopPlan> plan;
    bool quit_sent = false, kill_sent = false;
    EventLoop::TimerId ready_timer = 0, start_timer = 0, quit_timer = 0, kill_timer = 0, give_up_timer = 0;
    std::unique_ptr<LogWatch> log_watch;          // readiness from the log (spec.ready_pattern)
    std::optional<PidFile::Replacement> pidfile;  // a successor's pid file, committed when it becomes the node
};

struct MasterNode {
    NodeSpec spec;
    NodeState state = NodeState::stopped;  // not started yet: the first `start` event begins its life
    std::optional<PidFile> lock;
    UniqueFd log;
    NodeRun run;                         // its process (when alive(state))
    std::unique_ptr<NodeRun> successor;  // in `replacing`: the replacement, running spec `successor_spec`
    NodeSpec successor_spec;
    std::list<NodeRun> retiring;  // replaced processes on their warm stop, reaped as they go
    bool start_reported = false;
    bool in_report = true;            // one of the master's own first nodes (start report); not a node added later
    bool not_ready_reported = false;  // `start` was told it was not ready at its start_timeout
    bool from_plan = false;           // from the group's configuration: a reload may change or remove it
    std::string status;               // how it ended
    RestartBackoff backoff;
    int restarts = 0;  // starts after the first one, for any reason
    EventLoop::TimerId restart_timer = 0;
    MasterClock::time_point restart_at;
    std::vector<std::string> last_log_tail;  // of the run that ended last
    int restart_job = 0;                     // the restart or reload job this node is part of
    pid_t job_old_pid = 0;                   // its pid when its job reached it
    std::optional<NodeSpec> next_spec;       // replaces `spec` when the node starts again (restart with new options)
    bool restart_when_ready = false;         // a SIGHUP came while it was starting
    std::string reload_error;                // the last reload's failure ("" after a successful one)
    std::vector<std::string> reload_log_tail;
    std::string reload_again;  // a watched file changed while it was in a job: replace it once more after it
    // Its process has ended but replaced ones are still on their warm stop: "gone" is emitted (and `stop --wait`
    // answered) when the last of them is, with how long the whole stop took from `gone_stop_began`.
    bool gone_pending = false;
    MasterClock::time_point gone_stop_began;
};

struct RestartJob {
    bool all_at_once = false;
    bool reload = false;            // a reload: start before stop where the node can overlap; "reload_done" at the end
    std::deque<MasterNode*> queue;  // not begun yet (one at a time unless all_at_once)
    std::set<MasterNode*> in_flight;
    std::set<MasterNode*> adding;  // a reload's added nodes, in flight until ready (or failed)
    nlohmann::json restarted = nlohmann::json::array(), failed = nlohmann::json::array(),
                   skipped = nlohmann::json::array();
    nlohmann::json extra = nlohmann::json::object();  // a reload's "added", "removed", "config_errors", "reason"
};

// A reload waiting for the group's configuration to be read again (master_reload_plan.cpp).
struct PendingReload {
    int job = 0;
    std::vector<std::string> names;
    std::string reason;
    bool everything = false;  // unchanged nodes are replaced too
};

// The planner: `ccmulti` run again with the command line that started the group and CCMULTI_RELOAD_PLAN=1.
struct ReloadPlanner {
    pid_t pid = 0;
    UniqueFd out, err;
    std::string out_text, err_text;
    std::optional<int> status;     // once reaped
    EventLoop::TimerId timer = 0;  // it takes too long: SIGKILL
    PendingReload request;
};

class Master final : public MasterControl {
public:
    Master(const MasterConfig& config, GroupLocks locks, ReportSink report);
    int run();

    // --- MasterControl (master.cpp, master_jobs.cpp, master_describe.cpp) ---
    nlohmann::json describe() const override;
    StopResult stop(const std::vector<std::string>& names, StopMode mode,
                    std::optional<std::chrono::milliseconds> timeout) override;
    RestartResult restart(const std::vector<std::string>& names, bool all_at_once,
                          const std::vector<NodeSpec>& specs) override;
    ReloadResult reload(const std::vector<std::string>& names, const std::string& reason, ReloadKind kind) override;
    AddResult add(const std::vector<NodeSpec>& specs) override;
    int subscribe(std::function<void(const nlohmann::json&)> listener) override;
    void unsubscribe(int id) override;
    bool is_gone(const std::string& name) const override;

private:
    struct EventDetail {
        std::string reason{};  // for a failure report or a job: why; for ready: how it became ready
        StopPlan plan{};       // for stop and restart
        StopMode mode = StopMode::warm;
        bool clean_exit = false;  // for exited
    };
    enum class Role { node, successor, retiring };
    struct Found {
        MasterNode* node = nullptr;
        NodeRun* run = nullptr;
        Role role = Role::node;
    };

    // master.cpp
    void update_title();
    void specs_changed();  // a node added, or its spec replaced: the title and the watches follow
    void set_watches();
    void on_code_change(const std::vector<std::string>& names, const std::string& reason);
    MasterNode* find(const std::string& name);
    Found find_by_pid(pid_t pid);
    void emit(const nlohmann::json& event);
    void on_shutdown_signal(int sig);
    void reopen_logs();
    bool all_gone() const;

    // master_run.cpp: the lifecycle table's side
    static NodeFacts facts_of(const MasterNode& node, bool clean_exit = false);
    bool apply(MasterNode& node, NodeEvent event) { return apply(node, event, EventDetail{}); }
    bool apply(MasterNode& node, NodeEvent event, const EventDetail& detail);
    void perform(MasterNode& node, const NodeStep& step, const EventDetail& detail);
    std::vector<std::string> node_environment(const NodeSpec& spec, const std::string& unit) const;
    std::string free_unit(const MasterNode& node) const;
    pid_t spawn_run(MasterNode& node, const NodeSpec& spec, NodeRun& run, bool successor);
    void spawn_node(MasterNode& node);
    void spawn_successor(MasterNode& node);
    void arm_readiness(MasterNode& node, bool successor);
    void on_ready_line(MasterNode& node, bool successor);
    void on_start_timeout(MasterNode& node);
    void on_successor_timeout(MasterNode& node);
    void schedule_restart(MasterNode& node);
    void announce_ready(MasterNode& node, const std::string& how);
    void send_signal(MasterNode& node, NodeRun& run, int sig, bool whole_group);
    void begin_stop(MasterNode& node, NodeRun& run, StopPlan plan, StopMode mode, bool first_request);
    void quit(MasterNode& node, NodeRun& run);
    void kill_group(MasterNode& node, NodeRun& run);
    void cancel_timers(NodeRun& run);
    void reap();
    void on_node_exit(MasterNode& node, int status);
    void on_successor_exit(MasterNode& node, int status);
    void on_retired_exit(MasterNode& node, NodeRun& run, int status);
    void emit_gone(MasterNode& node, MasterClock::time_point stop_began, bool stopping);

    // master_jobs.cpp
    void promote_successor(MasterNode& node);
    void end_successor(MasterNode& node);
    void adopt_successor(MasterNode& node);
    void advance_job(int id);
    void job_node_done(MasterNode& node, bool ok, const std::string& error);
    void finish_job_if_done(int id);
    int new_job(bool reload, bool all_at_once);
    void queue_nodes(int id, const std::vector<MasterNode*>& nodes);
    void reloading_begins();
    void reloading_ends();

    // master_reload_plan.cpp
    void start_plan(PendingReload request);
    void on_planner_output(bool err);
    void maybe_finish_plan();
    void apply_plan(const PendingReload& request, const nlohmann::json& plan);
    void fail_plan(const PendingReload& request, const std::vector<std::string>& errors);

    // master_describe.cpp
    nlohmann::json describe_node(const MasterNode& node, std::uint64_t rss) const;
    void on_start_failure(MasterNode& node, const std::string& error);
    void send_report(const nlohmann::json& event);
    void maybe_finish_start_report();
    void on_notify();

    const MasterConfig& config_;
    PidFile master_lock_;
    ReportSink report_;
    bool report_done_ = false;
    bool start_ok_ = true;
    bool start_not_ready_ = false;  // a node of the start report was still starting at its start_timeout
    bool journal_ = false;          // the master logs to the journal (stderr), which also gets stdout
    std::string shutdown_level_ = "none";
    EventLoop loop_;
    std::shared_ptr<spdlog::logger> log_;
    std::unique_ptr<NotifySocket> notify_;
    std::unique_ptr<Companion> dashboard_;  // declared before control_: destroyed after it is closed
    std::unique_ptr<ControlServer> control_;
    std::unique_ptr<CodeWatch> code_watch_;
    nlohmann::json watched_;  // what code_watch_ was last set up with, per node
    int watch_job_ = 0;       // the reload job of the latest change (more changed nodes join it while it runs)
    std::unique_ptr<Containment> containment_;
    std::vector<std::unique_ptr<MasterNode>> nodes_;
    std::map<int, std::function<void(const nlohmann::json&)>> listeners_;
    int next_listener_ = 1;
    std::map<int, RestartJob> jobs_;
    int next_job_ = 1;
    int reloads_under_way_ = 0;  // systemd: RELOADING=1 at the first, READY=1 when the last is done
    std::unique_ptr<ReloadPlanner> planner_;
    std::deque<PendingReload> plans_waiting_;
    MasterClock::time_point started_ = MasterClock::now();
};

std::string describe_exit(int status);
bool asked_to_stop(int status);
double seconds_since(MasterClock::time_point then);
std::string fmt_seconds(double seconds);

}  // namespace ccmulti::supervisor
