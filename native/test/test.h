// A minimal test harness: TEST registers a case, CHECK records a failure and goes on.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace ovl_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

std::vector<Case>& registry();
void record_failure(const char* file, int line, const std::string& what);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

}  // namespace ovl_test

#define OVL_CONCAT2(a, b) a##b
#define OVL_CONCAT(a, b) OVL_CONCAT2(a, b)
#define TEST(name)                                                                        \
  static void OVL_CONCAT(test_, name)();                                                  \
  static ovl_test::Registrar OVL_CONCAT(registrar_, name)(#name, OVL_CONCAT(test_, name)); \
  static void OVL_CONCAT(test_, name)()

#define CHECK(condition)                                                          \
  do {                                                                            \
    if (!(condition)) ovl_test::record_failure(__FILE__, __LINE__, #condition);   \
  } while (0)

#define CHECK_EQ(a, b)                                                                                     \
  do {                                                                                                     \
    const auto& ovl_a = (a);                                                                               \
    const auto& ovl_b = (b);                                                                               \
    if (!(ovl_a == ovl_b)) {                                                                               \
      ovl_test::record_failure(__FILE__, __LINE__, std::string(#a " == " #b " (") + std::to_string(ovl_a) + \
                                                       " vs " + std::to_string(ovl_b) + ")");              \
    }                                                                                                      \
  } while (0)

#define CHECK_THROWS(statement)                                                          \
  do {                                                                                   \
    bool ovl_threw = false;                                                              \
    try {                                                                                \
      statement;                                                                         \
    } catch (...) {                                                                      \
      ovl_threw = true;                                                                  \
    }                                                                                    \
    if (!ovl_threw) ovl_test::record_failure(__FILE__, __LINE__, "no throw: " #statement); \
  } while (0)
