// yolo11_pose_host: runs the portable C++ core on data sent by the Python tools (tools/yolo11_pose/device/cpp.py).
//
// Protocol (stdin -> stdout, many requests per process): one text line of space-separated key=value tokens, then
// `bytes` raw bytes of payload. Every request gets one JSON line back; `pre` also sends the tensor bytes after it.
//   pre w=W h=H fmt=rgb888|bgr888|rgb565le|rgb565be|gray8|yuyv [stride=S] dst=WxH bits=8|16 exp=E
//       round=half_even|half_up [pad=r,g,b] [mean=a,b,c] [std=a,b,c] [letterbox=1|0] [crop=x0,y0,x1,y1] bytes=N
//   post input=WxH conf=C iou=I kpt_thr=K max_det=M [kpt=K,ND] [head=CONTRACT] [lb=src_w,src_h,left,top,right,
//       bottom,inv_x,inv_y,x0,y0,x1,y1] t0=dtype,exp,h,w,c ... bytes=N   (one tensor per output of the head contract,
//       in its order box0 score0 box1 ... kpt0 ..., each starting at an even payload offset; without head=, the
//       legacy YOLO11 contract and its 9 tensors)
//   head [text=CONTRACT] [input=WxH t0=dtype,exp,h,w,c ...] bytes=0   (the parsed contract, or with tensors and no
//       text the one derived for a legacy file, as the C++ core sees it, plus its canonical text and the limits)
//   ping
// The host tool may allocate per request; the core it drives does not.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "yolo11_pose/postprocess.hpp"
#include "yolo11_pose/preprocess.hpp"

using namespace yolo11_pose;

namespace {

constexpr size_t kMaxPayload = size_t(1) << 30;

struct Request {
    std::vector<std::pair<std::string, std::string>> kv;
    std::string cmd;
    const char *get(const char *key) const
    {
        for (const auto &p : kv) {
            if (p.first == key) {
                return p.second.c_str();
            }
        }
        return nullptr;
    }
};

bool read_line(std::string *line)
{
    line->clear();
    int ch;
    while ((ch = std::getchar()) != EOF) {
        if (ch == '\n') {
            return true;
        }
        line->push_back((char)ch);
        if (line->size() > 65536) {
            return false;
        }
    }
    return !line->empty();
}

Request parse(const std::string &line)
{
    Request r;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') {
            i++;
        }
        size_t j = line.find(' ', i);
        if (j == std::string::npos) {
            j = line.size();
        }
        std::string tok = line.substr(i, j - i);
        i = j;
        if (tok.empty()) {
            continue;
        }
        if (r.cmd.empty()) {
            r.cmd = tok;
            continue;
        }
        size_t eq = tok.find('=');
        if (eq == std::string::npos) {
            r.kv.emplace_back(tok, "");
        } else {
            r.kv.emplace_back(tok.substr(0, eq), tok.substr(eq + 1));
        }
    }
    return r;
}

// Parses a comma/x separated list of numbers; false when malformed or the count differs.
template <typename T>
bool parse_list(const char *s, T *out, int n, char sep = ',')
{
    if (!s) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        char *end = nullptr;
        errno = 0;
        const double v = std::strtod(s, &end);
        if (end == s || errno) {
            return false;
        }
        out[i] = (T)v;
        if constexpr (std::is_integral_v<T>) {
            if ((double)out[i] != v) {
                return false; // integer field with a fraction or out of range
            }
        }
        s = end;
        if (i + 1 < n) {
            if (*s != sep) {
                return false;
            }
            s++;
        }
    }
    return *s == '\0';
}

void reply_error(const char *code, const char *message)
{
    std::printf("{\"status\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}\n", code, message);
    std::fflush(stdout);
}

void reply_status(Status st, const char *what)
{
    reply_error(status_name(st), what);
}

void print_letterbox(const Letterbox &lb)
{
    std::printf("{\"src_w\":%d,\"src_h\":%d,\"dst_w\":%d,\"dst_h\":%d,\"new_w\":%d,\"new_h\":%d,\"left\":%d,\"top\":%d,"
                "\"right\":%d,\"bottom\":%d,\"inv_scale_x\":%.9g,\"inv_scale_y\":%.9g,\"crop\":",
                lb.src_w, lb.src_h, lb.dst_w, lb.dst_h, lb.new_w, lb.new_h, lb.left, lb.top, lb.right, lb.bottom,
                (double)lb.inv_scale_x, (double)lb.inv_scale_y);
    if (lb.has_crop) {
        std::printf("[%d,%d,%d,%d]}", lb.crop.x0, lb.crop.y0, lb.crop.x1, lb.crop.y1);
    } else {
        std::printf("null}");
    }
}

void handle_pre(const Request &r, const std::vector<uint8_t> &payload)
{
    ImageView img;
    PreprocessConfig cfg;
    int dims[2], bits = 0;
    PixelFormat fmt;
    if (!parse_list(r.get("w"), &img.width, 1) || !parse_list(r.get("h"), &img.height, 1) ||
        !parse_list(r.get("dst"), dims, 2, 'x') || !parse_list(r.get("bits"), &bits, 1) ||
        !parse_list(r.get("exp"), &cfg.exponent, 1) || !r.get("fmt") || !r.get("round")) {
        return reply_error("bad_request", "pre needs w, h, fmt, dst=WxH, bits, exp, round");
    }
    if (!parse_pixel_format(r.get("fmt"), &fmt)) {
        return reply_status(Status::UnsupportedFormat, "unknown pixel format");
    }
    img.format = fmt;
    if (r.get("stride") && !parse_list(r.get("stride"), &img.stride, 1)) {
        return reply_error("bad_request", "stride must be an integer");
    }
    cfg.dst_w = dims[0];
    cfg.dst_h = dims[1];
    if (bits != 8 && bits != 16) {
        return reply_status(Status::UnsupportedFormat, "bits must be 8 or 16");
    }
    cfg.dtype = bits == 16 ? DType::Int16 : DType::Int8;
    const std::string round = r.get("round");
    if (round != "half_even" && round != "half_up") {
        return reply_error("bad_request", "round must be half_even or half_up");
    }
    cfg.rounding = round == "half_up" ? Rounding::HalfUp : Rounding::HalfEven;
    int pad[3] = {114, 114, 114}, letterbox = 1;
    if ((r.get("pad") && !parse_list(r.get("pad"), pad, 3)) || (r.get("mean") && !parse_list(r.get("mean"), cfg.mean, 3)) ||
        (r.get("std") && !parse_list(r.get("std"), cfg.std, 3)) ||
        (r.get("letterbox") && !parse_list(r.get("letterbox"), &letterbox, 1))) {
        return reply_error("bad_request", "pad/mean/std need 3 comma-separated numbers, letterbox 0 or 1");
    }
    for (int c = 0; c < 3; c++) {
        if (pad[c] < 0 || pad[c] > 255) {
            return reply_status(Status::InvalidArgument, "pad values must be 0..255");
        }
        cfg.pad[c] = (uint8_t)pad[c];
    }
    cfg.letterbox = letterbox != 0;
    Rect crop;
    const Rect *pcrop = nullptr;
    if (r.get("crop") && std::strcmp(r.get("crop"), "none") != 0) {
        int c[4];
        if (!parse_list(r.get("crop"), c, 4)) {
            return reply_error("bad_request", "crop needs x0,y0,x1,y1");
        }
        crop = Rect{c[0], c[1], c[2], c[3]};
        pcrop = &crop;
    }
    Preprocessor pre;
    Status st = pre.init(cfg);
    if (st != Status::Ok) {
        return reply_status(st, "preprocessor init failed");
    }
    img.data = payload.empty() ? nullptr : payload.data();
    // The core trusts the caller for the frame's length (img_t has none); the host tool checks it here.
    if (img.data && img.width > 0 && img.height > 0 && pixel_bytes(fmt) > 0) {
        const long long row = img.stride > 0 ? img.stride : (long long)img.width * pixel_bytes(fmt);
        if ((long long)payload.size() < row * img.height) {
            return reply_status(Status::BufferTooSmall, "payload shorter than stride * height");
        }
    }
    std::vector<uint8_t> out(pre.output_bytes());
    uint8_t *dst = out.data();
    st = pre.run(img, pcrop, dst, pre.output_bytes());
    if (st != Status::Ok) {
        return reply_status(st, "preprocess failed");
    }
    std::printf("{\"status\":\"ok\",\"bytes\":%zu,\"letterbox\":", pre.output_bytes());
    print_letterbox(pre.letterbox());
    std::printf("}\n");
    std::fwrite(dst, 1, pre.output_bytes(), stdout);
    std::fflush(stdout);
}

void print_contract(const HeadContract &c)
{
    char text[kMaxContractText + 1];
    const int n = format_head_contract(c, text, sizeof(text));
    std::printf("\"family\":\"%s\",\"branch\":\"%s\",\"decoder\":\"%s\",\"strides\":[", c.family, c.branch,
                c.decoder == Decoder::TopK ? "topk" : "nms");
    for (int l = 0; l < c.num_levels; l++) {
        std::printf("%s%d", l ? "," : "", c.strides[l]);
    }
    std::printf("],\"reg_max\":%d,\"nc\":%d,\"kpt_shape\":[%d,%d],\"kpt_decode\":[%.17g,%.17g]", c.reg_max, c.nc,
                c.kpt_count, c.kpt_dims, c.kpt_scale, c.kpt_offset);
    const char *const roles[3] = {"box", "score", "kpt"};
    for (int r = 0; r < 3; r++) {
        std::printf(",\"%s\":[", roles[r]);
        for (int l = 0; l < c.num_levels; l++) {
            std::printf("%s\"%s\"", l ? "," : "", r == 0 ? c.box[l] : r == 1 ? c.score[l] : c.kpt[l]);
        }
        std::printf("]");
    }
    std::printf(",\"text\":\"%s\"", n >= 0 ? text : "");
}

// Tensors t0..t{3L-1} of a request in the contract's order, laid out in the payload (even offsets).
bool read_tensors(const Request &r, const std::vector<uint8_t> &payload, const HeadContract &hc, HeadOutputs *ho,
                  bool need_bytes)
{
    size_t offset = 0;
    for (int i = 0; i < 3 * hc.num_levels; i++) {
        char key[16];
        std::snprintf(key, sizeof(key), "t%d", i);
        const char *spec = r.get(key);
        if (!spec) {
            reply_error("bad_request", "give one tensor spec per output of the head contract: t0..=dtype,exp,h,w,c");
            return false;
        }
        const char *comma = std::strchr(spec, ',');
        if (!comma) {
            reply_error("bad_request", "tensor spec is dtype,exp,h,w,c");
            return false;
        }
        const std::string dt(spec, comma - spec);
        int v[4];
        if (!parse_list(comma + 1, v, 4)) {
            reply_error("bad_request", "tensor spec is dtype,exp,h,w,c");
            return false;
        }
        TensorView &t = *head_output_slot(ho, hc, i);
        if (dt == "int8") {
            t.dtype = DType::Int8;
        } else if (dt == "int16") {
            t.dtype = DType::Int16;
        } else {
            reply_status(Status::UnsupportedFormat, "tensor dtype must be int8 or int16");
            return false;
        }
        t.exponent = v[0];
        t.h = v[1];
        t.w = v[2];
        t.c = v[3];
        if (t.h < 0 || t.w < 0 || t.c < 0 || (long long)t.h * t.w * t.c > (1LL << 28)) {
            reply_status(Status::ShapeMismatch, "tensor shape out of range");
            return false;
        }
        if (!need_bytes) {
            continue;
        }
        const size_t nbytes = t.elements() * dtype_bytes(t.dtype);
        offset = (offset + 1) & ~size_t(1); // every tensor starts at an even offset, so int16 data is aligned
        if (offset + nbytes > payload.size()) {
            reply_status(Status::BufferTooSmall, "payload shorter than the tensors it declares");
            return false;
        }
        t.data = nbytes ? payload.data() + offset : nullptr;
        offset += nbytes;
    }
    return true;
}

void handle_head(const Request &r)
{
    HeadContract hc = legacy_head_contract();
    if (r.get("text")) {
        const Status st = parse_head_contract(r.get("text"), &hc);
        if (st != Status::Ok) {
            return reply_status(st, "head contract rejected");
        }
    }
    if (r.get("t0")) { // resolve against tensor shapes, as Postprocessor::init does at model load
        PostprocessConfig cfg;
        int dims[2];
        if (!parse_list(r.get("input"), dims, 2, 'x')) {
            return reply_error("bad_request", "head with tensors needs input=WxH");
        }
        cfg.input_w = dims[0];
        cfg.input_h = dims[1];
        HeadOutputs ho;
        std::vector<uint8_t> none;
        if (!read_tensors(r, none, hc, &ho, false)) {
            return;
        }
        Postprocessor post;
        const Status st = post.init(cfg, ho, &hc);
        if (st != Status::Ok) {
            return reply_status(st, "postprocessor init failed");
        }
        hc = post.head();
    }
    std::printf("{\"status\":\"ok\",");
    print_contract(hc);
    std::printf(",\"limits\":{\"levels\":%d,\"reg_max\":%d,\"classes\":%d,\"kpt_channels\":%d,\"name\":%d,"
                "\"text\":%d},\"format\":\"%s\",\"metadata_key\":\"%s\"}\n",
                kMaxLevels, kMaxRegMax, kMaxClasses, kMaxKptChannels, kMaxOutputName, kMaxContractText,
                kHeadContractFormat, kHeadMetadataKey);
    std::fflush(stdout);
}

void handle_post(const Request &r, const std::vector<uint8_t> &payload)
{
    PostprocessConfig cfg;
    int dims[2];
    if (!parse_list(r.get("input"), dims, 2, 'x') || !parse_list(r.get("conf"), &cfg.conf, 1) ||
        !parse_list(r.get("iou"), &cfg.iou, 1) || !parse_list(r.get("kpt_thr"), &cfg.kpt_thr, 1) ||
        !parse_list(r.get("max_det"), &cfg.max_det, 1)) {
        return reply_error("bad_request", "post needs input=WxH, conf, iou, kpt_thr, max_det");
    }
    cfg.input_w = dims[0];
    cfg.input_h = dims[1];
    if (r.get("kpt")) {
        int k[2];
        if (!parse_list(r.get("kpt"), k, 2)) {
            return reply_error("bad_request", "kpt needs K,ND");
        }
        cfg.kpt_count = k[0];
        cfg.kpt_dims = k[1];
    }
    Letterbox lb;
    const Letterbox *plb = nullptr;
    if (r.get("lb") && std::strcmp(r.get("lb"), "none") != 0) {
        double v[12];
        if (!parse_list(r.get("lb"), v, 12)) {
            return reply_error("bad_request", "lb needs src_w,src_h,left,top,right,bottom,inv_x,inv_y,x0,y0,x1,y1");
        }
        lb.src_w = (int)v[0];
        lb.src_h = (int)v[1];
        lb.left = (int)v[2];
        lb.top = (int)v[3];
        lb.right = (int)v[4];
        lb.bottom = (int)v[5];
        lb.inv_scale_x = (float)v[6];
        lb.inv_scale_y = (float)v[7];
        lb.crop = Rect{(int)v[8], (int)v[9], (int)v[10], (int)v[11]};
        lb.has_crop = !(lb.crop.x0 == 0 && lb.crop.y0 == 0 && lb.crop.x1 == lb.src_w && lb.crop.y1 == lb.src_h);
        lb.dst_w = cfg.input_w;
        lb.dst_h = cfg.input_h;
        lb.new_w = lb.dst_w - lb.left - lb.right;
        lb.new_h = lb.dst_h - lb.top - lb.bottom;
        plb = &lb;
    }
    HeadContract hc = legacy_head_contract();
    if (r.get("head")) {
        const Status st = parse_head_contract(r.get("head"), &hc);
        if (st != Status::Ok) {
            return reply_status(st, "head contract rejected");
        }
    }
    HeadOutputs ho;
    if (!read_tensors(r, payload, hc, &ho, true)) {
        return;
    }
    Postprocessor post;
    Status st = post.init(cfg, ho, &hc);
    if (st != Status::Ok) {
        return reply_status(st, "postprocessor init failed");
    }
    st = post.run(ho, plb);
    if (st != Status::Ok) {
        return reply_status(st, "postprocess failed");
    }
    std::printf("{\"status\":\"ok\",\"candidates\":%d,\"kpt_shape\":[%d,%d],\"poses\":[", post.candidates(),
                post.kpt_count(), post.kpt_dims());
    for (int i = 0; i < post.count(); i++) {
        const Pose &p = post[i];
        std::printf("%s{\"cls\":%d,\"score\":%.9g,\"box\":[%.9g,%.9g,%.9g,%.9g],\"box_int\":[%d,%d,%d,%d],\"kpts\":[",
                    i ? "," : "", p.cls, (double)p.score, (double)p.box[0], (double)p.box[1], (double)p.box[2],
                    (double)p.box[3], p.box_int[0], p.box_int[1], p.box_int[2], p.box_int[3]);
        for (int k = 0; k < p.num_kpts; k++) {
            const Keypoint &q = p.kpts[k];
            std::printf("%s[%.9g,%.9g,%.9g,%d,%d,%d]", k ? "," : "", (double)q.x, (double)q.y, (double)q.conf, q.ix,
                        q.iy, q.visible ? 1 : 0);
        }
        std::printf("]}");
    }
    std::printf("]}\n");
    std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
        std::printf("yolo11_pose_host 1\n");
        return 0;
    }
    std::string line;
    while (read_line(&line)) {
        Request r = parse(line);
        if (r.cmd.empty()) {
            continue;
        }
        if (r.cmd == "ping") {
            std::printf("{\"status\":\"ok\"}\n");
            std::fflush(stdout);
            continue;
        }
        size_t nbytes = 0;
        double b = 0;
        if (!parse_list(r.get("bytes"), &b, 1) || b < 0 || b > (double)kMaxPayload) {
            reply_error("bad_request", "every request needs bytes=N (0..1 GiB); stream abandoned");
            return 2; // the payload length is unknown, so the stream cannot be resynchronised
        }
        nbytes = (size_t)b;
        std::vector<uint8_t> payload(nbytes);
        if (nbytes && std::fread(payload.data(), 1, nbytes, stdin) != nbytes) {
            reply_error("bad_request", "stream ended inside a payload");
            return 2;
        }
        if (r.cmd == "pre") {
            handle_pre(r, payload);
        } else if (r.cmd == "post") {
            handle_post(r, payload);
        } else if (r.cmd == "head") {
            handle_head(r);
        } else {
            reply_error("bad_request", "unknown command; use pre, post, head or ping");
        }
    }
    return 0;
}
