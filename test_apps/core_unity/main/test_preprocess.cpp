// Preprocessing with answers worked out by hand (letterbox geometry, nearest resize, NormQuant table, rounding).
#include <cstdint>
#include <cstring>

#include "unity.h"
#include "yolo11_pose/preprocess.hpp"

using namespace yolo11_pose;

namespace {

// int8, exponent -7, mean 0, std 255: q = round(v / 255 * 128), clipped to 127. None of these lands near .5,
// so both rounding rules agree: 0->0, 20->10.04->10, 40->20.08->20, 51->25.6->26, 60->30.1->30,
// 102->51.2->51, 114 (the pad grey)->57.2->57, 153->76.8->77, 204->102.4->102, 255->128->127.
int q7(int v)
{
    switch (v) {
    case 0: return 0;
    case 20: return 10;
    case 40: return 20;
    case 51: return 26;
    case 60: return 30;
    case 102: return 51;
    case 114: return 57;
    case 153: return 77;
    case 204: return 102;
    case 255: return 127;
    default: return -999; // a value the test did not plan for
    }
}

PreprocessConfig cfg4x4()
{
    PreprocessConfig c;
    c.dst_w = 4;
    c.dst_h = 4;
    c.dtype = DType::Int8;
    c.exponent = -7;
    c.rounding = Rounding::HalfEven;
    return c;
}

} // namespace

TEST_CASE("letterbox of a 4x2 frame into 4x4 pads one row above and below", "[preprocess]")
{
    Letterbox lb;
    TEST_ASSERT_EQUAL(Status::Ok, letterbox_geometry(4, 2, 4, 4, nullptr, true, &lb));
    TEST_ASSERT_EQUAL(4, lb.new_w);
    TEST_ASSERT_EQUAL(2, lb.new_h);
    TEST_ASSERT_EQUAL(0, lb.left);
    TEST_ASSERT_EQUAL(0, lb.right);
    TEST_ASSERT_EQUAL(1, lb.top);
    TEST_ASSERT_EQUAL(1, lb.bottom);
    TEST_ASSERT_EQUAL_FLOAT(1.0f, lb.inv_scale_x);
    TEST_ASSERT_EQUAL_FLOAT(1.0f, lb.inv_scale_y);
    TEST_ASSERT_FALSE(lb.has_crop);
}

TEST_CASE("letterbox puts the odd padding row after the image", "[preprocess]")
{
    // 5x2 into 4x4: scale = min(0.8, 2) = 0.8; new = 4 x int(1.6) = 4x1; pad 3 rows = 1 above, 2 below.
    Letterbox lb;
    TEST_ASSERT_EQUAL(Status::Ok, letterbox_geometry(5, 2, 4, 4, nullptr, true, &lb));
    TEST_ASSERT_EQUAL(4, lb.new_w);
    TEST_ASSERT_EQUAL(1, lb.new_h);
    TEST_ASSERT_EQUAL(1, lb.top);
    TEST_ASSERT_EQUAL(2, lb.bottom);
    TEST_ASSERT_EQUAL_FLOAT(1.25f, lb.inv_scale_x); // 5 / 4
    TEST_ASSERT_EQUAL_FLOAT(2.0f, lb.inv_scale_y);  // 2 / 1
}

TEST_CASE("letterbox geometry rejects a crop outside the frame", "[preprocess]")
{
    Letterbox lb;
    Rect outside{2, 0, 9, 4}; // x1 = 9 > width 8
    TEST_ASSERT_EQUAL(Status::CropOutOfBounds, letterbox_geometry(8, 4, 4, 4, &outside, true, &lb));
    Rect empty{3, 1, 3, 2};
    TEST_ASSERT_EQUAL(Status::CropOutOfBounds, letterbox_geometry(8, 4, 4, 4, &empty, true, &lb));
    TEST_ASSERT_EQUAL(Status::BadImageSize, letterbox_geometry(0, 4, 4, 4, nullptr, true, &lb));
}

TEST_CASE("quantize rounds half to even (P4) or half up (S3) and saturates", "[preprocess]")
{
    // inv_scale 1: the value itself is rounded.
    TEST_ASSERT_EQUAL(2, quantize_value(2.5f, 1.f, 8, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(3, quantize_value(2.5f, 1.f, 8, Rounding::HalfUp));
    TEST_ASSERT_EQUAL(4, quantize_value(3.5f, 1.f, 8, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(-2, quantize_value(-2.5f, 1.f, 8, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(-2, quantize_value(-2.5f, 1.f, 8, Rounding::HalfUp)); // floor(-2.5 + 0.5)
    TEST_ASSERT_EQUAL(-1, quantize_value(-1.5f, 1.f, 8, Rounding::HalfUp));
    TEST_ASSERT_EQUAL(-2, quantize_value(-1.5f, 1.f, 8, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(127, quantize_value(1.0f, 128.f, 8, Rounding::HalfEven)); // 128 does not fit in int8
    TEST_ASSERT_EQUAL(-128, quantize_value(-300.f, 1.f, 8, Rounding::HalfUp));
    TEST_ASSERT_EQUAL(32767, quantize_value(40000.f, 1.f, 16, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(-32768, quantize_value(-40000.f, 1.f, 16, Rounding::HalfEven));
    TEST_ASSERT_EQUAL(300, quantize_value(300.f, 1.f, 16, Rounding::HalfEven));
}

TEST_CASE("a 4x2 RGB888 frame letterboxed to 4x4 int8 gives the hand-computed tensor", "[preprocess]")
{
    // Pixel (x, y): R = 51 * x, G = 204 - 51 * x, B = 255 on row 1 and 0 on row 0.
    uint8_t frame[2 * 4 * 3];
    for (int y = 0; y < 2; y++) {
        for (int x = 0; x < 4; x++) {
            uint8_t *p = &frame[(y * 4 + x) * 3];
            p[0] = (uint8_t)(51 * x);
            p[1] = (uint8_t)(204 - 51 * x);
            p[2] = y ? 255 : 0;
        }
    }
    Preprocessor pre;
    TEST_ASSERT_EQUAL(Status::Ok, pre.init(cfg4x4()));
    TEST_ASSERT_EQUAL(4 * 4 * 3, (int)pre.output_bytes());
    int8_t out[4 * 4 * 3];
    std::memset(out, 0x55, sizeof(out));
    ImageView img{frame, 4, 2, PixelFormat::RGB888, 0};
    TEST_ASSERT_EQUAL(Status::Ok, pre.run(img, nullptr, out, sizeof(out)));

    TEST_ASSERT_EQUAL(1, pre.letterbox().top);
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 4; x++) {
            const int8_t *o = &out[(y * 4 + x) * 3];
            if (y == 0 || y == 3) { // border rows: the pad grey 114 on every channel
                TEST_ASSERT_EQUAL(q7(114), o[0]);
                TEST_ASSERT_EQUAL(q7(114), o[1]);
                TEST_ASSERT_EQUAL(q7(114), o[2]);
            } else {
                TEST_ASSERT_EQUAL(q7(51 * x), o[0]);
                TEST_ASSERT_EQUAL(q7(204 - 51 * x), o[1]);
                TEST_ASSERT_EQUAL(q7(y == 2 ? 255 : 0), o[2]);
            }
        }
    }
    TEST_ASSERT_EQUAL(q7(153), pre.lut(0, 153));
}

TEST_CASE("an 8x4 frame shrinks to 4x2 by nearest neighbour (every other pixel)", "[preprocess]")
{
    // Source index = min(int(i * 8/4), 7) = 2i: only columns 0, 2, 4, 6 and rows 0, 2 are sampled. Even columns
    // carry R = 10 * x and even rows G = 10 * y; odd ones are 255, which must never show up.
    uint8_t frame[4 * 8 * 3];
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 8; x++) {
            uint8_t *p = &frame[(y * 8 + x) * 3];
            p[0] = (uint8_t)(x % 2 ? 255 : 20 * (x / 2)); // odd columns must never be sampled
            p[1] = (uint8_t)(y % 2 ? 255 : 20 * (y / 2));
            p[2] = 0;
        }
    }
    Preprocessor pre;
    TEST_ASSERT_EQUAL(Status::Ok, pre.init(cfg4x4()));
    int8_t out[4 * 4 * 3];
    ImageView img{frame, 8, 4, PixelFormat::RGB888, 0};
    TEST_ASSERT_EQUAL(Status::Ok, pre.run(img, nullptr, out, sizeof(out)));
    const Letterbox &lb = pre.letterbox();
    TEST_ASSERT_EQUAL(2, lb.new_h);
    TEST_ASSERT_EQUAL(1, lb.top);
    TEST_ASSERT_EQUAL_FLOAT(2.0f, lb.inv_scale_x);
    for (int y = 1; y <= 2; y++) {
        for (int x = 0; x < 4; x++) {
            const int8_t *o = &out[(y * 4 + x) * 3];
            TEST_ASSERT_EQUAL(q7(20 * x), o[0]);
            TEST_ASSERT_EQUAL(q7(20 * (y - 1)), o[1]);
        }
    }
}

TEST_CASE("a crop selects the source region and is remembered in the letterbox", "[preprocess]")
{
    // Same 8x4 frame layout; crop columns 2..5 (4x4): scale 1, no border, columns 2,3,4,5 copied as they are.
    uint8_t frame[4 * 8 * 3];
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 8; x++) {
            uint8_t *p = &frame[(y * 8 + x) * 3];
            p[0] = (uint8_t)(x == 2 ? 0 : x == 3 ? 51 : x == 4 ? 102 : x == 5 ? 153 : 255);
            p[1] = (uint8_t)(51 * y);
            p[2] = 204;
        }
    }
    Preprocessor pre;
    TEST_ASSERT_EQUAL(Status::Ok, pre.init(cfg4x4()));
    int8_t out[4 * 4 * 3];
    ImageView img{frame, 8, 4, PixelFormat::RGB888, 0};
    Rect crop{2, 0, 6, 4};
    TEST_ASSERT_EQUAL(Status::Ok, pre.run(img, &crop, out, sizeof(out)));
    const Letterbox &lb = pre.letterbox();
    TEST_ASSERT_TRUE(lb.has_crop);
    TEST_ASSERT_EQUAL(2, lb.crop.x0);
    TEST_ASSERT_EQUAL(6, lb.crop.x1);
    TEST_ASSERT_EQUAL(0, lb.top + lb.bottom + lb.left + lb.right);
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 4; x++) {
            const int8_t *o = &out[(y * 4 + x) * 3];
            TEST_ASSERT_EQUAL(q7(51 * x), o[0]);
            TEST_ASSERT_EQUAL(q7(51 * y), o[1]);
            TEST_ASSERT_EQUAL(q7(204), o[2]);
        }
    }
}

TEST_CASE("preprocessing refuses bad input without touching the output", "[preprocess]")
{
    uint8_t frame[4 * 2 * 3] = {};
    Preprocessor pre;
    int8_t out[4 * 4 * 3];
    ImageView img{frame, 4, 2, PixelFormat::RGB888, 0};
    TEST_ASSERT_EQUAL(Status::NotInitialized, pre.run(img, nullptr, out, sizeof(out)));
    TEST_ASSERT_EQUAL(Status::Ok, pre.init(cfg4x4()));
    std::memset(out, 0x55, sizeof(out));
    TEST_ASSERT_EQUAL(Status::BufferTooSmall, pre.run(img, nullptr, out, sizeof(out) - 1));
    ImageView null_img{nullptr, 4, 2, PixelFormat::RGB888, 0};
    TEST_ASSERT_EQUAL(Status::NullData, pre.run(null_img, nullptr, out, sizeof(out)));
    Rect crop{0, 0, 5, 2};
    TEST_ASSERT_EQUAL(Status::CropOutOfBounds, pre.run(img, &crop, out, sizeof(out)));
    ImageView short_stride{frame, 4, 2, PixelFormat::RGB888, 11};
    TEST_ASSERT_EQUAL(Status::BadImageSize, pre.run(short_stride, nullptr, out, sizeof(out)));
    for (size_t i = 0; i < sizeof(out); i++) {
        TEST_ASSERT_EQUAL_HEX8(0x55, (uint8_t)out[i]);
    }
    PreprocessConfig bad = cfg4x4();
    bad.std[1] = 0.f;
    TEST_ASSERT_EQUAL(Status::InvalidArgument, pre.init(bad));
}
