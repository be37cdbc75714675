# cmake -DSOURCE_DIR=... -DBINARY_DIR=... [-DEXTRA_FLAGS=...] -P run.cmake
# EXTRA_FLAGS: the sanitizer flags the library was built with, which its
# consumer must compile and link with too.
string(REPLACE ";" " " extra "${EXTRA_FLAGS}")
set(prefix ${BINARY_DIR}/consumer-prefix)
set(build ${BINARY_DIR}/consumer-build)
file(REMOVE_RECURSE ${prefix} ${build})
foreach(step
    "${CMAKE_COMMAND};--install;${BINARY_DIR};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR}/tests/consumer;-B;${build};-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_CXX_FLAGS=${extra}"
    "${CMAKE_COMMAND};--build;${build}"
    "${build}/consumer"
    "sh;-c;export PKG_CONFIG_PATH=${prefix}/lib/pkgconfig && c++ ${extra} ${SOURCE_DIR}/tests/consumer/main.cpp -o ${build}/consumer-pc $(pkg-config --cflags --libs pgelect)"
    "${build}/consumer-pc")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer step failed (${rc}): ${step}")
  endif()
endforeach()
