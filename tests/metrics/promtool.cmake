# Runs promtool with ARGS (arguments separated by |); fails with a clear message when promtool
# is missing.  Usage: cmake -DPROMTOOL=<path or NOTFOUND> -DARGS=a|b -P promtool.cmake
string(REPLACE "|" ";" args "${ARGS}")
set(tool "${PROMTOOL}")
if(NOT tool OR NOT EXISTS "${tool}")
  find_program(found_promtool promtool)  # installed since configuring?
  set(tool "${found_promtool}")
endif()
if(NOT tool)
  message(FATAL_ERROR "promtool not found: install the Debian package 'prometheus' "
                      "(scripts/install-deps does), then re-run the tests")
endif()
execute_process(COMMAND ${tool} ${args} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "promtool ${args} failed (${rc})")
endif()
