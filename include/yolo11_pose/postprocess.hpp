// Raw pose head outputs (box/score/kpt per stride, quantized NHWC) -> poses in source-image pixels.
// What the outputs are and how to decode them is the head contract (tools/yolo11_pose/device/head.py writes it into the
// .espdl metadata under kHeadMetadataKey; parse_head_contract() reads it). Semantics are those of the Python reference
// tools/yolo11_pose/device/decode.py (Ultralytics decoding): YOLOv8/YOLO11 (DFL boxes, NMS) and YOLO26 (direct boxes,
// end-to-end top-k or NMS).
#pragma once

#include <cstddef>

#include "yolo11_pose/image.hpp"
#include "yolo11_pose/pose.hpp"
#include "yolo11_pose/preprocess.hpp"

namespace yolo11_pose {

// Limits of the head contract (the same as tools/yolo11_pose/device/head.py; tests/test_heads.py checks they agree).
constexpr int kMaxLevels = 3;          ///< detection levels (strides)
constexpr int kMaxRegMax = 32;         ///< DFL bins per box side (1: four direct distances, YOLO26)
constexpr int kMaxClasses = 4096;      ///< score channels
constexpr int kMaxKptChannels = 3072;  ///< keypoint channels (K * dims)
constexpr int kMaxOutputName = 63;     ///< characters of an output name
constexpr int kMaxContractText = 1024; ///< characters of a contract text
/// Metadata key of the contract in .espdl files, and the version tag its text starts with.
constexpr const char *kHeadMetadataKey = "head_contract";
constexpr const char *kHeadContractFormat = "yolo-pose-head/1";

/// How candidates become poses: greedy class-aware NMS on the best class per anchor (YOLOv8/YOLO11, YOLO26's
/// one-to-many branch), or the end-to-end top-k of (anchor, class) pairs without NMS (YOLO26's one-to-one branch).
enum class Decoder : unsigned char { Nms = 0, TopK = 1 };

/// The head contract: output names per level, strides, box and keypoint decoding, decoder, class count, keypoints.
/// Keypoint x = (raw * kpt_scale + grid_x + kpt_offset) * stride (YOLO11: 2, 0; YOLO26: 1, 0.5); same for y.
struct HeadContract {
    char family[16] = {};
    char branch[16] = {};
    Decoder decoder = Decoder::Nms;
    int num_levels = 0;
    int strides[kMaxLevels] = {};
    int reg_max = 0;
    int nc = 0;        ///< 0: from the score tensors (legacy files)
    int kpt_count = 0; ///< 0: from the keypoint tensors and PostprocessConfig (legacy files)
    int kpt_dims = 0;
    double kpt_scale = 0, kpt_offset = 0;
    char box[kMaxLevels][kMaxOutputName + 1] = {};
    char score[kMaxLevels][kMaxOutputName + 1] = {};
    char kpt[kMaxLevels][kMaxOutputName + 1] = {};
};

/// The contract of files without one (made before it existed): YOLO11, strides 8/16/32, reg_max 16, NMS, outputs
/// box0 score0 box1 score1 box2 score2 kpt0 kpt1 kpt2, class count and keypoint layout from the tensors.
HeadContract legacy_head_contract();
/// Parses the text of the .espdl metadata entry kHeadMetadataKey (strict: InvalidArgument for any unknown key, missing
/// key, bad value or limit; UnsupportedFormat for another version tag). Allocates nothing.
Status parse_head_contract(const char *text, HeadContract *out);
/// Writes the canonical text of `c` (what parse_head_contract reads) into buf; returns its length, or -1 if it does
/// not fit in n bytes.
int format_head_contract(const HeadContract &c, char *buf, size_t n);
/// Output name `i` in the exported order (box0, score0, box1, score1, ..., kpt0, kpt1, ...), 0 <= i < 3 * levels.
const char *head_output_name(const HeadContract &c, int i);

/// The head tensors: level i has stride strides[i] of the contract and an (input_h/s) x (input_w/s) grid.
struct HeadOutputs {
    TensorView box[kMaxLevels];   ///< 4 * reg_max values: DFL logits, or direct distances (left, top, right, bottom)
    TensorView score[kMaxLevels]; ///< one logit per class
    TensorView kpt[kMaxLevels];   ///< K * ndim raw keypoint values (x, y[, visibility logit])
};
/// Slot in `o` of the contract's output `i` (head_output_name order); null when i is out of range.
TensorView *head_output_slot(HeadOutputs *o, const HeadContract &c, int i);

struct PostprocessConfig {
    int input_w = 640, input_h = 640;
    double conf = 0.25;    ///< score threshold on the sigmoid, 0 < conf < 1
    float iou = 0.7f;      ///< NMS IoU threshold, same-class boxes with IoU > iou are suppressed
    double kpt_thr = 0.5;  ///< keypoint visible when sigmoid(logit) >= kpt_thr, 0..1
    int max_det = 20;      ///< result capacity, fixed at init (set_max_det may lower it later)
    int kpt_count = 0;     ///< keypoints per pose; 0: the head contract's (files without one: from the kpt channels)
    int kpt_dims = 0;      ///< 2 or 3; 0: the contract's (files without one: 3 when channels % 3 == 0, else 2)
};

/// Fills the contract's class count and keypoint layout from the tensors (legacy files, and a check for the others):
/// nc from the score channels, keypoints from cfg.kpt_count/kpt_dims or the channel rule (K*3, else K*2).
/// ShapeMismatch when the tensors disagree with the contract, InvalidArgument when cfg's explicit layout does.
Status resolve_head_contract(const PostprocessConfig &cfg, const HeadOutputs &layout, HeadContract *c);

/// Decoder with every buffer sized in init() (NMS: candidates = number of anchors; top-k: max_det); run() allocates
/// nothing.
class Postprocessor {
public:
    Postprocessor() = default;
    ~Postprocessor();
    Postprocessor(const Postprocessor &) = delete;
    Postprocessor &operator=(const Postprocessor &) = delete;

    /// `layout` gives the tensor shapes and dtypes the model produces (data pointers are not read); `head` the
    /// contract (null: legacy_head_contract(), the YOLO11 head of files that carry none).
    Status init(const PostprocessConfig &cfg, const HeadOutputs &layout, const HeadContract *head = nullptr);
    /// Decode one frame. `lb` maps back to source pixels; null leaves model-input pixels (bounds = input size).
    Status run(const HeadOutputs &outputs, const Letterbox *lb);

    int count() const { return count_; }
    const Pose *results() const { return poses_; }
    const Pose &operator[](int i) const { return poses_[i]; }
    /// Anchors (NMS) or (anchor, class) pairs (top-k) that passed the score threshold in the last run.
    int candidates() const { return num_cand_; }

    Status set_conf(double conf);
    Status set_iou(float iou);
    Status set_kpt_thr(double kpt_thr);
    Status set_max_det(int max_det); ///< 1..capacity given at init
    const PostprocessConfig &config() const { return cfg_; }
    int kpt_count() const { return kpt_k_; }
    int kpt_dims() const { return kpt_nd_; }
    int num_classes() const { return nc_; }
    const HeadContract &head() const { return head_; }
    bool ready() const { return ready_; }

private:
    struct Candidate {
        float dist[4]; ///< DFL distances (left, top, right, bottom) in grid cells
        float logit;   ///< dequantized best class logit (exact: q * 2^exp)
        int cls;
        int anchor; ///< global anchor index: level offset + y * grid_w + x
    };
    struct Top {
        float logit; ///< dequantized class logit (exact)
        int anchor;
        int cls;
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
    void distances(const HeadOutputs &o, int level, int a, float dist[4]);
    int level_of(int anchor) const;
    int run_nms(const HeadOutputs &o);
    int run_topk(const HeadOutputs &o);
    void candidate_box(const Candidate &c, float box[4]) const;
    void finish_pose(const HeadOutputs &o, const Candidate &c, const Letterbox *lb, Pose *pose, Keypoint *kp) const;

    PostprocessConfig cfg_{};
    HeadContract head_{};
    int capacity_det_ = 0;
    int kpt_k_ = 0, kpt_nd_ = 0, nc_ = 0, nl_ = 0, reg_max_ = 0;
    int grid_w_[kMaxLevels] = {}, grid_h_[kMaxLevels] = {};
    DType box_dtype_[kMaxLevels] = {}, score_dtype_[kMaxLevels] = {}, kpt_dtype_[kMaxLevels] = {};
    int level_offset_[kMaxLevels + 1] = {};
    int num_anchors_ = 0;
    Candidate *cand_ = nullptr; ///< NMS: one per anchor; top-k: one per kept pair
    Kept *kept_ = nullptr;
    int *order_ = nullptr;
    Top *top_ = nullptr; ///< top-k: heap of the best pairs (capacity max_det)
    Pose *poses_ = nullptr;
    Keypoint *kpts_ = nullptr;
    float exp_lut_[kMaxLevels][256] = {}; ///< exp(-k * 2^exp) for int8 DFL bins, per level
    int exp_lut_exponent_[kMaxLevels] = {};
    bool exp_lut_valid_[kMaxLevels] = {};
    int num_cand_ = 0;
    int count_ = 0;
    bool ready_ = false;
};

} // namespace yolo11_pose
