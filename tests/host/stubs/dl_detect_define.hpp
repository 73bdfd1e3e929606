// Host stand-in for ESP-DL 3.3.9's detection result (esp-dl/vision/detect/dl_detect_define.hpp, result_t as is).
#pragma once
#include <cstdint>
#include <vector>

namespace dl {
namespace detect {
struct result_t {
    int category;                    /*!< category index */
    float score;                     /*!< score of box */
    std::vector<int> box;            /*!< [left_up_x, left_up_y, right_down_x, right_down_y] */
    std::vector<int> keypoint;       /*!< [x1, y1, x2, y2, ...] */
    std::vector<float> mask_coeff{}; /*!< YOLO-seg mask coefficients */
    std::vector<uint8_t> mask{};     /*!< binary mask raster aligned to box (original image size) */
    void limit_box(int width, int height);
    void limit_keypoint(int width, int height);
    int box_area() const { return (box[2] - box[0]) * (box[3] - box[1]); }
};
} // namespace detect
} // namespace dl
