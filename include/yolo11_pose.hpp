// YOLO11 pose estimation on ESP-DL (ESP32-P4 / ESP32-S3). Chip targets only; the portable core is in yolo11_pose/.
#pragma once

#include <list>

#include "dl_detect_base.hpp"
#include "dl_detect_define.hpp"
#include "dl_image_define.hpp"
#include "dl_model_base.hpp"
#include "yolo11_pose/postprocess.hpp"
#include "yolo11_pose/preprocess.hpp"

namespace yolo11_pose {

/// ESP-DL pixel type -> the core's; false for types the preprocessor does not read (e.g. UYVY, HSV, quantized).
bool from_espdl_pix_type(dl::image::pix_type_t type, PixelFormat *out);

/// A pose as ESP-DL's result_t: int box, keypoints as x1, y1, x2, y2, ... (every keypoint, visible or not).
dl::detect::result_t to_result(const Pose &pose);

/// The head contract of a loaded model: the text of its metadata entry kHeadMetadataKey (written by `yolo11-pose
/// quantize`), or legacy_head_contract() for files made before it existed. Read it before model->minimize().
Status read_head_contract(dl::Model *model, HeadContract *out);
/// Binds the outputs the contract names to `views` (shape, dtype, exponent, data) and, if not null, `tensors`
/// (3 * head.num_levels entries, head_output_name order). ShapeMismatch (logged) when one is missing or not int8/16.
Status bind_head_outputs(dl::Model *model, const HeadContract &head, HeadOutputs *views, dl::TensorBase **tensors);

/// Binds a loaded dl::Model to the core: frame -> model input tensor -> model->run() -> poses.
class PoseDetector {
public:
    /// Takes ownership of `model`. Check status() before use. `head`: the model's contract (null: read_head_contract).
    PoseDetector(dl::Model *model, const PostprocessConfig &post_cfg, bool letterbox = true,
                 const HeadContract *head = nullptr);
    ~PoseDetector();
    PoseDetector(const PoseDetector &) = delete;
    PoseDetector &operator=(const PoseDetector &) = delete;

    Status status() const { return m_status; }
    /// Runs one frame; `crop` (source pixels, may be null) selects a region. Results: postprocessor().
    Status detect(const dl::image::img_t &img, const Rect *crop = nullptr);

    dl::Model *model() { return m_model; }
    const HeadContract &head() const { return m_head; } ///< what the outputs are and how they are decoded
    Preprocessor &preprocessor() { return m_pre; }
    Postprocessor &postprocessor() { return m_post; }

private:
    dl::Model *m_model;
    dl::TensorBase *m_input = nullptr;
    dl::TensorBase *m_outputs[3 * kMaxLevels] = {};
    HeadContract m_head{};
    HeadOutputs m_views{};
    Preprocessor m_pre;
    Postprocessor m_post;
    Status m_status = Status::NotInitialized;
};

/// Drop-in dl::detect::Detect for pose models exported by `yolo11-pose build` (YOLOv8, YOLO11, YOLO26: the file's head
/// contract says which). The model comes from the
/// location chosen in menuconfig (flash rodata, a flash partition or the SD card) and is loaded on first use.
class YOLO11Pose : public dl::detect::Detect {
public:
    explicit YOLO11Pose(bool lazy_load = true);
    /// An explicit model: rodata address, partition label or file path, as dl::Model takes it.
    YOLO11Pose(const char *model_source, fbs::model_location_type_t location, bool lazy_load = true);
    ~YOLO11Pose() override;

    /// ESP-DL style results (ints). Empty on any error (logged).
    std::list<dl::detect::result_t> &run(const dl::image::img_t &img) override;
    /// Full results (float coordinates, keypoint confidence and visibility); null on error, `*status` says why.
    const Postprocessor *detect(const dl::image::img_t &img, const Rect *crop = nullptr, Status *status = nullptr);

    // Covariant returns (Detect& in ESP-DL) so that every setter chains; through a Detect&, pass idx (0) too:
    // ESP-DL's Detect declares it without a default.
    YOLO11Pose &set_score_thr(float score_thr, int idx = 0) override; ///< 0 < thr < 1
    YOLO11Pose &set_nms_thr(float nms_thr, int idx = 0) override;     ///< 0..1
    YOLO11Pose &set_kpt_thr(float kpt_thr);                       ///< 0..1, on the keypoint's sigmoid
    YOLO11Pose &set_max_det(int max_det); ///< 1..CONFIG_YOLO11_POSE_MAX_DETECTIONS
    dl::Model *get_raw_model(int idx = 0) override;
    /// The loaded model's head contract (YOLOv8/YOLO11/YOLO26, branch, decoder); null when no model loads.
    const HeadContract *head_contract();

private:
    bool load();

    const char *m_source;
    fbs::model_location_type_t m_location;
    PostprocessConfig m_cfg;
    PoseDetector *m_detector = nullptr;
    bool m_load_failed = false;
    std::list<dl::detect::result_t> m_results;
};

} // namespace yolo11_pose
