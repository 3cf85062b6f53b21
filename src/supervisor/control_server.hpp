// The master's control socket, run_dir/master.sock (mode 0600 in the 0700 run dir; peers must have our uid or
// be root, checked with SO_PEERCRED). The protocol is JSON lines, one request per connection line, one or
// more response lines; docs/supervisor.md documents it. Version 1:
//
//   → {"v":1,"cmd":"ping"}                         ← {"ok":true,"v":1,"pid":1200}
//   → {"v":1,"cmd":"list"}                         ← {"ok":true,"master":{...},"nodes":[{...}]}
//   → {"v":1,"cmd":"stop","nodes":["w1@host"],"mode":"warm"|"cold"|"kill","timeout":2.5,"wait":true}
//                                                  ← {"event":"accepted","stopping":[...],"not_running":[...]}
//                                                  ← {"event":"signal","node":"w1@host","signal":"QUIT","pid":1234}
//                                                  ← {"event":"gone","node":"w1@host","status":"exited with code 0",
//                                                     "seconds":0.31}
//                                                  ← {"ok":true,"done":true,"stopped":[...],"not_running":[...],
//                                                     "failed":[{"node":"w2@host","error":"..."}]}
//   → {"v":1,"cmd":"restart","nodes":[...],"all":false}   rolling by default; "all": every node at once
//                                                  ←
//                                                  {"event":"accepted","job":1,"restarting":[...],"not_running":[...]}
//                                                  ← {"event":"restarting","job":1,"node":"w1@host"}
//                                                  ← {"event":"restarted","job":1,"node":"w1@host","pid":1240}
//                                                  ← {"ok":true,"done":true,"restarted":[...],"failed":[{"node",
//                                                     "error"}],"skipped":[...],"not_running":[...]}
//   → {"v":1,"cmd":"reload","nodes":[...],"wait":true}   the configuration read again, nodes replaced
//                                                  ← {"event":"accepted","job":2}
//                                                  ← {"event":"replacing","job":2,"node":"w1@host","pid":1234}
//                                                  ← {"event":"replaced","job":2,"node":"w1@host","old_pid":1234,
//                                                     "pid":1250}
//                                                  ← {"ok":true,"done":true,"job":2,"replaced":[...],"failed":[{"node",
//                                                     "error","log_tail"}],"skipped","added","removed","unchanged",
//                                                     "unknown","config_errors"?}  (MasterControl::reload)
//   → {"v":1,"cmd":"add","nodes":[NodeSpec as JSON]}   (a second `ccmulti start` in the same run dir)
//                                                  ← {"event":"accepted","starting":[...],"refused":[{"node","error"}]}
//                                                  ← start-report events: {"event":"ready"|"failed",...}
//                                                  ← {"ok":true,"done":true,"master_pid":1200}
//   "status" is "list". A request that is not JSON, a wrong type in a field, or a line over 64 KiB gets
//   {"ok":false,"error":"bad request: ..."} and the connection is closed; a peer of another uid gets
//   {"ok":false,"error":"permission denied: ..."}. Unknown fields are ignored (so clients may send newer ones); an
//   unknown "cmd" gets
//   {"ok":false,"error":"unknown command 'x'"}. Without "wait" the final line follows "accepted" at once.
//
//   Bounds (a client must not grow the master's memory or lock others out): past max_clients connections a new
//   one gets {"ok":false,"busy":true,"error":...}; a client that has sent no request for idle_timeout (and waits
//   on no stop/restart/add) is closed, as is one with more than max_output of replies it does not read, each
//   with a warning in the master's log.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "platform/event_loop.hpp"
#include "platform/fd.hpp"
#include "supervisor/master.hpp"

namespace ccmulti::supervisor {

struct ControlRequest;  // supervisor/control_request.hpp

inline constexpr int control_protocol_version = 1;
inline constexpr std::size_t max_clients = 64;              // connections at once; more are refused with an error line
inline constexpr std::size_t max_request_line = 64 * 1024;  // longer: an error line, the connection closed
inline constexpr std::size_t max_output = 4 * 1024 * 1024;  // queued for a client that does not read: closed
inline constexpr std::chrono::seconds idle_timeout{5};      // silent, with no request under way: closed

class ControlServer {
public:
    ControlServer(EventLoop& loop, MasterControl& master, std::filesystem::path path,
                  std::shared_ptr<spdlog::logger> log);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Writes what is still queued for clients (blocking, at most `limit`), before the master exits.
    void flush(std::chrono::milliseconds limit);

private:
    struct Client;
    void accept_clients();
    void on_readable(Client& client);
    void handle(Client& client, const std::string& line);
    void dispatch(Client& client, const std::string& line);
    void handle_restart(Client& client, const ControlRequest& request);
    void handle_add(Client& client, const ControlRequest& request);
    void handle_reload(Client& client, const ControlRequest& request);
    void relay_job(Client& client, int job, const std::string& done_event, const nlohmann::json& extra);
    void send(Client& client, const nlohmann::json& message);
    void on_writable(Client& client);
    void settle(int fd);  // closes a finished or broken client, else watches for what it needs
    void close(int fd);
    void drop(Client& client, const std::string& why);
    void arm_idle_timer(int fd);
    void finish_if_done(Client& client);

    EventLoop& loop_;
    MasterControl& master_;
    std::filesystem::path path_;
    std::shared_ptr<spdlog::logger> log_;
    UniqueFd listener_;
    std::map<int, std::unique_ptr<Client>> clients_;
};

}  // namespace ccmulti::supervisor
