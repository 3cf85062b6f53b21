# Warnings and sanitizers for every target of the project (not for dependencies).
add_library(ccmulti_flags INTERFACE)
target_compile_options(ccmulti_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                -Wold-style-cast -Wcast-align)
if(CCMULTI_WERROR)
  target_compile_options(ccmulti_flags INTERFACE -Werror)
  # GCC 12 reports std::string copies inlined at -O2 as out of bounds (GCC bug 105329 and kin): keep these
  # visible as warnings, but do not let a compiler false positive fail the build.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(ccmulti_flags INTERFACE -Wno-error=array-bounds -Wno-error=stringop-overflow
                                                    -Wno-error=restrict)
  endif()
endif()

if(CCMULTI_SANITIZE)
  string(REPLACE ";" "," _sanitizers "${CCMULTI_SANITIZE}")
  target_compile_options(ccmulti_flags INTERFACE -fsanitize=${_sanitizers} -fno-omit-frame-pointer
                                                  -fno-sanitize-recover=all)
  target_link_options(ccmulti_flags INTERFACE -fsanitize=${_sanitizers})
endif()
