# Every dependency is a Debian package (see scripts/install-deps), found by its CMake config or pkg-config.
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS filesystem)   # Boost.Process is header-only but links filesystem
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(simdjson REQUIRED)   # the envelope decoder's fast path (protocol/fast_decode.hpp)
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(RABBITMQ REQUIRED IMPORTED_TARGET librabbitmq)  # rabbitmq-c: the AMQP 0-9-1 transport
find_package(OpenSSL REQUIRED)  # amqps: the trust store, host name and verification error rabbitmq-c's TLS leaves out
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)  # sd_notify: libsystemd.so.0 dlopened when used (platform/systemd_notify)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)  # the dashboard's HTTP server (libcpp-httplib-dev)
if(CCMULTI_TESTS)
  find_package(GTest REQUIRED)
endif()
