// Host stand-in for ESP-IDF's esp_err_t.
#pragma once
typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
