// Host stand-in for ESP-IDF's esp_timer.h (the one function the examples use; declaration as in ESP-IDF).
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int64_t esp_timer_get_time(void);
#ifdef __cplusplus
}
#endif
