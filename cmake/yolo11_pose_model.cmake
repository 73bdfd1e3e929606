# Puts the YOLO11 pose .espdl model into the build, as configured in menuconfig (see ../Kconfig):
#   source:   the prebuilt model for the target (models/<target>/), the user's own .espdl, or one regenerated from
#             weights with `yolo11-pose build` (only when an input's content or a setting changed);
#   location: embedded in flash rodata (symbol _binary_yolo11_pose_espdl_start), written to a data partition by
#             `idf.py flash`, or left in build/yolo11_pose/ for the SD card.
# Include it from the component's CMakeLists.txt after idf_component_register().
#
# Regeneration's settings, checks and messages live in the Python tool (tools/yolo11_pose/make/cmake_helper.py, from the
# settings definitions in tools/yolo11_pose/cfg/); this file only passes menuconfig's values on.
#
# ESP-IDF functions used: idf_build_get_property, idf_component_get_property, esptool_py_flash_to_partition,
# partition_table_get_partition_info, and ESP-DL's target_add_aligned_binary_data (own fallback when absent).

# ESP-IDF's requirement scan runs component CMakeLists in script mode; there is nothing to do then.
if(CMAKE_BUILD_EARLY_EXPANSION)
    return()
endif()

set(_YOLO11_POSE_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(_YOLO11_POSE_COMPONENT_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(_YOLO11_POSE_PREBUILT_TARGETS esp32p4 esp32s3)
set(_YOLO11_POSE_MENU "menuconfig > Component config > YOLO11 pose estimation")

# Joins its arguments (long messages are split over several string arguments). Each is read as ${ARGV<i>}:
# ${ARGN} is a list, and expanding it would drop the semicolons inside the message text.
function(_yolo11_pose_fail)
    set(msg "")
    math(EXPR last "${ARGC} - 1")
    foreach(i RANGE ${last})
        string(APPEND msg "${ARGV${i}}")
    endforeach()
    message(FATAL_ERROR "yolo11_pose: ${msg}")
endfunction()

# Absolute path of `path`, relative ones taken from `base` (the project directory, as menuconfig says).
function(_yolo11_pose_abspath out path base)
    if(IS_ABSOLUTE "${path}")
        get_filename_component(p "${path}" ABSOLUTE)
    else()
        get_filename_component(p "${path}" ABSOLUTE BASE_DIR "${base}")
    endif()
    set(${out} "${p}" PARENT_SCOPE)
endfunction()

function(_yolo11_pose_check_espdl file what)
    if(NOT EXISTS "${file}" OR IS_DIRECTORY "${file}")
        _yolo11_pose_fail("${what} ${file} does not exist; fix the path in ${_YOLO11_POSE_MENU}")
    endif()
    file(READ "${file}" magic LIMIT 4 HEX)
    if(NOT magic STREQUAL "45444c32")  # "EDL2"
        _yolo11_pose_fail("${what} ${file} is not an ESP-DL model (no EDL2 header); give an .espdl file made by "
                          "`yolo11-pose build` or ESP-PPQ")
    endif()
endfunction()

# The interpreter that regenerates the model: the one configured, else the one ESP-IDF itself runs.
function(_yolo11_pose_python out)
    set(python "${CONFIG_YOLO11_POSE_PYTHON}")
    if(python STREQUAL "")
        idf_build_get_property(python PYTHON)
    endif()
    if(python STREQUAL "")
        _yolo11_pose_fail("no Python interpreter known; set 'Python interpreter' in ${_YOLO11_POSE_MENU} > Model "
                          "regeneration")
    endif()
    if(NOT IS_ABSOLUTE "${python}")
        string(MAKE_C_IDENTIFIER "${python}" id)  # one cache entry per name: a changed setting searches anew
        find_program(_YOLO11_POSE_PYTHON_${id} NAMES "${python}")
        set(found "${_YOLO11_POSE_PYTHON_${id}}")
        if(NOT found)
            _yolo11_pose_fail("Python interpreter '${python}' not found on PATH; set 'Python interpreter' in "
                              "${_YOLO11_POSE_MENU} > Model regeneration to its full path")
        endif()
        set(python "${found}")
    elseif(NOT EXISTS "${python}")
        _yolo11_pose_fail("Python interpreter ${python} does not exist; fix 'Python interpreter' in "
                          "${_YOLO11_POSE_MENU} > Model regeneration")
    endif()
    set(${out} "${python}" PARENT_SCOPE)
endfunction()

# Adds the custom command that runs `yolo11-pose build`; sets ${out_model} (a byproduct, rewritten only when the
# model's bytes change) and ${out_primary} (the stamp that targets depend on). The settings are checked, and the
# command, its inputs and settings.txt (every setting: the command's only non-file input) are written, by
# `python -m yolo11_pose.make.cmake_helper regenerate` at configure time (tools/yolo11_pose/make/cmake_helper.py), so that
# mistakes surface now, not after minutes of building.
function(_yolo11_pose_regenerate out_model out_primary work_dir project_dir target)
    _yolo11_pose_python(python)
    # The component's own copy of the tool, so model and C++ always come from the same version.
    set(tools_dir "${_YOLO11_POSE_COMPONENT_DIR}/tools")
    if(NOT EXISTS "${tools_dir}/yolo11_pose/cli.py")
        _yolo11_pose_fail("${tools_dir}/yolo11_pose is missing; reinstall the component")
    endif()
    get_cmake_property(variables VARIABLES)
    set(config)
    foreach(v IN LISTS variables)
        if(v MATCHES "^CONFIG_YOLO11_POSE_")
            list(APPEND config "${v}=${${v}}")
        endif()
    endforeach()
    set(configured)
    if(NOT "${CONFIG_YOLO11_POSE_PYTHON}" STREQUAL "")
        set(configured --python-configured)
    endif()
    execute_process(COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${tools_dir}" "${python}" -m yolo11_pose.make.cmake_helper
                            regenerate --work-dir "${work_dir}" --project-dir "${project_dir}" --target "${target}"
                            --python "${python}" --component-dir "${_YOLO11_POSE_COMPONENT_DIR}" ${configured} ${config}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 2)
        _yolo11_pose_fail("${out}")
    elseif(NOT rc EQUAL 0)
        _yolo11_pose_fail("${python} cannot run the settings check (python -m yolo11_pose.make.cmake_helper): ${rc} ${out} "
                          "${err}")
    endif()
    # Sets _yolo11_pose_command, _yolo11_pose_depends and _yolo11_pose_comment; re-lists calibration folders.
    include("${work_dir}/regenerate.cmake")
    file(GLOB tool_sources LIST_DIRECTORIES false "${tools_dir}/yolo11_pose/*.py" "${tools_dir}/yolo11_pose/cfg/*.*")

    set(model "${work_dir}/yolo11_pose.espdl")
    set(stamp "${work_dir}/regenerate.stamp")
    add_custom_command(
        OUTPUT "${stamp}"
        BYPRODUCTS "${model}"
        COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${tools_dir}" ${_yolo11_pose_command}
        # copy_if_different keeps the model's timestamp when the tool found nothing to do (inputs only touched),
        # so the embedding and link steps after it are skipped too.
        COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${work_dir}/build/model.espdl" "${model}"
        COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${work_dir}/build/manifest.json" "${work_dir}/manifest.json"
        COMMAND "${CMAKE_COMMAND}" -E touch "${stamp}"
        DEPENDS ${_yolo11_pose_depends} "${work_dir}/settings.txt" ${tool_sources}
        WORKING_DIRECTORY "${work_dir}"
        COMMENT "${_yolo11_pose_comment}"
        USES_TERMINAL
        VERBATIM)
    set(${out_model} "${model}" PARENT_SCOPE)
    set(${out_primary} "${stamp}" PARENT_SCOPE)
endfunction()

# Flash rodata: ESP-DL's target_add_aligned_binary_data (16-byte aligned, symbol from the file name) when ESP-DL's
# CMake helpers are found, else an equivalent .incbin-based object.
function(_yolo11_pose_embed lib model build_dir)
    set(espdl_dir "")
    idf_build_get_property(component_targets __COMPONENT_TARGETS)
    foreach(name espressif__esp-dl esp-dl)
        if("___idf_${name}" IN_LIST component_targets)
            idf_component_get_property(espdl_dir ${name} COMPONENT_DIR)
            break()
        endif()
    endforeach()
    if(NOT espdl_dir STREQUAL "" AND EXISTS "${espdl_dir}/fbs_loader/cmake/utilities.cmake")
        # ESP-DL's function reads `cmake_dir` from its caller's scope.
        set(cmake_dir "${espdl_dir}/fbs_loader/cmake")
        if(NOT COMMAND target_add_aligned_binary_data)
            include("${cmake_dir}/utilities.cmake")
        endif()
        target_add_aligned_binary_data(${lib} "${model}" BINARY)
        return()
    endif()
    get_filename_component(name "${model}" NAME)
    string(MAKE_C_IDENTIFIER "${name}" sym)
    set(asm "${build_dir}/yolo11_pose/${name}.S")
    file(CONFIGURE OUTPUT "${asm}" CONTENT [=[
/* @name@ embedded by yolo11_pose_model.cmake: 16-byte aligned, as ESP-DL's loader requires. */
#if defined(__linux__)
    .section .note.GNU-stack, "", %progbits
    .section .rodata
#elif defined(__APPLE__)
    .section __TEXT,__const
#else
    .section .rodata.embedded
#endif
    .balign 16
    .global @sym@
    .global _binary_@sym@_start
    .global _binary_@sym@_end
    .global @sym@_length
@sym@:
_binary_@sym@_start:
    .incbin "@model@"
_binary_@sym@_end:
    .balign 4
@sym@_length:
    .long _binary_@sym@_end - _binary_@sym@_start
]=] @ONLY)
    # The assembler reads the model through .incbin, which compiler dependency files do not record.
    set_source_files_properties("${asm}" PROPERTIES OBJECT_DEPENDS "${model}" LANGUAGE ASM)
    target_sources(${lib} PRIVATE "${asm}")
endfunction()

# The model the build takes when it is not regenerated: the user's own .espdl, or the prebuilt one for the target.
function(_yolo11_pose_choose out_src project_dir target)
    if(CONFIG_YOLO11_POSE_MODEL_CUSTOM_FILE)
        _yolo11_pose_abspath(src "${CONFIG_YOLO11_POSE_MODEL_FILE}" "${project_dir}")
        _yolo11_pose_check_espdl("${src}" "model file (CONFIG_YOLO11_POSE_MODEL_FILE)")
    else()
        if(NOT target IN_LIST _YOLO11_POSE_PREBUILT_TARGETS)
            _yolo11_pose_fail("no prebuilt model for ${target} (only esp32p4, esp32s3); choose 'My own .espdl "
                              "file' or 'Build it from weights' in ${_YOLO11_POSE_MENU} > Model")
        endif()
        set(imgsz "${CONFIG_YOLO11_POSE_PREBUILT_IMGSZ}")
        if(imgsz STREQUAL "")
            set(imgsz 640)
        endif()
        set(src "${_YOLO11_POSE_COMPONENT_DIR}/models/${target}/yolo11n-pose-${imgsz}-int8.espdl")
        _yolo11_pose_check_espdl("${src}" "prebuilt model")
    endif()
    set(${out_src} "${src}" PARENT_SCOPE)
endfunction()

# `idf.py flash` writes the model to the data partition labelled CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL, which must
# exist and hold it (`known_size`; empty for a regenerated model, whose size is checked after its build step).
function(_yolo11_pose_flash_partition model known_size)
    set(label "${CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL}")
    if(label STREQUAL "")
        set(label model)
    endif()
    partition_table_get_partition_info(part_size "--partition-name ${label}" "size")
    if("${part_size}" STREQUAL "")
        # Suggest the model's size plus 5 % in 64 KB steps (a regenerated model: the largest shipped one, 4.67 MB).
        set(suggest 5440K)
        if(NOT known_size STREQUAL "")
            math(EXPR suggest "(${known_size} * 105 / 100 + 65535) / 65536 * 64")
            set(suggest "${suggest}K")
        endif()
        _yolo11_pose_fail("the partition table has no partition labelled '${label}'; add one (e.g. "
                          "`${label}, data, spiffs, , ${suggest},` in partitions.csv, the model and 5 %) or "
                          "fix CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL")
    endif()
    math(EXPR part_size "${part_size}")
    if(NOT known_size STREQUAL "" AND known_size GREATER part_size)
        _yolo11_pose_fail("the model (${known_size} bytes) does not fit partition '${label}' (${part_size} "
                          "bytes); enlarge the partition")
    endif()
    if(known_size STREQUAL "")
        add_custom_command(TARGET yolo11_pose_model POST_BUILD
            COMMAND "${CMAKE_COMMAND}" -D "FILE=${model}" -D "LIMIT=${part_size}" -D "LABEL=${label}"
                    -P "${_YOLO11_POSE_CMAKE_DIR}/yolo11_pose_check_size.cmake"
            VERBATIM)
    endif()
    esptool_py_flash_to_partition(flash "${label}" "${model}")
    if(TARGET flash)
        add_dependencies(flash yolo11_pose_model)
    endif()
    set(_yolo11_pose_label "${label}" PARENT_SCOPE)
endfunction()

# Choose the model -> (regenerate it) -> check it -> embed it or flash it.
function(_yolo11_pose_model_setup)
    idf_build_get_property(build_dir BUILD_DIR)
    idf_build_get_property(project_dir PROJECT_DIR)
    idf_build_get_property(target IDF_TARGET)
    if(target STREQUAL "linux")
        # ESP-DL does not run on ESP-IDF's linux target: host builds test the pre/postprocessing only.
        message(STATUS "yolo11_pose: no model for the linux target (ESP-DL runs on esp32p4/esp32s3 only)")
        return()
    endif()
    set(work_dir "${build_dir}/yolo11_pose")
    file(MAKE_DIRECTORY "${work_dir}")

    # 1. Source: regenerated from weights, or a file (checked: an .espdl that exists).
    if(CONFIG_YOLO11_POSE_MODEL_REGENERATE)
        _yolo11_pose_regenerate(model primary "${work_dir}" "${project_dir}" "${target}")
        set(src_desc "regenerated by yolo11-pose build")
        set(known_size "")
    else()
        _yolo11_pose_choose(src "${project_dir}" "${target}")
        set(model "${work_dir}/yolo11_pose.espdl")
        set(primary "${model}")
        file(SIZE "${src}" known_size)
        set(src_desc "${src}")
        add_custom_command(
            OUTPUT "${model}"
            COMMAND "${CMAKE_COMMAND}" -E copy "${src}" "${model}"
            DEPENDS "${src}"
            COMMENT "yolo11_pose: using ${src}"
            VERBATIM)
    endif()
    add_custom_target(yolo11_pose_model ALL DEPENDS "${primary}")

    # 2. Location: a flash partition, the SD card, or flash rodata.
    if(CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_PARTITION)
        _yolo11_pose_flash_partition("${model}" "${known_size}")
        message(STATUS "yolo11_pose: model (${src_desc}) goes to partition '${_yolo11_pose_label}' on idf.py flash")
    elseif(CONFIG_YOLO11_POSE_MODEL_LOCATION_SDCARD)
        message(STATUS "yolo11_pose: model (${src_desc}) left at ${model}; copy it to the SD card as "
                       "${CONFIG_YOLO11_POSE_MODEL_SDCARD_PATH}")
    else()
        _yolo11_pose_embed(${COMPONENT_LIB} "${model}" "${build_dir}")
        message(STATUS "yolo11_pose: model (${src_desc}) embedded in flash rodata")
    endif()
endfunction()

_yolo11_pose_model_setup()
