// Explicit Congestion Notification across a tunnel, per RFC 6040 ("Tunnelling of Explicit
// Congestion Notification"), which RFC 9601 extends to tunnels with a shim between the two IP
// headers (GRE, GRE-in-UDP, VXLAN, Geneve carrying IP): every mode of ours.
//
// The ECN field is the low 2 bits of the IPv4 TOS / IPv6 Traffic Class (RFC 3168 §5):
//   00 Not-ECT   01 ECT(1)   10 ECT(0)   11 CE (congestion experienced)
//
// Encapsulation (RFC 6040 §4.1, Figure 3). An ingress has two modes:
// - normal mode: the ingress copies the ECN field of the arriving (inner) header into the
//   outer header, all four codepoints including CE. So a router's CE mark made before the
//   tunnel stays visible to routers inside it, and the egress can still see it (it is in the
//   inner header anyway).
// - compatibility mode: the outer header is Not-ECT, for an egress that may not be RFC 6040,
//   RFC 4301 or RFC 3168 full-functionality compliant (an old egress that would otherwise
//   lose CE marks made inside the tunnel, or pass them to a Not-ECT transport).
// We implement normal mode only: our own egress (ecn_decapsulate below) is compliant, and so
// is the Linux kernel's (__INET_ECN_decapsulate). Linux's own ingress (INET_ECN_encapsulate)
// still follows RFC 3168 §9.1.1 full functionality instead, turning an inner CE into an outer
// ECT(0); RFC 6040 §4.1 replaced that with the plain copy. Either way the egress result is CE,
// because the inner header keeps its CE.
//
// Decapsulation (RFC 6040 §4.2, Figure 4): the outgoing (inner) ECN field is the codepoint at
// inner row / outer column; the cells marked (!!!) are combinations no compliant ingress
// produces (something on the path is broken or an attack), (!) one that is merely unusual:
//
//                      outer:  Not-ECT   ECT(0)        ECT(1)        CE
//   inner Not-ECT              Not-ECT   Not-ECT(!!!)  Not-ECT(!!!)  drop(!!!)
//   inner ECT(0)               ECT(0)    ECT(0)        ECT(1)        CE
//   inner ECT(1)               ECT(1)    ECT(1)(!)     ECT(1)        CE
//   inner CE                   CE        CE            CE(!!!)       CE
//
// Outer CE over an inner Not-ECT must drop: the transport does not understand ECN, so the
// congestion signal it can understand is a loss (RFC 4774). Outer ECT(1) over inner ECT(0)
// propagates ECT(1): RFC 6040 lets ECT(1) carry a second, milder severity of congestion (as
// pre-congestion notification uses it), which an ECT(0) inner would otherwise lose.
#pragma once

#include <cstdint>

namespace ovl {

constexpr uint8_t kEcnNotEct = 0;
constexpr uint8_t kEcnEct1 = 1;
constexpr uint8_t kEcnEct0 = 2;
constexpr uint8_t kEcnCe = 3;
constexpr uint8_t kEcnMask = 3;

// The outer header's ECN field for an inner one, RFC 6040 normal mode: an exact copy.
constexpr uint8_t ecn_outer_for(uint8_t inner_ecn) { return inner_ecn & kEcnMask; }

struct EcnDecap {
  bool drop = false;         // RFC 6040 says MUST drop (outer CE over inner Not-ECT)
  uint8_t inner_result = 0;  // the ECN field the decapsulated packet leaves with (when not dropped)
  bool unusual = false;      // a (!!!) cell: worth counting; RFC 6040 suggests logging it
};

// Figure 4. `inner` and `outer` are ECN fields (only their low 2 bits are looked at).
constexpr EcnDecap ecn_decapsulate(uint8_t inner, uint8_t outer) {
  inner &= kEcnMask;
  outer &= kEcnMask;
  EcnDecap result;
  result.inner_result = inner;
  if (inner == kEcnNotEct) {
    // Not-ECT never becomes anything else; any ECN codepoint in the outer header is a misfit.
    result.drop = outer == kEcnCe;
    result.unusual = outer != kEcnNotEct;
    return result;
  }
  if (outer == kEcnCe) {
    result.inner_result = kEcnCe;
  } else if (outer == kEcnEct1 && inner == kEcnEct0) {
    result.inner_result = kEcnEct1;
  }
  // Inner CE under an outer ECT(1): the ingress copied the inner field, so the outer would have
  // been CE too; a router may turn ECT into CE but never CE back into ECT.
  result.unusual = inner == kEcnCe && outer == kEcnEct1;
  return result;
}

}  // namespace ovl
