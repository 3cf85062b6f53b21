#include "config/env.hpp"

#include <unistd.h>

#include <algorithm>

#include "config/document.hpp"
#include "config/schema.hpp"
#include "util/strings.hpp"

extern char** environ;

namespace ccmulti::config {

namespace {

constexpr std::string_view prefix = "CCMULTI_";

// Adds `value` under the dotted `path` of `root` ("broker.url"), creating the tables on the way.
void put(Value& root, std::string_view path, Value value, const Location& at) {
    Value* table = &root;
    while (true) {
        auto dot = path.find('.');
        std::string key(path.substr(0, dot));
        if (dot == std::string_view::npos) {
            table->table.push_back({key, at, std::move(value)});
            return;
        }
        auto it = std::find_if(table->table.begin(), table->table.end(), [&](const Entry& e) { return e.key == key; });
        if (it == table->table.end()) {
            Value sub;
            sub.kind = Value::Kind::table;
            sub.at = at;
            table->table.push_back({key, at, std::move(sub)});
            it = table->table.end() - 1;
        }
        table = &it->value;
        path.remove_prefix(dot + 1);
    }
}

bool typed_node_key(std::string_view key) {
    for (const auto& node_key : node_keys())
        if (node_key.key == key) return node_key.typed;
    return false;
}

}  // namespace

Environment current_environment() {
    Environment env;
    for (char** entry = environ; entry && *entry; ++entry) {
        std::string_view text(*entry);
        auto eq = text.find('=');
        if (eq == std::string_view::npos || eq + 1 == text.size()) continue;
        env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
    }
    return env;
}

const std::vector<EnvVar>& environment_variables() {
    static const std::vector<EnvVar> vars = {
        {"CCMULTI_CONFIG", "", "configuration file, when -C/--config is not given"},
        {"CCMULTI_APP", "app", "application name shown in process titles"},
        {"CCMULTI_RUN_DIR", "run_dir", "pid files and the control socket"},
        {"CCMULTI_LOG_DIR", "log_dir", "log files"},
        {"CCMULTI_STATE_DIR", "state_dir", "the embedded broker database"},
        {"CCMULTI_WORKDIR", "workdir", "base of relative paths"},
        {"CCMULTI_USER", "user", "user the nodes run as"},
        {"CCMULTI_GROUP", "group", "group the nodes run as"},
        {"CCMULTI_BROKER_URL", "broker.url", "broker URL"},
        {"CCMULTI_RESULT_BACKEND", "results.url", "result store URL"},
        {"CCMULTI_CONCURRENCY", "node.concurrency", "pool processes of every node"},
        {"CCMULTI_QUEUES", "node.queues", "queues of every node, comma-separated"},
        {"CCMULTI_LOGLEVEL", "node.loglevel", "log level of every node"},
        {"CCMULTI_NODE", "", "set by the master in each node's environment: the node's name"},
        {"CCMULTI_UNIT", "", "set by the master in each node's environment: this run of the node (containment)"},
        {"CCMULTI_RELOAD_PLAN", "", "set by a reloading master: `start` prints the nodes' specs, starts nothing"},
        {"CCMULTI_BIN", "", "tests: the ccmulti binary under test"},
        {"CCMULTI_BUILD_DIR", "", "tests: the build directory"},
        {"CCMULTI_PYTHON", "", "tests: the Python interpreter with Celery"},
    };
    return vars;
}

Settings read_environment(const Environment& env, ConfigErrors& errors, std::vector<std::string>& warnings) {
    std::vector<std::string> known;
    for (const auto& var : environment_variables()) known.emplace_back(var.name);

    // The variables become a document like a file's, so one schema checks them; node keys go under
    // "defaults" and move to `overrides` afterwards.
    Value root;
    root.kind = Value::Kind::table;
    for (const auto& variable : env) {
        const std::string& name = variable.first;  // not a structured binding: clang 14 cannot capture those
        const std::string& text = variable.second;
        if (!name.starts_with(prefix)) continue;
        auto var = std::find_if(environment_variables().begin(), environment_variables().end(),
                                [&](const EnvVar& v) { return v.name == name; });
        if (var == environment_variables().end()) {
            std::string guess = closest_match(name, known);
            warnings.push_back("unknown environment variable " + name +
                               (guess.empty() ? " (ignored)" : " — did you mean " + guess + "?"));
            continue;
        }
        if (var->setting.empty()) continue;
        Location at{"$" + name, 0, 0};
        std::string_view path = var->setting;
        bool typed = false;
        if (path.starts_with("node.")) {
            path.remove_prefix(5);
            typed = typed_node_key(path);
            put(root, "defaults." + std::string(path), text_value(text, at, typed, errors), at);
        } else {
            put(root, path, text_value(text, at, typed, errors), at);
        }
    }
    Settings settings = read_settings(root, errors);
    settings.overrides = std::move(settings.defaults);
    settings.defaults = NodeSettings{};
    return settings;
}

}  // namespace ccmulti::config
