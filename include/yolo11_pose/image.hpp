// Portable types shared by the YOLO11-pose pre- and postprocessor (no ESP-IDF or ESP-DL headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace yolo11_pose {

/// Result of every fallible call: the core never throws and never aborts on bad input.
enum class Status : int {
    Ok = 0,
    InvalidArgument,   ///< a size, threshold or option is out of range
    NullData,          ///< an image or tensor has no data pointer
    UnsupportedFormat, ///< pixel format or tensor dtype the core does not handle
    BadImageSize,      ///< zero/negative size, odd YUYV width, stride too small, larger than configured
    CropOutOfBounds,   ///< crop rectangle empty or not inside the image
    ShapeMismatch,     ///< tensor shape differs from what the model input/outputs imply
    DtypeMismatch,     ///< tensor dtype differs from the one bound at init
    BufferTooSmall,    ///< destination buffer smaller than the model input
    NotInitialized,    ///< init() was not called or failed
    OutOfMemory,       ///< init-time allocation failed
};

/// Short, stable name of a status ("ok", "crop_out_of_bounds", ...), for logs and the host CLI.
const char *status_name(Status s);

/// Camera/frame pixel layouts the preprocessor reads.
enum class PixelFormat : uint8_t {
    RGB888 = 0, ///< 3 bytes R, G, B
    BGR888,     ///< 3 bytes B, G, R
    RGB565LE,   ///< 16-bit RGB565 stored little endian (ESP-DL DL_IMAGE_PIX_TYPE_RGB565LE)
    RGB565BE,   ///< 16-bit RGB565 stored big endian (most SPI/DVP cameras' byte order)
    GRAY8,      ///< 1 byte luma, replicated to the model's 3 channels
    YUYV,       ///< YUV 4:2:2 packed Y0 U Y1 V (width must be even)
    Count
};

/// Bytes per pixel of a format (0 for an unknown value).
int pixel_bytes(PixelFormat f);
/// Name as used by the host CLI and the Python tools ("rgb888", "rgb565le", ...); nullptr for unknown values.
const char *pixel_format_name(PixelFormat f);
/// Parse a name from pixel_format_name(); returns false when unknown.
bool parse_pixel_format(const char *name, PixelFormat *out);

/// A read-only view of a frame. `stride` is bytes per row; 0 means tightly packed (width * pixel_bytes).
struct ImageView {
    const uint8_t *data = nullptr;
    int width = 0;
    int height = 0;
    PixelFormat format = PixelFormat::RGB888;
    int stride = 0;
};

/// Rectangle in source pixels, [x0, x1) x [y0, y1) (x1/y1 exclusive, like ESP-DL's crop_area).
struct Rect {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    int width() const { return x1 - x0; }
    int height() const { return y1 - y0; }
};

/// Element type of a quantized tensor: value = q * 2^exponent.
enum class DType : uint8_t { Int8 = 0, Int16 = 1 };

inline int dtype_bytes(DType t)
{
    return t == DType::Int16 ? 2 : 1;
}

/// Rounding used when quantizing: ESP32-P4 rounds half to even, ESP32-S3 half up (floor(x + 0.5)).
enum class Rounding : uint8_t { HalfEven = 0, HalfUp = 1 };

/// A quantized NHWC tensor (N must be 1), as ESP-DL lays out model inputs and outputs.
struct TensorView {
    const void *data = nullptr;
    DType dtype = DType::Int8;
    int exponent = 0;
    int n = 1, h = 0, w = 0, c = 0;
    size_t elements() const { return (size_t)n * (size_t)h * (size_t)w * (size_t)c; }
};

} // namespace yolo11_pose
