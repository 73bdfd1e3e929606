# Puts the YOLO11 pose .espdl model into the build, as configured in menuconfig (see ../Kconfig):
#   source:   the prebuilt model for the target (models/<target>/), the user's own .espdl, or one regenerated from
#             weights with `yolo11-pose build` (only when an input's content or a setting changed);
#   location: embedded in flash rodata (symbol _binary_yolo11_pose_espdl_start), written to a data partition by
#             `idf.py flash`, or left in build/yolo11_pose/ for the SD card.
# Include it from the component's CMakeLists.txt after idf_component_register().
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

# The tools' default for `key`, from their one owner (tools/yolo11_pose/cfg/default.yaml: flat `key: value` lines).
function(_yolo11_pose_default out key)
    set(file "${_YOLO11_POSE_COMPONENT_DIR}/tools/yolo11_pose/cfg/default.yaml")
    if(EXISTS "${file}")
        file(STRINGS "${file}" line REGEX "^${key}:")
    endif()
    if(NOT line MATCHES "^${key}:[ ]*([^ #]+)")
        _yolo11_pose_fail("${file} holds no default for '${key}'; reinstall the component")
    endif()
    set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

# The value of CONFIG_<name>. Empty: with ENV, the environment variable <name> when set (how machine-specific paths
# reach a build: only idf-build-apps expands "${VAR}" inside sdkconfig files, plain idf.py does not), then the
# default for `key` (none when `key` is "").
function(_yolo11_pose_setting out name key)
    set(v "${CONFIG_${name}}")
    if(v STREQUAL "" AND "${ARGN}" STREQUAL "ENV" AND NOT "$ENV{${name}}" STREQUAL "")
        set(v "$ENV{${name}}")
    endif()
    if(v STREQUAL "" AND NOT key STREQUAL "")
        _yolo11_pose_default(v "${key}")
    endif()
    set(${out} "${v}" PARENT_SCOPE)
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

# Rewrites `file` only when its content changes, so that its timestamp means "a setting changed".
function(_yolo11_pose_write_if_changed file content)
    if(EXISTS "${file}")
        file(READ "${file}" old)
        if(old STREQUAL content)
            return()
        endif()
    endif()
    file(WRITE "${file}.tmp" "${content}")
    file(RENAME "${file}.tmp" "${file}")
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

# The files the calibration source stands for (folder, list file or glob, as `yolo11-pose` reads it), so that the
# build reruns when one of them changes. Folders and globs are re-listed on every build (CONFIGURE_DEPENDS).
function(_yolo11_pose_calib_files out_files out_source src project_dir)
    if(src STREQUAL "")
        _yolo11_pose_fail("no calibration images set; set 'Calibration images' (CONFIG_YOLO11_POSE_CALIB) in "
                          "${_YOLO11_POSE_MENU} > Model regeneration, or the environment variable YOLO11_POSE_CALIB, "
                          "to a folder, list file or glob of JPEG/PNG images like those the camera sees")
    endif()
    _yolo11_pose_abspath(path "${src}" "${project_dir}")
    set(deps)
    if(src MATCHES "[*?[]")
        # Python's glob crosses folders only with `**`.
        if(src MATCHES "\\*\\*")
            file(GLOB_RECURSE files CONFIGURE_DEPENDS LIST_DIRECTORIES false "${path}")
        else()
            file(GLOB files CONFIGURE_DEPENDS LIST_DIRECTORIES false "${path}")
        endif()
    elseif(IS_DIRECTORY "${path}")
        file(GLOB files CONFIGURE_DEPENDS LIST_DIRECTORIES false "${path}/*")
        list(FILTER files EXCLUDE REGEX "/\\.[^/]*$")
    elseif(EXISTS "${path}")
        get_filename_component(list_dir "${path}" DIRECTORY)
        file(STRINGS "${path}" lines)
        set(files)
        foreach(line IN LISTS lines)
            string(STRIP "${line}" line)
            if(line STREQUAL "" OR line MATCHES "^#")
                continue()
            endif()
            if(IS_ABSOLUTE "${line}")
                set(cands "${line}")
            else()
                set(cands "${list_dir}/${line}" "${list_dir}/images/${line}")
            endif()
            set(hit "")
            foreach(c IN LISTS cands)
                if(EXISTS "${c}" AND NOT IS_DIRECTORY "${c}")
                    set(hit "${c}")
                    break()
                endif()
            endforeach()
            if(hit STREQUAL "")
                _yolo11_pose_fail("calibration list ${path} names ${line}, which does not exist; fix the list")
            endif()
            list(APPEND files "${hit}")
        endforeach()
        set(deps "${path}")
        # A changed list must re-read its entries.
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${path}")
    else()
        _yolo11_pose_fail("calibration images ${path} do not exist; set CONFIG_YOLO11_POSE_CALIB to a folder, list "
                          "file or glob of JPEG/PNG images")
    endif()
    list(LENGTH files n)
    if(n EQUAL 0)
        _yolo11_pose_fail("calibration source ${path} holds no images; add JPEG/PNG images there")
    endif()
    list(APPEND deps ${files})
    set(${out_files} "${deps}" PARENT_SCOPE)
    set(${out_source} "${path}" PARENT_SCOPE)
    set(_yolo11_pose_calib_count ${n} PARENT_SCOPE)
endfunction()

# Configure-time check that `python` can run `yolo11-pose build`: one clear message with the install command.
function(_yolo11_pose_check_python python tools_dir)
    set(script [=[
import sys
if sys.version_info < (3, 10):
    print("Python >= 3.10 needed, this is %d.%d" % sys.version_info[:2]); sys.exit(5)
try:
    import yolo11_pose.build as b
except ImportError as e:
    print("Python packages missing: %s;" % (e.name or e)); sys.exit(3)
try:
    b.check_ml_stack()
except Exception as e:
    print(e); sys.exit(4)
]=])
    execute_process(COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${tools_dir}" "${python}" -c "${script}"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0)
        return()
    endif()
    set(install "\"${python}\" -m pip install \"${_YOLO11_POSE_COMPONENT_DIR}\"")
    if(out MATCHES "missing: ([^;]+);")
        set(why "Python packages missing: ${CMAKE_MATCH_1}")
    elseif(rc EQUAL 5)
        set(why "${out}")
    elseif(rc MATCHES "^[0-9]+$")
        set(why "the package check failed: ${out} ${err}")
    else()
        set(why "it cannot be run (${rc})")
    endif()
    if("${CONFIG_YOLO11_POSE_PYTHON}" STREQUAL "")
        # ESP-IDF's own interpreter: offer an environment of their own first, rather than ~3 GB of ML packages in
        # the environment ESP-IDF's installer manages.
        set(venv "$ENV{HOME}/yolo11-pose-venv")
        if("$ENV{HOME}" STREQUAL "")
            set(venv "yolo11-pose-venv")
        endif()
        _yolo11_pose_fail("regenerating the model needs PyTorch, Ultralytics and ESP-PPQ, but ESP-IDF's Python "
                          "(${python}) has not: ${why}. Best, give them an environment of their own: python3 -m venv "
                          "\"${venv}\" && \"${venv}/bin/python\" -m pip install \"${_YOLO11_POSE_COMPONENT_DIR}\", "
                          "then set 'Python interpreter' in ${_YOLO11_POSE_MENU} > Model regeneration to "
                          "${venv}/bin/python. Install them with: ${install}  to put them (about 3 GB with PyTorch) "
                          "into ESP-IDF's environment instead; or choose the prebuilt model")
    endif()
    _yolo11_pose_fail("regenerating the model needs PyTorch, Ultralytics and ESP-PPQ in ${python}, but ${why}. "
                      "Install them with: ${install}  (or set 'Python interpreter' in ${_YOLO11_POSE_MENU} > Model "
                      "regeneration to another environment, or choose the prebuilt model)")
endfunction()

# Adds the custom command that runs `yolo11-pose build`; sets ${out_model} (a byproduct, rewritten only when the
# model's bytes change) and ${out_primary} (the stamp that targets depend on).
function(_yolo11_pose_regenerate out_model out_primary work_dir project_dir target)
    # Interpreter: the one configured, else the one ESP-IDF itself runs.
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
    # The component's own copy of the tool, so model and C++ always come from the same version.
    set(tools_dir "${_YOLO11_POSE_COMPONENT_DIR}/tools")
    if(NOT EXISTS "${tools_dir}/yolo11_pose/cli.py")
        _yolo11_pose_fail("${tools_dir}/yolo11_pose is missing; reinstall the component")
    endif()

    # Settings: validated here so that mistakes surface at configure time, not after minutes of building.
    # Unset ones take the tools' defaults (tools/yolo11_pose/cfg/default.yaml).
    _yolo11_pose_setting(imgsz YOLO11_POSE_IMGSZ imgsz)
    _yolo11_pose_default(imgsz_min imgsz_min)
    _yolo11_pose_default(imgsz_max imgsz_max)
    _yolo11_pose_default(imgsz_multiple imgsz_multiple)
    if(NOT imgsz MATCHES "^[0-9]+$")
        set(imgsz 0)
    endif()
    math(EXPR rem "${imgsz} % ${imgsz_multiple}")
    if(imgsz LESS imgsz_min OR imgsz GREATER imgsz_max OR NOT rem EQUAL 0)
        _yolo11_pose_fail("input size ${CONFIG_YOLO11_POSE_IMGSZ} is not a multiple of ${imgsz_multiple} in "
                          "${imgsz_min}..${imgsz_max}; fix CONFIG_YOLO11_POSE_IMGSZ")
    endif()
    _yolo11_pose_setting(bits YOLO11_POSE_BITS bits)
    _yolo11_pose_setting(num_calib YOLO11_POSE_NUM_CALIB num_calib)
    _yolo11_pose_setting(calib_mode YOLO11_POSE_CALIB_MODE calib_mode)

    # Weights: a file (the build depends on its content), or the bare name of an official checkpoint or
    # architecture that Ultralytics fetches itself (the command runs in work_dir, where a download lands).
    # Empty in menuconfig: the environment variable YOLO11_POSE_WEIGHTS, else the default name.
    _yolo11_pose_setting(weights YOLO11_POSE_WEIGHTS weights ENV)
    set(weights_deps)
    _yolo11_pose_abspath(wpath "${weights}" "${project_dir}")
    if(EXISTS "${wpath}" AND NOT IS_DIRECTORY "${wpath}")
        set(weights_arg "${wpath}")
        set(weights_deps "${wpath}")
    elseif(NOT weights MATCHES "[/\\\\]" AND weights MATCHES "^yolo.*\\.(pt|yaml|yml)$")
        # Passed as the bare name even once downloaded, so that the command line stays the same.
        set(weights_arg "${weights}")
        if(EXISTS "${work_dir}/${weights}")
            set(weights_deps "${work_dir}/${weights}")
        else()
            message(STATUS "yolo11_pose: ${weights} is not in the project; Ultralytics will fetch it (needs internet)")
        endif()
    else()
        _yolo11_pose_fail("weights ${wpath} do not exist; set 'Weights' (CONFIG_YOLO11_POSE_WEIGHTS) in "
                          "${_YOLO11_POSE_MENU} > Model regeneration, or leave it empty and set the environment "
                          "variable YOLO11_POSE_WEIGHTS, to your .pt file (absolute or relative to ${project_dir})")
    endif()

    # Empty in menuconfig: the environment variable YOLO11_POSE_CALIB (paths that differ per machine, e.g. in CI).
    _yolo11_pose_setting(calib YOLO11_POSE_CALIB "" ENV)
    _yolo11_pose_calib_files(calib_deps calib_src "${calib}" "${project_dir}")
    if(_yolo11_pose_calib_count LESS num_calib)
        _yolo11_pose_fail("${calib_src} holds ${_yolo11_pose_calib_count} calibration images but "
                          "CONFIG_YOLO11_POSE_NUM_CALIB is ${num_calib}; add images or lower the number")
    endif()

    set(int16_args)
    set(int16_deps)
    if(NOT "${CONFIG_YOLO11_POSE_INT16_LAYERS}" STREQUAL "")
        _yolo11_pose_abspath(lpath "${CONFIG_YOLO11_POSE_INT16_LAYERS}" "${project_dir}")
        if(EXISTS "${lpath}" AND NOT IS_DIRECTORY "${lpath}")
            set(int16_args --int16-layers "${lpath}")
            set(int16_deps "${lpath}")
        else()
            set(int16_args --int16-layers "${CONFIG_YOLO11_POSE_INT16_LAYERS}")
        endif()
    endif()

    set(test_args)
    if(CONFIG_YOLO11_POSE_TEST_VALUES)
        set(test_args --export-test-values)
    endif()

    _yolo11_pose_check_python("${python}" "${tools_dir}")

    set(gen_dir "${work_dir}/build")
    set(model "${work_dir}/yolo11_pose.espdl")
    set(stamp "${work_dir}/regenerate.stamp")
    set(cmd "${CMAKE_COMMAND}" -E env "PYTHONPATH=${tools_dir}" "${python}" -m yolo11_pose.cli build
        --weights "${weights_arg}" --imgsz ${imgsz} --target ${target} --bits ${bits}
        --calib "${calib_src}" --num-calib ${num_calib} --calib-mode ${calib_mode} ${int16_args} ${test_args}
        --out "${gen_dir}")
    # Every setting goes into this file, rewritten only when one changes: the command's only non-file input.
    string(REPLACE ";" "\n" settings "${cmd}")
    _yolo11_pose_write_if_changed("${work_dir}/settings.txt" "${settings}\n")
    file(GLOB tool_sources "${tools_dir}/yolo11_pose/*.py")

    add_custom_command(
        OUTPUT "${stamp}"
        BYPRODUCTS "${model}"
        COMMAND ${cmd}
        # copy_if_different keeps the model's timestamp when the tool found nothing to do (inputs only touched),
        # so the embedding and link steps after it are skipped too.
        COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${gen_dir}/model.espdl" "${model}"
        COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${gen_dir}/manifest.json" "${work_dir}/manifest.json"
        COMMAND "${CMAKE_COMMAND}" -E touch "${stamp}"
        DEPENDS ${weights_deps} ${calib_deps} ${int16_deps} "${work_dir}/settings.txt" ${tool_sources}
        WORKING_DIRECTORY "${work_dir}"
        COMMENT "yolo11_pose: building the ${imgsz}x${imgsz} ${bits}-bit model for ${target} from ${weights}"
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

    # 1. Source.
    if(CONFIG_YOLO11_POSE_MODEL_REGENERATE)
        _yolo11_pose_regenerate(model primary "${work_dir}" "${project_dir}" "${target}")
        set(src_desc "regenerated by yolo11-pose build")
        set(known_size "")
    else()
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

    # 2. Location.
    if(CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_PARTITION)
        set(label "${CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL}")
        if(label STREQUAL "")
            set(label model)
        endif()
        partition_table_get_partition_info(part_size "--partition-name ${label}" "size")
        if("${part_size}" STREQUAL "")
            # Suggest the model's size plus 5 % in 64 KB steps (a regenerated model: the largest shipped one, 5.15 MB).
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
            # Regenerated: its size is known only after the build step; check it before flashing.
            add_custom_command(TARGET yolo11_pose_model POST_BUILD
                COMMAND "${CMAKE_COMMAND}" -D "FILE=${model}" -D "LIMIT=${part_size}" -D "LABEL=${label}"
                        -P "${_YOLO11_POSE_CMAKE_DIR}/yolo11_pose_check_size.cmake"
                VERBATIM)
        endif()
        esptool_py_flash_to_partition(flash "${label}" "${model}")
        if(TARGET flash)
            add_dependencies(flash yolo11_pose_model)
        endif()
        message(STATUS "yolo11_pose: model (${src_desc}) goes to partition '${label}' on idf.py flash")
    elseif(CONFIG_YOLO11_POSE_MODEL_LOCATION_SDCARD)
        message(STATUS "yolo11_pose: model (${src_desc}) left at ${model}; copy it to the SD card as "
                       "${CONFIG_YOLO11_POSE_MODEL_SDCARD_PATH}")
    else()
        _yolo11_pose_embed(${COMPONENT_LIB} "${model}" "${build_dir}")
        message(STATUS "yolo11_pose: model (${src_desc}) embedded in flash rodata")
    endif()
endfunction()

_yolo11_pose_model_setup()
