#include <cstring>

#include "yolo11_pose/image.hpp"

namespace yolo11_pose {

const char *status_name(Status s)
{
    switch (s) {
    case Status::Ok:
        return "ok";
    case Status::InvalidArgument:
        return "invalid_argument";
    case Status::NullData:
        return "null_data";
    case Status::UnsupportedFormat:
        return "unsupported_format";
    case Status::BadImageSize:
        return "bad_image_size";
    case Status::CropOutOfBounds:
        return "crop_out_of_bounds";
    case Status::ShapeMismatch:
        return "shape_mismatch";
    case Status::DtypeMismatch:
        return "dtype_mismatch";
    case Status::BufferTooSmall:
        return "buffer_too_small";
    case Status::NotInitialized:
        return "not_initialized";
    case Status::OutOfMemory:
        return "out_of_memory";
    }
    return "unknown";
}

namespace {
struct FormatInfo {
    PixelFormat format;
    const char *name;
    int bytes;
};
constexpr FormatInfo kFormats[] = {
    {PixelFormat::RGB888, "rgb888", 3},     {PixelFormat::BGR888, "bgr888", 3}, {PixelFormat::RGB565LE, "rgb565le", 2},
    {PixelFormat::RGB565BE, "rgb565be", 2}, {PixelFormat::GRAY8, "gray8", 1},   {PixelFormat::YUYV, "yuyv", 2},
};
} // namespace

int pixel_bytes(PixelFormat f)
{
    for (const auto &i : kFormats) {
        if (i.format == f) {
            return i.bytes;
        }
    }
    return 0;
}

const char *pixel_format_name(PixelFormat f)
{
    for (const auto &i : kFormats) {
        if (i.format == f) {
            return i.name;
        }
    }
    return nullptr;
}

bool parse_pixel_format(const char *name, PixelFormat *out)
{
    if (!name || !out) {
        return false;
    }
    for (const auto &i : kFormats) {
        if (std::strcmp(i.name, name) == 0) {
            *out = i.format;
            return true;
        }
    }
    return false;
}

} // namespace yolo11_pose
