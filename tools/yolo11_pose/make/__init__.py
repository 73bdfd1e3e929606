"""Making a model: export to ONNX, quantize with ESP-PPQ (ESP-DL's arithmetic in its simulation), the accuracy
recipes and fine-tuning, the build with its key and manifest, and the helper CMake calls."""
