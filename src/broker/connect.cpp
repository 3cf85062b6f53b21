#include "broker/connect.hpp"

#include "broker/amqp/url.hpp"
#include "broker/redis/redis_broker.hpp"
#include "broker/redis/redis_control.hpp"
#include "broker/redis/redis_result_store.hpp"
#include "broker/redis/url.hpp"
#include "broker/sqlite/sqlite_broker.hpp"
#include "broker/sqlite/sqlite_result_store.hpp"
#include "broker/transport_module.hpp"
#include "platform/module.hpp"
#include "util/error.hpp"

namespace ccmulti::broker {

namespace {

// The RabbitMQ transport, loaded on first use (broker/transport_module.hpp). Its URLs are parsed here, before it
// is loaded: a malformed one is a usage error whether or not the module is installed.
const TransportModule& amqp_transport() {
    auto entry = reinterpret_cast<TransportEntry>(
        platform::module_symbol(amqp_module, amqp_module_entry, "the RabbitMQ transport (amqp:// URLs)"));
    return *entry();
}

}  // namespace

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

namespace {

// Celery's rpc:// backend: results over the AMQP broker (broker/amqp/rpc_result_store.hpp).
bool is_rpc_url(const std::string& url) {
    return url.starts_with("rpc:");
}

}  // namespace

void check_result_url(const std::string& url, const std::string& broker_url) {
    if (is_rpc_url(url)) {
        if (url != "rpc://")
            throw UsageError("result backend " + url +
                             ": give rpc:// alone (results go to the sender's reply queue over the AMQP broker)");
        if (!broker_url.empty() && !amqp::is_amqp_url(broker_url))
            throw UsageError("result backend rpc:// sends results over an AMQP broker (amqp://…), not " +
                             display_url(broker_url) +
                             "; with this broker give --result-backend redis://HOST[:PORT][/DB] or sqlite://, or "
                             "none (the broker's own store)");
        return;
    }
    if (redis::is_redis_url(url)) {
        redis::parse_redis_url(url);  // throws UsageError naming what is wrong
        return;
    }
    if (url.starts_with("sqlite:")) {
        if (url != "sqlite://" && !url.starts_with("sqlite:///"))
            throw UsageError("result backend " + url +
                             ": give an absolute path (sqlite:///path/to/db) or none (sqlite://, the state dir's "
                             "database)");
        return;
    }
    auto scheme = url.substr(0, url.find(':'));
    throw UsageError("result backend " + url + ": scheme '" + scheme +
                     "' is not supported by ccmulti's nodes (supported: redis://HOST[:PORT][/DB], "
                     "sentinel://HOST[:PORT];…?master_name=NAME, sqlite://, sqlite:///PATH, rpc:// with an AMQP "
                     "broker); a Celery node (-A) takes any backend Celery knows");
}

void check_broker_url(const std::string& url) {
    if (url.starts_with("sqlite:")) {
        sqlite_path(url, "/");  // the form only: the state dir is resolved later
        return;
    }
    if (redis::is_redis_url(url)) {
        redis::parse_redis_url(url);  // throws UsageError naming what is wrong (rediss://, a sentinel's master)
        return;
    }
    if (amqp::is_amqp_url(url)) {
        amqp::parse_amqp_url(url);
        return;
    }
    auto scheme = url.substr(0, url.find(':'));
    throw UsageError("broker URL " + url + ": scheme '" + scheme +
                     "' is not supported by ccmulti's nodes (supported: sqlite://, sqlite:///PATH, "
                     "redis://HOST[:PORT][/DB], sentinel://HOST[:PORT];…?master_name=NAME, "
                     "amqp://USER:PASSWORD@HOST[:PORT]/VHOST, amqps://…); a Celery node (-A) takes any broker "
                     "Celery knows");
}

std::string display_url(const std::string& url) {
    if (url.starts_with("redis://") || redis::is_sentinel_url(url)) {
        try {
            return redis::parse_redis_url(url).display();
        } catch (const UsageError&) {
        }
    }
    if (amqp::is_amqp_url(url)) {
        try {
            return amqp::parse_amqp_url(url).display();
        } catch (const UsageError&) {
        }
    }
    return url;
}

std::unique_ptr<RemoteControl> remote_control(const std::string& url) {
    if (redis::is_redis_url(url)) return std::make_unique<redis::RedisControl>(redis::parse_redis_url(url));
    if (amqp::is_amqp_url(url)) {
        amqp::parse_amqp_url(url);
        return amqp_transport().remote_control(url);
    }
    return nullptr;
}

nlohmann::json broker_info(const std::string& url) {
    if (auto control = remote_control(url)) return control->broker_info();
    return {{"transport", "sqlite"}, {"hostname", url}};
}

std::string with_transport_options(const std::string& url, const TransportOptions& options) {
    return redis::with_transport_options(url, options);
}

Connection connect(const BrokerOptions& options) {
    const bool own_results = options.results_url.empty() || options.results_url == options.url;
    if (!own_results) check_result_url(options.results_url, options.url);
    Connection connection;
    std::shared_ptr<sqlite::Database> db;  // the broker's, shared with a result store in the same file
    if (options.url.starts_with("sqlite:")) {
        db = sqlite::open_database(sqlite_path(options.url, options.state_dir));
        connection.broker = std::make_unique<sqlite::SqliteBroker>(db);
        if (own_results) connection.results = std::make_unique<sqlite::SqliteResultStore>(db, options.result_expires);
    } else if (redis::is_redis_url(options.url)) {
        auto url = redis::parse_redis_url(options.url);
        connection.broker = std::make_unique<redis::RedisBroker>(url);
        if (own_results) connection.results = std::make_unique<redis::RedisResultStore>(url, options.result_expires);
    } else if (amqp::is_amqp_url(options.url)) {
        amqp::parse_amqp_url(options.url);
        const auto& transport = amqp_transport();
        connection.broker = transport.broker(options.url);
        // RabbitMQ keeps no results: without a result backend they are dropped, as a Python worker without
        // result_backend drops them; with rpc:// they go to the senders' reply queues.
        if (own_results) connection.results = transport.own_results(options.url);
        if (is_rpc_url(options.results_url)) {
            connection.results = transport.reply_results(options.url);
            return connection;
        }
    } else {
        check_broker_url(options.url);  // throws: the scheme is not ours
    }
    if (own_results) return connection;
    // Another store: a Redis result store on another db or server never shares the broker's connection (a
    // consumer settles into it by storing first, then acking: broker/redis/redis_consumer.hpp).
    if (redis::is_redis_url(options.results_url)) {
        connection.results = std::make_unique<redis::RedisResultStore>(redis::parse_redis_url(options.results_url),
                                                                       options.result_expires);
    } else {
        auto path = sqlite_path(options.results_url, options.state_dir);
        if (!db || path != sqlite_path(options.url, options.state_dir)) db = sqlite::open_database(path);
        connection.results = std::make_unique<sqlite::SqliteResultStore>(db, options.result_expires);
    }
    return connection;
}

}  // namespace ccmulti::broker
