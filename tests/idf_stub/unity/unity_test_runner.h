// Stand-in for ESP-IDF's unity_test_runner.h (components/unity/include): the two runner entry points that
// test_apps/core_unity's app_main calls, declared as ESP-IDF declares them. Used by the RV32 stack check
// (tests/test_firmware_stack.py); the host run of the cases (tests/test_test_apps.py) has its own main.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
void unity_run_menu(void);
void unity_run_all_tests(void);
#ifdef __cplusplus
}
#endif
