#include "platform/proc_title.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

namespace ccmulti {

namespace {

char* area_begin = nullptr;
std::size_t area_size = 0;

}  // namespace

void init_proc_title(int argc, char** argv) {
    if (argc < 1 || !argv || !argv[0]) return;
    char* end = argv[0] + std::strlen(argv[0]) + 1;
    for (int i = 1; i < argc; ++i)
        if (argv[i] == end) end = argv[i] + std::strlen(argv[i]) + 1;
    // The environment strings usually follow argv; take them too, after giving `environ` its own copy.
    std::size_t count = 0;
    while (environ && environ[count]) ++count;
    bool contiguous = count > 0 && environ[0] == end;
    if (contiguous) {
        char** copy = new char*[count + 1];  // lives as long as the process, as environ must
        for (std::size_t i = 0; i < count; ++i) {
            if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
            copy[i] = ::strdup(environ[i]);
        }
        copy[count] = nullptr;
        environ = copy;
    }
    area_begin = argv[0];
    area_size = static_cast<std::size_t>(end - argv[0]);
}

void set_proc_title(const std::string& title, const std::string& comm) {
    if (!comm.empty()) ::prctl(PR_SET_NAME, comm.substr(0, 15).c_str(), 0, 0, 0);
    if (!area_begin || area_size < 2) return;
    std::size_t n = std::min(title.size(), area_size - 1);
    std::memset(area_begin, 0, area_size);
    std::memcpy(area_begin, title.data(), n);
}

std::size_t proc_title_capacity() {
    return area_size ? area_size - 1 : 0;
}

}  // namespace ccmulti
