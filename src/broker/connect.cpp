#include "broker/connect.hpp"

#include "broker/redis/redis_broker.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/url.hpp"
#include "broker/sqlite/sqlite_broker.hpp"
#include "broker/sqlite/sqlite_result_store.hpp"
#include "util/error.hpp"

namespace ccmulti::broker {

std::filesystem::path sqlite_path(const std::string& url, const std::filesystem::path& state_dir) {
    constexpr std::string_view scheme = "sqlite://";
    if (!url.starts_with(scheme)) throw UsageError("not a sqlite broker URL: " + url);
    std::string rest = url.substr(scheme.size());
    if (rest.empty()) {
        if (state_dir.empty()) throw UsageError("sqlite:// needs a state dir (--state-dir or $CCMULTI_STATE_DIR)");
        return state_dir / "broker.sqlite3";
    }
    if (!rest.starts_with("/"))
        throw UsageError("broker URL " + url + ": give an absolute path (sqlite:///path/to/db) or none (sqlite://)");
    return rest;
}

Connection connect(const BrokerOptions& options) {
    if (options.url.starts_with("sqlite:")) {
        auto db = sqlite::open_database(sqlite_path(options.url, options.state_dir));
        return {std::make_unique<sqlite::SqliteBroker>(db),
                std::make_unique<sqlite::SqliteResultStore>(db, options.result_expires)};
    }
    if (redis::is_redis_url(options.url)) {
        auto url = redis::parse_redis_url(options.url);
        return {std::make_unique<redis::RedisBroker>(url),
                std::make_unique<redis::RedisResultStore>(url, options.result_expires)};
    }
    auto scheme = options.url.substr(0, options.url.find(':'));
    throw UsageError("unsupported broker URL scheme '" + scheme + "' in " + options.url +
                     " (supported: sqlite://, redis://)");
}

}  // namespace ccmulti::broker
