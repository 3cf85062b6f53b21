// Process titles, so `ps`, `pgrep -f` and ccmulti itself recognise its processes without any file:
//   ccmulti: master [w1@host w2@host]      ccmulti: node w1@host -Q high,low
// The title overwrites the argv area in place (extended over the environment strings, which are copied
// elsewhere first, as PostgreSQL and nginx do), and PR_SET_NAME sets the 15-char comm for `top` and `pgrep`.
#pragma once

#include <string>

namespace ccmulti {

// Call first in main(), before anything reads `environ` or keeps pointers into argv: it records the
// writable area and moves the environment strings out of it.
void init_proc_title(int argc, char** argv);

// Sets the title (truncated to the area recorded by init_proc_title; a no-op before it) and the comm.
void set_proc_title(const std::string& title, const std::string& comm);

// Room for a title, in bytes (without the final NUL). 0 before init_proc_title.
std::size_t proc_title_capacity();

}  // namespace ccmulti
