// Result types of the YOLO11-pose postprocessor (portable, no ESP-DL types).
#pragma once

namespace yolo11_pose {

struct Keypoint {
    float x = 0.f, y = 0.f; ///< source-image pixels (clipped to the image or crop)
    float conf = 0.f;       ///< sigmoid of the visibility logit (1.0 for 2-D keypoints)
    int ix = 0, iy = 0;     ///< x, y rounded half away from zero and clamped to the last pixel
    bool visible = false;   ///< conf >= keypoint threshold (decided on the integer logit, no float rounding)
};

struct Pose {
    int cls = 0;                         ///< class index (0 = person for COCO)
    float score = 0.f;                   ///< sigmoid of the class logit
    float box[4] = {0.f, 0.f, 0.f, 0.f}; ///< x1, y1, x2, y2 in source-image pixels
    int box_int[4] = {0, 0, 0, 0};       ///< rounded and clamped like the keypoints
    const Keypoint *kpts = nullptr;      ///< num_kpts entries, owned by the Postprocessor
    int num_kpts = 0;
};

} // namespace yolo11_pose
