// Private: per-pixel conversions to RGB888 with ESP-DL's exact integer formulas
// (esp-dl vision/image/dl_image_color_common.hpp). Kept in one place so the unit tests can check them directly.
#pragma once

#include <algorithm>
#include <cstdint>

#include "yolo11_pose/image.hpp"

namespace yolo11_pose {
namespace detail {

struct Rgb {
    uint8_t r, g, b;
};

// RGB565 expands by shifting only (low bits stay 0), exactly like ESP-DL's extract_channel*_from_rgb565*.
inline Rgb rgb565_to_rgb(uint16_t x)
{
    return Rgb{static_cast<uint8_t>((x & 0xF800) >> 8), static_cast<uint8_t>((x & 0x07E0) >> 3),
               static_cast<uint8_t>((x & 0x001F) << 3)};
}

// ESP-DL's fixed-point BT.601 full-range YUV -> RGB (14-bit coefficients, round half up, clamp).
inline Rgb yuv_to_rgb(int y, int u, int v)
{
    constexpr int kCb2B = 29049, kCb2G = -5636, kCr2G = -11698, kCr2R = 22987;
    constexpr int kShift = 14, kRound = 1 << (kShift - 1);
    const int u_ = u - 128, v_ = v - 128;
    // >> on a negative int is an arithmetic (floor) shift in C++20, as on the chip.
    return Rgb{static_cast<uint8_t>(std::clamp(y + ((kCr2R * v_ + kRound) >> kShift), 0, 255)),
               static_cast<uint8_t>(std::clamp(y + ((kCb2G * u_ + kCr2G * v_ + kRound) >> kShift), 0, 255)),
               static_cast<uint8_t>(std::clamp(y + ((kCb2B * u_ + kRound) >> kShift), 0, 255))};
}

/// The RGB value of the pixel that starts at `row + off` (off = column * bytes per pixel).
template <PixelFormat F>
inline Rgb fetch_rgb(const uint8_t *row, int off)
{
    const uint8_t *p = row + off;
    if constexpr (F == PixelFormat::RGB888) {
        return Rgb{p[0], p[1], p[2]};
    } else if constexpr (F == PixelFormat::BGR888) {
        return Rgb{p[2], p[1], p[0]};
    } else if constexpr (F == PixelFormat::RGB565LE) {
        return rgb565_to_rgb(static_cast<uint16_t>(p[0] | (p[1] << 8)));
    } else if constexpr (F == PixelFormat::RGB565BE) {
        return rgb565_to_rgb(static_cast<uint16_t>((p[0] << 8) | p[1]));
    } else if constexpr (F == PixelFormat::GRAY8) {
        return Rgb{p[0], p[0], p[0]};
    } else {
        static_assert(F == PixelFormat::YUYV, "unhandled pixel format");
        // Y0 U Y1 V: an even column reads its U/V after it, an odd column shares the pair's U/V (ESP-DL get_yuv).
        if (off & 2) {
            return yuv_to_rgb(p[0], p[-1], p[1]);
        }
        return yuv_to_rgb(p[0], p[1], p[3]);
    }
}

} // namespace detail
} // namespace yolo11_pose
