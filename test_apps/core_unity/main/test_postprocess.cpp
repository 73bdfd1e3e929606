// Postprocessing of hand-made head tensors for a 32x32 input (grids 4x4, 2x2, 1x1 = 21 anchors), one class and one
// 3-D keypoint unless a case says otherwise. Every expected number below is worked out in the comments.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "unity.h"
#include "yolo11_pose/postprocess.hpp"
#include "yolo11_pose/preprocess.hpp"

using namespace yolo11_pose;

namespace {

constexpr int kIn = 32;
constexpr int kMaxNc = 2;

// All nine tensors of one frame, int8. Scores start at -128 (no anchor passes any threshold), DFL bins at 0.
struct Head {
    int8_t box0[4 * 4 * 64], box1[2 * 2 * 64], box2[1 * 1 * 64];
    int8_t score0[4 * 4 * kMaxNc], score1[2 * 2 * kMaxNc], score2[1 * 1 * kMaxNc];
    int8_t kpt0[4 * 4 * 3], kpt1[2 * 2 * 3], kpt2[1 * 1 * 3];
    int nc = 1;
    HeadOutputs t;

    explicit Head(int classes = 1, int score_exp = -1)
    {
        nc = classes;
        std::memset(box0, 0, sizeof(box0));
        std::memset(box1, 0, sizeof(box1));
        std::memset(box2, 0, sizeof(box2));
        std::memset(score0, -128, sizeof(score0));
        std::memset(score1, -128, sizeof(score1));
        std::memset(score2, -128, sizeof(score2));
        std::memset(kpt0, 0, sizeof(kpt0));
        std::memset(kpt1, 0, sizeof(kpt1));
        std::memset(kpt2, 0, sizeof(kpt2));
        int8_t *boxes[3] = {box0, box1, box2}, *scores[3] = {score0, score1, score2}, *kpts[3] = {kpt0, kpt1, kpt2};
        for (int l = 0; l < 3; l++) {
            const int g = kIn / legacy_head_contract().strides[l];
            t.box[l] = TensorView{boxes[l], DType::Int8, 0, 1, g, g, 64};
            t.score[l] = TensorView{scores[l], DType::Int8, score_exp, 1, g, g, classes};
            t.kpt[l] = TensorView{kpts[l], DType::Int8, -1, 1, g, g, 3};
        }
    }

    // Level-0 anchor (x, y): class logit q (value q * 2^score_exp) and DFL distances l, t, r, b given as one-hot
    // bins (127 on the chosen bin, -128 elsewhere: exp(-255) is 0 in float, so the expectation is the bin index).
    void set_anchor(int x, int y, int cls, int q, int l, int tp, int r, int b)
    {
        const int a = y * 4 + x;
        score0[a * nc + cls] = (int8_t)q;
        const int d[4] = {l, tp, r, b};
        for (int side = 0; side < 4; side++) {
            for (int j = 0; j < 16; j++) {
                box0[a * 64 + side * 16 + j] = (int8_t)(j == d[side] ? 127 : -128);
            }
        }
    }

    void set_kpt(int x, int y, int qx, int qy, int qv)
    {
        int8_t *k = &kpt0[(y * 4 + x) * 3];
        k[0] = (int8_t)qx;
        k[1] = (int8_t)qy;
        k[2] = (int8_t)qv;
    }
};

PostprocessConfig cfg32(double conf = 0.25, int max_det = 20)
{
    PostprocessConfig c;
    c.input_w = kIn;
    c.input_h = kIn;
    c.conf = conf;
    c.iou = 0.7f;
    c.kpt_thr = 0.5;
    c.max_det = max_det;
    return c;
}

const float kSig2 = 0.880797078f; // sigmoid(2)

} // namespace

TEST_CASE("one anchor decodes to the hand-computed box, score and keypoint", "[postprocess]")
{
    // Anchor (x=1, y=2) at stride 8, logit 4 * 2^-1 = 2, distances l=1 t=2 r=2 b=1 cells:
    // box = ((1.5-1)*8, (2.5-2)*8, (1.5+2)*8, (2.5+1)*8) = (4, 4, 28, 28).
    // Keypoint raw (1, -1, 0) * 2^-1 = (0.5, -0.5, 0): x = (0.5*2 + 1)*8 = 16, y = (-0.5*2 + 2)*8 = 8,
    // confidence sigmoid(0) = 0.5, visible at threshold 0.5 (inclusive).
    Head h;
    h.set_anchor(1, 2, 0, 4, 1, 2, 2, 1);
    h.set_kpt(1, 2, 1, -1, 0);
    Postprocessor post;
    TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
    TEST_ASSERT_EQUAL(1, post.kpt_count());
    TEST_ASSERT_EQUAL(3, post.kpt_dims());
    TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
    TEST_ASSERT_EQUAL(1, post.candidates());
    TEST_ASSERT_EQUAL(1, post.count());
    const Pose &p = post[0];
    TEST_ASSERT_EQUAL(0, p.cls);
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, kSig2, p.score);
    const float box[4] = {4.f, 4.f, 28.f, 28.f};
    for (int i = 0; i < 4; i++) {
        TEST_ASSERT_FLOAT_WITHIN(1e-4f, box[i], p.box[i]);
        TEST_ASSERT_EQUAL((int)box[i], p.box_int[i]);
    }
    TEST_ASSERT_EQUAL(1, p.num_kpts);
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 16.f, p.kpts[0].x);
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 8.f, p.kpts[0].y);
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, 0.5f, p.kpts[0].conf);
    TEST_ASSERT_TRUE(p.kpts[0].visible);
}

TEST_CASE("results map back through the letterbox and are clipped to the frame", "[postprocess]")
{
    // Frame 64x32 into 32x32: scale 0.5, image 32x16 with 8 rows of border above and below, inv_scale 2.
    // Box (4, 4, 28, 28) -> x (4-0)*2 = 8, 56; y (4-8)*2 = -8 -> 0, (28-8)*2 = 40 -> 32 (frame height).
    // Integer box clamps to the last pixel: (8, 0, 56, 31). Keypoint (16, 8) -> (32, 0).
    Head h;
    h.set_anchor(1, 2, 0, 4, 1, 2, 2, 1);
    h.set_kpt(1, 2, 1, -1, -2); // visibility logit -1: confidence 0.269, hidden
    Letterbox lb;
    TEST_ASSERT_EQUAL(Status::Ok, letterbox_geometry(64, 32, kIn, kIn, nullptr, true, &lb));
    TEST_ASSERT_EQUAL(8, lb.top);
    Postprocessor post;
    TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
    TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, &lb));
    TEST_ASSERT_EQUAL(1, post.count());
    const Pose &p = post[0];
    const float box[4] = {8.f, 0.f, 56.f, 32.f};
    const int box_int[4] = {8, 0, 56, 31};
    for (int i = 0; i < 4; i++) {
        TEST_ASSERT_FLOAT_WITHIN(1e-4f, box[i], p.box[i]);
        TEST_ASSERT_EQUAL(box_int[i], p.box_int[i]);
    }
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 32.f, p.kpts[0].x);
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 0.f, p.kpts[0].y);
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, 0.268941421f, p.kpts[0].conf);
    TEST_ASSERT_FALSE(p.kpts[0].visible);
}

TEST_CASE("the score threshold is inclusive and decided on the integer logit", "[postprocess]")
{
    // conf 0.5 is logit 0: q = 0 passes (sigmoid 0.5 >= 0.5), q = -1 (logit -0.5) does not.
    Head h;
    h.set_anchor(0, 0, 0, 0, 1, 1, 1, 1);
    h.set_anchor(3, 3, 0, -1, 1, 1, 1, 1);
    Postprocessor post;
    TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(0.5), h.t));
    TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
    TEST_ASSERT_EQUAL(1, post.candidates());
    TEST_ASSERT_EQUAL(1, post.count());
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, 0.5f, post[0].score);
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 0.f, post[0].box[0]); // (0.5 - 1) * 8 = -4, clipped to 0
}

TEST_CASE("NMS suppresses an overlapping box of the same class only", "[postprocess]")
{
    // Anchors (1, 1) and (2, 1), all distances 3 cells: boxes x in [-12, 36] and [-4, 44], same rows.
    // IoU = 40*48 / (2*48*48 - 40*48) = 40/56 = 0.714 > 0.7, so the weaker one goes when the classes match.
    {
        Head h;
        h.set_anchor(1, 1, 0, 4, 3, 3, 3, 3); // logit 2
        h.set_anchor(2, 1, 0, 2, 3, 3, 3, 3); // logit 1
        Postprocessor post;
        TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
        TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
        TEST_ASSERT_EQUAL(2, post.candidates());
        TEST_ASSERT_EQUAL(1, post.count());
        TEST_ASSERT_FLOAT_WITHIN(1e-6f, kSig2, post[0].score);
    }
    {
        Head h(2);
        h.set_anchor(1, 1, 0, 4, 3, 3, 3, 3);
        h.set_anchor(2, 1, 1, 2, 3, 3, 3, 3); // class 1: not compared with class 0
        Postprocessor post;
        TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
        TEST_ASSERT_EQUAL(2, post.num_classes());
        TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
        TEST_ASSERT_EQUAL(2, post.count());
        TEST_ASSERT_EQUAL(0, post[0].cls);
        TEST_ASSERT_EQUAL(1, post[1].cls);
    }
}

TEST_CASE("equal scores keep anchor order and max_det caps the results", "[postprocess]")
{
    // Same overlapping pair with equal logits: the first anchor in (level, y, x) order survives, i.e. the box
    // starting at x = -12 (clipped to 0) ending at 36 -> 32 (clipped); the other would end at 44 -> 32 and start at 0
    // too, so tell them apart by the keypoint x: anchor 1 gives (0*2 + 1)*8 = 8, anchor 2 gives 16.
    Head h;
    h.set_anchor(1, 1, 0, 4, 3, 3, 3, 3);
    h.set_anchor(2, 1, 0, 4, 3, 3, 3, 3);
    Postprocessor post;
    TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
    TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
    TEST_ASSERT_EQUAL(1, post.count());
    TEST_ASSERT_FLOAT_WITHIN(1e-4f, 8.f, post[0].kpts[0].x);

    // Three separate small boxes (distances 0 -> 8x8 px), logits 1, 2, 3: max_det 2 keeps the two best, best first.
    Head g;
    g.set_anchor(0, 0, 0, 2, 0, 0, 0, 0);
    g.set_anchor(3, 0, 0, 4, 0, 0, 0, 0);
    g.set_anchor(0, 3, 0, 6, 0, 0, 0, 0);
    Postprocessor capped;
    TEST_ASSERT_EQUAL(Status::Ok, capped.init(cfg32(0.25, 2), g.t));
    TEST_ASSERT_EQUAL(Status::Ok, capped.run(g.t, nullptr));
    TEST_ASSERT_EQUAL(3, capped.candidates());
    TEST_ASSERT_EQUAL(2, capped.count());
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, 1.f / (1.f + std::exp(-3.f)), capped[0].score);
    TEST_ASSERT_FLOAT_WITHIN(1e-6f, kSig2, capped[1].score);
}

TEST_CASE("postprocessing refuses bad tensors and settings", "[postprocess]")
{
    Head h;
    Postprocessor post;
    TEST_ASSERT_EQUAL(Status::NotInitialized, post.run(h.t, nullptr));
    TEST_ASSERT_EQUAL(Status::InvalidArgument, post.init(cfg32(1.0), h.t)); // conf must be < 1
    TEST_ASSERT_EQUAL(Status::Ok, post.init(cfg32(), h.t));
    HeadOutputs wrong = h.t;
    wrong.box[1].h = 3; // a 2x2 grid expected at stride 16
    TEST_ASSERT_EQUAL(Status::ShapeMismatch, post.run(wrong, nullptr));
    HeadOutputs null_data = h.t;
    null_data.kpt[2].data = nullptr;
    TEST_ASSERT_EQUAL(Status::NullData, post.run(null_data, nullptr));
    HeadOutputs int16 = h.t;
    int16.score[0].dtype = DType::Int16; // init saw int8
    TEST_ASSERT_EQUAL(Status::DtypeMismatch, post.run(int16, nullptr));
    TEST_ASSERT_EQUAL(Status::InvalidArgument, post.set_max_det(21)); // capacity fixed at init
    TEST_ASSERT_EQUAL(Status::Ok, post.set_max_det(5));
    // After all the refusals a good frame still decodes.
    h.set_anchor(1, 2, 0, 4, 1, 2, 2, 1);
    TEST_ASSERT_EQUAL(Status::Ok, post.run(h.t, nullptr));
    TEST_ASSERT_EQUAL(1, post.count());
}
