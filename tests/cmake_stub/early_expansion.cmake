# Script-mode stand-in for ESP-IDF's requirement expansion (tools/cmake/scripts/component_get_requirements.cmake),
# which includes every component's CMakeLists.txt with CMAKE_BUILD_EARLY_EXPANSION set, before it resolves any
# requirement. The component is named after its folder, as ESP-IDF's __component_add does.
#   cmake -D COMPONENT_DIR=<folder> -D IDF_TARGET=esp32p4 -P early_expansion.cmake
# Prints "requires: <REQUIRES>" when the component registers.
get_filename_component(COMPONENT_DIR "${COMPONENT_DIR}" ABSOLUTE)
get_filename_component(COMPONENT_NAME "${COMPONENT_DIR}" NAME)
set(COMPONENT_PATH "${COMPONENT_DIR}")
set(CMAKE_BUILD_EARLY_EXPANSION 1)

macro(idf_component_register)
    cmake_parse_arguments(_ "" "" "SRCS;INCLUDE_DIRS;PRIV_INCLUDE_DIRS;REQUIRES;PRIV_REQUIRES" ${ARGN})
    message(STATUS "requires: ${__REQUIRES}")
    set(__registered 1)
    return()  # as ESP-IDF's: the rest of the component's CMakeLists.txt does not run in this phase
endmacro()

include("${COMPONENT_DIR}/CMakeLists.txt")
if(NOT __registered)
    message(FATAL_ERROR "early_expansion: ${COMPONENT_DIR}/CMakeLists.txt did not call idf_component_register")
endif()
