// What a stage of the data path decided about a packet: keep it, or drop it under a reason.
// Stages return a Verdict and never count; the data path counts every drop at one exit
// (Datapath counters: drop()), as the kernel's `reason = ...; goto drop` does.
#pragma once

#include "base/stats_layout.h"

namespace ovl {

class Verdict {
 public:
  static constexpr Verdict pass() { return Verdict(kCounterCount); }
  static constexpr Verdict drop(Counter reason) { return Verdict(reason); }

  constexpr bool ok() const { return reason_ == kCounterCount; }
  // The drop counter; only meaningful when !ok().
  constexpr Counter reason() const { return reason_; }

 private:
  constexpr explicit Verdict(Counter reason) : reason_(reason) {}
  Counter reason_;
};

}  // namespace ovl
