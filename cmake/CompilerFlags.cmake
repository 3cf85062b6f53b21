# Warnings and sanitizers for every target of the project (not for dependencies).
add_library(ccmulti_flags INTERFACE)
target_compile_options(ccmulti_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                -Wold-style-cast -Wcast-align)
if(CCMULTI_WERROR)
  target_compile_options(ccmulti_flags INTERFACE -Werror)
endif()

if(CCMULTI_SANITIZE)
  string(REPLACE ";" "," _sanitizers "${CCMULTI_SANITIZE}")
  target_compile_options(ccmulti_flags INTERFACE -fsanitize=${_sanitizers} -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=all)
  target_link_options(ccmulti_flags INTERFACE -fsanitize=${_sanitizers})
endif()
