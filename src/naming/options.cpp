#include "naming/options.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "util/error.hpp"

namespace ccmulti::naming {

bool is_repeatable(const std::string& name) {
    return name == "--watch" || name == "--watch-ignore";
}

void Options::set(const std::string& name, std::optional<std::string> value) {
    if (is_repeatable(name)) {
        items_.push_back({name, std::move(value)});
        return;
    }
    auto it = std::find_if(items_.begin(), items_.end(), [&](const Option& o) { return o.name == name; });
    if (it != items_.end())
        it->value = std::move(value);
    else
        items_.push_back({name, std::move(value)});
}

void Options::update(const Options& other) {
    for (const auto& option : other.items_)
        if (is_repeatable(option.name)) std::erase_if(items_, [&](const Option& o) { return o.name == option.name; });
    for (const auto& option : other.items_) set(option.name, option.value);
}

std::vector<std::string> Options::values(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& option : items_)
        if (option.name == name) out.push_back(option.value.value_or(""));
    return out;
}

const Option* Options::find(const std::string& name) const {
    auto it = std::find_if(items_.begin(), items_.end(), [&](const Option& o) { return o.name == name; });
    return it == items_.end() ? nullptr : &*it;
}

std::optional<std::optional<std::string>> Options::take(const std::string& name) {
    auto it = std::find_if(items_.begin(), items_.end(), [&](const Option& o) { return o.name == name; });
    if (it == items_.end()) return std::nullopt;
    auto value = std::move(it->value);
    items_.erase(it);
    return value;
}

Options& Namespaces::operator[](const std::string& name) {
    auto it = std::find_if(items_.begin(), items_.end(), [&](const auto& item) { return item.first == name; });
    if (it != items_.end()) return it->second;
    return items_.emplace_back(name, Options{}).second;
}

const Options* Namespaces::find(const std::string& name) const {
    auto it = std::find_if(items_.begin(), items_.end(), [&](const auto& item) { return item.first == name; });
    return it == items_.end() ? nullptr : &it->second;
}

void Namespaces::erase(const std::string& name) {
    std::erase_if(items_, [&](const auto& item) { return item.first == name; });
}

bool long_option_takes_value(const std::string& name) {
    static constexpr std::array<std::string_view, 40> with_value = {
        "--app",         "--broker",          "--result-backend",      "--loader",
        "--config",      "--workdir",         "--logfile",             "--pidfile",
        "--loglevel",    "--concurrency",     "--queues",              "--exclude-queues",
        "--hostname",    "--prefix",          "--suffix",              "--range-prefix",
        "--pool",        "--autoscale",       "--max-tasks-per-child", "--max-memory-per-child",
        "--time-limit",  "--soft-time-limit", "--prefetch-multiplier", "--statedb",
        "--scheduler",   "--schedule",        "--uid",                 "--gid",
        "--umask",       "--executable",      "--append",              "--exec",
        "--stop-timeout", "--start-timeout",
        "--watch",       "--watch-ignore",    "--watch-debounce",  // hot reload (cli/node_spec.hpp)
        "--python",      "--celery",  // the Celery runner's (cli/celery_runner.hpp)
        "--plugin",                   // the native worker's
    };
    auto base = name.substr(0, name.find(':'));
    return std::find(with_value.begin(), with_value.end(), base) != with_value.end();
}

namespace {

void add_option(ParsedArgs& parsed, const std::string& name, std::optional<std::string> value) {
    // "-c:w1" puts "-c" in namespace "w1". Celery splits on every ':' and fails on two; we split on the first.
    auto colon = name.find(':');
    if (colon == std::string::npos) {
        parsed.options.set(name, std::move(value));
        return;
    }
    parsed.namespaces[name.substr(colon + 1)].set(name.substr(0, colon), std::move(value));
}

}  // namespace

ParsedArgs parse_args(const std::vector<std::string>& raw) {
    std::vector<std::string> args;
    std::copy_if(raw.begin(), raw.end(), std::back_inserter(args), [](const auto& a) { return !a.empty(); });

    ParsedArgs parsed;
    for (std::size_t pos = 0; pos < args.size(); ++pos) {
        const std::string& arg = args[pos];
        auto next_is_value = [&] { return pos + 1 < args.size() && args[pos + 1][0] != '-'; };
        if (arg == "--") {
            parsed.passthrough.assign(args.begin() + static_cast<std::ptrdiff_t>(pos), args.end());
            break;
        }
        if (arg[0] != '-') {
            parsed.names.push_back(arg);
        } else if (arg.size() == 1) {
            throw UsageError("a lone '-' is not an option; did you mean '--' (pass the rest to the worker)?");
        } else if (arg[1] == '-') {
            auto eq = arg.find('=');
            if (eq != std::string::npos) {
                add_option(parsed, arg.substr(0, eq), arg.substr(eq + 1));
            } else if (long_option_takes_value(arg) && next_is_value()) {
                add_option(parsed, arg, args[++pos]);
            } else {
                add_option(parsed, arg, std::nullopt);
            }
        } else {
            std::optional<std::string> value;
            if (next_is_value()) value = args[++pos];
            add_option(parsed, arg, std::move(value));
        }
    }
    return parsed;
}

}  // namespace ccmulti::naming
