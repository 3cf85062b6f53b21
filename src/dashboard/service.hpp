// The whole dashboard as one object: the API, the live sampler, the event monitor and the HTTP server, bound to
// its address by the constructor (so a taken port fails at once, with the port known before anything runs).
// `ccmulti dashboard` serves it in the foreground; the master runs it on a thread of its own (Background).
//
// Why a thread in the master and not a child process: the dashboard only reads through the same control
// socket and broker connections the standalone command uses (its Api opens its own for every call), so it
// shares no state with the master's loop and cannot block it; the master's URL and bind errors are known
// synchronously at start; and there is no second process to supervise, restart, or leave behind. What a
// thread in a forking process needs is taken care of: every thread it starts has every signal blocked (the
// master takes its signals through its loop's signalfd), and spawn.cpp marks every fd close-on-exec in the
// child, so a socket a dashboard thread opened without O_CLOEXEC (cpp-httplib's accept, hiredis) never
// reaches a node.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "dashboard/api.hpp"
#include "dashboard/event_monitor.hpp"
#include "dashboard/live.hpp"
#include "dashboard/options.hpp"
#include "dashboard/server.hpp"

namespace ccmulti::dashboard {

class Service {
public:
    // Throws Error when the address cannot be bound. `sample_now`: see Live.
    Service(Source source, AccessOptions access, std::chrono::milliseconds interval, bool sample_now = true);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    int port() const { return port_; }
    std::string url() const { return url_of(access_.bind.host, port_); }
    bool token_required() const { return access_.token.has_value(); }
    const Api& api() const { return api_; }

    bool serve();  // until stop(); false when the server could not run
    void stop();   // from any thread; idempotent

private:
    AccessOptions access_;
    Api api_;
    Live live_;
    EventMonitor monitor_;
    Server server_;
    int port_ = 0;
};

// A Service serving on a thread of its own, every signal blocked in it and in every thread it starts.
// Destroying it stops and joins everything; stop() first only asks, for an owner that must keep answering
// the dashboard's requests (the master's control socket) until the threads are done.
class Background {
public:
    Background(Source source, AccessOptions access, std::chrono::milliseconds interval);
    ~Background();
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

    std::string url() const { return service_->url(); }
    void stop() { service_->stop(); }

private:
    std::unique_ptr<Service> service_;
    std::atomic<bool> done_{false};  // the server returned
    std::thread thread_;
};

}  // namespace ccmulti::dashboard
