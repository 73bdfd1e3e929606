#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

// ---- head contract text: "yolo-pose-head/1;key=value;..." (tools/yolo11_pose/device/head.py writes it) -------------------
// A cursor over one `value` (the text between '=' and the next ';'), read without allocating.
struct Field {
    const char *p, *end;
};

bool copy_name(Field f, char *dst, size_t cap)
{
    const size_t n = (size_t)(f.end - f.p);
    if (n == 0 || n >= cap) {
        return false;
    }
    for (const char *q = f.p; q < f.end; q++) {
        if (*q == ',' || *q == '=' || *q == ' ' || *q == '\n' || *q == ';' || *q == '"' || *q == '\\') {
            return false;
        }
    }
    std::memcpy(dst, f.p, n);
    dst[n] = '\0';
    return true;
}

bool field_is(Field f, const char *word)
{
    const size_t n = std::strlen(word);
    return (size_t)(f.end - f.p) == n && std::strncmp(f.p, word, n) == 0;
}

// Comma-separated items of a value, one at a time.
bool next_item(Field *f, Field *item)
{
    if (f->p > f->end) {
        return false;
    }
    const char *c = f->p;
    while (c < f->end && *c != ',') {
        c++;
    }
    *item = Field{f->p, c};
    f->p = c + 1; // past the comma (or past end: no more items)
    return true;
}

bool parse_int(Field f, int lo, int hi, int *out)
{
    if (f.p == f.end || f.end - f.p > 11) {
        return false;
    }
    long v = 0;
    const char *q = f.p;
    const bool neg = *q == '-';
    if (neg) {
        q++;
    }
    if (q == f.end) {
        return false;
    }
    for (; q < f.end; q++) {
        if (*q < '0' || *q > '9') {
            return false;
        }
        v = v * 10 + (*q - '0');
    }
    v = neg ? -v : v;
    if (v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

bool parse_double(Field f, double *out)
{
    char buf[32];
    const size_t n = (size_t)(f.end - f.p);
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    std::memcpy(buf, f.p, n);
    buf[n] = '\0';
    char *e = nullptr;
    const double v = std::strtod(buf, &e);
    if (e != buf + n || !std::isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

// A list of exactly `count` ints (count 0: 1..kMaxLevels of them, their number in *count_out).
bool parse_ints(Field f, int lo, int hi, int *out, int count, int *count_out = nullptr)
{
    Field item;
    int n = 0;
    const int cap = count ? count : kMaxLevels;
    while (next_item(&f, &item)) {
        if (n >= cap || !parse_int(item, lo, hi, &out[n])) {
            return false;
        }
        n++;
    }
    if (count_out) {
        *count_out = n;
    }
    return count ? n == count : n >= 1;
}

bool parse_names(Field f, char (*names)[kMaxOutputName + 1], int *count)
{
    Field item;
    int n = 0;
    while (next_item(&f, &item)) {
        if (n >= kMaxLevels || !copy_name(item, names[n], kMaxOutputName + 1)) {
            return false;
        }
        n++;
    }
    *count = n;
    return n >= 1;
}
} // namespace

HeadContract legacy_head_contract()
{
    HeadContract c;
    std::strcpy(c.family, "yolo11");
    std::strcpy(c.branch, "one2many");
    c.decoder = Decoder::Nms;
    c.num_levels = 3;
    const int strides[3] = {8, 16, 32};
    for (int l = 0; l < 3; l++) {
        c.strides[l] = strides[l];
        std::snprintf(c.box[l], sizeof(c.box[l]), "box%d", l);
        std::snprintf(c.score[l], sizeof(c.score[l]), "score%d", l);
        std::snprintf(c.kpt[l], sizeof(c.kpt[l]), "kpt%d", l);
    }
    c.reg_max = 16;
    c.nc = 0; // from the tensors
    c.kpt_count = 0;
    c.kpt_dims = 0;
    c.kpt_scale = 2.0;
    c.kpt_offset = 0.0;
    return c;
}

Status parse_head_contract(const char *text, HeadContract *out)
{
    if (!text || !out) {
        return Status::InvalidArgument;
    }
    const size_t len = std::strlen(text);
    if (len > (size_t)kMaxContractText) {
        return Status::InvalidArgument;
    }
    const char *end = text + len;
    const char *semi = std::strchr(text, ';');
    const char *first_end = semi ? semi : end;
    if (!field_is(Field{text, first_end}, kHeadContractFormat)) {
        return Status::UnsupportedFormat; // another version (or not a contract at all)
    }
    static const char *const kKeys[] = {"family", "branch", "decoder", "strides", "reg_max", "nc",
                                        "kpt_shape", "kpt_decode", "box", "score", "kpt"};
    constexpr int kNumKeys = sizeof(kKeys) / sizeof(kKeys[0]);
    HeadContract c;
    unsigned seen = 0;
    int n_box = 0, n_score = 0, n_kpt = 0;
    const char *p = semi ? semi + 1 : end;
    while (semi && p <= end) {
        const char *e = std::strchr(p, ';');
        e = e ? e : end;
        const char *eq = static_cast<const char *>(std::memchr(p, '=', (size_t)(e - p)));
        if (!eq) {
            return Status::InvalidArgument;
        }
        const Field key{p, eq}, v{eq + 1, e};
        int k = 0;
        while (k < kNumKeys && !field_is(key, kKeys[k])) {
            k++;
        }
        if (k == kNumKeys || (seen & (1u << k))) {
            return Status::InvalidArgument; // unknown or repeated key
        }
        seen |= 1u << k;
        bool ok = true;
        int pair[2];
        switch (k) {
        case 0:
            ok = copy_name(v, c.family, sizeof(c.family));
            break;
        case 1:
            ok = (field_is(v, "one2one") || field_is(v, "one2many")) && copy_name(v, c.branch, sizeof(c.branch));
            break;
        case 2:
            ok = field_is(v, "nms") || field_is(v, "topk");
            c.decoder = field_is(v, "topk") ? Decoder::TopK : Decoder::Nms;
            break;
        case 3:
            ok = parse_ints(v, 1, 1024, c.strides, 0, &c.num_levels);
            break;
        case 4:
            ok = parse_int(v, 1, kMaxRegMax, &c.reg_max);
            break;
        case 5:
            ok = parse_int(v, 1, kMaxClasses, &c.nc);
            break;
        case 6:
            ok = parse_ints(v, 1, kMaxKptChannels, pair, 2) && (pair[1] == 2 || pair[1] == 3) &&
                pair[0] * pair[1] <= kMaxKptChannels;
            c.kpt_count = pair[0];
            c.kpt_dims = pair[1];
            break;
        case 7: {
            Field items = v, a, b, extra;
            ok = next_item(&items, &a) && next_item(&items, &b) && !next_item(&items, &extra) &&
                parse_double(a, &c.kpt_scale) && parse_double(b, &c.kpt_offset);
            break;
        }
        case 8:
            ok = parse_names(v, c.box, &n_box);
            break;
        case 9:
            ok = parse_names(v, c.score, &n_score);
            break;
        default:
            ok = parse_names(v, c.kpt, &n_kpt);
            break;
        }
        if (!ok) {
            return Status::InvalidArgument;
        }
        p = e + 1;
    }
    if (seen != (1u << kNumKeys) - 1 || n_box != c.num_levels || n_score != c.num_levels || n_kpt != c.num_levels) {
        return Status::InvalidArgument;
    }
    // Output names must be distinct (the adapter binds each to one tensor).
    for (int i = 0; i < 3 * c.num_levels; i++) {
        for (int j = i + 1; j < 3 * c.num_levels; j++) {
            if (std::strcmp(head_output_name(c, i), head_output_name(c, j)) == 0) {
                return Status::InvalidArgument;
            }
        }
    }
    *out = c;
    return Status::Ok;
}

const char *head_output_name(const HeadContract &c, int i)
{
    const int nl = c.num_levels;
    if (i < 0 || i >= 3 * nl || nl < 1 || nl > kMaxLevels) {
        return nullptr;
    }
    if (i < 2 * nl) {
        return i % 2 ? c.score[i / 2] : c.box[i / 2];
    }
    return c.kpt[i - 2 * nl];
}

TensorView *head_output_slot(HeadOutputs *o, const HeadContract &c, int i)
{
    const int nl = c.num_levels;
    if (!o || i < 0 || i >= 3 * nl || nl < 1 || nl > kMaxLevels) {
        return nullptr;
    }
    if (i < 2 * nl) {
        return i % 2 ? &o->score[i / 2] : &o->box[i / 2];
    }
    return &o->kpt[i - 2 * nl];
}

int format_head_contract(const HeadContract &c, char *buf, size_t n)
{
    if (!buf || n == 0 || c.num_levels < 1 || c.num_levels > kMaxLevels) {
        return -1;
    }
    size_t used = 0;
    bool ok = true;
    auto put = [&](const char *fmt, auto... args) {
        if (!ok) {
            return;
        }
        const int w = std::snprintf(buf + used, n - used, fmt, args...);
        if (w < 0 || (size_t)w >= n - used) {
            ok = false;
            return;
        }
        used += (size_t)w;
    };
    put("%s;family=%s;branch=%s;decoder=%s;strides=", kHeadContractFormat, c.family, c.branch,
        c.decoder == Decoder::TopK ? "topk" : "nms");
    for (int l = 0; l < c.num_levels; l++) {
        put(l ? ",%d" : "%d", c.strides[l]);
    }
    put(";reg_max=%d;nc=%d;kpt_shape=%d,%d;kpt_decode=%g,%g", c.reg_max, c.nc, c.kpt_count, c.kpt_dims, c.kpt_scale,
        c.kpt_offset);
    const char *const roles[3] = {"box", "score", "kpt"};
    for (int r = 0; r < 3; r++) {
        put(";%s=", roles[r]);
        for (int l = 0; l < c.num_levels; l++) {
            put(l ? ",%s" : "%s", r == 0 ? c.box[l] : r == 1 ? c.score[l] : c.kpt[l]);
        }
    }
    return ok ? (int)used : -1;
}

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
    std::free(top_);
    top_ = nullptr;
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

Status resolve_head_contract(const PostprocessConfig &cfg, const HeadOutputs &layout, HeadContract *c)
{
    if (!c || c->num_levels < 1 || c->num_levels > kMaxLevels || c->reg_max < 1 || c->reg_max > kMaxRegMax) {
        return Status::InvalidArgument;
    }
    // Classes: the contract's count must be what the tensors hold; files without a contract take the tensors'.
    const int sc = layout.score[0].c;
    if (sc < 1 || sc > kMaxClasses || (c->nc && c->nc != sc)) {
        return Status::ShapeMismatch;
    }
    c->nc = sc;
    // Keypoints: the contract's layout, else cfg's explicit count and/or dims, else the channel rule.
    const int kc = layout.kpt[0].c;
    if (kc < 2 || kc > kMaxKptChannels) {
        return Status::ShapeMismatch;
    }
    int k = cfg.kpt_count, nd = cfg.kpt_dims;
    if (c->kpt_count) {
        if ((k && k != c->kpt_count) || (nd && nd != c->kpt_dims)) {
            return Status::InvalidArgument; // cfg asks for another layout than the model's contract
        }
        if (c->kpt_count * c->kpt_dims != kc) {
            return Status::ShapeMismatch;
        }
        return Status::Ok;
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
    c->kpt_count = k;
    c->kpt_dims = nd;
    return Status::Ok;
}

Status Postprocessor::init(const PostprocessConfig &cfg, const HeadOutputs &layout, const HeadContract *head)
{
    release();
    HeadContract hc = head ? *head : legacy_head_contract();
    if (hc.num_levels < 1 || hc.num_levels > kMaxLevels) {
        return Status::InvalidArgument;
    }
    const int max_stride = *std::max_element(hc.strides, hc.strides + hc.num_levels);
    if (cfg.input_w < max_stride || cfg.input_h < max_stride || cfg.input_w >= kMaxDim || cfg.input_h >= kMaxDim ||
        cfg.max_det < 1 || cfg.max_det > 100000) {
        return Status::InvalidArgument;
    }
    if (!(cfg.conf > 0.0 && cfg.conf < 1.0) || !(cfg.iou >= 0.f && cfg.iou <= 1.f) ||
        !(cfg.kpt_thr >= 0.0 && cfg.kpt_thr <= 1.0)) {
        return Status::InvalidArgument;
    }
    cfg_ = cfg;
    nl_ = hc.num_levels;
    num_anchors_ = 0;
    for (int l = 0; l < nl_; l++) {
        if (hc.strides[l] < 1) {
            return Status::InvalidArgument;
        }
        grid_w_[l] = cfg.input_w / hc.strides[l];
        grid_h_[l] = cfg.input_h / hc.strides[l];
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
    level_offset_[nl_] = num_anchors_;
    Status st = resolve_head_contract(cfg, layout, &hc);
    if (st != Status::Ok) {
        return st;
    }
    head_ = hc;
    nc_ = hc.nc;
    kpt_k_ = hc.kpt_count;
    kpt_nd_ = hc.kpt_dims;
    reg_max_ = hc.reg_max;
    st = check(layout, false);
    if (st != Status::Ok) {
        return st;
    }
    capacity_det_ = cfg.max_det;
    const bool topk = hc.decoder == Decoder::TopK;
    // NMS: one candidate and one order slot per anchor, kept boxes up to max_det. Top-k: a heap and its candidates,
    // max_det each; no per-anchor buffer at all.
    cand_ = static_cast<Candidate *>(std::malloc(sizeof(Candidate) * (size_t)(topk ? capacity_det_ : num_anchors_)));
    if (topk) {
        top_ = static_cast<Top *>(std::malloc(sizeof(Top) * (size_t)capacity_det_));
    } else {
        order_ = static_cast<int *>(std::malloc(sizeof(int) * (size_t)num_anchors_));
        kept_ = static_cast<Kept *>(std::malloc(sizeof(Kept) * (size_t)capacity_det_));
    }
    poses_ = static_cast<Pose *>(std::malloc(sizeof(Pose) * (size_t)capacity_det_));
    kpts_ = static_cast<Keypoint *>(std::malloc(sizeof(Keypoint) * (size_t)capacity_det_ * (size_t)kpt_k_));
    if (!cand_ || (topk ? !top_ : (!order_ || !kept_)) || !poses_ || !kpts_) {
        release();
        return Status::OutOfMemory;
    }
    ready_ = true;
    return Status::Ok;
}

Status Postprocessor::check(const HeadOutputs &o, bool need_data) const
{
    for (int l = 0; l < nl_; l++) {
        const TensorView *ts[3] = {&o.box[l], &o.score[l], &o.kpt[l]};
        const DType dts[3] = {box_dtype_[l], score_dtype_[l], kpt_dtype_[l]};
        const int chans[3] = {4 * reg_max_, nc_, kpt_k_ * kpt_nd_};
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
    int q[kMaxRegMax];
    int qmax = -65536;
    for (int j = 0; j < reg_max_; j++) {
        q[j] = read_q(t, offset + j);
        qmax = q[j] > qmax ? q[j] : qmax;
    }
    float num = 0.f, den = 0.f;
    if (t.dtype == DType::Int8) {
        const float *lut = exp_lut_[level];
        for (int j = 0; j < reg_max_; j++) {
            const float e = lut[qmax - q[j]];
            num += (float)j * e;
            den += e;
        }
    } else {
        for (int j = 0; j < reg_max_; j++) {
            const float e = std::exp(std::ldexp((float)(q[j] - qmax), t.exponent));
            num += (float)j * e;
            den += e;
        }
    }
    return num / den; // den >= 1 (the max bin contributes exp(0))
}

void Postprocessor::distances(const HeadOutputs &o, int level, int a, float dist[4])
{
    const TensorView &bx = o.box[level];
    const size_t boff = (size_t)a * 4 * reg_max_;
    if (reg_max_ == 1) { // four direct distances (YOLO26): exact as floats
        for (int side = 0; side < 4; side++) {
            dist[side] = std::ldexp((float)read_q(bx, boff + side), bx.exponent);
        }
        return;
    }
    if (bx.dtype == DType::Int8) {
        prepare_exp_lut(level, bx.exponent);
    }
    for (int side = 0; side < 4; side++) {
        dist[side] = dfl(bx, level, boff + (size_t)side * reg_max_);
    }
}

int Postprocessor::level_of(int anchor) const
{
    int l = 0;
    while (l + 1 < nl_ && anchor >= level_offset_[l + 1]) {
        l++;
    }
    return l;
}

void Postprocessor::candidate_box(const Candidate &c, float box[4]) const
{
    const int l = level_of(c.anchor);
    const int a = c.anchor - level_offset_[l];
    const float s = (float)head_.strides[l];
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
    const int kept = head_.decoder == Decoder::TopK ? run_topk(o) : run_nms(o);
    // Keypoints and mapping to source pixels for the kept poses only.
    for (int k = 0; k < kept; k++) {
        const Candidate &c = head_.decoder == Decoder::TopK ? cand_[k] : cand_[kept_[k].cand];
        finish_pose(o, c, lb, &poses_[k], &kpts_[(size_t)k * kpt_k_]);
    }
    count_ = kept;
    return Status::Ok;
}

int Postprocessor::run_nms(const HeadOutputs &o)
{
    // 1. Candidates: best class per anchor, integer threshold, box decode only for survivors (anchor order kept).
    for (int l = 0; l < nl_; l++) {
        const TensorView &sc = o.score[l];
        const int thr = int_threshold(cfg_.conf, sc.exponent);
        if (thr > (sc.dtype == DType::Int8 ? 127 : 32767)) {
            continue;
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
            distances(o, l, a, cd.dist);
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
    return kept;
}

int Postprocessor::run_topk(const HeadOutputs &o)
{
    // The k best (anchor, class) pairs with q >= the integer threshold, in a heap of capacity k whose top is the worst
    // kept pair. Pairs come in anchor then class order, so a later pair with an equal logit never displaces one
    // already kept (ties go to the lower anchor, then class, as in decode.topk): once the heap is full, a pair enters
    // only with a strictly larger logit, tested on the raw integer first (`gate`), so the scan is one compare per
    // pair, as the NMS path's.
    const int k = cfg_.max_det;
    auto better = [](const Top &a, const Top &b) {
        return a.logit > b.logit || (a.logit == b.logit && (a.anchor < b.anchor || (a.anchor == b.anchor && a.cls < b.cls)));
    };
    int size = 0, passed = 0;
    for (int l = 0; l < nl_; l++) {
        const TensorView &sc = o.score[l];
        const int qmax = sc.dtype == DType::Int8 ? 127 : 32767;
        const int thr = int_threshold(cfg_.conf, sc.exponent);
        if (thr > qmax) {
            continue;
        }
        // Smallest q that enters: thr while the heap is not full, then q * 2^exp > the worst kept logit.
        const auto gate_of = [&](int heap_size) {
            if (heap_size < k) {
                return thr;
            }
            const double g = std::floor(std::ldexp((double)top_[0].logit, -sc.exponent)) + 1.0;
            return g > (double)qmax ? qmax + 1 : std::max(thr, (int)g);
        };
        int gate = gate_of(size);
        const size_t n = (size_t)grid_w_[l] * grid_h_[l] * nc_;
        for (size_t i = 0; i < n; i++) {
            const int q = read_q(sc, i);
            if (q < gate) {
                passed += q >= thr;
                continue;
            }
            passed++;
            const Top t{std::ldexp((float)q, sc.exponent), level_offset_[l] + (int)(i / nc_), (int)(i % nc_)};
            if (size < k) {
                top_[size++] = t;
                std::push_heap(top_, top_ + size, better);
            } else {
                std::pop_heap(top_, top_ + size, better);
                top_[size - 1] = t;
                std::push_heap(top_, top_ + size, better);
            }
            gate = gate_of(size);
        }
    }
    num_cand_ = passed;
    std::sort_heap(top_, top_ + size, better); // best first
    for (int i = 0; i < size; i++) {
        Candidate &cd = cand_[i];
        const int l = level_of(top_[i].anchor);
        distances(o, l, top_[i].anchor - level_offset_[l], cd.dist);
        cd.logit = top_[i].logit;
        cd.cls = top_[i].cls;
        cd.anchor = top_[i].anchor;
    }
    return size;
}

void Postprocessor::finish_pose(const HeadOutputs &o, const Candidate &c, const Letterbox *lb, Pose *pose,
                                Keypoint *kp) const
{
    const int l = level_of(c.anchor);
    const int a = c.anchor - level_offset_[l];
    const int gx = a % grid_w_[l], gy = a / grid_w_[l];
    const double s = head_.strides[l];
    // Final coordinates in double: a handful per pose, and it keeps host and chip within float noise of the
    // Python reference (keypoints are exact: raw * a + x + b is exact for quantized values).
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
    const double ka = head_.kpt_scale, kb = head_.kpt_offset;
    int vis_thr = 0;
    if (kpt_nd_ == 3 && cfg_.kpt_thr > 0.0 && cfg_.kpt_thr < 1.0) {
        vis_thr = int_threshold(cfg_.kpt_thr, t.exponent);
    }
    for (int k = 0; k < kpt_k_; k++) {
        const size_t off = base + (size_t)k * kpt_nd_;
        const double rx = std::ldexp((double)read_q(t, off), t.exponent);
        const double ry = std::ldexp((double)read_q(t, off + 1), t.exponent);
        const double x = map_x((rx * ka + gx + kb) * s), y = map_y((ry * ka + gy + kb) * s);
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
