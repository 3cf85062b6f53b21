// The dashboard's HTTP side (cpp-httplib, Debian's libcpp-httplib-dev): routes to the pages (embedded assets),
// the JSON API, the server-sent event stream of the live chart, /metrics and /healthz; and the guards around
// them: a bearer token when one is set, a CSRF token on every action (actions are POSTs), a same-origin check,
// headers that keep the pages out of frames and other origins' scripts.
//
//   GET  /                       the page (assets: /assets/NAME)
//   GET  /healthz                "ok" (never needs the token: for load balancers and systemd checks)
//   GET  /metrics                Prometheus text (dashboard/metrics.hpp)
//   GET  /api/session            {"csrf": token, "version"}: what the page needs before it can act
//   GET  /api/status             `ccmulti status --json`
//   GET  /api/queues             `ccmulti queues --json`
//   GET  /api/inspect/METHOD     `ccmulti inspect METHOD --json`
//   GET  /api/result/ID          `ccmulti result ID --json`
//   GET  /api/tasks?state=&name=&id=&limit=   recent results, each as `result --json`
//   GET  /api/about              version, broker and result URLs (passwords masked), run dir
//   GET  /api/points             the live chart's points so far
//   GET  /api/events             text/event-stream: one "point" event per new point
//   POST /api/nodes/NODE/restart, /api/nodes/NODE/stop, /api/queues/QUEUE/purge   (X-CSRF-Token header)
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "dashboard/api.hpp"
#include "dashboard/live.hpp"
#include "dashboard/options.hpp"

namespace httplib {
class Server;
}

namespace ccmulti::dashboard {

class Server {
public:
    Server(const Api& api, Live& live, AccessOptions access);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the address (port 0: any free one) and returns the port. Throws Error when it cannot.
    int bind();
    // Serves until stop(); returns false when it could not.
    bool run();
    void stop();  // from any thread

    static constexpr std::size_t max_event_streams = 8;  // each holds a worker thread while open

private:
    void routes();
    const Api& api_;
    Live& live_;
    AccessOptions access_;
    std::string csrf_;
    std::unique_ptr<httplib::Server> http_;
    std::atomic<std::size_t> streams_{0};
};

}  // namespace ccmulti::dashboard
