# Generates the man page ccmulti.1 from the program's own help, so nothing is written twice: help2man turns
# `ccmulti --help` and `--version` into the page; this script adds a COMMANDS section with every subcommand's
# `--help` (nested ones too: `config check`), an EXIT STATUS section from docs/exit-codes.md, and the static
# sections of docs/man/ccmulti.h2m (files, environment, see also).
#
#   cmake -DCCMULTI=path/to/ccmulti -DHELP2MAN=help2man -DSOURCE_DIR=repo -DOUT=ccmulti.1 -P cmake/ManPage.cmake
cmake_minimum_required(VERSION 3.22)

function(help_of out)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env NO_COLOR=1 COLUMNS=80 ${CCMULTI} ${ARGN} --help
                  OUTPUT_VARIABLE text RESULT_VARIABLE code)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "ccmulti ${ARGN} --help exited ${code}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The subcommand names listed under "Subcommands:" in a help text.
function(subcommands_of text out)
  string(REGEX REPLACE ".*\nSubcommands:\n" "" tail "${text}")
  if(tail STREQUAL text)
    set(${out} "" PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n" ";" lines "${tail}")
  set(names "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^  ([a-z][a-z0-9_-]*)( |$)")
      list(APPEND names "${CMAKE_MATCH_1}")
    elseif(NOT line MATCHES "^ ")
      break()
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

# Help text as a preformatted roff block: backslashes escaped, no line read as a request.
function(roff_block text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} ".nf\n${text}\n.fi\n" PARENT_SCOPE)
endfunction()

set(include "[COMMANDS]\nEvery subcommand takes \\fB--help\\fR; this is what each prints.\n")
help_of(top)
subcommands_of("${top}" commands)
foreach(command IN LISTS commands)
  help_of(text ${command})
  roff_block("${text}" block)
  string(APPEND include ".SS \"ccmulti ${command}\"\n${block}")
  subcommands_of("${text}" nested)
  foreach(sub IN LISTS nested)
    help_of(text ${command} ${sub})
    roff_block("${text}" block)
    string(APPEND include ".SS \"ccmulti ${command} ${sub}\"\n${block}")
  endforeach()
endforeach()

# EXIT STATUS from the table of docs/exit-codes.md: "| 0 | meaning | examples |".
file(STRINGS "${SOURCE_DIR}/docs/exit-codes.md" rows REGEX "^\\| [0-9]+ \\|")
string(APPEND include "[EXIT STATUS]\n")
foreach(row IN LISTS rows)
  if(row MATCHES "^\\| ([0-9]+) \\| ([^|]*) \\|")
    string(STRIP "${CMAKE_MATCH_2}" meaning)
    string(REPLACE "`" "" meaning "${meaning}")
    string(APPEND include ".TP\n.B ${CMAKE_MATCH_1}\n${meaning}\n")
  endif()
endforeach()

get_filename_component(out_dir "${OUT}" DIRECTORY)
file(WRITE "${out_dir}/ccmulti-commands.h2m" "${include}")
execute_process(
  COMMAND ${HELP2MAN} --no-info --section=1 --source=ccmulti
          "--name=start, stop and watch task-queue worker nodes (celery multi, done right)"
          --include=${out_dir}/ccmulti-commands.h2m --include=${SOURCE_DIR}/docs/man/ccmulti.h2m
          --output=${OUT} ${CCMULTI}
  RESULT_VARIABLE code ERROR_VARIABLE error)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "help2man failed (${code}): ${error}")
endif()
