// Seeded fuzz loop: random frames, formats, crops, tensors and thresholds through the core under ASan/UBSan.
// Every call must return a status (no crash, no sanitizer report); successful results must satisfy invariants.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "test_support.hpp"
#include "yolo11_pose/postprocess.hpp"
#include "yolo11_pose/preprocess.hpp"

using namespace yolo11_pose;

namespace {
uint64_t g_state = 0x9E3779B97F4A7C15ull;
uint32_t rnd()
{
    g_state ^= g_state << 13; // xorshift64: deterministic across compilers, unlike std:: distributions
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return (uint32_t)(g_state >> 16);
}
int rint_in(int lo, int hi)
{
    return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

void fuzz_preprocess(int iters)
{
    for (int it = 0; it < iters; it++) {
        PreprocessConfig cfg;
        cfg.dst_w = rnd() % 16 == 0 ? rint_in(-4, 0) : rint_in(1, 96);
        cfg.dst_h = rint_in(1, 96);
        cfg.dtype = rnd() % 2 ? DType::Int8 : DType::Int16;
        cfg.exponent = rint_in(-20, 4);
        cfg.rounding = rnd() % 2 ? Rounding::HalfEven : Rounding::HalfUp;
        cfg.letterbox = rnd() % 4 != 0;
        for (int c = 0; c < 3; c++) {
            cfg.pad[c] = (uint8_t)rnd();
            cfg.mean[c] = (float)rint_in(-300, 300);
            cfg.std[c] = rnd() % 32 == 0 ? 0.f : (float)rint_in(1, 300) / (float)rint_in(1, 4);
        }
        Preprocessor pre;
        const Status ist = pre.init(cfg);
        CHECK(ist == Status::Ok || ist == Status::InvalidArgument);
        const int fmt_i = rint_in(0, (int)PixelFormat::Count + 1);
        ImageView img;
        img.format = (PixelFormat)fmt_i;
        img.width = rnd() % 20 == 0 ? rint_in(-3, 0) : rint_in(1, 200);
        img.height = rnd() % 20 == 0 ? rint_in(-3, 0) : rint_in(1, 200);
        const int bpp = pixel_bytes(img.format) ? pixel_bytes(img.format) : 3;
        img.stride = rnd() % 3 == 0 ? (img.width > 0 ? img.width * bpp + rint_in(-2, 7) : 0) : 0;
        const long row = img.stride > 0 ? img.stride : (long)(img.width > 0 ? img.width : 1) * bpp;
        // Exact-size heap buffer so ASan sees any read past the frame.
        const size_t n = (size_t)row * (size_t)(img.height > 0 ? img.height : 1);
        std::vector<uint8_t> frame(n);
        for (auto &b : frame) {
            b = (uint8_t)rnd();
        }
        img.data = rnd() % 30 == 0 ? nullptr : frame.data();
        Rect crop{rint_in(-5, 150), rint_in(-5, 150), rint_in(-5, 210), rint_in(-5, 210)};
        const Rect *pc = rnd() % 2 ? &crop : nullptr;
        std::vector<uint8_t> out(ist == Status::Ok ? pre.output_bytes() : 16);
        const size_t out_bytes = rnd() % 20 == 0 ? out.size() / 2 : out.size();
        for (int rep = 0; rep < 2; rep++) { // the second run takes the cached-geometry path
            const Status st = pre.run(img, pc, out.data(), out_bytes);
            if (ist != Status::Ok) {
                CHECK(st == Status::NotInitialized);
                break;
            }
            if (st == Status::Ok) {
                const Letterbox &lb = pre.letterbox();
                CHECK(lb.new_w >= 1 && lb.new_h >= 1 && lb.left + lb.new_w + lb.right == cfg.dst_w &&
                      lb.top + lb.new_h + lb.bottom == cfg.dst_h);
            } else {
                CHECK(st == Status::NullData || st == Status::UnsupportedFormat || st == Status::BadImageSize ||
                      st == Status::CropOutOfBounds || st == Status::BufferTooSmall);
            }
        }
    }
}

struct Tensors {
    std::vector<int16_t> store[9]; // int16 storage keeps every tensor aligned for either dtype
    HeadOutputs ho;
};

void fuzz_postprocess(int iters)
{
    for (int it = 0; it < iters; it++) {
        PostprocessConfig cfg;
        cfg.input_w = 32 * rint_in(0, 5) + (rnd() % 8 == 0 ? rint_in(1, 31) : 0);
        cfg.input_h = 32 * rint_in(1, 5);
        cfg.conf = rnd() % 16 == 0 ? 1.5 : (double)rint_in(1, 999) / 1000.0;
        cfg.iou = (float)rint_in(0, 100) / 100.f;
        cfg.kpt_thr = (double)rint_in(0, 1000) / 1000.0;
        cfg.max_det = rnd() % 16 == 0 ? 0 : rint_in(1, 50);
        const int nc = rnd() % 4 ? 1 : rint_in(0, 4);
        const int kc = rnd() % 3 ? 51 : rint_in(0, 40);
        if (rnd() % 6 == 0) {
            cfg.kpt_count = rint_in(0, 20);
            cfg.kpt_dims = rint_in(0, 4);
        }
        // Half the frames through a YOLO26-style contract (direct boxes; top-k or NMS), the others the legacy one.
        HeadContract hc = legacy_head_contract();
        const bool yolo26 = rnd() % 2;
        if (yolo26) {
            char text[256];
            std::snprintf(text, sizeof(text),
                          "yolo-pose-head/1;family=yolo26;branch=one2one;decoder=%s;strides=8,16,32;reg_max=1;nc=%d;"
                          "kpt_shape=%d,3;kpt_decode=1,0.5;box=box0,box1,box2;score=score0,score1,score2;"
                          "kpt=kpt0,kpt1,kpt2",
                          rnd() % 3 ? "topk" : "nms", nc > 0 ? nc : 1, kc % 3 == 0 && kc ? kc / 3 : 17);
            CHECK(parse_head_contract(text, &hc) == Status::Ok);
        }
        const int bc = 4 * hc.reg_max;
        Tensors t;
        TensorView *slots[9] = {&t.ho.box[0], &t.ho.score[0], &t.ho.box[1], &t.ho.score[1], &t.ho.box[2],
                                &t.ho.score[2], &t.ho.kpt[0],  &t.ho.kpt[1],  &t.ho.kpt[2]};
        const int chans[9] = {bc, nc, bc, nc, bc, nc, kc, kc, kc};
        const int lvl[9] = {0, 0, 1, 1, 2, 2, 0, 1, 2};
        for (int i = 0; i < 9; i++) {
            TensorView &v = *slots[i];
            const int s = hc.strides[lvl[i]];
            v.dtype = rnd() % 3 ? DType::Int8 : DType::Int16;
            v.exponent = rnd() % 50 == 0 ? 77 : rint_in(-12, 2);
            v.h = cfg.input_h / s + (rnd() % 25 == 0 ? 1 : 0);
            v.w = cfg.input_w / s;
            v.c = chans[i] + (rnd() % 40 == 0 ? 1 : 0);
            const size_t n = v.elements();
            t.store[i].resize(n ? n : 1);
            for (auto &q : t.store[i]) {
                q = (int16_t)rnd();
            }
            if (v.dtype == DType::Int8) { // pack int8 values at the front of the same (exact-size) buffer
                std::vector<int16_t> packed((n + 1) / 2 ? (n + 1) / 2 : 1);
                auto *p8 = reinterpret_cast<int8_t *>(packed.data());
                for (size_t k = 0; k < n; k++) {
                    // Scores mostly low so that NMS sees realistic candidate counts.
                    p8[k] = (int8_t)(i % 2 == 1 && i < 6 ? rint_in(-128, 40) : (int)(rnd() & 0xFF) - 128);
                }
                t.store[i] = std::move(packed);
            }
            v.data = rnd() % 60 == 0 ? nullptr : t.store[i].data();
        }
        Postprocessor post;
        const Status ist = post.init(cfg, t.ho, &hc);
        Letterbox lb;
        const Letterbox *plb = nullptr;
        if (rnd() % 2 && cfg.input_w > 0) {
            Rect crop{rint_in(0, 50), rint_in(0, 50), rint_in(60, 900), rint_in(60, 700)};
            if (letterbox_geometry(1000, 800, cfg.input_w, cfg.input_h, rnd() % 2 ? &crop : nullptr, true, &lb) ==
                Status::Ok) {
                plb = &lb;
            }
        }
        const Status st = post.run(t.ho, plb);
        if (ist != Status::Ok) {
            CHECK(st == Status::NotInitialized);
            continue;
        }
        if (st != Status::Ok) {
            CHECK(st == Status::NullData || st == Status::ShapeMismatch || st == Status::DtypeMismatch ||
                  st == Status::InvalidArgument || st == Status::UnsupportedFormat);
            continue;
        }
        CHECK(post.count() <= cfg.max_det && post.count() <= post.candidates());
        const Rect b = plb ? plb->crop : Rect{0, 0, cfg.input_w, cfg.input_h};
        for (int i = 0; i < post.count(); i++) {
            const Pose &p = post[i];
            CHECK(p.score >= (float)cfg.conf - 1e-6f && p.score <= 1.f);
            CHECK(p.box[0] >= b.x0 && p.box[2] <= b.x1 && p.box[1] >= b.y0 && p.box[3] <= b.y1);
            CHECK(p.box_int[0] >= b.x0 && p.box_int[2] <= b.x1 - 1 && p.box_int[1] >= b.y0 && p.box_int[3] <= b.y1 - 1);
            CHECK(i == 0 || p.score <= post[i - 1].score);
            CHECK(p.cls >= 0 && p.cls < post.num_classes());
            for (int k = 0; k < p.num_kpts; k++) {
                CHECK(p.kpts[k].ix >= b.x0 && p.kpts[k].ix < b.x1 && p.kpts[k].iy >= b.y0 && p.kpts[k].iy < b.y1);
                CHECK(p.kpts[k].conf >= 0.f && p.kpts[k].conf <= 1.f);
            }
        }
    }
}
// Mutated contract texts: parse_head_contract must return a status (no crash, no read past the text) and accept only
// what it can format back to the same text.
void fuzz_contract(int iters)
{
    const char *base = "yolo-pose-head/1;family=yolo26;branch=one2one;decoder=topk;strides=8,16,32;reg_max=1;nc=80;"
                       "kpt_shape=17,3;kpt_decode=1,0.5;box=box0,box1,box2;score=score0,score1,score2;kpt=kpt0,kpt1,kpt2";
    const char alphabet[] = "0123456789,;=-.abekxyz_/ \"";
    for (int it = 0; it < iters; it++) {
        std::vector<char> text(base, base + std::strlen(base));
        const int edits = rint_in(0, 4);
        for (int e = 0; e < edits && !text.empty(); e++) {
            const size_t at = rnd() % text.size();
            const int op = rint_in(0, 2);
            if (op == 0) {
                text.erase(text.begin() + (long)at);
            } else if (op == 1) {
                text.insert(text.begin() + (long)at, alphabet[rnd() % (sizeof(alphabet) - 1)]);
            } else {
                text[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
            }
        }
        std::vector<char> exact(text.size() + 1); // exact-size heap copy: ASan sees any read past the end
        std::memcpy(exact.data(), text.data(), text.size());
        exact[text.size()] = '\0';
        HeadContract c;
        const Status st = parse_head_contract(exact.data(), &c);
        CHECK(st == Status::Ok || st == Status::InvalidArgument || st == Status::UnsupportedFormat);
        if (st == Status::Ok) {
            char again[kMaxContractText + 1];
            CHECK(format_head_contract(c, again, sizeof(again)) > 0);
            HeadContract c2;
            CHECK(parse_head_contract(again, &c2) == Status::Ok);
            CHECK(c2.num_levels == c.num_levels && c2.nc == c.nc && c2.reg_max == c.reg_max &&
                  c2.decoder == c.decoder && c2.kpt_count == c.kpt_count);
        }
    }
}
} // namespace

int main(int argc, char **argv)
{
    const int iters = argc > 1 ? std::atoi(argv[1]) : 1500;
    if (argc > 2) {
        g_state = std::strtoull(argv[2], nullptr, 10) | 1;
    }
    fuzz_preprocess(iters);
    fuzz_postprocess(iters);
    fuzz_contract(iters);
    return test_summary("fuzz");
}
