// Raw YOLO11-pose head outputs (box/score/kpt per stride, quantized NHWC) -> poses in source-image pixels.
// Semantics are those of the Python reference tools/yolo11_pose/decode.py (Ultralytics decoding).
#pragma once

#include "yolo11_pose/image.hpp"
#include "yolo11_pose/pose.hpp"
#include "yolo11_pose/preprocess.hpp"

namespace yolo11_pose {

constexpr int kNumLevels = 3;
constexpr int kStrides[kNumLevels] = {8, 16, 32};
constexpr int kRegMax = 16; ///< DFL bins per box side
/// Output names as exported (same order as decode.OUTPUT_NAMES).
constexpr const char *kOutputNames[9] = {"box0", "score0", "box1", "score1", "box2", "score2", "kpt0", "kpt1", "kpt2"};

/// The nine head tensors: level i has stride kStrides[i] and an (input_h/s) x (input_w/s) grid.
struct HeadOutputs {
    TensorView box[kNumLevels];   ///< 4 * 16 DFL logits (left, top, right, bottom)
    TensorView score[kNumLevels]; ///< one logit per class
    TensorView kpt[kNumLevels];   ///< K * ndim raw keypoint values (x, y[, visibility logit])
};

struct PostprocessConfig {
    int input_w = 640, input_h = 640;
    double conf = 0.25;    ///< score threshold on the sigmoid, 0 < conf < 1
    float iou = 0.7f;      ///< NMS IoU threshold, same-class boxes with IoU > iou are suppressed
    double kpt_thr = 0.5;  ///< keypoint visible when sigmoid(logit) >= kpt_thr, 0..1
    int max_det = 20;      ///< result capacity, fixed at init (set_max_det may lower it later)
    int kpt_count = 0;     ///< keypoints per pose; 0 with kpt_dims 0: infer from the kpt channels
    int kpt_dims = 0;      ///< 2 or 3; 0: 3 when channels % 3 == 0, else 2
};

/// Decoder with every buffer sized in init() (candidates = number of anchors); run() allocates nothing.
class Postprocessor {
public:
    Postprocessor() = default;
    ~Postprocessor();
    Postprocessor(const Postprocessor &) = delete;
    Postprocessor &operator=(const Postprocessor &) = delete;

    /// `layout` gives the tensor shapes and dtypes the model produces (data pointers are not read).
    Status init(const PostprocessConfig &cfg, const HeadOutputs &layout);
    /// Decode one frame. `lb` maps back to source pixels; null leaves model-input pixels (bounds = input size).
    Status run(const HeadOutputs &outputs, const Letterbox *lb);

    int count() const { return count_; }
    const Pose *results() const { return poses_; }
    const Pose &operator[](int i) const { return poses_[i]; }
    /// Anchors that passed the score threshold in the last run (before NMS).
    int candidates() const { return num_cand_; }

    Status set_conf(double conf);
    Status set_iou(float iou);
    Status set_kpt_thr(double kpt_thr);
    Status set_max_det(int max_det); ///< 1..capacity given at init
    const PostprocessConfig &config() const { return cfg_; }
    int kpt_count() const { return kpt_k_; }
    int kpt_dims() const { return kpt_nd_; }
    int num_classes() const { return nc_; }
    bool ready() const { return ready_; }

private:
    struct Candidate {
        float dist[4]; ///< DFL distances (left, top, right, bottom) in grid cells
        float logit;   ///< dequantized best class logit (exact: q * 2^exp)
        int cls;
        int anchor; ///< global anchor index: level offset + y * grid_w + x
    };
    struct Kept {
        float box[4]; ///< model-input pixels
        float area;
        int cls;
        int cand;
    };
    void release();
    Status check(const HeadOutputs &o, bool need_data) const;
    void prepare_exp_lut(int level, int exponent);
    float dfl(const TensorView &t, int level, size_t offset);
    void candidate_box(const Candidate &c, float box[4]) const;
    void finish_pose(const HeadOutputs &o, const Candidate &c, const Letterbox *lb, Pose *pose, Keypoint *kp) const;

    PostprocessConfig cfg_{};
    int capacity_det_ = 0;
    int kpt_k_ = 0, kpt_nd_ = 0, nc_ = 0;
    int grid_w_[kNumLevels] = {}, grid_h_[kNumLevels] = {};
    DType box_dtype_[kNumLevels] = {}, score_dtype_[kNumLevels] = {}, kpt_dtype_[kNumLevels] = {};
    int level_offset_[kNumLevels + 1] = {};
    int num_anchors_ = 0;
    Candidate *cand_ = nullptr;
    Kept *kept_ = nullptr;
    int *order_ = nullptr;
    Pose *poses_ = nullptr;
    Keypoint *kpts_ = nullptr;
    float exp_lut_[kNumLevels][256] = {}; ///< exp(-k * 2^exp) for int8 DFL bins, per level
    int exp_lut_exponent_[kNumLevels] = {};
    bool exp_lut_valid_[kNumLevels] = {};
    int num_cand_ = 0;
    int count_ = 0;
    bool ready_ = false;
};

} // namespace yolo11_pose
