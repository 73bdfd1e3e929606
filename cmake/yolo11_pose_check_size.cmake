# cmake -D FILE=model -D LIMIT=bytes -D LABEL=partition -P yolo11_pose_check_size.cmake
# Fails the build before `idf.py flash` would write a model that does not fit its partition.
file(SIZE "${FILE}" size)
if(size GREATER LIMIT)
    message(FATAL_ERROR "yolo11_pose: the model ${FILE} (${size} bytes) does not fit partition '${LABEL}' "
                        "(${LIMIT} bytes); enlarge the partition in partitions.csv")
endif()
