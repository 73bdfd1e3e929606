// Minimal test harness for the host tests (no third-party framework, no exceptions).
#pragma once
#include <cstdio>

namespace test {
inline int g_pass = 0;
inline int g_fail = 0;
} // namespace test

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            test::g_pass++;                                                                                            \
        } else {                                                                                                       \
            test::g_fail++;                                                                                            \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                                                 \
    do {                                                                                                               \
        const long long va_ = (long long)(a), vb_ = (long long)(b);                                                    \
        if (va_ == vb_) {                                                                                              \
            test::g_pass++;                                                                                            \
        } else {                                                                                                       \
            test::g_fail++;                                                                                            \
            std::printf("FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, va_, vb_);                \
        }                                                                                                              \
    } while (0)

inline int test_summary(const char *name)
{
    std::printf("%s: %d passed, %d failed\n", name, test::g_pass, test::g_fail);
    return test::g_fail ? 1 : 0;
}
