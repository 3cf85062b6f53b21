#include "dashboard/service.hpp"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

namespace ccmulti::dashboard {

Service::Service(Source source, AccessOptions access, std::chrono::milliseconds interval, bool sample_now)
    : access_(std::move(access)),
      api_(source),
      live_(api_, interval, sample_now),
      monitor_(source.broker, api_.events()),
      server_(api_, live_, access_) {
    try {
        port_ = server_.bind();
    } catch (...) {
        live_.stop();
        monitor_.stop();
        throw;
    }
}

Service::~Service() {
    stop();
}

bool Service::serve() {
    return server_.run();
}

void Service::stop() {
    live_.stop();
    monitor_.stop();
    server_.stop();
}

namespace {

// Blocks every signal for this scope: threads started meanwhile inherit the mask and keep it.
class AllSignalsBlocked {
public:
    AllSignalsBlocked() {
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, &saved_);
    }
    ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    AllSignalsBlocked(const AllSignalsBlocked&) = delete;
    AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

private:
    sigset_t saved_;
};

}  // namespace

Background::Background(Source source, AccessOptions access, std::chrono::milliseconds interval) {
    AllSignalsBlocked blocked;
    service_ = std::make_unique<Service>(std::move(source), std::move(access), interval, false);
    thread_ = std::thread([this] {
        if (!service_->serve()) spdlog::error("dashboard: the server on {} stopped unexpectedly", service_->url());
        done_ = true;
    });
}

Background::~Background() {
    // A stop that comes before the server listens is not seen by it (cpp-httplib): ask until it has ended.
    for (int attempt = 0; !done_; ++attempt) {
        service_->stop();
        if (!done_) std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 10 ? 5 : 50));
    }
    thread_.join();
}

}  // namespace ccmulti::dashboard
