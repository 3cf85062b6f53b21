# Install-time part of the system integration files (run by `cmake --install` and by cpack): the units, the
# init script and the logrotate config name the binary as /usr/bin/ccmulti (the .deb's path); installed under
# another prefix they get that prefix's path instead. CCMULTI_SOURCE_DIR, CCMULTI_BINARY_DIR and CCMULTI_BINDIR
# come from install(CODE) in CMakeLists.txt; CMAKE_INSTALL_PREFIX is the prefix of this installation.
set(_ccmulti_bin "${CMAKE_INSTALL_PREFIX}/${CCMULTI_BINDIR}/ccmulti")

function(ccmulti_install_configured source destination mode)
  if(NOT IS_ABSOLUTE "${destination}")
    set(destination "${CMAKE_INSTALL_PREFIX}/${destination}")
  endif()
  file(READ "${CCMULTI_SOURCE_DIR}/${source}" text)
  string(REPLACE "/usr/bin/ccmulti" "${_ccmulti_bin}" text "${text}")
  get_filename_component(name "${source}" NAME)
  set(staged "${CCMULTI_BINARY_DIR}/configured/${source}")
  file(WRITE "${staged}" "${text}")
  if(mode STREQUAL "exec")
    set(permissions OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  else()
    set(permissions OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
  file(INSTALL "${staged}" DESTINATION "${destination}" PERMISSIONS ${permissions})
endfunction()

ccmulti_install_configured(systemd/ccmulti.service lib/systemd/system file)
ccmulti_install_configured(systemd/ccmulti@.service lib/systemd/system file)
ccmulti_install_configured(scripts/init.d/ccmulti /etc/init.d exec)
ccmulti_install_configured(etc/logrotate.d/ccmulti /etc/logrotate.d file)
ccmulti_install_configured(etc/default/ccmulti /etc/default file)
