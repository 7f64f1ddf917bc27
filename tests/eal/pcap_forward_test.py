#!/usr/bin/python3
"""EAL test, pcap in -> pcap out: sluice-fastpath between two net_pcap ports.

Port `west` reads west_in.pcap and port `east` reads east_in.pcap; what crosses the
appliance lands in the other port's tx pcap. Well-formed frames (Ethernet, VLAN, QinQ, IPv4
with options and fragments, IPv6 with extension headers, TCP/UDP/ICMP/ICMPv6/SCTP, ARP) must
come out unchanged and in order; malformed ones (truncated headers, bad IHL, bad lengths,
an IPv6 extension-header loop, bad TCP offset) must be dropped, each under its named reason,
without a crash. Then the daemon must stop cleanly on SIGTERM.

usage: pcap_forward_test.py SLUICE_FASTPATH_BINARY"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fastpath_harness import Fastpath, remove_dpdk_files  # noqa: E402
from pcap_file import read_pcap, write_pcap  # noqa: E402

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest,  # noqa: E402
                       IPOption_NOP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, SCTP, fragment)

A_MAC, B_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
A4, B4 = "192.0.2.1", "198.51.100.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def good_west():
    e = Ether(src=A_MAC, dst=B_MAC)
    pkts = [
        e / IP(src=A4, dst=B4) / TCP(sport=40000, dport=80, flags="S"),
        e / IP(src=A4, dst=B4, options=[IPOption_NOP()] * 4) / UDP(sport=5000, dport=53) / Raw(b"q" * 20),
        e / IP(src=A4, dst=B4) / ICMP(type=8, id=7, seq=1) / Raw(b"ping"),
        e / Dot1Q(vlan=10) / IP(src=A4, dst=B4) / TCP(sport=40001, dport=443, flags="A"),
        e / Dot1AD(vlan=100) / Dot1Q(vlan=20) / IP(src=A4, dst=B4) / UDP(sport=1, dport=2),
        e / IPv6(src=A6, dst=B6) / TCP(sport=40002, dport=22, flags="S"),
        e / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=9, dport=9),
        e / IPv6(src=A6, dst=B6) / IPv6ExtHdrRouting() / ICMPv6EchoRequest(id=3),
        e / IP(src=A4, dst=B4) / SCTP(sport=3868, dport=3868),
        Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=A4, pdst=B4),
    ]
    # A whole fragmented datagram, last fragment first: held until complete, then all of it
    # leaves, first fragment first (as the kernel re-fragments a reassembled datagram).
    frags = fragment(e / IP(src=A4, dst=B4, id=77) / UDP(sport=7, dport=7) / Raw(b"x" * 3000), 1000)
    pkts += [frags[-1]] + frags[:-1]
    return pkts


def expected_out(west_good):
    """The order the good west frames leave in: the fragmented datagram leaves when its last
    missing fragment arrives, first fragment first, then the others in arrival order."""
    n = len(west_good)
    frags = west_good[n - 4:]
    return west_good[:n - 4] + [frags[1], frags[0], frags[2], frags[3]]


def incomplete():
    """A first fragment whose datagram never completes: held, dropped at shutdown."""
    e = Ether(src=A_MAC, dst=B_MAC)
    return bytes(e / IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=99, offset=0, m=1) / UDP(sport=5, dport=5) / Raw(b"y" * 64))


def good_east():
    e = Ether(src=B_MAC, dst=A_MAC)
    return [
        e / IP(src=B4, dst=A4) / TCP(sport=80, dport=40000, flags="SA"),
        e / IP(src=B4, dst=A4) / ICMP(type=0, id=7, seq=1) / Raw(b"ping"),
        e / IPv6(src=B6, dst=A6) / TCP(sport=22, dport=40002, flags="SA"),
    ]


def malformed():
    """(frame bytes, drop reason) pairs."""
    e = Ether(src=A_MAC, dst=B_MAC)
    ok4 = bytes(e / IP(src=A4, dst=B4) / TCP(sport=1, dport=2))
    ok6 = bytes(e / IPv6(src=A6, dst=B6) / UDP(sport=1, dport=2))
    bad_ihl = bytearray(ok4)
    bad_ihl[14] = 0x43  # IHL 3
    big_ihl = bytearray(ok4)
    big_ihl[14] = 0x4F  # IHL 15 = 60 bytes > what follows
    bad_len = bytearray(ok4)
    bad_len[16:18] = (9000).to_bytes(2, "big")
    bad_ver = bytearray(ok4)
    bad_ver[14] = 0x65
    tcp_doff = bytearray(ok4)
    tcp_doff[14 + 20 + 12] = 0x20  # data offset 2
    # IPv6: 9 hop-by-hop/dest-opt headers in a row -> too long a chain
    loop = e / IPv6(src=A6, dst=B6)
    for _ in range(9):
        loop = loop / IPv6ExtHdrDestOpt()
    loop = bytes(loop / UDP(sport=1, dport=2))
    v6_trunc_ext = bytes(e / IPv6(src=A6, dst=B6, nh=0, plen=8)) + b"\x3c\x05" + b"\x00" * 6
    return [
        (ok4[:10], "l2_truncated"),
        (ok4[:14 + 12], "l3_truncated"),
        (bytes(bad_ihl), "ipv4_bad_ihl"),
        (bytes(big_ihl), "ipv4_bad_ihl"),
        (bytes(bad_len), "ipv4_bad_length"),
        (bytes(bad_ver), "ipv4_bad_version"),
        (bytes(e / IP(src=A4, dst=B4, proto=6) / Raw(bytes(TCP(sport=1, dport=2))[:8])), "l4_truncated"),
        (bytes(tcp_doff), "tcp_bad_offset"),
        (ok6[:14 + 30], "l3_truncated"),
        (loop, "ipv6_ext_chain"),
        (v6_trunc_ext, "ipv6_ext_chain"),
    ]


def main():
    binary = sys.argv[1]
    work = os.environ.get("TMPDIR", "/tmp")
    d = os.path.join(work, f"sluice-pcap-{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    west_good, east_good = good_west(), good_east()
    bad = malformed()
    # Interleave malformed frames between good ones on the west side.
    west_good = [bytes(p) for p in west_good]
    east_good = [bytes(p) for p in east_good]
    west_in = []
    for i, frame in enumerate(west_good):
        west_in.append(frame)
        if i < len(bad):
            west_in.append(bad[i][0])
    for frame, _ in bad[len(west_good):]:
        west_in.append(frame)
    west_in.append(incomplete())
    paths = {k: os.path.join(d, k + ".pcap") for k in ("west_in", "east_in", "west_out", "east_out")}
    write_pcap(paths["west_in"], west_in)
    write_pcap(paths["east_in"], east_good)

    fp = Fastpath(binary, [
        f"port = west=net_pcap0,rx_pcap={paths['west_in']},tx_pcap={paths['west_out']}",
        f"port = east=net_pcap1,rx_pcap={paths['east_in']},tx_pcap={paths['east_out']}",
        "pair = west:east",
        "workers = 1", "hugepages = no", "memory-mb = 256", "mbufs = 8191",
        f"file-prefix = sluice-pcap-{os.getpid()}", "log-level = info",
    ])
    failures = []
    try:
        fp.start()
        fp.wait_quiet()
        rc, c = fp.stop()
    finally:
        fp.kill()
        remove_dpdk_files(f"sluice-pcap-{os.getpid()}")
    if rc != 0:
        failures.append(f"exit code {rc} after SIGTERM")

    out_east = read_pcap(paths["east_out"])
    out_west = read_pcap(paths["west_out"])
    if out_east != expected_out(west_good):
        failures.append(f"east_out: {len(out_east)} frames, expected the {len(west_good)} good west frames unchanged and in order")
    if out_west != east_good:
        failures.append(f"west_out: {len(out_west)} frames, expected the {len(east_good)} east frames")

    want = {"frag_timeout": 1}
    for _, reason in bad:
        want[reason] = want.get(reason, 0) + 1
    for reason, n in want.items():
        if c["drops"].get(reason) != n:
            failures.append(f"drop reason {reason}: counted {c['drops'].get(reason)}, expected {n}")
    extra = {r: n for r, n in c["drops"].items() if n and r not in want}
    if extra:
        failures.append(f"unexpected drops: {extra}")
    ports = {p["name"]: p for p in c["ports"]}
    if ports["west"]["rx_packets"] != len(west_in) or ports["east"]["tx_packets"] != len(west_good):
        failures.append(f"port counters: {ports}")

    if failures:
        print("FAIL\n  " + "\n  ".join(failures))
        print(fp.read_log())
        return 1
    print(f"ok: {len(west_good)}+{len(east_good)} frames forwarded unchanged, "
          f"{len(bad)} malformed frames dropped by reason {want}")
    for k in paths.values():
        os.unlink(k)
    os.rmdir(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
