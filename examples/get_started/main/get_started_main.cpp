// get_started: YOLO11Pose on one frame embedded in the firmware (no camera needed); prints every person found,
// with its box and 17 keypoints, then the time and memory it took.
//
// The frame is what a camera driver delivers: 240x320 RGB565, big-endian (see tools/make_frame.py to use your own
// picture). With a camera, build the same dl::image::img_t from each frame buffer and call detect() on it.
#include <cinttypes>
#include <cstdint>
#include <cstdio>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "yolo11_pose.hpp"

// EMBED_FILES in main/CMakeLists.txt: the linker symbols follow the file name.
extern const uint8_t frame_start[] asm("_binary_frame_240x320_rgb565be_start");
extern const uint8_t frame_end[] asm("_binary_frame_240x320_rgb565be_end");

namespace {

constexpr int kFrameWidth = 240;
constexpr int kFrameHeight = 320;
const char *const TAG = "get_started";

const char *const kKeypointNames[17] = {"nose",        "left_eye",       "right_eye",     "left_ear",
                                        "right_ear",   "left_shoulder",  "right_shoulder", "left_elbow",
                                        "right_elbow", "left_wrist",     "right_wrist",   "left_hip",
                                        "right_hip",   "left_knee",      "right_knee",    "left_ankle",
                                        "right_ankle"};

void log_memory(const char *when)
{
    ESP_LOGI(TAG, "%s: free internal RAM %u KB, free PSRAM %u KB", when,
             (unsigned)(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) / 1024),
             (unsigned)(heap_caps_get_free_size(MALLOC_CAP_SPIRAM) / 1024));
}

void print_pose(int index, const yolo11_pose::Pose &p)
{
    ESP_LOGI(TAG, "person %d: score %.2f, box [%d, %d, %d, %d]", index, (double)p.score, p.box_int[0], p.box_int[1],
             p.box_int[2], p.box_int[3]);
    for (int k = 0; k < p.num_kpts; k++) {
        const yolo11_pose::Keypoint &kp = p.kpts[k];
        // Hidden keypoints keep their estimated position; their confidence says how much to trust it.
        ESP_LOGI(TAG, "  %-14s (%3d, %3d) conf %.2f%s", k < 17 ? kKeypointNames[k] : "keypoint", kp.ix, kp.iy,
                 (double)kp.conf, kp.visible ? "" : " (hidden)");
    }
}

} // namespace

extern "C" void app_main(void)
{
    if (frame_end - frame_start != kFrameWidth * kFrameHeight * 2) {
        ESP_LOGE(TAG, "the embedded frame has %d bytes, not %dx%dx2: update kFrameWidth/kFrameHeight",
                 (int)(frame_end - frame_start), kFrameWidth, kFrameHeight);
        return;
    }
    // ESP-DL's image descriptor; the preprocessor only reads the pixels, so the frame can stay in flash.
    dl::image::img_t img = {(void *)frame_start, (uint16_t)kFrameWidth, (uint16_t)kFrameHeight,
                            dl::image::DL_IMAGE_PIX_TYPE_RGB565BE};

    log_memory("before loading the model");
    int64_t t0 = esp_timer_get_time();
    // The model menuconfig selects (Component config > YOLO11 pose estimation), loaded now rather than on the first
    // frame so that the load time shows separately. Model on the SD card: mount the card before this line.
    yolo11_pose::YOLO11Pose detector(false);
    if (detector.get_raw_model() == nullptr) {
        ESP_LOGE(TAG, "the model did not load (see the errors above)");
        return;
    }
    const int64_t load_us = esp_timer_get_time() - t0;
    log_memory("model loaded");

    // One inference takes seconds (about 2.7 s at 640x640 on the ESP32-P4, tens of seconds on the ESP32-S3): the
    // task watchdog timeout in sdkconfig.defaults.<target> is raised above that.
    yolo11_pose::Status status = yolo11_pose::Status::Ok;
    t0 = esp_timer_get_time();
    const yolo11_pose::Postprocessor *poses = detector.detect(img, nullptr, &status);
    const int64_t detect_us = esp_timer_get_time() - t0;
    if (poses == nullptr) {
        ESP_LOGE(TAG, "detect() failed: %s", yolo11_pose::status_name(status));
        return;
    }
    for (int i = 0; i < poses->count(); i++) {
        print_pose(i, (*poses)[i]);
    }
    ESP_LOGI(TAG, "%d person(s) in a %dx%d frame; model load %" PRId64 " ms, detect %" PRId64 " ms", poses->count(),
             kFrameWidth, kFrameHeight, load_us / 1000, detect_us / 1000);
    log_memory("after detect");
}
