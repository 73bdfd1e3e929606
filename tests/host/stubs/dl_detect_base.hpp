// Host stand-in for ESP-DL's detector interface.
#pragma once
#include <list>

#include "dl_detect_define.hpp"
#include "dl_image_define.hpp"
#include "dl_model_base.hpp"

namespace dl {
namespace detect {
class Detect {
public:
    virtual ~Detect() {}
    virtual std::list<dl::detect::result_t> &run(const dl::image::img_t &img) = 0;
    virtual Detect &set_score_thr(float score_thr, int idx) = 0;
    virtual Detect &set_nms_thr(float nms_thr, int idx) = 0;
    virtual dl::Model *get_raw_model(int idx) = 0;
};
} // namespace detect
} // namespace dl
