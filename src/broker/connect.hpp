// Opens the broker and result store a URL names:
//   sqlite://               <state dir>/broker.sqlite3 (the default; shared by every node on the machine)
//   sqlite:///abs/path.db   that file
//   redis://[:password@]host[:port][/db]   kombu's Redis transport (broker/redis/); results in the same Redis
//   sentinel://host:port;sentinel://…?master_name=NAME   the same, on the master the sentinels name
//   amqp://user:password@host[:port]/vhost (pyamqp://, amqps://)   RabbitMQ (broker/amqp/); it keeps no results:
//                           without a result backend URL they are dropped (Celery's DisabledBackend)
// Results live in the broker's database unless a result backend URL names another store (Celery's
// result_backend): redis://… (another db or another server, Celery's Redis backend layout), sqlite://, or
// sqlite:///path.db. A node then stores a finished task's result there first and acks its message after.
// rpc:// (Celery's RPC backend, only with an AMQP broker) stores nothing: a node sends each result to the reply
// queue of the client that sent the task, over the broker, before it acks the task (the transport's store).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "broker/broker.hpp"
#include "broker/transport_options.hpp"

namespace ccmulti::broker {

inline constexpr const char* default_broker_url = "sqlite://";

struct BrokerOptions {
    std::string url = default_broker_url;
    std::filesystem::path state_dir;                 // for sqlite:// (must exist: see ensure_private_dir)
    std::chrono::seconds result_expires{24 * 3600};  // 0 = never
    std::string results_url;                         // empty (or url itself): the broker's own store
};

struct Connection {
    std::unique_ptr<Broker> broker;
    std::unique_ptr<ResultStore> results;
};

// Throws UsageError for an unknown scheme or malformed URL, Error when the database cannot be opened.
Connection connect(const BrokerOptions& options);

// Throws UsageError, one line naming the URL and the fix, for a result backend URL ccmulti cannot store results
// in (scheme or form), or, when `broker_url` is given, one that does not go with that broker (rpc:// needs an
// AMQP broker); connects to nothing. What `start` checks for native nodes before anything runs.
void check_result_url(const std::string& url, const std::string& broker_url = {});

// The same for a broker URL native nodes are to consume from.
void check_broker_url(const std::string& url);

// The URL for messages and logs: a Redis password masked.
std::string display_url(const std::string& url);

// Remote control through the broker `url` names (Celery's pidbox), or nullptr for a transport without a mailbox
// (the embedded broker: nodes answer on sockets in the run dir, worker/inspect.hpp). Connects to nothing yet.
std::unique_ptr<RemoteControl> remote_control(const std::string& url);

// What `inspect stats` shows of the broker `url` names: RemoteControl::broker_info(), or for the embedded broker
// {"transport": "sqlite", "hostname": url}.
nlohmann::json broker_info(const std::string& url);

// `url` with the configuration's transport options the URL does not give itself added to its query (the URL's
// own win); unchanged for a transport that takes none of them.
std::string with_transport_options(const std::string& url, const TransportOptions& options);

// The database file a sqlite URL names (exposed for tests and `ccmulti dirs`).
std::filesystem::path sqlite_path(const std::string& url, const std::filesystem::path& state_dir);

}  // namespace ccmulti::broker
