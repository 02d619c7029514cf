# A reference for the tunnel modes no kernel module of this machine speaks (GRE-in-UDP, GRE,
# IP-in-IP): scapy, not overlayfwd's code, builds and parses the encapsulation.
#
#   scapy-reference.py send MODE SRC DST
#       crafts a fixed set of inner packets (IPv4 ICMP echo with DSCP and ECN bits, IPv4 UDP with
#       DF, IPv6 ICMPv6 echo), encapsulates each as MODE from SRC to DST and sends it (a raw L3
#       socket: the kernel writes nothing but what scapy built). Prints one JSON line:
#       {"sent": [inner packet hex, ...]}
#   scapy-reference.py check MODE OUTER_PCAP INNER_PCAP SRC DST
#       for each inner packet in INNER_PCAP (a TUN capture) whose source is not DST's side, finds
#       the outer packet in OUTER_PCAP (an underlay capture) that carries it, builds the
#       encapsulation scapy expects for it and compares the two byte for byte. Prints one JSON line:
#       {"device": [every packet on the TUN, hex], "inner": [those checked, hex], "checked": N, "mismatches": [{"expected": hex, "got": hex}, ...],
#        "missing": [inner hex, ...]}
#
# MODE: gre-udp (RFC 8086: UDP port 4754, then a 4-byte GRE header), gre (IP protocol 47), ipip
# (IP protocol 4 for IPv4 inside, 41 for IPv6). What RFCs 2003, 2784, 6040 and 8086 fix is built
# from the inner packet: protocol numbers, the GRE header, TTL 64, the inner DSCP and ECN in the
# outer TOS, DF from an IPv4 inner packet (gre, ipip), lengths and checksums (the UDP checksum as RFC 8086
# allows: zero, or computed). What they leave to the sender is taken from the captured packet:
# the IPv4 identification, the UDP source port (flow entropy), DF over an IPv6 inner packet and
# in gre-udp (there the kernel's UDP socket sets it, by its path MTU discovery).
import json
import sys

from scapy.all import GRE, ICMP, IP, UDP, IPv6, ICMPv6EchoRequest, Raw, conf, rdpcap, send

GRE_UDP_PORT = 4754
TTL = 64


def inner_packets():
    return [
        IP(src='198.19.0.2', dst='198.19.0.1', tos=0xB8 | 0x01, id=0x1234) / ICMP(id=7, seq=1) / Raw(b'scapy reference v4 icmp' * 4),
        IP(src='198.19.0.2', dst='198.19.0.1', flags='DF', id=0) / UDP(sport=40000, dport=9) / Raw(bytes(range(256)) * 4),
        IPv6(src='fd00:198:19::2', dst='fd00:198:19::1', tc=0x28 | 0x02, fl=0x12345) / ICMPv6EchoRequest(id=9, seq=2, data=b'scapy reference v6' * 3),
    ]


def is_v6(inner: bytes) -> bool:
    return inner[0] >> 4 == 6


def encapsulate(mode, src, dst, inner: bytes, ident=0, sport=None, df=None, udp_checksum=None):
    v6 = is_v6(inner)
    tos = ((inner[0] & 0x0F) << 4 | inner[1] >> 4) if v6 else inner[1]
    if df is None:
        df = (not v6) and bool(inner[6] & 0x40)
    outer = IP(src=src, dst=dst, ttl=TTL, tos=tos, id=ident, flags='DF' if df else 0)
    ethertype = 0x86DD if v6 else 0x0800
    if mode == 'gre-udp':
        udp = UDP(sport=sport if sport is not None else 49152, dport=GRE_UDP_PORT)
        if udp_checksum == 0:
            udp.chksum = 0
        return outer / udp / GRE(proto=ethertype) / Raw(inner)
    if mode == 'gre':
        return outer / GRE(proto=ethertype) / Raw(inner)
    if mode == 'ipip':
        outer.proto = 41 if v6 else 4
        return outer / Raw(inner)
    raise SystemExit(f'unknown mode {mode}')


def ip_layer(packet):
    """The IPv4 or IPv6 packet of a captured frame, as bytes (any link type)."""
    for layer in (IP, IPv6):
        if packet.haslayer(layer):
            return bytes(packet[layer])
    return None


def outer_payload(mode, outer: IP) -> bytes:
    """What the outer packet carries as the inner packet, per MODE (None if it is not one)."""
    if mode == 'gre-udp':
        if not outer.haslayer(UDP) or outer[UDP].dport != GRE_UDP_PORT:
            return None
        body = bytes(outer[UDP].payload)
        return body[4:] if len(body) > 4 else None
    if mode == 'gre':
        if outer.proto != 47:
            return None
        body = bytes(outer.payload)
        return body[4:] if len(body) > 4 else None
    if mode == 'ipip':
        return bytes(outer.payload) if outer.proto in (4, 41) else None
    return None


def cmd_send(mode, src, dst):
    conf.verb = 0
    sent = []
    for inner in inner_packets():
        raw = bytes(inner)
        send(encapsulate(mode, src, dst, raw, ident=0x4242, sport=50000 + len(sent)))
        sent.append(raw.hex())
    print(json.dumps({'sent': sent}), flush=True)


def cmd_check(mode, outer_pcap, inner_pcap, src, dst):
    inner_side = {'198.19.0.2', 'fd00:198:19::2'}  # the far side's inner addresses: crafted, not sent by src
    seen, inners = [], []
    for p in rdpcap(inner_pcap):
        raw = ip_layer(p)
        if raw is None:
            continue
        seen.append(raw.hex())
        inner_src = IPv6(raw).src if is_v6(raw) else IP(raw).src
        if inner_src not in inner_side:
            inners.append(raw)
    outers = []
    for p in rdpcap(outer_pcap):
        raw = ip_layer(p)
        if raw is None or is_v6(raw):
            continue
        o = IP(raw)
        if o.src == src and o.dst == dst:
            outers.append((raw, o))
    checked, mismatches, missing = 0, [], []
    for inner in inners:
        match = None
        for raw, o in outers:
            if outer_payload(mode, o) == inner:
                match = (raw, o)
                break
        if match is None:
            missing.append(inner.hex())
            continue
        raw, o = match
        expected = encapsulate(
            mode, src, dst, inner,
            ident=o.id,
            sport=o[UDP].sport if mode == 'gre-udp' else None,
            # DF is the UDP socket's (its path MTU discovery) in gre-udp; the raw modes copy it.
            df=bool(o.flags & 0x2) if is_v6(inner) or mode == 'gre-udp' else None,
            udp_checksum=o[UDP].chksum if mode == 'gre-udp' else None,
        )
        checked += 1
        if bytes(expected) != raw:
            mismatches.append({'expected': bytes(expected).hex(), 'got': raw.hex()})
    print(json.dumps({'device': seen, 'inner': [i.hex() for i in inners], 'checked': checked, 'mismatches': mismatches, 'missing': missing}), flush=True)


def main(argv):
    if len(argv) >= 4 and argv[0] == 'send':
        cmd_send(argv[1], argv[2], argv[3])
    elif len(argv) >= 6 and argv[0] == 'check':
        cmd_check(argv[1], argv[2], argv[3], argv[4], argv[5])
    else:
        raise SystemExit(__doc__ if __doc__ else 'usage: scapy-reference.py send|check ...')


if __name__ == '__main__':
    main(sys.argv[1:])
