// Unit tests of the portable core: ESP-DL formulas on hand-worked values, error codes, and no heap use per frame.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "pixel_convert.hpp"
#include "test_support.hpp"
#include "yolo11_pose/postprocess.hpp"
#include "yolo11_pose/preprocess.hpp"

using namespace yolo11_pose;

// ---- heap accounting: the core's run() must not allocate (malloc is wrapped at link time, new is replaced) ----
static long g_allocs = 0;
extern "C" void *__real_malloc(size_t n);
extern "C" void *__real_calloc(size_t n, size_t m);
extern "C" void *__real_realloc(void *p, size_t n);
extern "C" void *__wrap_malloc(size_t n)
{
    g_allocs++;
    return __real_malloc(n);
}
extern "C" void *__wrap_calloc(size_t n, size_t m)
{
    g_allocs++;
    return __real_calloc(n, m);
}
extern "C" void *__wrap_realloc(void *p, size_t n)
{
    g_allocs++;
    return __real_realloc(p, n);
}
void *operator new(size_t n)
{
    g_allocs++;
    void *p = __real_malloc(n ? n : 1);
    if (!p) {
        std::abort();
    }
    return p;
}
void operator delete(void *p) noexcept
{
    std::free(p);
}
void operator delete(void *p, size_t) noexcept
{
    std::free(p);
}

static void test_names()
{
    for (int f = 0; f < (int)PixelFormat::Count; f++) {
        PixelFormat out;
        CHECK(parse_pixel_format(pixel_format_name((PixelFormat)f), &out));
        CHECK(out == (PixelFormat)f);
    }
    PixelFormat out;
    CHECK(!parse_pixel_format("nv12", &out));
    CHECK(!parse_pixel_format(nullptr, &out));
    CHECK(pixel_bytes((PixelFormat)99) == 0);
    CHECK(std::strcmp(status_name(Status::CropOutOfBounds), "crop_out_of_bounds") == 0);
}

static void test_rounding()
{
    const Rounding E = Rounding::HalfEven, U = Rounding::HalfUp;
    CHECK_EQ(quantize_value(0.5f, 1.f, 8, E), 0);
    CHECK_EQ(quantize_value(1.5f, 1.f, 8, E), 2);
    CHECK_EQ(quantize_value(2.5f, 1.f, 8, E), 2);
    CHECK_EQ(quantize_value(-0.5f, 1.f, 8, E), 0);
    CHECK_EQ(quantize_value(-1.5f, 1.f, 8, E), -2);
    CHECK_EQ(quantize_value(-2.5f, 1.f, 8, E), -2);
    CHECK_EQ(quantize_value(0.5f, 1.f, 8, U), 1);
    CHECK_EQ(quantize_value(2.5f, 1.f, 8, U), 3);
    CHECK_EQ(quantize_value(-0.5f, 1.f, 8, U), 0);
    CHECK_EQ(quantize_value(-1.5f, 1.f, 8, U), -1);
    CHECK_EQ(quantize_value(0.49999997f, 1.f, 8, U), 1); // ESP-DL's floorf(x + 0.5) rounds the sum to float first
    CHECK_EQ(quantize_value(0.49999997f, 1.f, 8, E), 0);
    CHECK_EQ(quantize_value(1000.f, 1.f, 8, E), 127);
    CHECK_EQ(quantize_value(-1000.f, 1.f, 8, U), -128);
    CHECK_EQ(quantize_value(1e30f, 1.f, 16, E), 32767);
    CHECK_EQ(quantize_value(-1e30f, 1.f, 16, E), -32768);
    CHECK_EQ(quantize_value(NAN, 1.f, 8, E), 0);
    CHECK_EQ(quantize_value(1.f, 128.f, 8, E), 127); // 255/255 at exponent -7 saturates
    CHECK_EQ(quantize_value(0.25f, 128.f, 8, E), 32);
}

static void test_colour()
{
    using detail::fetch_rgb;
    const uint8_t red_le[2] = {0x00, 0xF8}, red_be[2] = {0xF8, 0x00};
    const uint8_t green_le[2] = {0xE0, 0x07}, blue_be[2] = {0x00, 0x1F};
    auto p = fetch_rgb<PixelFormat::RGB565LE>(red_le, 0);
    CHECK(p.r == 248 && p.g == 0 && p.b == 0);
    p = fetch_rgb<PixelFormat::RGB565BE>(red_be, 0);
    CHECK(p.r == 248 && p.g == 0 && p.b == 0);
    p = fetch_rgb<PixelFormat::RGB565LE>(green_le, 0);
    CHECK(p.r == 0 && p.g == 252 && p.b == 0);
    p = fetch_rgb<PixelFormat::RGB565BE>(blue_be, 0);
    CHECK(p.r == 0 && p.g == 0 && p.b == 248);
    const uint8_t bgr[3] = {1, 2, 3};
    p = fetch_rgb<PixelFormat::BGR888>(bgr, 0);
    CHECK(p.r == 3 && p.g == 2 && p.b == 1);
    const uint8_t gray[1] = {77};
    p = fetch_rgb<PixelFormat::GRAY8>(gray, 0);
    CHECK(p.r == 77 && p.g == 77 && p.b == 77);
    // Worked by hand from ESP-DL's 14-bit coefficients: y=100, u=50, v=200 -> r 100+101, g 100-25, b clamp(100-138).
    p = detail::yuv_to_rgb(100, 50, 200);
    CHECK_EQ(p.r, 201);
    CHECK_EQ(p.g, 75);
    CHECK_EQ(p.b, 0);
    p = detail::yuv_to_rgb(128, 128, 128);
    CHECK(p.r == 128 && p.g == 128 && p.b == 128);
    // YUYV pair Y0 U Y1 V: the odd pixel uses its own Y and the pair's U, V.
    const uint8_t yuyv[4] = {10, 128, 200, 128};
    CHECK_EQ(fetch_rgb<PixelFormat::YUYV>(yuyv, 0).g, 10);
    CHECK_EQ(fetch_rgb<PixelFormat::YUYV>(yuyv, 2).g, 200);
}

static void test_geometry()
{
    Letterbox lb;
    CHECK(letterbox_geometry(640, 480, 640, 640, nullptr, true, &lb) == Status::Ok);
    CHECK(lb.top == 80 && lb.bottom == 80 && lb.left == 0 && lb.new_w == 640 && lb.new_h == 480);
    CHECK(lb.inv_scale_x == 1.f && lb.inv_scale_y == 1.f);
    CHECK(letterbox_geometry(100, 50, 64, 64, nullptr, true, &lb) == Status::Ok);
    CHECK(lb.top == 16 && lb.bottom == 16 && lb.new_h == 32 && lb.inv_scale_y == 50.f / 32.f);
    CHECK(letterbox_geometry(33, 64, 64, 64, nullptr, true, &lb) == Status::Ok); // odd pad: extra column after
    CHECK(lb.left == 15 && lb.right == 16 && lb.new_w == 33);
    CHECK(letterbox_geometry(100, 50, 64, 64, nullptr, false, &lb) == Status::Ok);
    CHECK(lb.top == 0 && lb.new_h == 64 && lb.new_w == 64);
    Rect crop{10, 20, 60, 45};
    CHECK(letterbox_geometry(100, 50, 64, 64, &crop, true, &lb) == Status::Ok);
    CHECK(lb.has_crop && lb.crop.x0 == 10 && lb.new_w == 64 && lb.new_h == 32);
    Rect bad[] = {{-1, 0, 10, 10}, {0, 0, 101, 10}, {5, 5, 5, 10}, {0, 10, 10, 9}, {0, 0, 10, 51}};
    for (const Rect &r : bad) {
        CHECK(letterbox_geometry(100, 50, 64, 64, &r, true, &lb) == Status::CropOutOfBounds);
    }
    CHECK(letterbox_geometry(0, 50, 64, 64, nullptr, true, &lb) == Status::BadImageSize);
    CHECK(letterbox_geometry(20000, 1, 64, 64, nullptr, true, &lb) == Status::BadImageSize); // no image row left
    CHECK(letterbox_geometry(10, 10, 0, 64, nullptr, true, &lb) == Status::InvalidArgument);
}

static void test_preprocess()
{
    Preprocessor pre;
    uint8_t px[12] = {0, 0, 0, 255, 255, 255, 10, 20, 30, 40, 50, 60}; // 2x2 RGB888
    ImageView img{px, 2, 2, PixelFormat::RGB888, 0};
    int8_t out[4 * 4 * 3];
    CHECK(pre.run(img, nullptr, out, sizeof(out)) == Status::NotInitialized);
    PreprocessConfig cfg;
    cfg.dst_w = 4;
    cfg.dst_h = 4;
    CHECK(pre.init(cfg) == Status::Ok);
    CHECK(pre.lut(0, 255) == 127 && pre.lut(0, 0) == 0 && pre.lut(0, 114) == 57);
    const long before = g_allocs;
    CHECK(pre.run(img, nullptr, out, sizeof(out)) == Status::Ok);
    CHECK(pre.run(img, nullptr, out, sizeof(out)) == Status::Ok);
    CHECK_EQ(g_allocs - before, 0);
    // 2x2 -> 4x4: every source pixel becomes a 2x2 block.
    CHECK(out[0] == 0 && out[3] == 0 && out[(1 * 4 + 1) * 3] == 0);
    CHECK(out[(0 * 4 + 2) * 3] == 127 && out[(1 * 4 + 3) * 3 + 2] == 127);
    CHECK(out[(2 * 4 + 0) * 3] == pre.lut(0, 10) && out[(3 * 4 + 3) * 3 + 2] == pre.lut(2, 60));
    // Letterboxed 4x2 source -> rows 0 and 3 are padding.
    uint8_t wide[4 * 2 * 3];
    std::memset(wide, 200, sizeof(wide));
    ImageView w{wide, 4, 2, PixelFormat::RGB888, 0};
    CHECK(pre.run(w, nullptr, out, sizeof(out)) == Status::Ok);
    CHECK(pre.letterbox().top == 1 && pre.letterbox().bottom == 1);
    CHECK(out[0] == 57 && out[4 * 3] == pre.lut(0, 200) && out[(3 * 4 + 3) * 3 + 2] == 57);

    // Error codes, never a crash.
    CHECK(pre.run(ImageView{nullptr, 2, 2, PixelFormat::RGB888, 0}, nullptr, out, sizeof(out)) == Status::NullData);
    CHECK(pre.run(img, nullptr, nullptr, sizeof(out)) == Status::NullData);
    CHECK(pre.run(ImageView{px, 0, 2, PixelFormat::RGB888, 0}, nullptr, out, sizeof(out)) == Status::BadImageSize);
    CHECK(pre.run(ImageView{px, 2, -1, PixelFormat::RGB888, 0}, nullptr, out, sizeof(out)) == Status::BadImageSize);
    CHECK(pre.run(ImageView{px, 2, 2, (PixelFormat)42, 0}, nullptr, out, sizeof(out)) == Status::UnsupportedFormat);
    CHECK(pre.run(ImageView{px, 3, 2, PixelFormat::YUYV, 0}, nullptr, out, sizeof(out)) == Status::BadImageSize);
    CHECK(pre.run(ImageView{px, 2, 2, PixelFormat::RGB888, 5}, nullptr, out, sizeof(out)) == Status::BadImageSize);
    CHECK(pre.run(img, nullptr, out, sizeof(out) - 1) == Status::BufferTooSmall);
    Rect outside{1, 1, 3, 2};
    CHECK(pre.run(img, &outside, out, sizeof(out)) == Status::CropOutOfBounds);
    Rect inside{1, 1, 2, 2};
    CHECK(pre.run(img, &inside, out, sizeof(out)) == Status::Ok);
    CHECK(out[0] == pre.lut(0, 40) && out[47] == pre.lut(2, 60)); // a 1x1 crop fills the whole input

    PreprocessConfig badcfg;
    badcfg.std[1] = 0.f;
    CHECK(pre.init(badcfg) == Status::InvalidArgument);
    CHECK(!pre.ready());
    badcfg = PreprocessConfig{};
    badcfg.exponent = 99;
    CHECK(pre.init(badcfg) == Status::InvalidArgument);
    badcfg = PreprocessConfig{};
    badcfg.dst_w = 0;
    CHECK(pre.init(badcfg) == Status::InvalidArgument);
    badcfg = PreprocessConfig{};
    badcfg.dtype = DType::Int16;
    badcfg.exponent = -14;
    badcfg.dst_w = badcfg.dst_h = 4;
    CHECK(pre.init(badcfg) == Status::Ok);
    CHECK(pre.lut(0, 255) == 16384 && pre.lut(1, 1) == 64);
    int16_t out16[4 * 4 * 3 + 1];
    CHECK(pre.run(img, nullptr, reinterpret_cast<uint8_t *>(out16) + 1, sizeof(out16) - 2) == Status::InvalidArgument);
}

// A synthetic 64x64 model: 3 levels (8x8, 4x4, 2x2), 1 class, 2 keypoints x 3.
struct Synth {
    std::vector<int8_t> box[3], score[3], kpt[3];
    HeadOutputs ho;
    explicit Synth(int nc = 1, int kc = 6)
    {
        for (int l = 0; l < 3; l++) {
            const int g = 8 >> l;
            box[l].assign(g * g * 64, -128);
            score[l].assign(g * g * nc, -128);
            kpt[l].assign(g * g * kc, 0);
            ho.box[l] = TensorView{box[l].data(), DType::Int8, 0, 1, g, g, 64};
            ho.score[l] = TensorView{score[l].data(), DType::Int8, -4, 1, g, g, nc};
            ho.kpt[l] = TensorView{kpt[l].data(), DType::Int8, -4, 1, g, g, kc};
        }
    }
    // Anchor (x, y) on level 0 with the given score logit q (value q/16) and a one-hot DFL of `d` cells per side.
    void put(int x, int y, int q, int d, int cls = 0)
    {
        score[0][(y * 8 + x) * ho.score[0].c + cls] = (int8_t)q;
        std::memset(&box[0][(y * 8 + x) * 64], -128, 64);
        for (int s = 0; s < 4; s++) {
            box[0][(y * 8 + x) * 64 + s * 16 + d] = 127;
        }
    }
};

static void test_postprocess()
{
    Synth m;
    PostprocessConfig cfg;
    cfg.input_w = cfg.input_h = 64;
    cfg.conf = 0.5; // logit 0: q >= 0 passes
    cfg.max_det = 5;
    Postprocessor post;
    CHECK(post.run(m.ho, nullptr) == Status::NotInitialized);
    CHECK(post.init(cfg, m.ho) == Status::Ok);
    CHECK(post.kpt_count() == 2 && post.kpt_dims() == 3 && post.num_classes() == 1);
    m.put(2, 3, 0, 1);  // passes exactly at the threshold
    m.put(6, 6, -1, 1); // just below
    m.kpt[0][(3 * 8 + 2) * 6 + 0] = 8;   // raw x 0.5 -> (1 + 2) * 8 = 24
    m.kpt[0][(3 * 8 + 2) * 6 + 1] = -16; // raw y -1 -> (-2 + 3) * 8 = 8
    m.kpt[0][(3 * 8 + 2) * 6 + 2] = 0;   // visibility logit 0 -> conf 0.5, visible at kpt_thr 0.5
    m.kpt[0][(3 * 8 + 2) * 6 + 5] = -1;  // second keypoint just under the threshold
    const long before = g_allocs;
    CHECK(post.run(m.ho, nullptr) == Status::Ok);
    CHECK_EQ(g_allocs - before, 0);
    CHECK_EQ(post.count(), 1);
    CHECK_EQ(post.candidates(), 1);
    if (post.count() == 1) {
        const Pose &p = post[0];
        // d = expectation of a near one-hot softmax at bin 1: exp(-255) is negligible, so d == 1 in float.
        CHECK(std::fabs(p.box[0] - (2.5f - 1.f) * 8) < 1e-4f && std::fabs(p.box[3] - (3.5f + 1.f) * 8) < 1e-4f);
        CHECK(std::fabs(p.score - 0.5f) < 1e-6f);
        CHECK(p.kpts[0].x == 24.f && p.kpts[0].y == 8.f && p.kpts[0].visible && !p.kpts[1].visible);
        CHECK(p.box_int[0] == 12 && p.box_int[2] == 28);
    }
    // A letterbox maps back: left 8 px border, scale 2, crop origin (100, 50).
    Letterbox lb;
    lb.dst_w = lb.dst_h = 64;
    lb.left = 8;
    lb.inv_scale_x = lb.inv_scale_y = 2.f;
    lb.src_w = lb.src_h = 1000;
    lb.has_crop = true;
    lb.crop = Rect{100, 50, 196, 178};
    CHECK(post.run(m.ho, &lb) == Status::Ok);
    CHECK(post.count() == 1 && post[0].kpts[0].x == (24.f - 8.f) * 2.f + 100.f && post[0].kpts[0].y == 66.f);
    CHECK(post.count() == 1 && std::fabs(post[0].box[2] - 140.f) < 1e-3f && post[0].box_int[2] == 140);

    // NMS: an overlapping same-class box with a lower score is suppressed, a distant one is kept; order by score.
    m.put(2, 3, 0, 4);  // [-12, -4, 52, 60]
    m.put(3, 3, 40, 4); // [-4, -4, 60, 60]: IoU 0.78 with the first
    m.put(7, 0, 20, 1); // [52, -4, 60, 12]: far from both
    CHECK(post.run(m.ho, nullptr) == Status::Ok);
    CHECK_EQ(post.count(), 2);
    CHECK(post.count() == 2 && post[0].score > post[1].score && std::fabs(post[1].box[0] - 52.f) < 1e-4f && post[1].box[2] == 64.f);
    CHECK(post.count() == 2 && post[0].box[0] == 0.f); // clipped to the input
    CHECK(post.set_iou(1.f) == Status::Ok); // nothing overlaps more than 100 %
    CHECK(post.run(m.ho, nullptr) == Status::Ok);
    CHECK_EQ(post.count(), 3);
    CHECK(post.set_max_det(2) == Status::Ok);
    CHECK(post.run(m.ho, nullptr) == Status::Ok);
    CHECK_EQ(post.count(), 2);
    CHECK(post.set_max_det(6) == Status::InvalidArgument);
    CHECK(post.set_conf(0.0) == Status::InvalidArgument && post.set_conf(1.0) == Status::InvalidArgument);
    CHECK(post.set_conf(0.95) == Status::Ok); // logit 2.94 -> q >= 48: none
    CHECK(post.run(m.ho, nullptr) == Status::Ok);
    CHECK_EQ(post.count(), 0);

    // Bad tensors: error codes.
    HeadOutputs h = m.ho;
    h.kpt[1].data = nullptr;
    CHECK(post.run(h, nullptr) == Status::NullData);
    h = m.ho;
    h.box[2].w = 3;
    CHECK(post.run(h, nullptr) == Status::ShapeMismatch);
    h = m.ho;
    h.score[0].dtype = DType::Int16;
    CHECK(post.run(h, nullptr) == Status::DtypeMismatch);
    h = m.ho;
    h.score[0].dtype = (DType)7;
    CHECK(post.run(h, nullptr) == Status::UnsupportedFormat);
    h = m.ho;
    h.kpt[0].exponent = 1000;
    CHECK(post.run(h, nullptr) == Status::InvalidArgument);
    lb.dst_w = 32;
    CHECK(post.run(m.ho, &lb) == Status::InvalidArgument);

    // Keypoint layout rules: 51 -> 17x3, 34 -> 17x2, override must match, bad counts rejected.
    Synth k51(1, 51), k34(1, 34), k5(1, 5);
    Postprocessor p2;
    PostprocessConfig c2 = cfg;
    CHECK(p2.init(c2, k51.ho) == Status::Ok && p2.kpt_count() == 17 && p2.kpt_dims() == 3);
    CHECK(p2.init(c2, k34.ho) == Status::Ok && p2.kpt_count() == 17 && p2.kpt_dims() == 2);
    CHECK(p2.init(c2, k5.ho) == Status::ShapeMismatch);
    c2.kpt_count = 17;
    c2.kpt_dims = 3;
    CHECK(p2.init(c2, k34.ho) == Status::InvalidArgument);
    c2.kpt_count = 0;
    c2.kpt_dims = 2;
    Synth k6(1, 6);
    CHECK(p2.init(c2, k6.ho) == Status::Ok && p2.kpt_count() == 3 && p2.kpt_dims() == 2);
    c2 = cfg;
    c2.input_w = 16;
    CHECK(p2.init(c2, m.ho) == Status::InvalidArgument);
    c2 = cfg;
    c2.input_w = 96;
    CHECK(p2.init(c2, m.ho) == Status::ShapeMismatch);

    // Two classes: argmax picks the first maximum; NMS is per class.
    Synth mc(2, 6);
    PostprocessConfig c3 = cfg;
    CHECK(p2.init(c3, mc.ho) == Status::Ok);
    mc.put(2, 2, 30, 4, 1);
    mc.score[0][(2 * 8 + 2) * 2 + 0] = 30; // tie: class 0 wins
    mc.put(2, 3, 20, 4, 1);                // overlaps a lot, but class 1
    CHECK(p2.run(mc.ho, nullptr) == Status::Ok);
    CHECK(p2.count() == 2 && p2[0].cls == 0 && p2[1].cls == 1);
}

// YOLO26's contract: direct box distances, keypoints (raw + grid + 0.5) * stride, end-to-end top-k without NMS.
static void test_yolo26_topk()
{
    const char *text = "yolo-pose-head/1;family=yolo26;branch=one2one;decoder=topk;strides=8,16,32;reg_max=1;nc=2;"
                       "kpt_shape=1,3;kpt_decode=1,0.5;box=box0,box1,box2;score=score0,score1,score2;kpt=kpt0,kpt1,kpt2";
    HeadContract hc;
    CHECK(parse_head_contract(text, &hc) == Status::Ok);
    CHECK(hc.decoder == Decoder::TopK && hc.reg_max == 1 && hc.nc == 2 && hc.kpt_count == 1 && hc.kpt_offset == 0.5);
    char again[kMaxContractText + 1];
    CHECK(format_head_contract(hc, again, sizeof(again)) > 0 && std::strcmp(again, text) == 0);
    CHECK(std::strcmp(head_output_name(hc, 1), "score0") == 0 && std::strcmp(head_output_name(hc, 6), "kpt0") == 0);
    CHECK(head_output_name(hc, 9) == nullptr);
    HeadContract bad;
    CHECK(parse_head_contract("yolo-pose-head/2;family=x", &bad) == Status::UnsupportedFormat);
    CHECK(parse_head_contract(nullptr, &bad) == Status::InvalidArgument);

    std::vector<int8_t> box[3], score[3], kpt[3];
    HeadOutputs ho;
    for (int l = 0; l < 3; l++) {
        const int g = 8 >> l;
        box[l].assign(g * g * 4, 16); // 16 * 2^-4 = 1 cell per side
        score[l].assign(g * g * 2, -128);
        kpt[l].assign(g * g * 3, 0);
        ho.box[l] = TensorView{box[l].data(), DType::Int8, -4, 1, g, g, 4};
        ho.score[l] = TensorView{score[l].data(), DType::Int8, -4, 1, g, g, 2};
        ho.kpt[l] = TensorView{kpt[l].data(), DType::Int8, -4, 1, g, g, 3};
    }
    PostprocessConfig cfg;
    cfg.input_w = cfg.input_h = 64;
    cfg.conf = 0.5;
    cfg.max_det = 3;
    Postprocessor post;
    CHECK(post.init(cfg, ho, &hc) == Status::Ok);
    // Level 0, x 2, y 3: both classes pass; level 1, x 1, y 1: class 0, same logit as the first (tie: lower anchor
    // wins); a fourth pair falls off the cap of 3. Overlapping boxes are all kept (no NMS).
    score[0][(3 * 8 + 2) * 2 + 0] = 32; // logit 2
    score[0][(3 * 8 + 2) * 2 + 1] = 48; // logit 3: the best pair
    score[1][(1 * 4 + 1) * 2 + 0] = 32; // logit 2, a later anchor
    score[0][(3 * 8 + 3) * 2 + 0] = 16; // logit 1: fourth, dropped
    kpt[0][(3 * 8 + 2) * 3 + 0] = 8;    // raw x 0.5 -> (0.5 + 2 + 0.5) * 8 = 24
    kpt[0][(3 * 8 + 2) * 3 + 1] = -16;  // raw y -1 -> (-1 + 3 + 0.5) * 8 = 20
    const long before = g_allocs;
    CHECK(post.run(ho, nullptr) == Status::Ok);
    CHECK_EQ(g_allocs - before, 0);
    CHECK_EQ(post.candidates(), 4);
    CHECK_EQ(post.count(), 3);
    if (post.count() == 3) {
        CHECK(post[0].cls == 1 && post[1].cls == 0 && post[2].cls == 0);
        CHECK(post[0].box[0] == (2.5f - 1.f) * 8 && post[0].box[3] == (3.5f + 1.f) * 8);
        CHECK(post[1].box[0] == post[0].box[0]);                         // same anchor, other class
        CHECK(post[2].box[0] == (1.5f - 1.f) * 16 && post[2].box[2] == (1.5f + 1.f) * 16); // level 1
        CHECK(post[0].kpts[0].x == 24.f && post[0].kpts[0].y == 20.f);
        CHECK(std::fabs(post[0].score - 1.f / (1.f + std::exp(-3.f))) < 1e-6f);
    }
    CHECK(post.set_max_det(1) == Status::Ok);
    CHECK(post.run(ho, nullptr) == Status::Ok && post.count() == 1 && post[0].cls == 1);
    // The contract's class count and keypoint layout must be the tensors'; cfg may not ask for another layout.
    HeadContract other = hc;
    other.nc = 3;
    CHECK(post.init(cfg, ho, &other) == Status::ShapeMismatch);
    PostprocessConfig c2 = cfg;
    c2.kpt_dims = 2;
    CHECK(post.init(c2, ho, &hc) == Status::InvalidArgument);
    // A legacy (YOLO11) contract on YOLO26 tensors: 4 box channels are not 64.
    CHECK(post.init(cfg, ho) == Status::ShapeMismatch);
}

int main()
{
    test_names();
    test_rounding();
    test_colour();
    test_geometry();
    test_preprocess();
    test_postprocess();
    test_yolo26_topk();
    return test_summary("unit_tests");
}
