// Host stand-in for ESP-DL's detection result.
#pragma once
#include <cstdint>
#include <vector>

namespace dl {
namespace detect {
struct result_t {
    int category;
    float score;
    std::vector<int> box;      // x1, y1, x2, y2
    std::vector<int> keypoint; // x1, y1, x2, y2, ...
    std::vector<float> mask_coeff{};
    std::vector<uint8_t> mask{};
};
} // namespace detect
} // namespace dl
