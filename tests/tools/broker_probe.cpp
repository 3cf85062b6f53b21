// broker_probe: drives a broker and result store from the command line, for interop tests against Python Celery
// (tests/integration/test_redis_interop.py). Not shipped; `ccmulti call/result` supersede it once they exist.
//
//   broker_probe publish URL TASK ARGS_JSON KWARGS_JSON [QUEUE [COUNTDOWN_S [EXPIRES_S [IGNORE_RESULT]]]]
//                                                        prints the task id
//   broker_probe publish-many URL TASK ARGS_JSON QUEUE COUNT
//                                                        publishes COUNT copies (one connection, so thousands
//                                                        take a second); prints one task id a line
//   broker_probe run URL QUEUE COUNT TIMEOUT_MS        a stand-in worker: takes COUNT messages and runs the
//                                                        tasks of tests/integration/celeryapp/proj.py (add, fail,
//                                                        sleep), storing results as a worker does; prints one JSON
//                                                        line per message
//   broker_probe wait URL TASK_ID TIMEOUT_MS           prints the result meta JSON; exit 3 on timeout
//   broker_probe stats URL                             prints queue_stats as JSON
//   broker_probe pidbox URL NODE SECONDS               answers remote control (ping, registered, stats,
//                                                        active) as NODE for SECONDS; prints "ready" first
#include <poll.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "broker/connect.hpp"
#include "broker/control_replies.hpp"
#include "broker/redis/connection.hpp"
#include "broker/redis/pidbox.hpp"
#include "broker/redis/redis_control.hpp"
#include "platform/host.hpp"

using namespace ccmulti;
using namespace ccmulti::broker;
using nlohmann::json;

namespace {

Connection open(const std::string& url) {
    return connect({url, "/tmp", std::chrono::seconds(3600), ""});
}

int publish(int argc, char** argv) {
    auto connection = open(argv[2]);
    TaskMessage message = protocol::make_message(argv[3], json::parse(argv[4]), json::parse(argv[5]));
    if (argc > 6) message.queue = argv[6];
    if (argc > 7 && std::stod(argv[7]) != 0)
        message.eta = protocol::now() + std::chrono::milliseconds(static_cast<long>(std::stod(argv[7]) * 1000));
    if (argc > 8 && std::string(argv[8]) != "-")
        message.expires = protocol::now() + std::chrono::milliseconds(static_cast<long>(std::stod(argv[8]) * 1000));
    if (argc > 9) message.ignore_result = std::string(argv[9]) == "1";
    connection.broker->publish(message);
    std::cout << message.id << std::endl;
    return 0;
}

int publish_many(char** argv) {
    auto connection = open(argv[2]);
    json args = json::parse(argv[4]);
    std::size_t count = std::stoul(argv[6]);
    for (std::size_t i = 0; i < count; ++i) {
        TaskMessage message = protocol::make_message(argv[3], args, json::object());
        message.queue = argv[5];
        connection.broker->publish(message);
        std::cout << message.id << '\n';
    }
    std::cout << std::flush;
    return 0;
}

ResultMeta execute(const TaskMessage& message) {
    const json& args = message.args;
    auto arg = [&](std::size_t index, const char* name) -> json {
        if (index < args.size()) return args[index];
        if (message.kwargs.contains(name)) return message.kwargs[name];
        throw std::invalid_argument(std::string("missing argument ") + name);
    };
    try {
        if (message.task == "proj.add") {
            json x = arg(0, "x"), y = arg(1, "y");
            json sum = x.is_number_integer() && y.is_number_integer() ? json(x.get<long>() + y.get<long>())
                                                                      : json(x.get<double>() + y.get<double>());
            return protocol::success_result(message.id, sum);
        }
        if (message.task == "proj.fail")
            return protocol::failure_result(
                message.id, protocol::ExceptionInfo::of("ValueError", arg(0, "message").get<std::string>()),
                "Traceback (most recent call last):\n  (ccmulti broker_probe)\nValueError");
        if (message.task == "proj.sleep") {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(static_cast<long>(arg(0, "seconds").get<double>() * 1000)));
            return protocol::success_result(message.id, arg(0, "seconds"));
        }
        return protocol::failure_result(message.id, protocol::ExceptionInfo::of("NotRegistered", message.task), "");
    } catch (const std::exception& error) {
        return protocol::failure_result(message.id, protocol::ExceptionInfo::of("TypeError", error.what()), "");
    }
}

int run(char** argv) {
    auto connection = open(argv[2]);
    std::size_t count = std::stoul(argv[4]);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stol(argv[5]));
    auto consumer = connection.broker->consume({"probe@" + hostname(), {argv[3]}});
    std::size_t done = 0;
    auto last_beat = std::chrono::steady_clock::now();
    while (done < count && std::chrono::steady_clock::now() < deadline) {
        // Beats every second (a node does every heartbeat_interval()): restores dead probes' claims quickly.
        if (std::chrono::steady_clock::now() - last_beat > std::chrono::seconds(1)) {
            consumer->heartbeat();
            last_beat = std::chrono::steady_clock::now();
        }
        auto deliveries = consumer->reserve(1);  // one at a time, as a node with -c 1 and prefetch 1
        for (auto& delivery : deliveries) {
            const TaskMessage& message = delivery.message;
            json line = {{"id", message.id},
                         {"task", message.task},
                         {"args", message.args},
                         {"kwargs", message.kwargs},
                         {"queue", message.queue},
                         {"retries", message.retries},
                         {"redelivered", message.redelivered},
                         {"ignore_result", message.ignore_result},
                         {"eta", message.eta ? json(protocol::format_iso8601(*message.eta)) : json(nullptr)},
                         {"ran_at", protocol::format_iso8601(protocol::now())}};
            ResultMeta result;
            if (delivery.decode_error) {
                line["decode_error"] = *delivery.decode_error;
                result = protocol::failure_result(
                    message.id, protocol::ExceptionInfo::of("ContentDisallowed", *delivery.decode_error), "");
            } else if (message.expires && *message.expires < protocol::now()) {
                result = protocol::revoked_result(message.id, "expired");
            } else {
                result = execute(message);
            }
            line["status"] = protocol::to_string(result.status);
            // As a worker must: a result that cannot be stored (Redis down) is stored again, and only then acked.
            while (!message.ignore_result && !message.id.empty()) {
                try {
                    connection.results->store(result);
                    break;
                } catch (const broker::redis::ConnectionError& error) {
                    if (std::chrono::steady_clock::now() > deadline) throw;
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
                }
            }
            consumer->ack(delivery);
            std::cout << line.dump() << std::endl;
            ++done;
        }
        if (done >= count) break;
        if (!deliveries.empty()) continue;  // the queue may hold more: only an empty reserve waits for the doorbell
        int wait_ms = 200;
        if (auto eta = consumer->next_eta())
            wait_ms =
                std::clamp(static_cast<int>(
                               std::chrono::duration_cast<std::chrono::milliseconds>(*eta - protocol::now()).count()) +
                               1,
                           0, 200);
        pollfd entry{consumer->wakeup_fd(), POLLIN, 0};
        ::poll(&entry, 1, wait_ms);
        consumer->drain_wakeups();
    }
    consumer->close();
    return done == count ? 0 : 3;
}

int wait(char** argv) {
    auto connection = open(argv[2]);
    auto result = connection.results->wait(argv[3], std::chrono::milliseconds(std::stol(argv[4])));
    if (!result || !protocol::is_ready(result->status)) return 3;
    std::cout << protocol::to_json(*result).dump() << std::endl;
    return 0;
}

int stats(char** argv) {
    auto connection = open(argv[2]);
    json out = json::array();
    for (const auto& queue : connection.broker->queue_stats())
        out.push_back({{"name", queue.name},
                       {"ready", queue.ready},
                       {"scheduled", queue.scheduled},
                       {"reserved", queue.reserved},
                       {"consumers", queue.consumers}});
    std::cout << out.dump() << std::endl;
    return 0;
}

int pidbox(char** argv) {
    using namespace ccmulti::broker::redis;
    auto url = parse_redis_url(argv[2]);
    std::string node = argv[3];
    auto started = std::chrono::steady_clock::now();
    TaskMessage running = protocol::make_message("proj.sleep", json::array({30}));
    RedisPidbox mailbox(url, node, [&](const std::string& method, const json&) -> std::optional<json> {
        if (method == "registered") return registered_reply({"proj.sleep", "proj.add", "proj.fail"});
        if (method == "active")
            return active_reply({{running, node, protocol::now() - std::chrono::seconds(2), false, ::getpid()}});
        if (method == "stats") {
            NodeStats stats;
            stats.pid = ::getpid();
            stats.total = {{"proj.add", 3}};
            stats.concurrency = 2;
            stats.processes = {::getpid()};
            stats.uptime_seconds =
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count();
            return stats_reply(stats, RedisControl(url).broker_info());
        }
        return std::nullopt;
    });
    std::cout << "ready" << std::endl;
    auto deadline = started + std::chrono::seconds(std::stol(argv[4]));
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd entry{mailbox.fd(), POLLIN, 0};
        ::poll(&entry, 1, 200);
        mailbox.on_readable();
    }
    std::cout << "answered " << mailbox.answered() << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    spdlog::set_default_logger(spdlog::stderr_logger_mt("probe"));  // stdout carries the JSON lines
    try {
        std::string command = argc > 1 ? argv[1] : "";
        if (command == "publish" && argc >= 6) return publish(argc, argv);
        if (command == "publish-many" && argc == 7) return publish_many(argv);
        if (command == "run" && argc == 6) return run(argv);
        if (command == "wait" && argc == 5) return wait(argv);
        if (command == "stats" && argc == 3) return stats(argv);
        if (command == "pidbox" && argc == 5) return pidbox(argv);
        std::cerr << "usage: see the head of tests/tools/broker_probe.cpp\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "broker_probe: " << error.what() << "\n";
        return 1;
    }
}
