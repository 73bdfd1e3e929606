#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "yolo11_pose/postprocess.hpp"

namespace yolo11_pose {

namespace {
constexpr int kMaxDim = 1 << 15;
constexpr int kMaxExponent = 30;

inline int read_q(const TensorView &t, size_t i)
{
    return t.dtype == DType::Int16 ? static_cast<const int16_t *>(t.data)[i] : static_cast<const int8_t *>(t.data)[i];
}

bool valid_dtype(DType d)
{
    return d == DType::Int8 || d == DType::Int16;
}

// Smallest integer q with q * 2^exp >= logit(p): the score test done on raw tensor values, no float per anchor.
int int_threshold(double p, int exponent)
{
    const double t = std::ceil(std::ldexp(std::log(p / (1.0 - p)), -exponent));
    if (t > 40000.0) {
        return 40000; // above any int16: nothing passes
    }
    if (t < -40000.0) {
        return -40000;
    }
    return (int)t;
}

// Python's round: half away from zero (like lround), then clamp to [lo, hi].
int round_clamp(double v, int lo, int hi)
{
    double r = std::floor(std::fabs(v) + 0.5);
    r = v < 0 ? -r : r;
    if (r < lo) {
        return lo;
    }
    if (r > hi) {
        return hi;
    }
    return (int)r;
}

double clip(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

inline float sigmoidf(float v)
{
    return 1.f / (1.f + std::exp(-v));
}
} // namespace

Postprocessor::~Postprocessor()
{
    release();
}

void Postprocessor::release()
{
    std::free(cand_);
    std::free(order_);
    std::free(kept_);
    std::free(poses_);
    std::free(kpts_);
    cand_ = nullptr;
    order_ = nullptr;
    kept_ = nullptr;
    poses_ = nullptr;
    kpts_ = nullptr;
    ready_ = false;
    count_ = 0;
    num_cand_ = 0;
}

Status Postprocessor::set_conf(double conf)
{
    if (!(conf > 0.0 && conf < 1.0)) {
        return Status::InvalidArgument;
    }
    cfg_.conf = conf;
    return Status::Ok;
}

Status Postprocessor::set_iou(float iou)
{
    if (!(iou >= 0.f && iou <= 1.f)) {
        return Status::InvalidArgument;
    }
    cfg_.iou = iou;
    return Status::Ok;
}

Status Postprocessor::set_kpt_thr(double kpt_thr)
{
    if (!(kpt_thr >= 0.0 && kpt_thr <= 1.0)) {
        return Status::InvalidArgument;
    }
    cfg_.kpt_thr = kpt_thr;
    return Status::Ok;
}

Status Postprocessor::set_max_det(int max_det)
{
    if (max_det < 1 || max_det > capacity_det_) {
        return Status::InvalidArgument;
    }
    cfg_.max_det = max_det;
    return Status::Ok;
}

Status Postprocessor::init(const PostprocessConfig &cfg, const HeadOutputs &layout)
{
    release();
    if (cfg.input_w < kStrides[kNumLevels - 1] || cfg.input_h < kStrides[kNumLevels - 1] || cfg.input_w >= kMaxDim ||
        cfg.input_h >= kMaxDim || cfg.max_det < 1 || cfg.max_det > 100000) {
        return Status::InvalidArgument;
    }
    if (!(cfg.conf > 0.0 && cfg.conf < 1.0) || !(cfg.iou >= 0.f && cfg.iou <= 1.f) ||
        !(cfg.kpt_thr >= 0.0 && cfg.kpt_thr <= 1.0)) {
        return Status::InvalidArgument;
    }
    cfg_ = cfg;
    num_anchors_ = 0;
    for (int l = 0; l < kNumLevels; l++) {
        grid_w_[l] = cfg.input_w / kStrides[l];
        grid_h_[l] = cfg.input_h / kStrides[l];
        level_offset_[l] = num_anchors_;
        num_anchors_ += grid_w_[l] * grid_h_[l];
        if (!valid_dtype(layout.box[l].dtype) || !valid_dtype(layout.score[l].dtype) ||
            !valid_dtype(layout.kpt[l].dtype)) {
            return Status::UnsupportedFormat;
        }
        box_dtype_[l] = layout.box[l].dtype;
        score_dtype_[l] = layout.score[l].dtype;
        kpt_dtype_[l] = layout.kpt[l].dtype;
        exp_lut_valid_[l] = false;
    }
    level_offset_[kNumLevels] = num_anchors_;
    nc_ = layout.score[0].c;
    if (nc_ < 1 || nc_ > 4096) {
        return Status::ShapeMismatch;
    }
    // Keypoint layout: explicit (count and/or dims) or the contract's auto rule.
    const int kc = layout.kpt[0].c;
    int k = cfg.kpt_count, nd = cfg.kpt_dims;
    if (kc < 2 || kc > 3 * 1024) {
        return Status::ShapeMismatch;
    }
    if (nd == 0 && k == 0) {
        nd = kc % 3 == 0 ? 3 : 2;
        k = kc / nd;
    } else if (nd == 0) {
        nd = k > 0 ? kc / k : 0;
    } else if (k == 0) {
        k = (nd == 2 || nd == 3) ? kc / nd : 0;
    }
    if ((nd != 2 && nd != 3) || k < 1 || k * nd != kc) {
        return cfg.kpt_count || cfg.kpt_dims ? Status::InvalidArgument : Status::ShapeMismatch;
    }
    kpt_k_ = k;
    kpt_nd_ = nd;
    Status st = check(layout, false);
    if (st != Status::Ok) {
        return st;
    }
    capacity_det_ = cfg.max_det;
    cand_ = static_cast<Candidate *>(std::malloc(sizeof(Candidate) * (size_t)num_anchors_));
    order_ = static_cast<int *>(std::malloc(sizeof(int) * (size_t)num_anchors_));
    kept_ = static_cast<Kept *>(std::malloc(sizeof(Kept) * (size_t)capacity_det_));
    poses_ = static_cast<Pose *>(std::malloc(sizeof(Pose) * (size_t)capacity_det_));
    kpts_ = static_cast<Keypoint *>(std::malloc(sizeof(Keypoint) * (size_t)capacity_det_ * (size_t)kpt_k_));
    if (!cand_ || !order_ || !kept_ || !poses_ || !kpts_) {
        release();
        return Status::OutOfMemory;
    }
    ready_ = true;
    return Status::Ok;
}

Status Postprocessor::check(const HeadOutputs &o, bool need_data) const
{
    for (int l = 0; l < kNumLevels; l++) {
        const TensorView *ts[3] = {&o.box[l], &o.score[l], &o.kpt[l]};
        const DType dts[3] = {box_dtype_[l], score_dtype_[l], kpt_dtype_[l]};
        const int chans[3] = {4 * kRegMax, nc_, kpt_k_ * kpt_nd_};
        for (int i = 0; i < 3; i++) {
            const TensorView &t = *ts[i];
            if (need_data && !t.data) {
                return Status::NullData;
            }
            if (!valid_dtype(t.dtype)) {
                return Status::UnsupportedFormat;
            }
            if (t.dtype != dts[i]) {
                return Status::DtypeMismatch;
            }
            if (t.n != 1 || t.h != grid_h_[l] || t.w != grid_w_[l] || t.c != chans[i]) {
                return Status::ShapeMismatch;
            }
            if (t.exponent < -kMaxExponent || t.exponent > kMaxExponent) {
                return Status::InvalidArgument;
            }
        }
    }
    return Status::Ok;
}

void Postprocessor::prepare_exp_lut(int level, int exponent)
{
    if (exp_lut_valid_[level] && exp_lut_exponent_[level] == exponent) {
        return;
    }
    // softmax(bins) only needs exp(q_j - q_max) * 2^exp; with int8 bins that is one of 256 values.
    const double step = std::ldexp(1.0, exponent);
    for (int k = 0; k < 256; k++) {
        exp_lut_[level][k] = (float)std::exp(-(double)k * step);
    }
    exp_lut_exponent_[level] = exponent;
    exp_lut_valid_[level] = true;
}

float Postprocessor::dfl(const TensorView &t, int level, size_t offset)
{
    int q[kRegMax];
    int qmax = -65536;
    for (int j = 0; j < kRegMax; j++) {
        q[j] = read_q(t, offset + j);
        qmax = q[j] > qmax ? q[j] : qmax;
    }
    float num = 0.f, den = 0.f;
    if (t.dtype == DType::Int8) {
        const float *lut = exp_lut_[level];
        for (int j = 0; j < kRegMax; j++) {
            const float e = lut[qmax - q[j]];
            num += (float)j * e;
            den += e;
        }
    } else {
        for (int j = 0; j < kRegMax; j++) {
            const float e = std::exp(std::ldexp((float)(q[j] - qmax), t.exponent));
            num += (float)j * e;
            den += e;
        }
    }
    return num / den; // den >= 1 (the max bin contributes exp(0))
}

void Postprocessor::candidate_box(const Candidate &c, float box[4]) const
{
    int l = 0;
    while (l + 1 < kNumLevels && c.anchor >= level_offset_[l + 1]) {
        l++;
    }
    const int a = c.anchor - level_offset_[l];
    const float s = (float)kStrides[l];
    const float cx = (float)(a % grid_w_[l]) + 0.5f, cy = (float)(a / grid_w_[l]) + 0.5f;
    box[0] = (cx - c.dist[0]) * s;
    box[1] = (cy - c.dist[1]) * s;
    box[2] = (cx + c.dist[2]) * s;
    box[3] = (cy + c.dist[3]) * s;
}

Status Postprocessor::run(const HeadOutputs &o, const Letterbox *lb)
{
    count_ = 0;
    num_cand_ = 0;
    if (!ready_) {
        return Status::NotInitialized;
    }
    Status st = check(o, true);
    if (st != Status::Ok) {
        return st;
    }
    if (lb && (lb->dst_w != cfg_.input_w || lb->dst_h != cfg_.input_h || lb->crop.x0 >= lb->crop.x1 ||
               lb->crop.y0 >= lb->crop.y1 || !std::isfinite(lb->inv_scale_x) || !std::isfinite(lb->inv_scale_y))) {
        return Status::InvalidArgument;
    }
    // 1. Candidates: best class per anchor, integer threshold, DFL only for survivors (anchor order kept).
    for (int l = 0; l < kNumLevels; l++) {
        const TensorView &sc = o.score[l];
        const TensorView &bx = o.box[l];
        const int thr = int_threshold(cfg_.conf, sc.exponent);
        if (thr > (sc.dtype == DType::Int8 ? 127 : 32767)) {
            continue;
        }
        if (bx.dtype == DType::Int8) {
            prepare_exp_lut(l, bx.exponent);
        }
        const int n = grid_w_[l] * grid_h_[l];
        for (int a = 0; a < n; a++) {
            const size_t base = (size_t)a * nc_;
            int best = read_q(sc, base), cls = 0;
            for (int c = 1; c < nc_; c++) {
                const int q = read_q(sc, base + c);
                if (q > best) {
                    best = q;
                    cls = c;
                }
            }
            if (best < thr) {
                continue;
            }
            Candidate &cd = cand_[num_cand_];
            const size_t boff = (size_t)a * 4 * kRegMax;
            for (int side = 0; side < 4; side++) {
                cd.dist[side] = dfl(bx, l, boff + (size_t)side * kRegMax);
            }
            cd.logit = std::ldexp((float)best, sc.exponent);
            cd.cls = cls;
            cd.anchor = level_offset_[l] + a;
            order_[num_cand_] = num_cand_;
            num_cand_++;
        }
    }
    // 2. Score order, ties in anchor order: a total order, so std::sort (no allocation) equals a stable sort.
    const Candidate *cand = cand_;
    std::sort(order_, order_ + num_cand_, [cand](int a, int b) {
        return cand[a].logit > cand[b].logit || (cand[a].logit == cand[b].logit && a < b);
    });
    // 3. Greedy class-aware NMS against the kept boxes only (same result as suppressing forward).
    int kept = 0;
    for (int oi = 0; oi < num_cand_ && kept < cfg_.max_det; oi++) {
        const Candidate &c = cand_[order_[oi]];
        float b[4];
        candidate_box(c, b);
        const float area = (b[2] - b[0]) * (b[3] - b[1]);
        bool suppressed = false;
        for (int k = 0; k < kept && !suppressed; k++) {
            const Kept &kb = kept_[k];
            if (kb.cls != c.cls) {
                continue;
            }
            const float iw = std::min(kb.box[2], b[2]) - std::max(kb.box[0], b[0]);
            const float ih = std::min(kb.box[3], b[3]) - std::max(kb.box[1], b[1]);
            const float inter = (iw > 0.f ? iw : 0.f) * (ih > 0.f ? ih : 0.f);
            const float uni = std::max(kb.area + area - inter, 1e-9f);
            suppressed = inter / uni > cfg_.iou;
        }
        if (suppressed) {
            continue;
        }
        Kept &kb = kept_[kept++];
        std::copy(b, b + 4, kb.box);
        kb.area = area;
        kb.cls = c.cls;
        kb.cand = order_[oi];
    }
    // 4. Keypoints and mapping to source pixels for the kept poses only.
    for (int k = 0; k < kept; k++) {
        finish_pose(o, cand_[kept_[k].cand], lb, &poses_[k], &kpts_[(size_t)k * kpt_k_]);
    }
    count_ = kept;
    return Status::Ok;
}

void Postprocessor::finish_pose(const HeadOutputs &o, const Candidate &c, const Letterbox *lb, Pose *pose,
                                Keypoint *kp) const
{
    int l = 0;
    while (l + 1 < kNumLevels && c.anchor >= level_offset_[l + 1]) {
        l++;
    }
    const int a = c.anchor - level_offset_[l];
    const int gx = a % grid_w_[l], gy = a / grid_w_[l];
    const double s = kStrides[l];
    // Final coordinates in double: a handful per pose, and it keeps host and chip within float noise of the
    // Python reference (keypoints are exact: raw * 2 + x is exact for quantized values).
    double ox = 0, oy = 0, left = 0, top = 0, sx = 1, sy = 1;
    double bx0 = 0, by0 = 0, bx1 = cfg_.input_w, by1 = cfg_.input_h;
    if (lb) {
        ox = lb->crop.x0;
        oy = lb->crop.y0;
        left = lb->left;
        top = lb->top;
        sx = (double)lb->inv_scale_x;
        sy = (double)lb->inv_scale_y;
        bx0 = lb->crop.x0;
        by0 = lb->crop.y0;
        bx1 = lb->crop.x1;
        by1 = lb->crop.y1;
    }
    auto map_x = [&](double x) { return clip((x - left) * sx + ox, bx0, bx1); };
    auto map_y = [&](double y) { return clip((y - top) * sy + oy, by0, by1); };
    const int ilo_x = (int)bx0, ilo_y = (int)by0, ihi_x = (int)bx1 - 1, ihi_y = (int)by1 - 1;

    const double cx = gx + 0.5, cy = gy + 0.5;
    const double box[4] = {map_x((cx - (double)c.dist[0]) * s), map_y((cy - (double)c.dist[1]) * s),
                           map_x((cx + (double)c.dist[2]) * s), map_y((cy + (double)c.dist[3]) * s)};
    pose->cls = c.cls;
    pose->score = sigmoidf(c.logit);
    for (int i = 0; i < 4; i++) {
        pose->box[i] = (float)box[i];
        pose->box_int[i] = round_clamp(box[i], i % 2 ? ilo_y : ilo_x, i % 2 ? ihi_y : ihi_x);
    }
    pose->kpts = kp;
    pose->num_kpts = kpt_k_;

    const TensorView &t = o.kpt[l];
    const size_t base = (size_t)a * kpt_k_ * kpt_nd_;
    int vis_thr = 0;
    if (kpt_nd_ == 3 && cfg_.kpt_thr > 0.0 && cfg_.kpt_thr < 1.0) {
        vis_thr = int_threshold(cfg_.kpt_thr, t.exponent);
    }
    for (int k = 0; k < kpt_k_; k++) {
        const size_t off = base + (size_t)k * kpt_nd_;
        const double rx = std::ldexp((double)read_q(t, off), t.exponent);
        const double ry = std::ldexp((double)read_q(t, off + 1), t.exponent);
        const double x = map_x((rx * 2.0 + gx) * s), y = map_y((ry * 2.0 + gy) * s);
        Keypoint &p = kp[k];
        p.x = (float)x;
        p.y = (float)y;
        p.ix = round_clamp(x, ilo_x, ihi_x);
        p.iy = round_clamp(y, ilo_y, ihi_y);
        if (kpt_nd_ == 3) {
            const int qv = read_q(t, off + 2);
            p.conf = sigmoidf(std::ldexp((float)qv, t.exponent));
            if (cfg_.kpt_thr <= 0.0) {
                p.visible = true;
            } else if (cfg_.kpt_thr >= 1.0) {
                p.visible = p.conf >= 1.f;
            } else {
                p.visible = qv >= vis_thr;
            }
        } else {
            p.conf = 1.f;
            p.visible = true;
        }
    }
}

} // namespace yolo11_pose
