#!/usr/bin/env python3
"""Seeds from another implementation: packets the Linux kernel's own tunnels put on the wire.

Builds two network namespaces joined by veth, gives them the kernel's VXLAN, Geneve, GRE (with
key, checksum and sequence numbers), gretap, GRE-in-UDP (fou), IP-in-IP and sit devices, sends
pings and TCP SYNs through each, captures the underlay with tcpdump, and writes what it saw into
native/test/corpus/<target>/kernel-* in each target's input layout (make_seed_corpus.cc writes
the gen-* seeds the same way from the core's own encoders). Needs root, iproute2, tcpdump and
python3; everything is torn down at the end. Run by hand:

    sudo python3 native/test/capture_kernel_seeds.py native/test/corpus
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

NS_A, NS_B = "ovlseed-a", "ovlseed-b"
VNI = 0x00ABCD        # fuzz_tunnel's VNI
GRE_KEY = 0x01020304  # fuzz_tunnel's GRE key


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ns(name, *args, check=True):
    return sh("ip", "netns", "exec", name, *args, check=check)


def setup():
    for n in (NS_A, NS_B):
        sh("ip", "netns", "del", n, check=False)
        sh("ip", "netns", "add", n)
    sh("ip", "link", "add", "ovs-a", "netns", NS_A, "type", "veth", "peer", "ovs-b", "netns", NS_B)
    for n, dev, me, other in ((NS_A, "ovs-a", 1, 2), (NS_B, "ovs-b", 2, 1)):
        ns(n, "ip", "link", "set", "lo", "up")
        ns(n, "ip", "addr", "add", f"198.18.0.{me}/24", "dev", dev)
        ns(n, "ip", "link", "set", dev, "up")
        ns(n, "modprobe", "fou", check=False)
        # GRE-in-UDP (RFC 8086) receive port, for the fou device below.
        ns(n, "ip", "fou", "add", "port", "4754", "ipproto", "47", check=False)
        tunnels = [
            ("vx0", ["type", "vxlan", "id", str(VNI), "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}", "dstport", "4789"]),
            ("gn0", ["type", "geneve", "id", str(VNI), "remote", f"198.18.0.{other}"]),
            ("gt0", ["type", "gretap", "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}", "key", str(GRE_KEY)]),
            ("gr0", ["type", "gre", "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}", "key", str(GRE_KEY), "csum", "seq"]),
            ("gu0", ["type", "gre", "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}", "encap", "fou", "encap-sport", "auto", "encap-dport", "4754"]),
            ("ip0", ["type", "ipip", "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}"]),
            ("si0", ["type", "sit", "local", f"198.18.0.{me}", "remote", f"198.18.0.{other}"]),
        ]
        for i, (dev_name, spec) in enumerate(tunnels):
            if ns(n, "ip", "link", "add", dev_name, *spec, check=False).returncode != 0:
                print(f"capture_kernel_seeds: no {dev_name} here ({' '.join(spec[:2])}); skipped", file=sys.stderr)
                continue
            ns(n, "ip", "link", "set", dev_name, "up")
            ns(n, "ip", "addr", "add", f"10.{i + 1}.0.{me}/24", "dev", dev_name)
            ns(n, "ip", "-6", "addr", "add", f"fd00:{i + 1}::{me}/64", "dev", dev_name, "nodad", check=False)


def teardown():
    for n in (NS_A, NS_B):
        sh("ip", "netns", "del", n, check=False)


def traffic():
    for i in range(1, 8):
        ns(NS_A, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-s", "56", f"10.{i}.0.2", check=False)
        ns(NS_A, "ping", "-c", "1", "-W", "1", "-s", "1200", "-M", "dont", f"10.{i}.0.2", check=False)
        ns(NS_A, "ping", "-6", "-c", "1", "-W", "1", f"fd00:{i}::2", check=False)
        # A TCP SYN with the kernel's options (MSS, SACK, timestamps, window scale): nobody listens,
        # so it is answered by a RST.
        ns(NS_A, "python3", "-c", f"import socket;s=socket.socket();s.settimeout(0.5)\ntry: s.connect(('10.{i}.0.2', 443))\nexcept Exception: pass", check=False)


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    at, frames = 24, []
    while at + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frames.append(data[at + 16:at + 16 + caplen])
        at += 16 + caplen
    return link, frames


def write(root, target, name, payload, seen):
    if payload in seen.setdefault(target, set()) or len(seen[target]) >= 12:
        return
    seen[target].add(payload)
    directory = os.path.join(root, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"kernel-{name}-{len(seen[target])}"), "wb") as f:
        f.write(payload)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    pcap = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False).name
    try:
        setup()
        capture = subprocess.Popen(["ip", "netns", "exec", NS_B, "tcpdump", "-i", "ovs-b", "-s", "0", "-U", "-w", pcap],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        traffic()
        time.sleep(0.5)
        capture.terminate()
        capture.wait()
    finally:
        teardown()
    link, frames = read_pcap(pcap)
    os.unlink(pcap)
    if link != 1:
        print(f"capture_kernel_seeds: link type {link}, expected Ethernet", file=sys.stderr)
        return 1
    seen = {}
    for frame in frames:
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        ip = ip[:total]
        protocol, payload = ip[9], ip[ihl:]
        # fuzz_packet_frame: [repair off, vlan case] + the frame as the wire had it.
        write(root, "fuzz_packet_frame", "frame", b"\x00\x04" + frame, seen)
        write(root, "fuzz_ip_packet", "outer", ip, seen)
        if protocol == 17 and len(payload) > 8:
            dport = struct.unpack(">H", payload[2:4])[0]
            udp = payload[8:]
            if dport == 4789:
                write(root, "fuzz_vxlan_decap", "vxlan", udp, seen)
                write(root, "fuzz_tunnel", "vxlan", b"\x00\x00" + udp, seen)
            elif dport == 6081:
                write(root, "fuzz_vxlan_decap", "geneve", udp, seen)
                write(root, "fuzz_tunnel", "geneve-tap", b"\x01\x00" + udp, seen)
            elif dport == 4754:
                write(root, "fuzz_gre_decode", "gre-udp", udp, seen)
                write(root, "fuzz_tunnel", "gre-udp-tun", b"\x0a\x00" + udp, seen)
        elif protocol == 47:
            flags = payload[0]
            tap = payload[2:4] == b"\x65\x58"
            # fuzz_tunnel's selector: mode gre (3), TUN (0x08) or TAP, and the C/K/S bits the packet has.
            selector = 3 | (0 if tap else 0x08) | (0x10 if flags & 0x80 else 0) | (0x20 if flags & 0x20 else 0) | (0x40 if flags & 0x10 else 0)
            write(root, "fuzz_gre_decode", "gre", payload, seen)
            write(root, "fuzz_tunnel", "gre", bytes([selector, 0]) + payload, seen)
        elif protocol in (4, 41):
            write(root, "fuzz_tunnel", "ipip", bytes([0x0C, 0x02 if protocol == 41 else 0]) + payload, seen)
            inner = payload
            if protocol == 4 and len(inner) > 20 and inner[9] == 6 and inner[33] & 0x02:
                write(root, "fuzz_mss_clamp", "syn", inner, seen)
            write(root, "fuzz_icmp_too_big", "inner", inner, seen)
            write(root, "fuzz_inner_policy", "tun", b"\x04\x00" + inner, seen)
    for target in sorted(seen):
        print(f"capture_kernel_seeds: {target}: {len(seen[target])} kernel-* seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
