// Host stand-in for the subset of ESP-IDF's Unity that test_apps/core_unity uses, so tests/test_test_apps.py can
// run those test cases against the core with g++ (no ESP-IDF). Failing assertions print and end the case.
#pragma once
#include <cmath>
#include <cstdio>

namespace unity_stub {
struct Case {
    const char *name;
    void (*fn)();
    Case *next;
};
Case *&cases();
int &failures_in_case();
struct Register {
    Case c;
    Register(const char *name, void (*fn)()) : c{name, fn, nullptr}
    {
        Case **p = &cases();
        while (*p) {
            p = &(*p)->next;
        }
        *p = &c;
    }
};
} // namespace unity_stub

#define UNITY_STUB_CAT2(a, b) a##b
#define UNITY_STUB_CAT(a, b) UNITY_STUB_CAT2(a, b)
#define TEST_CASE(name, tags)                                                                                          \
    static void UNITY_STUB_CAT(unity_case_, __LINE__)();                                                               \
    static unity_stub::Register UNITY_STUB_CAT(unity_reg_, __LINE__)(name, UNITY_STUB_CAT(unity_case_, __LINE__));     \
    static void UNITY_STUB_CAT(unity_case_, __LINE__)()

#define UNITY_STUB_FAIL(what)                                                                                          \
    do {                                                                                                               \
        std::printf("%s:%d: FAIL: %s\n", __FILE__, __LINE__, what);                                                     \
        unity_stub::failures_in_case()++;                                                                              \
        return;                                                                                                        \
    } while (0)
#define TEST_ASSERT_EQUAL(expected, actual)                                                                            \
    do {                                                                                                               \
        if ((long long)(expected) != (long long)(actual)) {                                                            \
            std::printf("  expected %lld, got %lld\n", (long long)(expected), (long long)(actual));                    \
            UNITY_STUB_FAIL(#expected " == " #actual);                                                                 \
        }                                                                                                              \
    } while (0)
#define TEST_ASSERT_EQUAL_HEX8(expected, actual) TEST_ASSERT_EQUAL(expected, actual)
#define TEST_ASSERT_FLOAT_WITHIN(delta, expected, actual)                                                              \
    do {                                                                                                               \
        if (!(std::fabs((double)(expected) - (double)(actual)) <= (double)(delta))) {                                  \
            std::printf("  expected %.9g, got %.9g\n", (double)(expected), (double)(actual));                          \
            UNITY_STUB_FAIL(#expected " ~ " #actual);                                                                  \
        }                                                                                                              \
    } while (0)
// Unity compares floats within 1e-5 of the expected value (relative); good enough for the exact values used here.
#define TEST_ASSERT_EQUAL_FLOAT(expected, actual)                                                                      \
    TEST_ASSERT_FLOAT_WITHIN(1e-5 * std::fabs((double)(expected)) + 1e-30, expected, actual)
#define TEST_ASSERT_TRUE(x)                                                                                            \
    do {                                                                                                               \
        if (!(x))                                                                                                      \
            UNITY_STUB_FAIL(#x);                                                                                       \
    } while (0)
#define TEST_ASSERT_FALSE(x) TEST_ASSERT_TRUE(!(x))
#define TEST_ASSERT_MESSAGE(x, msg) TEST_ASSERT_TRUE(x)
