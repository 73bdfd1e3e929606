// Unity runner of the portable-core tests. On a chip: the usual Unity menu (pytest picks every case, resetting the
// board in between) plus a heap check around each case, since the core must not allocate per frame.
// On the linux target: run everything once and exit with the failure count (pytest reads the Unity summary).
#include <cstdio>
#include <cstdlib>

#include "sdkconfig.h"
#include "unity.h"
#include "unity_test_runner.h"
#if !CONFIG_IDF_TARGET_LINUX
#include "esp_heap_caps.h"
#endif

#if !CONFIG_IDF_TARGET_LINUX
// Unity's own bookkeeping and printf buffers may move a few bytes; a real per-case leak is far larger.
static const int kLeakTolerance = 64;
static size_t s_free_before;

extern "C" void setUp(void)
{
    s_free_before = heap_caps_get_free_size(MALLOC_CAP_8BIT);
}

extern "C" void tearDown(void)
{
    const size_t after = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    const int delta = (int)after - (int)s_free_before;
    printf("heap: %u bytes free before, %u after (delta %d)\n", (unsigned)s_free_before, (unsigned)after, delta);
    TEST_ASSERT_MESSAGE(delta >= -kLeakTolerance, "memory leaked by the test case");
}
#else
extern "C" void setUp(void) {}
extern "C" void tearDown(void) {}
#endif

extern "C" void app_main(void)
{
#if CONFIG_IDF_TARGET_LINUX
    UNITY_BEGIN();
    unity_run_all_tests();
    const int failures = UNITY_END();
    std::exit(failures == 0 ? 0 : 1);
#else
    unity_run_menu();
#endif
}
