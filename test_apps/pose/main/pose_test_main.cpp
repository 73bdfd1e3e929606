// Pose test app: YOLO11Pose on the embedded frames, every pose printed as one JSON line for pytest_pose.py, which
// compares them with the host twin (tools/yolo11_pose/evaluation/devicelog.py documents the line format).
//
// Per frame it also times the three stages separately. YOLO11Pose::detect() runs them back to back, so the app
// repeats each stage alone with the component's public pieces on the same data: its own Preprocessor (whose output
// must equal the model input YOLO11Pose wrote), the model, and its own Postprocessor (whose poses must equal
// YOLO11Pose's). Those two equalities are checked too.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "esp_err.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "sdkconfig.h"
#include "test_images.h"
#include "yolo11_pose.hpp"

using namespace yolo11_pose;

static const char *TAG = "pose_test";

#if CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_RODATA
extern const uint8_t model_espdl_start[] asm("_binary_yolo11_pose_espdl_start");
#define MODEL_SOURCE ((const char *)model_espdl_start)
#define MODEL_LOCATION fbs::MODEL_LOCATION_IN_FLASH_RODATA
#elif CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_PARTITION
#define MODEL_SOURCE CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL
#define MODEL_LOCATION fbs::MODEL_LOCATION_IN_FLASH_PARTITION
#else
#error "the pose test app embeds or flashes its model; choose flash rodata or a flash partition in menuconfig"
#endif

namespace {

struct Mem {
    size_t internal, psram, internal_min, psram_min;
};

Mem mem_now()
{
    return Mem{heap_caps_get_free_size(MALLOC_CAP_INTERNAL), heap_caps_get_free_size(MALLOC_CAP_SPIRAM),
               heap_caps_get_minimum_free_size(MALLOC_CAP_INTERNAL), heap_caps_get_minimum_free_size(MALLOC_CAP_SPIRAM)};
}

void print_mem(const char *stage, const Mem &m)
{
    printf("POSE_MEM: {\"stage\": \"%s\", \"internal_free\": %u, \"psram_free\": %u, \"internal_min_free\": %u, "
           "\"psram_min_free\": %u}\n",
           stage, (unsigned)m.internal, (unsigned)m.psram, (unsigned)m.internal_min, (unsigned)m.psram_min);
}

double ms_since(int64_t t0)
{
    return (esp_timer_get_time() - t0) / 1000.0;
}

void print_error(const char *what, const char *detail)
{
    printf("POSE_ERROR: {\"message\": \"%s: %s\"}\n", what, detail);
}

// dl::Model::test() compares the chip's outputs with the test values ESP-PPQ stored in the .espdl
// (`yolo11-pose build --export-test-values`). It needs an un-minimized model, so it gets its own short-lived one.
void run_model_self_test()
{
    dl::Model *model = new dl::Model(MODEL_SOURCE, MODEL_LOCATION);
    fbs::FbsModel *fbs = model->get_fbs_model();
    bool has_values = false;
    if (fbs) {
        fbs->load_map();
        for (auto &kv : model->get_inputs()) {
            has_values = fbs->get_test_input_tensor_raw_data(kv.first) != nullptr;
            break;
        }
        fbs->clear_map();
    }
    const char *result = "skipped";
    if (has_values) {
        result = model->test() == ESP_OK ? "pass" : "fail";
    }
    printf("POSE_MODEL_TEST: {\"result\": \"%s\"}\n", result);
    delete model;
}

bool to_view(dl::TensorBase *t, TensorView *v)
{
    if (!t || t->shape.size() != 4 || (t->dtype != dl::DATA_TYPE_INT8 && t->dtype != dl::DATA_TYPE_INT16)) {
        return false;
    }
    *v = TensorView{t->data, t->dtype == dl::DATA_TYPE_INT16 ? DType::Int16 : DType::Int8, t->get_exponent(),
                    t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
    return true;
}

// The stage timer: its own Preprocessor and Postprocessor bound to YOLO11Pose's model, set up like the adapter.
struct StageTimer {
    Preprocessor pre;
    Postprocessor post;
    HeadOutputs views{};
    dl::TensorBase *input = nullptr;
    uint8_t *scratch = nullptr; // preprocessed frame, to compare with the model input YOLO11Pose wrote
    size_t scratch_bytes = 0;

    Status init(dl::Model *model, const PostprocessConfig &post_cfg, const HeadContract *head_ptr)
    {
        if (!head_ptr) {
            return Status::NotInitialized;
        }
        const HeadContract &head = *head_ptr;
        input = model->get_input();
        TensorView in;
        if (!to_view(input, &in) || in.c != 3) {
            return Status::ShapeMismatch;
        }
        PreprocessConfig pc;
        pc.dst_w = in.w;
        pc.dst_h = in.h;
        pc.dtype = in.dtype;
        pc.exponent = in.exponent;
#if CONFIG_IDF_TARGET_ESP32P4
        pc.rounding = Rounding::HalfEven;
#else
        pc.rounding = Rounding::HalfUp;
#endif
        Status st = pre.init(pc);
        if (st != Status::Ok) {
            return st;
        }
        // The same contract (read by YOLO11Pose before minimize()) and the same binding as the adapter.
        st = bind_head_outputs(model, head, &views, nullptr);
        if (st != Status::Ok) {
            return st;
        }
        PostprocessConfig cfg = post_cfg;
        cfg.input_w = in.w;
        cfg.input_h = in.h;
        st = post.init(cfg, views, &head);
        if (st != Status::Ok) {
            return st;
        }
        scratch_bytes = pre.output_bytes();
        scratch = (uint8_t *)heap_caps_aligned_alloc(16, scratch_bytes, MALLOC_CAP_8BIT | MALLOC_CAP_SPIRAM);
        if (!scratch) {
            scratch = (uint8_t *)heap_caps_aligned_alloc(16, scratch_bytes, MALLOC_CAP_8BIT);
        }
        return scratch ? Status::Ok : Status::OutOfMemory;
    }
};

bool same_pose(const Pose &a, const Pose &b)
{
    if (a.cls != b.cls || a.score != b.score || a.num_kpts != b.num_kpts) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (a.box[i] != b.box[i]) {
            return false;
        }
    }
    for (int k = 0; k < a.num_kpts; k++) {
        if (a.kpts[k].x != b.kpts[k].x || a.kpts[k].y != b.kpts[k].y || a.kpts[k].conf != b.kpts[k].conf) {
            return false;
        }
    }
    return true;
}

void print_pose(const char *image, const Pose &p)
{
    // One printf per pose line would need a large buffer; stream the pieces instead (stdout is line buffered).
    printf("POSE_JSON: {\"image\": \"%s\", \"cls\": %d, \"score\": %.6f, \"box\": [%.3f, %.3f, %.3f, %.3f], "
           "\"keypoints\": [",
           image, p.cls, (double)p.score, (double)p.box[0], (double)p.box[1], (double)p.box[2], (double)p.box[3]);
    for (int k = 0; k < p.num_kpts; k++) {
        printf("%s[%.3f, %.3f, %.6f]", k ? ", " : "", (double)p.kpts[k].x, (double)p.kpts[k].y,
               (double)p.kpts[k].conf);
    }
    printf("]}\n");
}

} // namespace

extern "C" void app_main(void)
{
    const Mem at_start = mem_now();
    print_mem("start", at_start);
    run_model_self_test();

    YOLO11Pose detector(false); // load now, so the load shows up in the memory figures below
    dl::Model *model = detector.get_raw_model();
    const Mem loaded = mem_now();
    print_mem("model_loaded", loaded);
    if (!model) {
        print_error("model", "YOLO11Pose could not load the model (see the log above)");
        printf("POSE_DONE: {\"images\": 0, \"errors\": 1}\n");
        return;
    }
    PostprocessConfig pcfg;
    pcfg.conf = CONFIG_YOLO11_POSE_SCORE_THRESHOLD / 1000.0;
    pcfg.iou = CONFIG_YOLO11_POSE_NMS_THRESHOLD / 1000.f;
    pcfg.kpt_thr = CONFIG_YOLO11_POSE_KPT_THRESHOLD / 1000.0;
    pcfg.max_det = CONFIG_YOLO11_POSE_MAX_DETECTIONS;
    // Static: its Preprocessor and Postprocessor (lookup tables) take about 5.9 KB, more than a task stack should
    // hold (tests/test_firmware_stack.py sums the frames).
    static StageTimer timer;
    const Status tst = timer.init(model, pcfg, detector.head_contract());
    dl::TensorBase *input = model->get_input();
    const int in_h = input && input->shape.size() == 4 ? input->shape[1] : 0;
    const int in_w = input && input->shape.size() == 4 ? input->shape[2] : 0;
    printf("POSE_CONFIG: {\"target\": \"%s\", \"input\": [%d, %d], \"conf\": %.6f, \"iou\": %.6f, \"kpt_thr\": %.6f, "
           "\"max_det\": %d, \"model_internal_bytes\": %d, \"model_psram_bytes\": %d}\n",
           CONFIG_IDF_TARGET, in_w, in_h, pcfg.conf, (double)pcfg.iou, pcfg.kpt_thr, pcfg.max_det,
           (int)at_start.internal - (int)loaded.internal, (int)at_start.psram - (int)loaded.psram);
    if (tst != Status::Ok) {
        print_error("stage timer", status_name(tst));
    }

    int errors = tst != Status::Ok ? 1 : 0;
    for (int i = 0; i < TEST_FRAME_COUNT; i++) {
        const test_frame_t &f = TEST_FRAMES[i];
        uint32_t hdr[4];
        std::memcpy(hdr, f.file, sizeof(hdr));
        if (std::memcmp(f.file, "RGB8", 4) != 0 || hdr[3] != hdr[1] * 3) {
            print_error(f.name, "embedded frame has a bad header; rebuild the app");
            errors++;
            continue;
        }
        dl::image::img_t img{(void *)(f.file + 16), (uint16_t)hdr[1], (uint16_t)hdr[2],
                             dl::image::DL_IMAGE_PIX_TYPE_RGB888};

        Status st;
        int64_t t0 = esp_timer_get_time();
        const Postprocessor *res = detector.detect(img, nullptr, &st);
        const double total_ms = ms_since(t0);
        const int count = res ? res->count() : 0;
        for (int k = 0; k < count; k++) {
            print_pose(f.name, (*res)[k]);
        }

        // Stage by stage on the same frame (see the top of this file).
        double pre_ms = -1, model_ms = -1, post_ms = -1;
        bool input_match = false, poses_match = false;
        if (res && tst == Status::Ok) {
            ImageView v{(const uint8_t *)img.data, img.width, img.height, PixelFormat::RGB888, 0};
            t0 = esp_timer_get_time();
            Status ps = timer.pre.run(v, nullptr, timer.scratch, timer.scratch_bytes);
            pre_ms = ms_since(t0);
            input_match = ps == Status::Ok && std::memcmp(timer.scratch, timer.input->data, timer.scratch_bytes) == 0;
            t0 = esp_timer_get_time();
            model->run(); // the input tensor still holds this frame
            model_ms = ms_since(t0);
            t0 = esp_timer_get_time();
            Status qs = timer.post.run(timer.views, &timer.pre.letterbox());
            post_ms = ms_since(t0);
            poses_match = qs == Status::Ok && timer.post.count() == count;
            for (int k = 0; poses_match && k < count; k++) {
                poses_match = same_pose(timer.post[k], (*res)[k]);
            }
            if (!input_match || !poses_match) {
                print_error(f.name, !input_match ? "YOLO11Pose fed the model another input than the Preprocessor gives"
                                                 : "a second model run gave other poses (nondeterministic output)");
                errors++;
            }
        }
        if (!res) {
            errors++;
        }
        printf("POSE_IMAGE: {\"image\": \"%s\", \"width\": %d, \"height\": %d, \"count\": %d, \"status\": \"%s\", "
               "\"total_ms\": %.2f, \"preprocess_ms\": %.2f, \"model_ms\": %.2f, \"postprocess_ms\": %.2f, "
               "\"candidates\": %d}\n",
               f.name, img.width, img.height, count, res ? "ok" : status_name(st), total_ms, pre_ms, model_ms, post_ms,
               timer.post.candidates());
    }
    print_mem("end", mem_now());
    printf("POSE_DONE: {\"images\": %d, \"errors\": %d}\n", TEST_FRAME_COUNT, errors);
    ESP_LOGI(TAG, "done");
}
