#include "wire/ecn.h"

#include "test.h"

using namespace ovl;

// Compile-time checks: the functions are usable in constant expressions.
static_assert(ecn_outer_for(kEcnCe) == kEcnCe, "normal mode copies CE");
static_assert(ecn_decapsulate(kEcnNotEct, kEcnCe).drop, "outer CE over Not-ECT drops");

TEST(ecn_outer_copies_every_codepoint) {
  // RFC 6040 §4.1 normal mode: the outer ECN field is a copy of the inner one, CE included.
  CHECK_EQ(ecn_outer_for(kEcnNotEct), kEcnNotEct);
  CHECK_EQ(ecn_outer_for(kEcnEct0), kEcnEct0);
  CHECK_EQ(ecn_outer_for(kEcnEct1), kEcnEct1);
  CHECK_EQ(ecn_outer_for(kEcnCe), kEcnCe);
  // Only the low two bits are an ECN field.
  CHECK_EQ(ecn_outer_for(0xB8 | kEcnEct0), kEcnEct0);
}

TEST(ecn_codepoint_values_are_rfc3168) {
  CHECK_EQ(kEcnNotEct, 0b00);
  CHECK_EQ(kEcnEct1, 0b01);
  CHECK_EQ(kEcnEct0, 0b10);
  CHECK_EQ(kEcnCe, 0b11);
}

TEST(ecn_decapsulate_rfc6040_figure4_whole_table) {
  // Rows: inner Not-ECT, ECT(0), ECT(1), CE. Columns: outer Not-ECT, ECT(0), ECT(1), CE.
  // -1 is <drop>. `unusual` marks the (!!!) cells.
  const uint8_t order[4] = {kEcnNotEct, kEcnEct0, kEcnEct1, kEcnCe};
  const int expected[4][4] = {
      {kEcnNotEct, kEcnNotEct, kEcnNotEct, -1},
      {kEcnEct0, kEcnEct0, kEcnEct1, kEcnCe},
      {kEcnEct1, kEcnEct1, kEcnEct1, kEcnCe},
      {kEcnCe, kEcnCe, kEcnCe, kEcnCe},
  };
  const bool unusual[4][4] = {
      {false, true, true, true},
      {false, false, false, false},
      {false, false, false, false},
      {false, false, true, false},
  };
  for (int row = 0; row < 4; row++) {
    for (int column = 0; column < 4; column++) {
      const EcnDecap result = ecn_decapsulate(order[row], order[column]);
      if (expected[row][column] < 0) {
        CHECK(result.drop);
      } else {
        CHECK(!result.drop);
        CHECK_EQ(int{result.inner_result}, expected[row][column]);
      }
      CHECK(result.unusual == unusual[row][column]);
      // Higher bits (DSCP) in the arguments change nothing.
      const EcnDecap noisy = ecn_decapsulate(static_cast<uint8_t>(0xFC | order[row]), static_cast<uint8_t>(0xA0 | order[column]));
      CHECK(noisy.drop == result.drop && noisy.inner_result == result.inner_result && noisy.unusual == result.unusual);
    }
  }
}

TEST(ecn_round_trip_through_our_own_tunnel) {
  // Encapsulate with ecn_outer_for, let the path leave it or mark CE (a router may only turn ECT
  // into CE), decapsulate: the inner field comes out as the path made it, and nothing drops.
  for (uint8_t inner = 0; inner < 4; inner++) {
    const uint8_t outer = ecn_outer_for(inner);
    const EcnDecap untouched = ecn_decapsulate(inner, outer);
    CHECK(!untouched.drop && !untouched.unusual);
    CHECK_EQ(untouched.inner_result, inner);
    if (outer == kEcnEct0 || outer == kEcnEct1) {
      const EcnDecap marked = ecn_decapsulate(inner, kEcnCe);
      CHECK(!marked.drop && !marked.unusual);
      CHECK_EQ(marked.inner_result, kEcnCe);
    }
  }
}
