#include <cmath>
#include <cstdlib>
#include <cstring>

#include "pixel_convert.hpp"
#include "yolo11_pose/preprocess.hpp"

namespace yolo11_pose {

namespace {
constexpr int kMaxDim = 1 << 15; // ESP-DL images are uint16 sized; also keeps every byte offset inside int

bool valid_format(PixelFormat f)
{
    return pixel_bytes(f) > 0;
}
} // namespace

Status letterbox_geometry(int src_w, int src_h, int dst_w, int dst_h, const Rect *crop, bool letterbox,
                          Letterbox *out)
{
    if (!out) {
        return Status::InvalidArgument;
    }
    if (src_w <= 0 || src_h <= 0 || src_w >= kMaxDim || src_h >= kMaxDim) {
        return Status::BadImageSize;
    }
    if (dst_w <= 0 || dst_h <= 0 || dst_w >= kMaxDim || dst_h >= kMaxDim) {
        return Status::InvalidArgument;
    }
    Letterbox lb{};
    lb.src_w = src_w;
    lb.src_h = src_h;
    lb.dst_w = dst_w;
    lb.dst_h = dst_h;
    if (crop) {
        if (crop->x0 < 0 || crop->y0 < 0 || crop->x0 >= crop->x1 || crop->y0 >= crop->y1 || crop->x1 > src_w ||
            crop->y1 > src_h) {
            return Status::CropOutOfBounds;
        }
        lb.has_crop = true;
        lb.crop = *crop;
    } else {
        lb.crop = Rect{0, 0, src_w, src_h};
    }
    const int w = lb.crop.width(), h = lb.crop.height();
    if (letterbox) {
        // Same float32 expressions as ESP-DL's ImagePreprocessor::preprocess.
        const float scale_x = (float)dst_w / (float)w;
        const float scale_y = (float)dst_h / (float)h;
        const float scale = scale_x < scale_y ? scale_x : scale_y;
        if (scale_x < scale_y) {
            const int pad = dst_h - (int)(scale * (float)h);
            lb.top = pad / 2;
            lb.bottom = pad - lb.top;
        } else {
            const int pad = dst_w - (int)(scale * (float)w);
            lb.left = pad / 2;
            lb.right = pad - lb.left;
        }
    }
    lb.new_w = dst_w - lb.left - lb.right;
    lb.new_h = dst_h - lb.top - lb.bottom;
    if (lb.new_w <= 0 || lb.new_h <= 0) {
        // An extreme aspect ratio leaves no row/column of image: ESP-DL rejects that border too.
        return Status::BadImageSize;
    }
    lb.inv_scale_x = (float)w / (float)lb.new_w;
    lb.inv_scale_y = (float)h / (float)lb.new_h;
    *out = lb;
    return Status::Ok;
}

int quantize_value(float x, float inv_scale, int bits, Rounding rounding)
{
    const float lo = bits == 16 ? -32768.f : -128.f;
    const float hi = bits == 16 ? 32767.f : 127.f;
    const float v = x * inv_scale;
    if (std::isnan(v)) {
        return 0;
    }
    float r;
    if (rounding == Rounding::HalfUp) {
        r = std::floor(v + 0.5f); // float add, as ESP-DL's floorf(value + 0.5) ends up in float
    } else {
        const float f = std::floor(v);
        const float d = v - f; // exact for any float
        if (d > 0.5f) {
            r = f + 1.f;
        } else if (d < 0.5f) {
            r = f;
        } else {
            r = std::fmod(f, 2.f) == 0.f ? f : f + 1.f;
        }
    }
    r = r < lo ? lo : (r > hi ? hi : r); // clamp in float first: converting an out-of-range float to int is UB
    return (int)r;
}

Preprocessor::~Preprocessor()
{
    release();
}

void Preprocessor::release()
{
    std::free(xmap_);
    std::free(ymap_);
    xmap_ = nullptr;
    ymap_ = nullptr;
    ready_ = false;
    maps_valid_ = false;
}

Status Preprocessor::init(const PreprocessConfig &cfg)
{
    release();
    if (cfg.dst_w <= 0 || cfg.dst_h <= 0 || cfg.dst_w >= kMaxDim || cfg.dst_h >= kMaxDim) {
        return Status::InvalidArgument;
    }
    if (cfg.dtype != DType::Int8 && cfg.dtype != DType::Int16) {
        return Status::UnsupportedFormat;
    }
    if (cfg.rounding != Rounding::HalfEven && cfg.rounding != Rounding::HalfUp) {
        return Status::InvalidArgument;
    }
    if (cfg.exponent < -30 || cfg.exponent > 30) {
        return Status::InvalidArgument;
    }
    for (int c = 0; c < 3; c++) {
        if (!std::isfinite(cfg.mean[c]) || !std::isfinite(cfg.std[c]) || cfg.std[c] == 0.f) {
            return Status::InvalidArgument;
        }
    }
    cfg_ = cfg;
    // ESP-DL NormQuant: inv_scale = 2^-exp as float, table entry quantize((v - mean) * (1/std), inv_scale).
    const float inv_scale = cfg.exponent > 0 ? 1.f / (float)(1 << cfg.exponent) : (float)(1 << -cfg.exponent);
    const int bits = cfg.dtype == DType::Int16 ? 16 : 8;
    for (int c = 0; c < 3; c++) {
        const float inv_std = 1.f / cfg.std[c];
        for (int v = 0; v < 256; v++) {
            lut_[c][v] = (int16_t)quantize_value(((float)v - cfg.mean[c]) * inv_std, inv_scale, bits, cfg.rounding);
        }
        pad_q_[c] = lut_[c][cfg.pad[c]];
    }
    xmap_ = static_cast<int *>(std::malloc(sizeof(int) * (size_t)cfg.dst_w));
    ymap_ = static_cast<int *>(std::malloc(sizeof(int) * (size_t)cfg.dst_h));
    if (!xmap_ || !ymap_) {
        release();
        return Status::OutOfMemory;
    }
    ready_ = true;
    return Status::Ok;
}

Status Preprocessor::update_geometry(const ImageView &img, const Rect *crop, int bpp, int stride)
{
    const bool same_crop = crop ? (lb_.has_crop && crop->x0 == lb_.crop.x0 && crop->y0 == lb_.crop.y0 &&
                                   crop->x1 == lb_.crop.x1 && crop->y1 == lb_.crop.y1)
                                : !lb_.has_crop;
    if (maps_valid_ && same_crop && img.width == lb_.src_w && img.height == lb_.src_h && stride == map_stride_ &&
        bpp == map_bpp_) {
        return Status::Ok;
    }
    maps_valid_ = false;
    Letterbox lb;
    Status st = letterbox_geometry(img.width, img.height, cfg_.dst_w, cfg_.dst_h, crop, cfg_.letterbox, &lb);
    if (st != Status::Ok) {
        return st;
    }
    // ESP-DL's gen_xy_map: min(int(i * float32(src/new)) + crop0, crop1 - 1), stored as byte offsets.
    for (int i = 0; i < lb.new_w; i++) {
        const int x = std::min((int)((float)i * lb.inv_scale_x) + lb.crop.x0, lb.crop.x1 - 1);
        xmap_[i] = x * bpp;
    }
    for (int i = 0; i < lb.new_h; i++) {
        const int y = std::min((int)((float)i * lb.inv_scale_y) + lb.crop.y0, lb.crop.y1 - 1);
        ymap_[i] = y * stride;
    }
    lb_ = lb;
    map_stride_ = stride;
    map_bpp_ = bpp;
    maps_valid_ = true;
    return Status::Ok;
}

namespace {

template <typename T>
inline void fill_pad(T *dst, int pixels, const int16_t pad[3])
{
    for (int i = 0; i < pixels; i++, dst += 3) {
        dst[0] = (T)pad[0];
        dst[1] = (T)pad[1];
        dst[2] = (T)pad[2];
    }
}

template <PixelFormat F, typename T>
void resize_rows(const uint8_t *src, const int *xmap, const int *ymap, const Letterbox &lb, const int16_t (*lut)[256],
                 const int16_t pad[3], T *dst)
{
    fill_pad(dst, lb.top * lb.dst_w, pad);
    dst += (size_t)lb.top * lb.dst_w * 3;
    for (int i = 0; i < lb.new_h; i++) {
        fill_pad(dst, lb.left, pad);
        dst += lb.left * 3;
        const uint8_t *row = src + ymap[i];
        for (int j = 0; j < lb.new_w; j++, dst += 3) {
            const detail::Rgb p = detail::fetch_rgb<F>(row, xmap[j]);
            dst[0] = (T)lut[0][p.r];
            dst[1] = (T)lut[1][p.g];
            dst[2] = (T)lut[2][p.b];
        }
        fill_pad(dst, lb.right, pad);
        dst += lb.right * 3;
    }
    fill_pad(dst, lb.bottom * lb.dst_w, pad);
}

template <typename T>
void dispatch(PixelFormat f, const uint8_t *src, const int *xmap, const int *ymap, const Letterbox &lb,
              const int16_t (*lut)[256], const int16_t pad[3], T *dst)
{
    switch (f) {
    case PixelFormat::RGB888:
        return resize_rows<PixelFormat::RGB888>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::BGR888:
        return resize_rows<PixelFormat::BGR888>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::RGB565LE:
        return resize_rows<PixelFormat::RGB565LE>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::RGB565BE:
        return resize_rows<PixelFormat::RGB565BE>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::GRAY8:
        return resize_rows<PixelFormat::GRAY8>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::YUYV:
        return resize_rows<PixelFormat::YUYV>(src, xmap, ymap, lb, lut, pad, dst);
    case PixelFormat::Count:
        break;
    }
}

} // namespace

Status Preprocessor::run(const ImageView &img, const Rect *crop, void *dst, size_t dst_bytes)
{
    if (!ready_) {
        return Status::NotInitialized;
    }
    if (!img.data || !dst) {
        return Status::NullData;
    }
    if (!valid_format(img.format)) {
        return Status::UnsupportedFormat;
    }
    if (img.width <= 0 || img.height <= 0 || img.width >= kMaxDim || img.height >= kMaxDim) {
        return Status::BadImageSize;
    }
    const int bpp = pixel_bytes(img.format);
    if (img.format == PixelFormat::YUYV && (img.width & 1)) {
        return Status::BadImageSize; // a YUYV row is made of pixel pairs
    }
    const long long packed = (long long)img.width * bpp;
    if (img.stride < 0 || (img.stride != 0 && img.stride < packed) || (long long)img.stride * img.height >= (1LL << 31)) {
        return Status::BadImageSize;
    }
    const int stride = img.stride ? img.stride : (int)packed;
    if (packed * img.height >= (1LL << 31)) {
        return Status::BadImageSize;
    }
    if (dst_bytes < output_bytes()) {
        return Status::BufferTooSmall;
    }
    if (cfg_.dtype == DType::Int16 && (reinterpret_cast<uintptr_t>(dst) % alignof(int16_t)) != 0) {
        return Status::InvalidArgument;
    }
    Status st = update_geometry(img, crop, bpp, stride);
    if (st != Status::Ok) {
        return st;
    }
    if (cfg_.dtype == DType::Int8) {
        dispatch(img.format, img.data, xmap_, ymap_, lb_, lut_, pad_q_, static_cast<int8_t *>(dst));
    } else {
        dispatch(img.format, img.data, xmap_, ymap_, lb_, lut_, pad_q_, static_cast<int16_t *>(dst));
    }
    return Status::Ok;
}

} // namespace yolo11_pose
