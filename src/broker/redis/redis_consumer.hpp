// A consumer of kombu's Redis queues (made by RedisBroker::consume), interoperable with Python Celery workers
// consuming the same queues.
//
// One event loop, no polling, reserve() never waits:
//  - reserve() claims ready messages with one Lua script call (RPOP round-robin across the queues, priority
//    levels first, each claim recorded in `unacked`/`unacked_index` in the same atomic step). A claim's tag is
//    a fresh UUID of ours, not the message's delivery_tag: the script never decodes payloads, and two copies of
//    one message can never collide. While the queues have more than the node asks for, the next window is
//    claimed ahead, without waiting for the reply (read at the next reserve()): Redis works while the node
//    does, and a node holds at most two windows.
//  - No message ever lives only in the node's memory, whatever moment it is SIGKILLed at: every pop is the claim
//    script's, which records the claim in the same atomic step. So waiting for messages pops nothing; it is a
//    doorbell. At connect the command connection turns on client-side-caching tracking in broadcast mode
//    (`CLIENT TRACKING on REDIRECT <doorbell> BCAST PREFIX <queue>...`, one prefix per queue name that no other
//    one starts with: Redis refuses overlapping prefixes) with its invalidations sent to a second connection,
//    the doorbell, SUBSCRIBEd to `__redis__:invalidate` (RESP2: Debian's hiredis 0.14 has no RESP3). Any write
//    to a key under those prefixes, by anyone (Python's LPUSH too, and restores), sends the doorbell the key's
//    name within the same turn of Redis's event loop. The doorbell's socket sits in a small private epoll set,
//    which is what wakeup_fd() returns, so the fd the node loop watches stays the same across reconnects.
//    When a claim finds the queues dry the consumer is *armed*: reserve() claims nothing more (no round trip)
//    until drain_wakeups() hears one of the exact queue keys named (or a flush), or the 30 s fallback timer
//    fires; then the next reserve() claims as usual: one round trip from the push to the task. Tracking is
//    turned off lazily when an invalidation reaches a consumer that is not armed (a busy node is not woken by
//    every push and result write), and on again, followed by one more claim (a push in between rang no bell),
//    when the queues run dry next. Its own pops ring the doorbell too: at most one empty claim per wake. A
//    doorbell connection that breaks wakes the loop (EOF) and the consumer reconnects, which turns tracking on
//    again (failovers included); the loop must call drain_wakeups() before reserve(), as broker.hpp says.
//    Chosen over BLMOVE into a per-consumer landing list (BLMOVE waits on one key; a node waits on 4 priority
//    lists per queue) and over popping in a blocking call at all (BRPOP, as kombu: Redis pops, and a node killed
//    before it reads the reply and writes the claim record loses the message).
//  - Messages with a future eta are claimed, as Celery workers do (the Redis transport has no delayed delivery):
//    the claim stays in `unacked` until the task is done. Those due within park_after are held here and handed
//    out by reserve() once due; next_eta() tells the loop when. One due later is *parked* rather than held, so
//    100,000 messages due tomorrow cost Redis memory, not the node's: its payload stays only in `unacked`, its tag
//    and eta go to the zset _ccmulti.parked.<consumer id>, and its `unacked_index` time is set to
//    eta - visibility_timeout - restore_margin. No heartbeat needs to refresh it then, and should this node be
//    gone, restore_visible (by any ccmulti node or Celery worker) returns it to its queue restore_margin before
//    it is due. The consumer takes parked claims back (unpark_script) park_after before they are due. At close
//    they are left to that restore. While a queue's head is eta messages, the claim batches grow (up to
//    eta_claim_growth times the window, and max_claim) so that a ready message behind 100,000 of them is
//    reached in a few round trips; ready messages claimed beyond `max` wait in ready_ for the next reserve().
//  - Redis down, or refusing (an error reply: OOM, READONLY, MISCONF, BUSY...): no call of the node's loop
//    throws for it. The consumer keeps its claims in memory, queues acks and requeues, and reconnects with
//    backoff on a timerfd in the same epoll set (so drain_wakeups() does the reconnect); unavailable() says why,
//    for the node's status. After reconnecting it re-asserts its claims (HSETNX: kept if Redis still had them;
//    their times set to now, before anything is restored), adopts the claims of requests whose replies were
//    lost with the connection (their tags are its own: a claim script Redis ran after the connection was given
//    up), and flushes what it queued. Nothing is dropped. Parked claims stay parked in Redis across an outage.
//  - Sentinel (a sentinel:// URL): every connect asks the sentinels for the master (Connection), and a
//    SwitchWatch in the same epoll set hears of a failover at once, so the consumer leaves the old master before
//    the sentinels demote it (writes it took meanwhile are lost). Landing on another server than before, the
//    consumer sends its last seconds of settled batches again (results are idempotent, acking twice does nothing):
//    what the old master took but never replicated, in a failover or a crash, is stored after all.
//  - heartbeat() refreshes the times of its claims in `unacked_index` (so live nodes' long tasks are never
//    restored under them), registers the node in `_ccmulti.consumers`, and restores dead nodes' claims
//    (restore_visible under kombu's mutex) — except for a while after an outage of its own: other live nodes,
//    cut off as long, need the time to reconnect and re-assert their claims first.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "broker/broker.hpp"
#include "broker/redis/backoff.hpp"
#include "broker/redis/connection.hpp"
#include "broker/redis/sentinel.hpp"
#include "platform/fd.hpp"

namespace ccmulti::broker::redis {

class RedisResultStore;

class RedisConsumer final : public Consumer {
public:
    RedisConsumer(RedisUrl url, const ConsumerInfo& info);
    ~RedisConsumer() override;

    std::vector<Delivery> reserve(std::size_t max) override;
    void ack(const Delivery& delivery) override;
    void ack_many(const std::vector<Delivery>& deliveries) override;
    // With a RedisResultStore on the same server: results and acks in one MULTI, sent without waiting for
    // its reply, which is read before the next command's (Connection::send_deferred): the node goes on with
    // its next tasks while Redis works. Until that reply is in the batch is kept, and sent again after a
    // reconnect; its messages are no longer held (they are not given back at shutdown).
    void settle(ResultStore& store, const std::vector<ResultMeta>& results,
                const std::vector<Delivery>& deliveries) override;
    void requeue(const Delivery& delivery) override;
    int wakeup_fd() const override { return epoll_.get(); }
    void drain_wakeups() override;
    std::optional<TimePoint> next_eta() override;
    void heartbeat() override;
    std::chrono::seconds heartbeat_interval() const override { return interval_; }
    void close() override;

    std::optional<std::string> unavailable() const override { return down_; }
    std::size_t held() const noexcept { return held_.size(); }  // claims this consumer holds

    // While armed, a claim is tried this often even if the doorbell stays silent.
    static constexpr std::chrono::seconds fallback_claim_interval{30};
    static constexpr std::chrono::seconds park_after{60};
    static constexpr std::chrono::seconds restore_margin{30};
    std::size_t parked() const noexcept { return parked_count_; }  // parked by this consumer so far (for tests)

private:
    struct Held {
        std::string payload;     // as received
        std::string queue;       // where it came from: its routing key in `unacked`
        std::string return_key;  // the list it goes back to
        bool requeue_pending = false;
    };

    void connect();
    void go_down(const Error& error);
    void arm_timer(std::chrono::milliseconds delay);
    Command tracking_command() const;  // CLIENT TRACKING on ... for the command connection
    void listen_to_doorbell();         // reads what the doorbell heard; rings (rung_) when armed
    // One claim script call: its keys and arguments, and the claim tags it hands out.
    struct Claim {
        std::vector<std::string> order;  // the rotation it was sent with
        std::vector<std::string> keys, args;
        std::size_t first_tag = 0;  // args from here on are claim tags
    };
    Claim claim_request(std::size_t want) const;
    std::size_t admit_claimed(Claim& claim, const Reply& reply, std::vector<Delivery>* out);
    std::size_t claim(std::size_t want, std::vector<Delivery>& out);
    void claim_ahead(std::size_t want);
    // Holds a message claimed under `tag`. Due ones go to `out` (or ready_ when null), future etas wait.
    void admit(const std::string& queue, std::string payload, std::string tag, std::vector<Delivery>* out);
    void rotate(const std::string& queue);
    struct Parking {
        Held held;
        Delivery delivery;
    };
    void hold(Parking parking);  // into held_ and scheduled_
    void park_pending();         // sends to_park_ to Redis (held in memory after all when that fails)
    void unpark_due();           // takes back parked claims due within park_after

    // True when the message went back to its queue (false: the claim was no longer ours).
    bool give_back(const std::string& tag, const Held& held);
    void reassert_claims();
    void adopt_orphans();
    void register_self();
    struct Settling {
        RedisResultStore* store;  // null when there are no results
        std::vector<ResultMeta> results;
        std::vector<std::string> tags;
    };
    std::vector<Command> settle_commands(const Settling& batch) const;
    void send_acks();
    void flush_pending();
    void keep_recent(Settling batch);
    void resend_recent();
    void watch_failovers();
    void drop_watch();

    RedisUrl url_;
    ConsumerInfo info_;
    std::vector<std::string> rotation_;
    std::string id_;
    std::chrono::seconds interval_{10};
    std::unique_ptr<Connection> command_, doorbell_;
    long long doorbell_id_ = 0;
    std::vector<std::string> prefixes_;  // tracked: the queue names no other one is a prefix of
    std::set<std::string> queue_keys_;   // the list keys of the queues, every priority step
    bool tracking_ = false;              // the command connection has tracking on
    bool armed_ = false;                 // the queues were dry at the last claim: claim again once rung
    bool rung_ = false;                  // a queue key was written (or the fallback timer fired) since
    bool open_ = true;
    UniqueFd epoll_, timer_;
    Backoff backoff_;
    std::optional<std::string> down_;
    std::unordered_map<std::string, Held> held_;  // by claim tag
    std::deque<Delivery> ready_;
    std::multimap<TimePoint, Delivery> scheduled_;
    std::vector<Parking> to_park_;       // claimed eta messages to park, sent after each claim
    std::optional<double> parked_next_;  // the earliest eta (Unix seconds) among parked claims; nullopt: none
    std::size_t parked_count_ = 0;
    std::vector<std::string> pending_acks_;
    std::deque<Settling> settling_;  // sent, reply not read yet (or to send again after a reconnect)
    bool claiming_ahead_ = false;    // a claim_ahead() reply is still to be read
    std::shared_ptr<Claim> ahead_;   // that claim
    // Tags of claim requests whose replies were lost with the connection: Redis may still have run them.
    std::vector<std::string> orphans_;
    int orphan_checks_ = 0;  // looked for after a reconnect and at the next heartbeat, then dropped
    bool episode_ = false;   // an outage is going on (logged once, then every tenth attempt)
    std::chrono::steady_clock::time_point no_restore_until_{};  // after an outage, see heartbeat()
    std::chrono::steady_clock::time_point last_heartbeat_{};    // the last one that went through
    bool reload_claim_script_ = false;
    // Sentinel only: the server last connected to, the failover watch, and what was settled lately.
    std::string server_;
    std::unique_ptr<SwitchWatch> watch_;
    struct Recent {
        std::chrono::steady_clock::time_point when;
        Settling batch;
    };
    std::deque<Recent> recent_;
    std::size_t recent_count_ = 0;  // results and acks in recent_
};

}  // namespace ccmulti::broker::redis
