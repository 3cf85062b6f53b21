#include "cli/celery_front.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace ccmulti::cli {

namespace {

// Celery's global options that take a value and that `celery multi` hands to every worker.
constexpr std::array<std::string_view, 8> node_globals = {
    "-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--workdir", "--config"};

bool is_node_global(std::string_view flag) {
    return std::find(node_globals.begin(), node_globals.end(), flag) != node_globals.end();
}

// A reserved flag of `celery multi`; sets it in `front` and returns true.
bool take_reserved(const std::string& arg, CeleryFront& front) {
    if (arg == "-q" || arg == "--quiet")
        front.quiet = true;
    else if (arg == "--verbose")
        front.verbose = true;
    else if (arg == "--no-color")
        front.no_color = true;
    else if (arg != "--nosplash")
        return false;
    return true;
}

bool is_config_file(std::string_view value) {
    for (std::string_view suffix : {".toml", ".yaml", ".yml"})
        if (value.ends_with(suffix)) return true;
    return false;
}

}  // namespace

CeleryFront read_celery_front(const std::vector<std::string>& args,
                              const std::function<bool(const std::string&)>& own_takes_value) {
    CeleryFront front;
    bool multi_seen = false;
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (!arg.starts_with("-")) {
            if (arg == "multi" && !multi_seen) {
                multi_seen = true;
                continue;
            }
            break;  // the subcommand
        }
        if (take_reserved(arg, front)) continue;
        const auto eq = arg.find('=');
        const std::string flag = arg.substr(0, eq);
        const bool inline_value = eq != std::string::npos;
        if (is_node_global(flag)) {
            std::string value;
            if (inline_value)
                value = arg.substr(eq + 1);
            else if (i + 1 < args.size())
                value = args[++i];
            if (flag == "--config" && is_config_file(value)) {
                front.args.insert(front.args.end(), {"-C", value});  // ccmulti's own configuration file
            } else {
                front.node_options.insert(front.node_options.end(), {flag, value});
            }
            continue;
        }
        front.args.push_back(arg);
        if (!inline_value && own_takes_value(flag) && i + 1 < args.size()) front.args.push_back(args[++i]);
    }
    front.args.insert(front.args.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
    return front;
}

std::vector<std::string> take_reserved_flags(const std::vector<std::string>& node_args, CeleryFront& front) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < node_args.size(); ++i) {
        if (node_args[i] == "--") {
            out.insert(out.end(), node_args.begin() + static_cast<std::ptrdiff_t>(i), node_args.end());
            break;
        }
        if (!take_reserved(node_args[i], front)) out.push_back(node_args[i]);
    }
    return out;
}

void add_node_options(std::vector<std::string>& node_args, const std::vector<std::string>& node_options) {
    auto end = std::find(node_args.begin(), node_args.end(), "--");
    node_args.insert(end, node_options.begin(), node_options.end());
}

}  // namespace ccmulti::cli
