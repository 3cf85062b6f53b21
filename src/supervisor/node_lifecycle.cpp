#include "supervisor/node_lifecycle.hpp"

namespace ccmulti::supervisor {

namespace {

constexpr unsigned if_(bool condition, unsigned actions) {
    return condition ? actions : act_none;
}

std::optional<NodeStep> on_start(NodeState state) {
    switch (state) {
        case NodeState::stopped:
        case NodeState::failed:
        case NodeState::exited:
            return NodeStep{NodeState::starting, act_spawn};
        default:
            return std::nullopt;  // running or about to: `add` refuses it before it gets here
    }
}

std::optional<NodeStep> on_stop(NodeState state, const NodeFacts& facts) {
    const unsigned job = if_(facts.restarting, act_job_failed);
    switch (state) {
        case NodeState::replacing:  // the successor never served: it goes at once, the node stops as asked
            return NodeStep{NodeState::stopping, job | act_end_successor | act_begin_stop};
        case NodeState::starting:
        case NodeState::ready:
        case NodeState::stopping:  // a second request: the plans merge, escalation only comes earlier
            return NodeStep{NodeState::stopping, job | act_begin_stop};
        case NodeState::backoff:  // nothing runs: the pending restart is dropped
            return NodeStep{NodeState::stopped, job | act_cancel_restart | act_release};
        default:
            return std::nullopt;
    }
}

std::optional<NodeStep> on_restart(NodeState state) {
    switch (state) {
        case NodeState::starting:
        case NodeState::ready:  // warm stop first; its exit starts it again
            return NodeStep{NodeState::stopping, act_begin_stop};
        case NodeState::backoff:  // nothing to stop: start it now
            return NodeStep{NodeState::starting, act_cancel_restart | act_count_restart | act_spawn};
        default:
            return std::nullopt;
    }
}

// A reload job reaches the node. Start before stop where the node can overlap and serves; else as a restart.
std::optional<NodeStep> on_replace(NodeState state, const NodeFacts& facts) {
    if (state == NodeState::ready && facts.can_overlap) return NodeStep{NodeState::replacing, act_spawn_successor};
    return on_restart(state);
}

std::optional<NodeStep> on_exited(NodeState state, const NodeFacts& facts) {
    const unsigned job = if_(facts.restarting, act_job_failed);
    switch (state) {
        case NodeState::replacing:  // the old process died (crash or not): the successor, starting, is the node
            return NodeStep{NodeState::starting, act_emit_gone | act_adopt_successor};
        case NodeState::stopping:
            if (facts.restarting)  // the old run of a restart is gone: the new one begins
                return NodeStep{NodeState::starting, act_emit_gone | act_count_restart | act_spawn};
            return NodeStep{NodeState::stopped, if_(!facts.reported, act_report_failed) | act_release | act_emit_gone};
        case NodeState::starting:
            if (!facts.reported)  // its first start: say why, do not retry what never worked
                return NodeStep{NodeState::failed, job | act_report_failed | act_release | act_emit_gone};
            [[fallthrough]];
        case NodeState::ready:
            if (facts.clean_exit)  // stopped on purpose by someone else: not a crash
                return NodeStep{NodeState::exited, job | act_release | act_emit_gone};
            return NodeStep{NodeState::backoff, job | act_emit_gone | act_schedule_restart};
        default:
            return std::nullopt;  // not a process of a live node
    }
}

}  // namespace

std::optional<NodeStep> transition(NodeState state, NodeEvent event, const NodeFacts& facts) {
    switch (event) {
        case NodeEvent::start:
            return on_start(state);
        case NodeEvent::spawn_failed:
            if (state != NodeState::starting) return std::nullopt;
            if (!facts.reported) return NodeStep{NodeState::failed, act_report_failed | act_release};
            return NodeStep{NodeState::backoff, if_(facts.restarting, act_job_failed) | act_schedule_restart};
        case NodeEvent::ready:
            if (state != NodeState::starting) return std::nullopt;
            return NodeStep{NodeState::ready, act_report_ready};
        case NodeEvent::stop:
            return on_stop(state, facts);
        case NodeEvent::restart:
            return on_restart(state);
        case NodeEvent::restart_due:
            if (state != NodeState::backoff) return std::nullopt;
            return NodeStep{NodeState::starting, act_count_restart | act_spawn};
        case NodeEvent::exited:
            return on_exited(state, facts);
        case NodeEvent::replace:
            return on_replace(state, facts);
        case NodeEvent::successor_ready:
            if (state != NodeState::replacing) return std::nullopt;
            return NodeStep{NodeState::ready, act_promote | act_count_restart};
        case NodeEvent::successor_failed:  // the old process is untouched: it serves on
            if (state != NodeState::replacing) return std::nullopt;
            return NodeStep{NodeState::ready,
                            if_(facts.restarting, act_job_failed) | act_end_successor | act_reload_failed};
    }
    return std::nullopt;
}

std::string_view state_name(NodeState state) {
    switch (state) {
        case NodeState::starting:
            return "starting";
        case NodeState::ready:
            return "ready";
        case NodeState::stopping:
            return "stopping";
        case NodeState::stopped:
            return "stopped";
        case NodeState::failed:
            return "failed";
        case NodeState::exited:
            return "exited";
        case NodeState::backoff:
            return "backoff";
        case NodeState::replacing:
            return "replacing";
    }
    return "?";
}

std::string_view event_name(NodeEvent event) {
    switch (event) {
        case NodeEvent::start:
            return "start";
        case NodeEvent::spawn_failed:
            return "spawn_failed";
        case NodeEvent::ready:
            return "ready";
        case NodeEvent::stop:
            return "stop";
        case NodeEvent::restart:
            return "restart";
        case NodeEvent::restart_due:
            return "restart_due";
        case NodeEvent::exited:
            return "exited";
        case NodeEvent::replace:
            return "replace";
        case NodeEvent::successor_ready:
            return "successor_ready";
        case NodeEvent::successor_failed:
            return "successor_failed";
    }
    return "?";
}

bool alive(NodeState state) {
    return state == NodeState::starting || state == NodeState::ready || state == NodeState::stopping ||
           state == NodeState::replacing;
}

bool active(NodeState state) {
    return alive(state) || state == NodeState::backoff;
}

}  // namespace ccmulti::supervisor
