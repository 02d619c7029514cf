#include "base/stats_layout.h"

namespace ovl {

const char* counter_name(uint32_t counter) {
  switch (counter) {
    case kTxPackets: return "txPackets";
    case kTxBytes: return "txBytes";
    case kRxPackets: return "rxPackets";
    case kRxBytes: return "rxBytes";
    case kFloodPackets: return "floodPackets";
    case kTxWireBytes: return "txWireBytes";
    case kRxWireBytes: return "rxWireBytes";
    case kDropMalformed: return "drop.malformed";
    case kDropWrongVni: return "drop.wrongVni";
    case kDropUnknownPeer: return "drop.unknownPeer";
    case kDropNoRoute: return "drop.noRoute";
    case kDropTooBig: return "drop.tooBig";
    case kDropQueueFull: return "drop.queueFull";
    case kDropDeviceError: return "drop.deviceError";
    case kDropSocketError: return "drop.socketError";
    case kDropLoop: return "drop.loop";
    case kDropUnknownOption: return "drop.unknownOption";
    case kDropOam: return "drop.oam";
    case kDropWrongKey: return "drop.wrongKey";
    case kDropBadChecksum: return "drop.badChecksum";
    case kDropSpoofed: return "drop.spoofed";
    case kDropTtlExpired: return "drop.ttlExpired";
    case kDropEcn: return "drop.ecn";
    case kDropOutOfOrder: return "drop.outOfOrder";
    case kDropAuthFailed: return "drop.authFailed";
    case kDropReplay: return "drop.replay";
    case kDropUnknownSpi: return "drop.unknownSpi";
    case kDropSaExpired: return "drop.saExpired";
    case kDropNoSa: return "drop.noSa";
    case kDropControlQueueFull: return "drop.controlQueueFull";
    case kDropUnreachable: return "drop.unreachable";
    case kTxGsoSends: return "offload.txGsoSends";
    case kTxGsoSegments: return "offload.txGsoSegments";
    case kRxGroReceives: return "offload.rxGroReceives";
    case kRxGroSegments: return "offload.rxGroSegments";
    case kTxSuperFrames: return "offload.txSuperFrames";
    case kRxCoalescedWrites: return "offload.rxCoalescedWrites";
    case kRxCoalescedSegments: return "offload.rxCoalescedSegments";
    case kOffloadFallbacks: return "offload.fallbacks";
    case kIcmpTooBigSent: return "icmpTooBigSent";
    case kMssClamped: return "mssClamped";
    case kNatKeepalives: return "natKeepalives";
    case kControlRx: return "controlRx";
    case kControlTx: return "controlTx";
    case kNeighborAnnouncements: return "neighborAnnouncements";
    case kNeighborAnnounceFailures: return "neighborAnnounceFailures";
    case kFdbFull: return "fdbFull";
    default: return nullptr;
  }
}

}  // namespace ovl
