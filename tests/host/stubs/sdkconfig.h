// Host stand-in: the Kconfig values the adapter reads (see the component's Kconfig for the real ones).
#pragma once
#define CONFIG_IDF_TARGET_ESP32P4 1
#define CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_RODATA 1
#define CONFIG_YOLO11_POSE_SCORE_THRESHOLD 250
#define CONFIG_YOLO11_POSE_NMS_THRESHOLD 700
#define CONFIG_YOLO11_POSE_KPT_THRESHOLD 500
#define CONFIG_YOLO11_POSE_MAX_DETECTIONS 20
