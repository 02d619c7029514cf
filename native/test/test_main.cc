#include <cstdio>

#include "test.h"

namespace ovl_test {

namespace {
int failures_in_case = 0;
}

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

void record_failure(const char* file, int line, const std::string& what) {
  failures_in_case++;
  std::fprintf(stderr, "  %s:%d: CHECK failed: %s\n", file, line, what.c_str());
}

}  // namespace ovl_test

int main() {
  int passed = 0, failed = 0;
  for (const auto& test : ovl_test::registry()) {
    ovl_test::failures_in_case = 0;
    try {
      test.body();
    } catch (const std::exception& error) {
      ovl_test::record_failure(__FILE__, __LINE__, std::string("exception: ") + error.what());
    }
    if (ovl_test::failures_in_case == 0) {
      passed++;
      std::printf("ok   %s\n", test.name);
    } else {
      failed++;
      std::printf("FAIL %s\n", test.name);
    }
  }
  std::printf("native: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
