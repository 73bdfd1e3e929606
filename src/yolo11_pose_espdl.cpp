// ESP-DL adapter: model loading (lazy, like esp-dl's coco_pose), tensor binding and the Detect interface.
#include "yolo11_pose.hpp"

#include "esp_log.h"
#include "sdkconfig.h"

// Defaults when the component's Kconfig is absent (e.g. the host compile check); menuconfig values win.
#ifndef CONFIG_YOLO11_POSE_SCORE_THRESHOLD
#define CONFIG_YOLO11_POSE_SCORE_THRESHOLD 250
#endif
#ifndef CONFIG_YOLO11_POSE_NMS_THRESHOLD
#define CONFIG_YOLO11_POSE_NMS_THRESHOLD 700
#endif
#ifndef CONFIG_YOLO11_POSE_KPT_THRESHOLD
#define CONFIG_YOLO11_POSE_KPT_THRESHOLD 500
#endif
#ifndef CONFIG_YOLO11_POSE_MAX_DETECTIONS
#define CONFIG_YOLO11_POSE_MAX_DETECTIONS 20
#endif

#if CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_RODATA
extern const uint8_t yolo11_pose_espdl_start[] asm("_binary_yolo11_pose_espdl_start");
#define YOLO11_POSE_MODEL_SOURCE ((const char *)yolo11_pose_espdl_start)
#define YOLO11_POSE_MODEL_LOCATION fbs::MODEL_LOCATION_IN_FLASH_RODATA
#elif CONFIG_YOLO11_POSE_MODEL_LOCATION_FLASH_PARTITION
#define YOLO11_POSE_MODEL_SOURCE CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL
#define YOLO11_POSE_MODEL_LOCATION fbs::MODEL_LOCATION_IN_FLASH_PARTITION
#elif CONFIG_YOLO11_POSE_MODEL_LOCATION_SDCARD
#define YOLO11_POSE_MODEL_SOURCE CONFIG_YOLO11_POSE_MODEL_SDCARD_PATH
#define YOLO11_POSE_MODEL_LOCATION fbs::MODEL_LOCATION_IN_SDCARD
#else
#define YOLO11_POSE_MODEL_SOURCE nullptr
#define YOLO11_POSE_MODEL_LOCATION fbs::MODEL_LOCATION_IN_FLASH_RODATA
#endif

namespace yolo11_pose {

static const char *TAG = "yolo11_pose";

bool from_espdl_pix_type(dl::image::pix_type_t type, PixelFormat *out)
{
    switch (type) {
    case dl::image::DL_IMAGE_PIX_TYPE_RGB888:
        *out = PixelFormat::RGB888;
        return true;
    case dl::image::DL_IMAGE_PIX_TYPE_BGR888:
        *out = PixelFormat::BGR888;
        return true;
    case dl::image::DL_IMAGE_PIX_TYPE_RGB565LE:
        *out = PixelFormat::RGB565LE;
        return true;
    case dl::image::DL_IMAGE_PIX_TYPE_RGB565BE:
        *out = PixelFormat::RGB565BE;
        return true;
    case dl::image::DL_IMAGE_PIX_TYPE_GRAY:
        *out = PixelFormat::GRAY8;
        return true;
    case dl::image::DL_IMAGE_PIX_TYPE_YUYV:
        *out = PixelFormat::YUYV;
        return true;
    default:
        return false;
    }
}

dl::detect::result_t to_result(const Pose &pose)
{
    dl::detect::result_t r;
    r.category = pose.cls;
    r.score = pose.score;
    r.box = {pose.box_int[0], pose.box_int[1], pose.box_int[2], pose.box_int[3]};
    r.keypoint.reserve(2 * pose.num_kpts);
    for (int k = 0; k < pose.num_kpts; k++) {
        r.keypoint.push_back(pose.kpts[k].ix);
        r.keypoint.push_back(pose.kpts[k].iy);
    }
    return r;
}

static bool to_view(dl::TensorBase *t, TensorView *v)
{
    if (!t || t->shape.size() != 4 || (t->dtype != dl::DATA_TYPE_INT8 && t->dtype != dl::DATA_TYPE_INT16)) {
        return false;
    }
    v->data = t->data;
    v->dtype = t->dtype == dl::DATA_TYPE_INT16 ? DType::Int16 : DType::Int8;
    v->exponent = t->get_exponent();
    v->n = t->shape[0];
    v->h = t->shape[1];
    v->w = t->shape[2];
    v->c = t->shape[3];
    return true;
}

Status read_head_contract(dl::Model *model, HeadContract *out)
{
    if (!model || !out) {
        return Status::InvalidArgument;
    }
    const std::string text = model->get_metadata_prop(kHeadMetadataKey);
    if (text.empty()) {
        *out = legacy_head_contract(); // a file made before the contract existed: YOLO11
        return Status::Ok;
    }
    const Status st = parse_head_contract(text.c_str(), out);
    if (st != Status::Ok) {
        ESP_LOGE(TAG, "the model's head contract is not one this component reads (%s): %.80s; update the component or "
                      "rebuild the model with its yolo11-pose", status_name(st), text.c_str());
    }
    return st;
}

Status bind_head_outputs(dl::Model *model, const HeadContract &head, HeadOutputs *views, dl::TensorBase **tensors)
{
    for (int i = 0; i < 3 * head.num_levels; i++) {
        const char *name = head_output_name(head, i);
        dl::TensorBase *t = model->get_output(name);
        if (!to_view(t, head_output_slot(views, head, i))) {
            ESP_LOGE(TAG, "model output %s missing or not int8/int16; export with `yolo11-pose build`", name);
            return Status::ShapeMismatch;
        }
        if (tensors) {
            tensors[i] = t;
        }
    }
    return Status::Ok;
}

PoseDetector::PoseDetector(dl::Model *model, const PostprocessConfig &post_cfg, bool letterbox,
                           const HeadContract *head) :
    m_model(model)
{
    m_input = model ? model->get_input() : nullptr;
    TensorView in;
    if (!to_view(m_input, &in) || in.c != 3) {
        ESP_LOGE(TAG, "model input must be 1xHxWx3 int8/int16");
        m_status = Status::ShapeMismatch;
        return;
    }
    PreprocessConfig pc; // mean 0, std 255, pad 114: the exported model takes RGB / 255, letterboxed like Ultralytics
    pc.dst_w = in.w;
    pc.dst_h = in.h;
    pc.dtype = in.dtype;
    pc.exponent = in.exponent;
#if CONFIG_IDF_TARGET_ESP32P4
    pc.rounding = Rounding::HalfEven; // ESP-DL quantizes half to even where PIE v2 does (ESP32-P4)
#else
    pc.rounding = Rounding::HalfUp;
#endif
    pc.letterbox = letterbox;
    if (head) {
        m_head = *head;
    } else if ((m_status = read_head_contract(model, &m_head)) != Status::Ok) {
        return;
    }
    if ((m_status = bind_head_outputs(model, m_head, &m_views, m_outputs)) != Status::Ok) {
        return;
    }
    PostprocessConfig cfg = post_cfg;
    cfg.input_w = in.w;
    cfg.input_h = in.h;
    m_status = m_pre.init(pc);
    if (m_status == Status::Ok) {
        m_status = m_post.init(cfg, m_views, &m_head);
    }
    if (m_status == Status::Ok) {
        ESP_LOGI(TAG, "head: %s %s, %s, %d class(es), %dx%d keypoints", m_head.family, m_head.branch,
                 m_head.decoder == Decoder::TopK ? "top-k (no NMS)" : "NMS", m_post.num_classes(), m_post.kpt_count(),
                 m_post.kpt_dims());
    }
    if (m_status != Status::Ok) {
        ESP_LOGE(TAG, "init failed: %s", status_name(m_status));
    }
}

PoseDetector::~PoseDetector()
{
    delete m_model;
}

Status PoseDetector::detect(const dl::image::img_t &img, const Rect *crop)
{
    if (m_status != Status::Ok) {
        return m_status;
    }
    ImageView v;
    if (!from_espdl_pix_type(img.pix_type, &v.format)) {
        return Status::UnsupportedFormat;
    }
    v.data = static_cast<const uint8_t *>(img.data);
    v.width = img.width;
    v.height = img.height;
    Status st = m_pre.run(v, crop, m_input->data, (size_t)m_input->get_bytes());
    if (st != Status::Ok) {
        return st;
    }
    m_model->run();
    // Output tensors keep their addresses between runs; refresh the pointers anyway (cheap, no allocation).
    for (int i = 0; i < 3 * m_head.num_levels; i++) {
        head_output_slot(&m_views, m_head, i)->data = m_outputs[i]->data;
    }
    return m_post.run(m_views, &m_pre.letterbox());
}

YOLO11Pose::YOLO11Pose(bool lazy_load) : YOLO11Pose(YOLO11_POSE_MODEL_SOURCE, YOLO11_POSE_MODEL_LOCATION, lazy_load)
{
}

YOLO11Pose::YOLO11Pose(const char *model_source, fbs::model_location_type_t location, bool lazy_load) :
    m_source(model_source), m_location(location)
{
    m_cfg.conf = CONFIG_YOLO11_POSE_SCORE_THRESHOLD / 1000.0;
    m_cfg.iou = CONFIG_YOLO11_POSE_NMS_THRESHOLD / 1000.f;
    m_cfg.kpt_thr = CONFIG_YOLO11_POSE_KPT_THRESHOLD / 1000.0;
    m_cfg.max_det = CONFIG_YOLO11_POSE_MAX_DETECTIONS;
    if (!lazy_load) {
        load();
    }
}

YOLO11Pose::~YOLO11Pose()
{
    delete m_detector;
}

bool YOLO11Pose::load()
{
    if (m_detector) {
        return true;
    }
    if (m_load_failed) {
        return false; // do not retry (and log) on every frame
    }
    if (!m_source) {
        ESP_LOGE(TAG, "no model location configured; choose one in menuconfig (YOLO11 pose)");
        m_load_failed = true;
        return false;
    }
    PostprocessConfig cfg = m_cfg;
    cfg.max_det = CONFIG_YOLO11_POSE_MAX_DETECTIONS; // capacity; set_max_det() can lower it later
    dl::Model *model = new dl::Model(m_source, m_location);
    HeadContract head;
    if (read_head_contract(model, &head) != Status::Ok) { // before minimize(), which drops the loader's maps
        delete model;
        m_load_failed = true;
        return false;
    }
    model->minimize(); // before binding, as esp-dl's model zoo does: frees what only loading needed
    m_detector = new PoseDetector(model, cfg, true, &head);
    if (m_detector->status() != Status::Ok) {
        delete m_detector;
        m_detector = nullptr;
        m_load_failed = true;
        return false;
    }
    m_detector->postprocessor().set_max_det(m_cfg.max_det);
    return true;
}

const Postprocessor *YOLO11Pose::detect(const dl::image::img_t &img, const Rect *crop, Status *status)
{
    Status st = load() ? m_detector->detect(img, crop) : Status::NotInitialized;
    if (status) {
        *status = st;
    }
    if (st != Status::Ok) {
        ESP_LOGE(TAG, "detect failed: %s", status_name(st));
        return nullptr;
    }
    return &m_detector->postprocessor();
}

std::list<dl::detect::result_t> &YOLO11Pose::run(const dl::image::img_t &img)
{
    m_results.clear();
    const Postprocessor *post = detect(img);
    if (post) {
        for (int i = 0; i < post->count(); i++) {
            m_results.push_back(to_result((*post)[i]));
        }
    }
    return m_results;
}

YOLO11Pose &YOLO11Pose::set_score_thr(float score_thr, int idx)
{
    (void)idx; // one model, one threshold
    if (score_thr > 0.f && score_thr < 1.f) {
        m_cfg.conf = score_thr;
        if (m_detector) {
            m_detector->postprocessor().set_conf(score_thr);
        }
    } else {
        ESP_LOGE(TAG, "score threshold %f ignored: give 0 < thr < 1", (double)score_thr);
    }
    return *this;
}

YOLO11Pose &YOLO11Pose::set_nms_thr(float nms_thr, int idx)
{
    (void)idx;
    if (nms_thr >= 0.f && nms_thr <= 1.f) {
        m_cfg.iou = nms_thr;
        if (m_detector) {
            m_detector->postprocessor().set_iou(nms_thr);
        }
    } else {
        ESP_LOGE(TAG, "NMS threshold %f ignored: give 0..1", (double)nms_thr);
    }
    return *this;
}

YOLO11Pose &YOLO11Pose::set_kpt_thr(float kpt_thr)
{
    if (kpt_thr >= 0.f && kpt_thr <= 1.f) {
        m_cfg.kpt_thr = kpt_thr;
        if (m_detector) {
            m_detector->postprocessor().set_kpt_thr(kpt_thr);
        }
    } else {
        ESP_LOGE(TAG, "keypoint threshold %f ignored: give 0..1", (double)kpt_thr);
    }
    return *this;
}

YOLO11Pose &YOLO11Pose::set_max_det(int max_det)
{
    if (max_det >= 1 && max_det <= CONFIG_YOLO11_POSE_MAX_DETECTIONS) {
        m_cfg.max_det = max_det;
        if (m_detector) {
            m_detector->postprocessor().set_max_det(max_det);
        }
    } else {
        ESP_LOGE(TAG, "max detections %d ignored: give 1..%d", max_det, CONFIG_YOLO11_POSE_MAX_DETECTIONS);
    }
    return *this;
}

dl::Model *YOLO11Pose::get_raw_model(int idx)
{
    (void)idx;
    return load() ? m_detector->model() : nullptr;
}

const HeadContract *YOLO11Pose::head_contract()
{
    return load() ? &m_detector->head() : nullptr;
}

} // namespace yolo11_pose
