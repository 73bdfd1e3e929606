// Host stand-in for ESP-DL 3.3.9's image descriptor (esp-dl/vision/image/dl_image_define.hpp: pix_type_t and img_t
// as declared there; the inline helper functions left out).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dl {
namespace image {
typedef enum {
    DL_IMAGE_PIX_TYPE_RGB888 = 0,
    DL_IMAGE_PIX_TYPE_RGB888_QINT8,
    DL_IMAGE_PIX_TYPE_RGB888_QINT16,
    DL_IMAGE_PIX_TYPE_BGR888,
    DL_IMAGE_PIX_TYPE_BGR888_QINT8,
    DL_IMAGE_PIX_TYPE_BGR888_QINT16,
    DL_IMAGE_PIX_TYPE_GRAY,
    DL_IMAGE_PIX_TYPE_GRAY_QINT8,
    DL_IMAGE_PIX_TYPE_GRAY_QINT16,
    DL_IMAGE_PIX_TYPE_RGB565LE,
    DL_IMAGE_PIX_TYPE_RGB565BE,
    DL_IMAGE_PIX_TYPE_BGR565LE,
    DL_IMAGE_PIX_TYPE_BGR565BE,
    DL_IMAGE_PIX_TYPE_HSV,
    DL_IMAGE_PIX_TYPE_HSV_MASK,
    DL_IMAGE_PIX_TYPE_YUYV,
    DL_IMAGE_PIX_TYPE_UYVY,
} pix_type_t;

typedef struct img_s {
    void *data;
    uint16_t width;
    uint16_t height;
    pix_type_t pix_type;

    int channel() const;
    size_t bytes() const;
    bool pix_quant() const;
} img_t;
} // namespace image
} // namespace dl
