// Runs every TEST_CASE registered through the stand-in unity.h and prints a Unity-like summary.
#include "unity.h"

namespace unity_stub {
Case *&cases()
{
    static Case *head = nullptr;
    return head;
}
int &failures_in_case()
{
    static int n = 0;
    return n;
}
} // namespace unity_stub

int main()
{
    int tests = 0, failed = 0;
    for (unity_stub::Case *c = unity_stub::cases(); c; c = c->next) {
        unity_stub::failures_in_case() = 0;
        c->fn();
        tests++;
        const bool ok = unity_stub::failures_in_case() == 0;
        failed += !ok;
        std::printf("%s:%s\n", c->name, ok ? "PASS" : "FAIL");
    }
    std::printf("-----------------------\n%d Tests %d Failures 0 Ignored\n", tests, failed);
    return failed ? 1 : 0;
}
