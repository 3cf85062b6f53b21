// The thread that feeds the dashboard's EventState (dashboard/event_state.hpp) from the broker's event stream
// (broker.hpp, Broker::event_stream): it waits on the receiver's fd and a stop eventfd with poll(2), so it costs
// nothing while no events come. A transport without events (the embedded SQLite broker) is recorded once, for
// the page to say so, and the thread ends. The loop never unwinds: a broker that cannot be opened is logged
// and tried again with backoff; a receiver reconnects by itself.
#pragma once

#include <thread>

#include "broker/connect.hpp"
#include "dashboard/event_state.hpp"
#include "platform/fd.hpp"

namespace ccmulti::dashboard {

class EventMonitor {
public:
    EventMonitor(broker::BrokerOptions broker, EventState& state);  // starts the thread
    ~EventMonitor();                                                // stops and joins it
    EventMonitor(const EventMonitor&) = delete;
    EventMonitor& operator=(const EventMonitor&) = delete;

    void stop();  // from any thread; idempotent

private:
    void run();
    bool wait_stop(int fd, int timeout_ms);  // true when stop() was called

    broker::BrokerOptions broker_;
    EventState& state_;
    UniqueFd stop_;  // eventfd
    std::thread thread_;
};

}  // namespace ccmulti::dashboard
