#include "supervisor/node_spec.hpp"

#include <nlohmann/json.hpp>

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

void to_json(nlohmann::json& out, const NodeSpec& spec) {
    out = {{"name", spec.name},
           {"argv", spec.argv},
           {"env", spec.env},
           {"cwd", spec.cwd.string()},
           {"pidfile", spec.pidfile.string()},
           {"logfile", spec.logfile.string()},
           {"queues", spec.queues},
           {"concurrency", spec.concurrency},
           {"stop_timeout_ms", spec.stop_timeout ? nlohmann::json(spec.stop_timeout->count()) : nlohmann::json()},
           {"start_secs_ms", spec.start_secs.count()},
           {"notifies", spec.notifies},
           {"start_timeout_ms", spec.start_timeout.count()},
           {"ready_pattern", spec.ready_pattern},
           {"watch_debounce_ms", spec.watch_debounce.count()},
           {"can_overlap", spec.can_overlap}};
    auto& watch = out["watch"] = nlohmann::json::array();
    for (const auto& path : spec.watch) watch.push_back(path.string());
    out["watch_ignore"] = spec.watch_ignore;
    if (spec.run_as)
        out["run_as"] = {{"uid", spec.run_as->uid},
                         {"gid", spec.run_as->gid},
                         {"groups", spec.run_as->groups},
                         {"name", spec.run_as->name}};
}

void from_json(const nlohmann::json& in, NodeSpec& spec) {
    spec.name = in.at("name").get<std::string>();
    spec.argv = in.at("argv").get<std::vector<std::string>>();
    spec.env = in.at("env").get<std::vector<std::string>>();
    spec.cwd = in.at("cwd").get<std::string>();
    spec.pidfile = in.at("pidfile").get<std::string>();
    spec.logfile = in.at("logfile").get<std::string>();
    spec.queues = in.at("queues").get<std::vector<std::string>>();
    spec.concurrency = in.at("concurrency").get<int>();
    if (const auto& timeout = in.at("stop_timeout_ms"); !timeout.is_null())
        spec.stop_timeout = std::chrono::milliseconds(timeout.get<std::int64_t>());
    spec.start_secs = std::chrono::milliseconds(in.at("start_secs_ms").get<std::int64_t>());
    spec.ready_pattern = in.value("ready_pattern", "");
    spec.notifies = in.value("notifies", false);
    spec.start_timeout = std::chrono::milliseconds(in.value("start_timeout_ms", std::int64_t{60'000}));
    spec.watch.clear();
    for (const auto& path : in.value("watch", std::vector<std::string>{})) spec.watch.emplace_back(path);
    spec.watch_ignore = in.value("watch_ignore", std::vector<std::string>{});
    spec.watch_debounce = std::chrono::milliseconds(in.value("watch_debounce_ms", std::int64_t{300}));
    spec.can_overlap = in.value("can_overlap", false);
    if (in.contains("run_as")) {
        const auto& user = in.at("run_as");
        spec.run_as = Owner{user.at("uid").get<uid_t>(), user.at("gid").get<gid_t>(),
                            user.at("groups").get<std::vector<gid_t>>(), user.at("name").get<std::string>()};
    }
    if (spec.name.empty() || spec.argv.empty() || !spec.cwd.is_absolute() || !spec.pidfile.is_absolute() ||
        !spec.logfile.is_absolute())
        throw std::invalid_argument("node spec of '" + spec.name + "' is incomplete (name, argv, absolute paths)");
    for (const auto& path : spec.watch)
        if (!path.is_absolute())
            throw std::invalid_argument("node spec of '" + spec.name + "' watches a relative path: " + path.string());
    if (spec.watch_debounce.count() < 0)
        throw std::invalid_argument("node spec of '" + spec.name + "' has a negative watch debounce");
}

bool same_spec(const NodeSpec& a, const NodeSpec& b) {
    nlohmann::json left = a, right = b;
    return left == right;
}

}  // namespace ccmulti::supervisor
