// The node process: `ccmulti __node NAME LOCK_FD MASTER_PID LOGFILE -- PROGRAM ARGS...`, started by the master
// for every node. It leads the node's process group, carries the node's title ("ccmulti: node w1@host ..."),
// holds the node's pid-file lock, and runs PROGRAM as its only child. It exists for what a program started
// with --exec cannot be trusted to do:
//   - the master dies (even by SIGKILL): the shim gets its parent-death signal (SIGUSR2) and SIGKILLs its
//     whole process group, so the program and every grandchild go too (PDEATHSIG alone reaches one process);
//   - TERM, INT, QUIT, WINCH, HUP from the master (and USR2 while the master lives) are forwarded to the
//     program; a HUP from anyone else asks the master to restart the node warm (CCMULTI_RESTART=);
//   - it owns the node's log (supervisor/node_log.hpp): the program's stdout/stderr are a pipe the shim appends
//     to LOGFILE, and SIGUSR1 makes the shim reopen LOGFILE (log rotation); USR1 is not forwarded;
//   - the program exits: the shim exits the same way (same code, or the same signal), and the master then
//     SIGKILLs what is left of the group.
// Its loop is one poll() over a signalfd and the output pipe. At the program's exit it drains the pipe first.
#pragma once

#include <csignal>

namespace ccmulti::supervisor {

inline constexpr const char* node_shim_command = "__node";
inline constexpr int master_death_signal = SIGUSR2;

// main() for the shim; argv as main() got it (the title overwrites it).
int node_shim_main(int argc, char** argv);

}  // namespace ccmulti::supervisor
