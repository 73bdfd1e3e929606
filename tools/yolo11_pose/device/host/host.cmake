# The component's portable core (yolo11_pose_core) and the bridge the Python tools drive (yolo11_pose_host), for the
# host. Included by this folder's CMakeLists.txt (what yolo11_pose.device.cpp builds, installed or not) and by
# tests/host/CMakeLists.txt (which adds the unit tests and the fuzz loop).
#   YOLO11_POSE_COMPONENT_DIR  the component root holding include/ and src/; default: the copy a wheel bundles in
#                              ./component, else the checkout this file sits in
#   YOLO11_POSE_SANITIZE       ASan + UBSan (the tests); off for the tools' release build
if(NOT YOLO11_POSE_COMPONENT_DIR)
    if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/component/include/yolo11_pose")
        set(YOLO11_POSE_COMPONENT_DIR "${CMAKE_CURRENT_LIST_DIR}/component")
    else()
        get_filename_component(YOLO11_POSE_COMPONENT_DIR "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
    endif()
endif()
if(NOT EXISTS "${YOLO11_POSE_COMPONENT_DIR}/include/yolo11_pose/postprocess.hpp")
    message(FATAL_ERROR "yolo11_pose: no C++ sources in ${YOLO11_POSE_COMPONENT_DIR} (set YOLO11_POSE_COMPONENT_DIR)")
endif()

# ESP-IDF's C++ dialect and warning policy; -ffp-contract=off as in the component (no fused multiply-add, so float
# results do not depend on the compiler's contraction choices, nor on the optimization level).
set(YOLO11_POSE_FLAGS -std=gnu++2b -fno-exceptions -fno-rtti -Wall -Wextra -Werror -ffp-contract=off)
set(YOLO11_POSE_LINK_FLAGS)
if(YOLO11_POSE_SANITIZE)
    list(APPEND YOLO11_POSE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    list(APPEND YOLO11_POSE_LINK_FLAGS -fsanitize=address,undefined)
endif()

add_library(yolo11_pose_core STATIC
    "${YOLO11_POSE_COMPONENT_DIR}/src/image.cpp"
    "${YOLO11_POSE_COMPONENT_DIR}/src/preprocess.cpp"
    "${YOLO11_POSE_COMPONENT_DIR}/src/postprocess.cpp")
target_include_directories(yolo11_pose_core PUBLIC "${YOLO11_POSE_COMPONENT_DIR}/include"
                           PRIVATE "${YOLO11_POSE_COMPONENT_DIR}/src")
target_compile_options(yolo11_pose_core PUBLIC ${YOLO11_POSE_FLAGS})
target_link_options(yolo11_pose_core PUBLIC ${YOLO11_POSE_LINK_FLAGS})

add_executable(yolo11_pose_host "${CMAKE_CURRENT_LIST_DIR}/cli.cpp")
target_link_libraries(yolo11_pose_host PRIVATE yolo11_pose_core)
