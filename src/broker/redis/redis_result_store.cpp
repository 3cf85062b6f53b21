#include "broker/redis/redis_result_store.hpp"

#include <algorithm>
#include <thread>

#include "broker/redis/backoff.hpp"
#include "broker/redis/keys.hpp"
#include "broker/redis/scripts.hpp"

namespace ccmulti::broker::redis {

namespace {

std::optional<ResultMeta> parse_meta(std::string_view text) {
    auto value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) throw protocol::ProtocolError("stored result is not JSON");
    return protocol::result_from_json(value);
}

// A waiter re-reads the key this often even without a message: a cheap guard against anything missed while
// (re)subscribing, not the way results arrive.
constexpr std::chrono::seconds recheck{60};

}  // namespace

RedisResultStore::RedisResultStore(RedisUrl url, std::chrono::seconds expires)
    : url_(std::move(url)), expires_(expires), connection_(url_) {}

bool RedisResultStore::same_server(const RedisUrl& url) const {
    return url.same_database(url_);
}

void RedisResultStore::add_commands(std::vector<Command>& commands, const std::vector<ResultMeta>& metas,
                                    std::string_view script_sha) const {
    const std::string expires = std::to_string(std::max<long long>(0, expires_.count()));
    Command script;  // the keep-a-final-state script for the results since the last STARTED
    std::size_t keys = 0;
    auto flush = [&] {
        if (keys == 0) return;
        script[2] = std::to_string(keys);
        // KEYS come before ARGV: the texts were collected behind the keys, moved into place here.
        Command call(script.begin(), script.begin() + 3);
        for (std::size_t i = 0; i < keys; ++i) call.push_back(std::move(script[3 + 2 * i]));
        call.push_back(expires);
        for (std::size_t i = 0; i < keys; ++i) call.push_back(std::move(script[4 + 2 * i]));
        commands.push_back(std::move(call));
        keys = 0;
    };
    for (const auto& meta : metas) {
        std::string key = result_key(meta.task_id);
        std::string text = protocol::to_json_text(meta);
        if (meta.status == protocol::TaskState::started) {
            // No script: STARTED is only ever the first state of a run, written where nothing is stored yet (NX),
            // so it cannot replace a final state. Every slow task writes it. In order with the others: what was
            // collected before it goes first.
            flush();
            Command set{"SET", key, text};
            if (expires_.count() > 0) set.insert(set.end(), {"EX", expires});
            set.push_back("NX");
            commands.push_back(std::move(set));
            commands.push_back({"PUBLISH", std::move(key), std::move(text)});
            continue;
        }
        // Every other state through the keep-a-final-state script, SUCCESS too: a task run twice (a node presumed
        // dead that was not) keeps the outcome stored first. Sent whole (EVAL) when no SHA is given.
        if (keys == 0) {
            script.clear();
            if (script_sha.empty())
                script = {"EVAL", store_result_script.source, ""};
            else
                script = {"EVALSHA", std::string(script_sha), ""};
        }
        script.push_back(std::move(key));
        script.push_back(std::move(text));
        if (++keys == max_results_per_call) flush();
    }
    flush();
}

std::vector<Reply> RedisResultStore::run(const std::vector<ResultMeta>& metas) {
    return connection_.with([&](Connection& connection) {
        for (bool reload = false;; reload = true) {
            std::vector<Command> commands;
            std::string sha = script_sha(connection, store_result_script, reload);
            add_commands(commands, metas, sha);
            auto replies = connection.pipeline(commands);
            bool forgotten = false;
            for (const auto& reply : replies) {
                if (!reply.is_error()) continue;
                if (!reload && reply.text().starts_with("NOSCRIPT")) {
                    forgotten = true;  // Redis restarted: load it and send the batch again (writes are idempotent)
                    continue;
                }
                connection.refuse("storing a result", reply);
            }
            if (!forgotten) return replies;
        }
    });
}

bool RedisResultStore::store(const ResultMeta& meta) {
    auto replies = run({meta});
    if (replies.size() == 1) return replies.front().integer() == 1;  // the script's answer
    return !replies.front().is_nil();                                // STARTED: SET NX answers nil when it kept
}

void RedisResultStore::store_many(const std::vector<ResultMeta>& metas) {
    if (!metas.empty()) run(metas);
}

std::optional<ResultMeta> RedisResultStore::get(const std::string& task_id) {
    return connection_.with([&](Connection& connection) -> std::optional<ResultMeta> {
        Reply value = connection.command({"GET", result_key(task_id)});
        if (value.is_nil()) return std::nullopt;
        return parse_meta(value.text());
    });
}

std::vector<ResultMeta> RedisResultStore::recent(std::size_t limit) {
    return connection_.with([&](Connection& connection) {
        std::vector<std::string> keys;
        std::string cursor = "0";
        const std::string pattern = std::string(result_prefix) + "*";
        do {
            Reply page = connection.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
            cursor = page[0].string();
            for (std::size_t i = 0; i < page[1].size(); ++i) keys.push_back(page[1][i].string());
        } while (cursor != "0" && keys.size() < max_recent_scan);
        std::vector<ResultMeta> out;
        constexpr std::size_t chunk = 500;
        for (std::size_t first = 0; first < keys.size(); first += chunk) {
            Command mget{"MGET"};
            for (std::size_t i = first; i < std::min(keys.size(), first + chunk); ++i) mget.push_back(keys[i]);
            Reply values = connection.command(mget);
            for (std::size_t i = 0; i < values.size(); ++i) {
                if (values[i].is_nil()) continue;  // expired since the SCAN
                try {
                    if (auto meta = parse_meta(values[i].text())) out.push_back(std::move(*meta));
                } catch (const std::exception&) {
                    // another program's key under Celery's prefix: not a result this list can show
                }
            }
        }
        auto newest_first = [](const ResultMeta& a, const ResultMeta& b) {
            if (a.date_done.has_value() != b.date_done.has_value()) return !a.date_done.has_value();
            return a.date_done && *a.date_done > *b.date_done;
        };
        std::sort(out.begin(), out.end(), newest_first);
        if (out.size() > limit) out.resize(limit);
        return out;
    });
}

std::optional<ResultMeta> RedisResultStore::wait(const std::string& task_id,
                                                 std::optional<std::chrono::milliseconds> timeout) {
    using std::chrono::steady_clock;
    const auto deadline = timeout ? steady_clock::now() + *timeout : steady_clock::time_point::max();
    auto left = [&] {
        if (!timeout) return std::chrono::milliseconds(recheck);
        auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
        return std::max(std::chrono::milliseconds(0), std::min(rest, std::chrono::milliseconds(recheck)));
    };
    const std::string channel = result_key(task_id);
    std::optional<ResultMeta> latest;
    Backoff backoff;
    while (true) {
        try {
            Connection subscription(url_);
            subscription.send({"SUBSCRIBE", channel});
            if (!subscription.read(Connection::default_timeout)) subscription.fail("no answer to SUBSCRIBE");
            backoff.reset();
            while (true) {
                // (Re)read after subscribing: a result stored before the subscription took effect is in the key.
                if (auto stored = get(task_id)) latest = stored;
                if (latest && protocol::is_ready(latest->status)) return latest;
                if (timeout && steady_clock::now() >= deadline) return latest;
                while (true) {
                    auto message = subscription.read(left());
                    if (!message) break;  // recheck interval or deadline: re-read the key
                    if (message->size() == 3 && message->operator[](0).text() == "message") {
                        latest = parse_meta((*message)[2].text());
                        if (protocol::is_ready(latest->status)) return latest;
                    }
                }
            }
        } catch (const ConnectionError&) {
            connection_.reset();
            auto pause = backoff.next();
            if (timeout) {
                auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
                if (rest.count() <= 0) return latest;
                pause = std::min(pause, rest);
            }
            std::this_thread::sleep_for(pause);  // a blocking client call: nothing else to do meanwhile
        }
    }
}

}  // namespace ccmulti::broker::redis
