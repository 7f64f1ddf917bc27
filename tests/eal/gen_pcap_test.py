#!/usr/bin/python3
"""EAL test of sluice-gen on virtual devices, no appliance involved.

1. net_pcap: sluice-gen writes four bounded streams (IPv4 UDP over 6 flows, IPv6 TCP imix with
   a VLAN tag, ICMP echo, IPv4 UDP jumbo frames) into a tx_pcap file. Scapy then checks the
   file independently: the count of every stream, each frame's size (+4 B FCS = the
   configured size, imix in its 12-frame sequence), every IP/UDP/TCP/ICMP/ICMPv6 checksum,
   the VLAN tag, the signature (stream index, sequence numbers 0..n-1 in order) and that
   packet k carries flow k mod flows of the configured ranges, dport varying fastest.
2. net_ring: one ring port is its own peer, so every packet comes back; the JSON must show
   rx == tx, no loss, no reordering and one latency sample per packet.

usage: gen_pcap_test.py SLUICE_GEN_BINARY"""
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from pcap_file import read_pcap  # noqa: E402
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6, Raw  # noqa: E402

IMIX = [64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594]


def run_gen(binary, workdir, args):
    out = os.path.join(workdir, "result.json")
    cmd = [binary, "--hugepages", "no", "--memory-mb", "512", "--mbufs", "8191", "--log-level", "warn",
           "--file-prefix", f"sluice-gen-test-{os.getpid()}", "--json", out, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"sluice-gen exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    with open(out) as f:
        return json.load(f), p.stdout


def checksum_errors(p):
    """Recompute every checksum scapy knows for this frame; list the layers that differ."""
    bad = []
    for layer, field in ((IP, "chksum"), (UDP, "chksum"), (TCP, "chksum"), (ICMP, "chksum"),
                         (ICMPv6EchoRequest, "cksum")):
        if layer in p:
            q = p.copy()
            delattr(q[layer], field)
            if getattr(Ether(bytes(q))[layer], field) != getattr(p[layer], field):
                bad.append(layer.__name__)
    return bad


def expected_flow(k, src, nsrc, dst, ndst, sport, nsport, dport, ndport):
    f = k % (nsrc * ndst * nsport * ndport)
    dp = f % ndport
    f //= ndport
    sp = f % nsport
    f //= nsport
    di = f % ndst
    si = f // ndst
    return (str(ipaddress.ip_address(src) + si), str(ipaddress.ip_address(dst) + di), sport + sp, dport + dp)


STREAMS = [
    # name, spec, count, size(k), l4 layer, flow ranges (tcp6: imix 64 B slots are raised to its
    # 98 B minimum: VLAN + IPv6 + TCP + signature + FCS)
    ("udp4", "name=udp4,tx=out,proto=udp,size=64,rate=200k,count=600,src=192.0.2.1-192.0.2.2,dport=9-11",
     600, lambda k: 64, UDP, ("192.0.2.1", 2, "198.51.100.1", 1, 1024, 1, 9, 3)),
    ("tcp6", "name=tcp6,tx=out,ip=6,proto=tcp,size=imix,vlan=42,flags=S,rate=100k,count=120,sport=1000-1003,"
     "dst=2001:db8:1::1-2001:db8:1::2",
     120, lambda k: max(98, IMIX[k % 12]), TCP, ("2001:db8::1", 1, "2001:db8:1::1", 2, 1000, 4, 9, 1)),
    ("icmp4", "name=icmp4,tx=out,proto=icmp,size=128,rate=50k,count=50,sport=7",
     50, lambda k: 128, ICMP, ("192.0.2.1", 1, "198.51.100.1", 1, 7, 1, 0, 1)),
    ("jumbo", "name=jumbo,tx=out,proto=udp,size=9000,rate=10k,count=20,ttl=5",
     20, lambda k: 9000, UDP, ("192.0.2.1", 1, "198.51.100.1", 1, 1024, 1, 9, 1)),
]


def check_pcap(binary, d, failures):
    pcap = os.path.join(d, "out.pcap")
    args = ["--port", f"out=net_pcap0,tx_pcap={pcap}", "--duration", "5"]
    for s in STREAMS:
        args += ["--stream", s[1]]
    result, summary = run_gen(binary, d, args)
    frames = read_pcap(pcap)
    per_stream = {i: [] for i in range(len(STREAMS))}
    for raw in frames:
        p = Ether(raw)
        l4 = p[TCP] if TCP in p else p[UDP] if UDP in p else p[ICMPv6EchoRequest] if ICMPv6EchoRequest in p else p[ICMP]
        payload = bytes(l4.payload)
        magic, idx, seq = struct.unpack_from(">HHI", payload)
        if magic != 0x5C1E or idx >= len(STREAMS):
            failures.append(f"frame without a valid signature: {p.summary()}")
            continue
        per_stream[idx].append((seq, raw, p))
    for i, (name, _, count, size_of, layer, ranges) in enumerate(STREAMS):
        got = per_stream[i]
        js = next(s for s in result["streams"] if s["name"] == name)
        if len(got) != count or js["tx_packets"] != count:
            failures.append(f"{name}: {len(got)} frames in the pcap, JSON tx {js['tx_packets']}, expected {count}")
        if [seq for seq, _, _ in got] != list(range(len(got))):
            failures.append(f"{name}: sequence numbers not 0..n-1 in order")
        for seq, raw, p in got:
            k = seq
            if len(raw) + 4 != size_of(k):
                failures.append(f"{name}[{k}]: frame of {len(raw)} B + FCS, expected {size_of(k)}")
            bad = checksum_errors(p)
            if bad:
                failures.append(f"{name}[{k}]: bad checksum in {bad}: {p.summary()}")
            if layer not in p:
                failures.append(f"{name}[{k}]: no {layer.__name__} layer")
                continue
            ipl = p[IPv6] if IPv6 in p else p[IP]
            if layer is ICMP:
                tup = (ipl.src, ipl.dst, p[ICMP].id, 0)
                if p[ICMP].type != 8 or p[ICMP].seq != k % 65536:
                    failures.append(f"{name}[{k}]: not echo request {k}")
            else:
                tup = (ipl.src, ipl.dst, p[layer].sport, p[layer].dport)
            want = expected_flow(k, *ranges)
            if tup != want:
                failures.append(f"{name}[{k}]: flow {tup}, expected {want}")
            if name == "tcp6" and (Dot1Q not in p or p[Dot1Q].vlan != 42 or p[TCP].flags != "S"):
                failures.append(f"{name}[{k}]: VLAN 42 / SYN expected: {p.summary()}")
            if name == "jumbo" and p[IP].ttl != 5:
                failures.append(f"{name}[{k}]: ttl {p[IP].ttl}")
            if len(failures) > 20:
                return
    print(f"pcap: {len(frames)} frames verified (counts, sizes, checksums, flows, signatures)")


def check_ring(binary, d, failures):
    result, summary = run_gen(binary, d, [
        "--port", "loop=net_ring0", "--duration", "3",
        "--stream", "name=a,tx=loop,rx=loop,size=64,rate=100k,count=100k,src=192.0.2.0/24",
        "--stream", "name=b,tx=loop,rx=loop,ip=6,proto=tcp,size=imix,rate=20k,count=20k,sport=1-1000"])
    for s in result["streams"]:
        if not (s["tx_packets"] == s["rx_packets"] == (100000 if s["name"] == "a" else 20000)):
            failures.append(f"ring stream {s['name']}: tx {s['tx_packets']} rx {s['rx_packets']}")
        if s["lost"] != 0 or s["reordered"] != 0 or s["latency"]["samples"] != s["rx_packets"]:
            failures.append(f"ring stream {s['name']}: {s}")
        lat = s["latency"]
        if not (0 < lat["min_us"] <= lat["median_us"] <= lat["p99_us"] <= lat["max_us"]):
            failures.append(f"ring stream {s['name']}: latency figures out of order: {lat}")
    print("ring:\n" + summary)


def main():
    binary = sys.argv[1]
    d = tempfile.mkdtemp(prefix="sluice-gen-eal-")
    failures = []
    try:
        check_pcap(binary, d, failures)
        check_ring(binary, d, failures)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(f"/var/run/dpdk/sluice-gen-test-{os.getpid()}", ignore_errors=True)
    if failures:
        print("FAIL\n  " + "\n  ".join(failures[:30]))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
