// Host stand-in for ESP-DL 3.3.9's detector interface (esp-dl/vision/detect/dl_detect_base.hpp, class Detect as is;
// DetectWrapper/DetectImpl left out). Note: Detect's set_score_thr/set_nms_thr have no default for idx.
#pragma once
#include <list>

#include "dl_detect_define.hpp"
#include "dl_image_define.hpp"
#include "dl_model_base.hpp"

namespace dl {
namespace detect {
class Detect {
public:
    virtual ~Detect() {};
    virtual std::list<dl::detect::result_t> &run(const dl::image::img_t &img) = 0;
    virtual Detect &set_score_thr(float score_thr, int idx) = 0;
    virtual Detect &set_nms_thr(float nms_thr, int idx) = 0;
    virtual dl::Model *get_raw_model(int idx) = 0;
};
} // namespace detect
} // namespace dl
