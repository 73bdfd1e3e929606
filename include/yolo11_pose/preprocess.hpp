// Frame -> quantized model input, bit-exact with ESP-DL's ImagePreprocessor (letterbox, nearest resize, NormQuant).
#pragma once

#include "yolo11_pose/image.hpp"

namespace yolo11_pose {

/// Where the (cropped) source lands in the model input, and how to map model pixels back to source pixels.
struct Letterbox {
    int src_w = 0, src_h = 0; ///< full source image
    int dst_w = 0, dst_h = 0; ///< model input
    int new_w = 0, new_h = 0; ///< size of the resized image inside the border
    int left = 0, top = 0, right = 0, bottom = 0;
    float inv_scale_x = 1.f, inv_scale_y = 1.f; ///< float32(src / new), as ESP-DL's ImageTransformer computes it
    bool has_crop = false;
    Rect crop{}; ///< the source region used; the whole image when has_crop is false
};

/// ESP-DL's letterbox geometry (float32 math): scale = min(dst/src), the limiting axis is padded with
/// pad = dst - int(scale * src), pad/2 before and the rest after. `crop` may be null.
/// `letterbox` false stretches to the full input (ESP-DL's preprocessor without enable_letterbox()).
Status letterbox_geometry(int src_w, int src_h, int dst_w, int dst_h, const Rect *crop, bool letterbox,
                          Letterbox *out);

/// ESP-DL's quantize(): clip(round(x * inv_scale)) with the target's rounding rule; bits is 8 or 16.
int quantize_value(float x, float inv_scale, int bits, Rounding rounding);

struct PreprocessConfig {
    int dst_w = 640; ///< model input width (tensor shape[2])
    int dst_h = 640; ///< model input height (tensor shape[1])
    DType dtype = DType::Int8;
    int exponent = -7; ///< model input exponent: value = q * 2^exponent
    Rounding rounding = Rounding::HalfEven;
    bool letterbox = true;
    uint8_t pad[3] = {114, 114, 114}; ///< border colour (R, G, B) before normalization
    float mean[3] = {0.f, 0.f, 0.f};  ///< per channel, in 0..255 units like ESP-DL
    float std[3] = {255.f, 255.f, 255.f};
};

/// Converts frames into the model's NHWC int8/int16 input. All memory is taken in init(); run() allocates nothing.
/// The index maps are rebuilt only when the source size or crop changes.
class Preprocessor {
public:
    Preprocessor() = default;
    ~Preprocessor();
    Preprocessor(const Preprocessor &) = delete;
    Preprocessor &operator=(const Preprocessor &) = delete;

    Status init(const PreprocessConfig &cfg);
    /// `crop` may be null (whole frame). `dst` must hold output_bytes() bytes, aligned for the dtype.
    Status run(const ImageView &img, const Rect *crop, void *dst, size_t dst_bytes);

    bool ready() const { return ready_; }
    size_t output_bytes() const { return (size_t)cfg_.dst_w * cfg_.dst_h * 3 * dtype_bytes(cfg_.dtype); }
    const PreprocessConfig &config() const { return cfg_; }
    /// Geometry of the last successful run().
    const Letterbox &letterbox() const { return lb_; }
    /// Quantized value the table gives pixel value v on channel ch (0 R, 1 G, 2 B).
    int lut(int ch, int v) const { return lut_[ch][v & 255]; }

private:
    void release();
    Status update_geometry(const ImageView &img, const Rect *crop, int bpp, int stride);

    PreprocessConfig cfg_{};
    int16_t lut_[3][256] = {};
    int16_t pad_q_[3] = {};
    int *xmap_ = nullptr; ///< byte offset in a source row for each output column of the resized area
    int *ymap_ = nullptr; ///< byte offset of the source row for each output row of the resized area
    Letterbox lb_{};
    bool ready_ = false;
    bool maps_valid_ = false;
    int map_stride_ = 0;
    int map_bpp_ = 0;
};

} // namespace yolo11_pose
