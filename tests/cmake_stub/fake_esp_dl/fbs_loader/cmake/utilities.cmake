# Stand-in for ESP-DL's fbs_loader/cmake/utilities.cmake: records the call instead of embedding.
function(target_add_aligned_binary_data target embed_file embed_type)
    if(NOT cmake_dir)
        message(FATAL_ERROR "fake esp-dl: the caller must set cmake_dir, as ESP-DL's function reads it")
    endif()
    file(APPEND "${CMAKE_BINARY_DIR}/idf_calls.txt"
         "target_add_aligned_binary_data|${target}|${embed_file}|${embed_type}|${cmake_dir}\n")
endfunction()
