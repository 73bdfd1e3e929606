"""YOLO11/YOLOv8 pose models for ESP-DL on ESP32-P4 and ESP32-S3: export, quantize, inspect, simulate, evaluate."""
__version__ = "0.1.0"  # a literal, read statically by setuptools; tests/test_defaults.py checks it = cfg/default.yaml
