#!/usr/bin/python3
"""EAL test: sluice-fastpath's agent socket (fastpath/agent.hpp), driven the way
sluice-control drives it, with real traffic through the appliance.

sluice-fastpath runs in a network namespace with two af_packet ports (west, east, paired,
2 workers, --no-huge), each the far end of a veth whose near end stays here: the test sends
frames into west/east and reads what comes out on the other side. It starts with a temp
agent socket (in a directory that does not exist yet) and a state dir holding generation
7, whose policy must win over the configuration's `rules` file. Then, over the socket:
  * GEN_GET / MODE_GET answer generation 7; RULE_GET lists the state dir's rules;
  * a CT_SUBSCRIBE client gets NEW events for the flows the traffic creates, DESTROY
    events for those deleted;
  * CT_COUNT / CT_GET (with filters) list the UDP and TCP flows the frames created, in the
    original direction, with TCP state, ASSURED and the owning worker; CT_DELETE deletes
    one (COUNT 1, done by its worker), CT_FLUSH the rest;
  * RULE_GET counters follow the packets a DROP rule took; STATS_GET has port, worker,
    drops (every reason of lib/packet_fate.hpp), monitor, conntrack, policy sections;
  * FP_SETS adds an address to a set a DROP rule uses: its traffic stops at once, and
    flows again after FP_SETS del; a create line or a bad element is refused (EINVAL,
    sets:LINE:COLUMN) and the generation stays;
  * FP_POLICY good (new generation, new rules) and bad (EINVAL rules.v4:LINE:COLUMN,
    generation and rules unchanged);
  * malformed datagrams, bad attributes, unknown and non-request messages are answered
    with errors (EINVAL/EOPNOTSUPP, offsets) and the daemon keeps forwarding;
  * SIGHUP reloads the policy from the state dir (generation and rules);
  * SIGTERM stops it cleanly and the socket file is gone.
Skips (77) without root or network namespaces. AGENT_TEST_DEBUG=1 prints the frames seen on
the wire; SLUICE_LOG_LEVEL=debug logs every error the agent answers.

usage: agent_test.py SLUICE_FASTPATH_BINARY"""
import os
import re
import select
import signal
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fastpath_harness import Fastpath, remove_dpdk_files  # noqa: E402
import nlclient as nl  # noqa: E402

from scapy.all import IP, TCP, UDP, Ether  # noqa: E402

API = nl.load_api()
M, A = API.msg, API.attr
WEST_MAC, EAST_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
A4, B4 = "192.0.2.10", "198.51.100.20"
HERE = os.path.dirname(os.path.abspath(__file__))

STATE_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m set --match-set blocked src -j DROP
-A FORWARD -p udp --dport 9 -j DROP
COMMIT
"""
STATE_SETS = "create blocked hash:ip family inet hashsize 1024 maxelem 65536\n"
CONFIG_RULES = "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n"  # must NOT be used: the state dir wins

failures = []
FP = [None]  # the daemon under test, for its log on failure


def expect(cond, what):
    if not cond:
        failures.append(what)
        print(f"  FAIL ({time.strftime('%H:%M:%S')}): {what}", flush=True)
    return cond


def step(what):
    print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drop_reasons():
    text = open(os.path.join(HERE, "..", "..", "lib", "packet_fate.hpp")).read()
    return re.findall(r"^\s*X\((\w+),", text, re.M)


# ---- the lab: two veths, far ends in the appliance's namespace ----

class Lab:
    def __init__(self):
        p = f"sa{os.getpid() % 100000}"
        self.ns = p + "-fw"
        self.west_t, self.west_f = p + "wt", p + "wf"
        self.east_t, self.east_f = p + "et", p + "ef"

    def up(self):
        sh("ip", "netns", "add", self.ns)
        for t, f in ((self.west_t, self.west_f), (self.east_t, self.east_f)):
            sh("ip", "link", "add", t, "type", "veth", "peer", "name", f)
            sh("ip", "link", "set", f, "netns", self.ns)
            sh("sysctl", "-qw", f"net.ipv6.conf.{t}.disable_ipv6=1", check=False)
            sh("ip", "netns", "exec", self.ns, "sysctl", "-qw", f"net.ipv6.conf.{f}.disable_ipv6=1", check=False)
            sh("ethtool", "-K", t, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off", check=False)
            sh("ip", "netns", "exec", self.ns, "ethtool", "-K", f, "tx", "off", "rx", "off", "tso", "off",
               "gso", "off", "gro", "off", check=False)
            sh("ip", "link", "set", t, "up")
            sh("ip", "-n", self.ns, "link", "set", f, "up")

    def down(self):
        sh("ip", "link", "del", self.west_t, check=False)
        sh("ip", "link", "del", self.east_t, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


class Wire:
    """Send frames into one veth and read frames that leave the appliance on another."""

    def __init__(self, send_if, recv_if):
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.tx.bind((send_if, 0))
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.rx.bind((recv_if, 0))
        self.rx.setblocking(False)

    def send(self, frames):
        for f in frames:
            self.tx.send(bytes(f))

    def received(self, settle=0.4, timeout=3.0):
        """IPv4 frames that arrived (not our own), until nothing came for `settle` s."""
        out, last, end = [], time.time(), time.time() + timeout
        while time.time() < end and time.time() - last < settle:
            r, _, _ = select.select([self.rx], [], [], 0.05)
            if not r:
                continue
            while True:
                try:
                    data, addr = self.rx.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING or data[12:14] != b"\x08\x00":
                    continue
                out.append(data)
                last = time.time()
        return out

    def drain(self):
        self.received(settle=0.1, timeout=0.5)


def udp(src, sport, dport, dst=B4, payload=b"x" * 18):
    return Ether(src=WEST_MAC, dst=EAST_MAC) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload


def count_udp(frames, src, dport):
    n = 0
    for f in frames:
        p = Ether(f)
        if IP in p and UDP in p and p[IP].src == src and p[UDP].dport == dport:
            n += 1
    if os.environ.get("AGENT_TEST_DEBUG"):
        print(f"    {len(frames)} frame(s), {n} from {src} to port {dport}:",
              [Ether(f).summary() for f in frames][:8], flush=True)
    return n


# ---- decoding helpers ----

def flow_of(msg):
    top = nl.attr_map(msg.attrs())
    f = {}
    for a in top[A["CT_FLOW"]].nest():
        name = API_ATTR_NAME.get(a.type, str(a.type))
        if name in ("SRC", "DST", "STATE", "TCP_STATE"):
            f[name] = a.str()
        elif name in ("SPORT", "DPORT", "ZONE"):
            f[name] = a.u16()
        elif name in ("TIMEOUT", "WORKER"):
            f[name] = a.u32()
        else:
            f[name] = a.u8()
    if A["EVENT"] in top:
        f["EVENT"] = top[A["EVENT"]].u8()
    return f


API_ATTR_NAME = {v: k for k, v in A.items()}


def sections(reply):
    out = {}
    for m in reply.messages:
        s = nl.attr_map(m.attrs())[A["SECTION"]].nest()
        kind = [a.str() for a in s if a.type == A["KIND"]][0]
        name = [a.str() for a in s if a.type == A["NAME"]][0]
        counters = {}
        for a in s:
            if a.type == A["COUNTER"]:
                c = nl.attr_map(a.nest())
                counters[c[A["NAME"]].str()] = c[A["VALUE"]].u64()
        out[(kind, name)] = counters
    return out


def rules(c):
    r = c.request(M["RULE_GET"], nl.DUMP)
    out = []
    for m in r.messages:
        a = nl.attr_map(m.attrs())
        out.append((a[A["FAMILY"]].u8(), a[A["CHAIN"]].str(), a[A["POSITION"]].u32(), a[A["SPEC"]].str(),
                    a[A["PACKETS"]].u64(), a[A["BYTES"]].u64()))
    return out


def generation(c):
    r = c.request(M["GEN_GET"])
    a = nl.attr_map(r.messages[0].attrs())
    return a[A["GENERATION"]].u32(), a[A["MODE"]].str()


def ct_filter(**kw):
    kids = []
    for k, v in kw.items():
        t = A[k.upper()]
        if k in ("src", "dst", "state"):
            kids.append(nl.string(t, v))
        elif k in ("sport", "dport", "zone"):
            kids.append(nl.u16(t, v))
        else:
            kids.append(nl.u8(t, v))
    return nl.nest(A["CT_FILTER"], *kids)


def count(c, **kw):
    r = c.request(M["CT_COUNT"], 0, [ct_filter(**kw)] if kw else [])
    assert r.err == 0, r
    return nl.attr_map(r.messages[0].attrs())[A["COUNT"]].u64()


def port_rx(c, port="west"):
    return sections(c.request(M["STATS_GET"], nl.DUMP)).get(("port", port), {}).get("rx_packets", 0)


def send_and_wait(c, wire, frames, port):
    """Send frames into `port` and wait until the appliance has received them."""
    target = port_rx(c, port) + len(frames)
    wire.send(frames)
    end = time.time() + 15
    while port_rx(c, port) < target and time.time() < end:
        time.sleep(0.02)


def accounted(c):
    """Frames west->east the appliance is done with: sent out of east or dropped."""
    s = sections(c.request(M["STATS_GET"], nl.DUMP))
    return s.get(("port", "east"), {}).get("tx_packets", 0) + sum(s.get(("drops", ""), {}).values())


def cross(c, wire, frames, src, dport):
    """Send frames into west and count those that left east, once the appliance is done
    with all of them (its counters say so: a busy machine may delay the workers)."""
    target = accounted(c) + len(frames)
    wire.send(frames)
    end = time.time() + 15
    while accounted(c) < target and time.time() < end:
        time.sleep(0.02)
    return count_udp(wire.received(settle=0.2), src, dport)


def events_of(sub, want, timeout=3.0):
    """CT_EVENT messages received on the subscriber socket until `want(list)` or timeout."""
    evs, end = [], time.time() + timeout
    while time.time() < end and not want(evs):
        m = sub.recv(0.2)
        if m is None:
            continue
        if m.type == M["CT_EVENT"] and m.seq == 0:
            evs.append(flow_of(m))
    return evs


# ---- the test ----

def run(binary, lab, tmp):
    sock = os.path.join(tmp, "run", "sub", "fastpath.sock")
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    for name, text in (("rules.v4", STATE_RULES), ("sets", STATE_SETS), ("mode", "enforce\n"),
                       ("generation", "7\n")):
        with open(os.path.join(state, name), "w") as f:
            f.write(text)
    config_rules = os.path.join(tmp, "config.rules")
    with open(config_rules, "w") as f:
        f.write(CONFIG_RULES)
    fp = Fastpath(binary, [
        f"port = west=net_af_packet0,iface={lab.west_f}",
        f"port = east=net_af_packet1,iface={lab.east_f}",
        "pair = west:east",
        "workers = 2", "hugepages = no", "memory-mb = 256", "mbufs = 16383",
        "rx-desc = 256", "tx-desc = 256", "conntrack-max = 65536",
        f"file-prefix = sluice-agent-{os.getpid()}", f"log-level = {os.environ.get('SLUICE_LOG_LEVEL', 'info')}",
        f"agent-socket = {sock}", f"state-dir = {state}", f"rules = {config_rules}",
    ], netns=lab.ns)
    FP[0] = fp
    east = Wire(lab.west_t, lab.east_t)   # west -> east
    west = Wire(lab.east_t, lab.west_t)   # east -> west
    try:
        fp.start()
        print("started; log:", fp.log)
        st = os.stat(sock)
        expect(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
               f"agent socket mode {oct(st.st_mode)}, expected a socket with 0600")
        c = nl.Client(sock, timeout=30)
        sub = nl.Client(sock, timeout=30)

        # -- state dir at start, GEN_GET / MODE_GET, RULE_GET
        step('state dir at start, GEN_GET / MODE_GET, RULE_GET')
        expect(generation(c) == (7, "enforce"), f"GEN_GET {generation(c)}, expected (7, enforce) from the state dir")
        r = c.request(M["MODE_GET"])
        expect(nl.attr_map(r.messages[0].attrs())[A["MODE"]].str() == "enforce", f"MODE_GET {r}")
        rl = rules(c)
        expect([x[3] for x in rl] == ["-m set --match-set blocked src -j DROP", "-p udp -m udp --dport 9 -j DROP"],
               f"RULE_GET: {rl}")

        # -- subscribe, then traffic
        step('subscribe, then traffic')
        r = sub.request(M["CT_SUBSCRIBE"], nl.ACK, [nl.u32(A["EVENTS"], 3)])
        expect(r.err == 0, f"CT_SUBSCRIBE: {r}")
        time.sleep(0.05)
        east.drain()
        n20 = cross(c, east, [udp(A4, 1000 + i, 5000) for i in range(20)], A4, 5000)
        e = Ether(src=WEST_MAC, dst=EAST_MAC) / IP(src=A4, dst=B4)
        e_back = Ether(src=EAST_MAC, dst=WEST_MAC) / IP(src=B4, dst=A4)
        send_and_wait(c, east, [e / TCP(sport=40000, dport=80, flags="S", seq=100)], "west")
        send_and_wait(c, west, [e_back / TCP(sport=80, dport=40000, flags="SA", seq=500, ack=101)], "east")
        send_and_wait(c, east, [e / TCP(sport=40000, dport=80, flags="A", seq=101, ack=501)], "west")
        expect(n20 == 20, f"{n20} of 20 UDP frames crossed west->east")
        end = time.time() + 10
        while count(c) < 21 and time.time() < end:
            time.sleep(0.05)

        # -- conntrack: count, dump, filters
        step('conntrack: count, dump, filters')
        expect(count(c) == 21, f"CT_COUNT {count(c)}, expected 21 flows")
        expect(count(c, proto=17) == 20, f"CT_COUNT proto 17: {count(c, proto=17)}")
        expect(count(c, src="192.0.2.0/24", dport=5000) == 20, "CT_COUNT src 192.0.2.0/24 dport 5000")
        expect(count(c, src=B4) == 0, "CT_COUNT src = the reply side must be 0 (original direction only)")
        expect(count(c, state="ESTABLISHED") == 1, f"CT_COUNT state ESTABLISHED: {count(c, state='ESTABLISHED')}")
        r = c.request(M["CT_GET"], nl.DUMP)
        flows = [flow_of(m) for m in r.messages]
        expect(r.err == 0 and len(flows) == 21, f"CT_GET: {r}, {len(flows)} flows")
        tcp = [f for f in flows if f["PROTO"] == 6]
        if expect(len(tcp) == 1, f"CT_GET TCP flows: {tcp}"):
            t = tcp[0]
            expect(t["SRC"] == A4 and t["DST"] == B4 and t["SPORT"] == 40000 and t["DPORT"] == 80,
                   f"TCP flow tuple (original direction): {t}")
            expect(t["STATE"] == "ESTABLISHED" and t["TCP_STATE"] == "ESTABLISHED" and t["ASSURED"] == 1,
                   f"TCP flow states: {t}")
            expect(t["L3"] == 4 and 0 < t["TIMEOUT"] <= 432000 and t["WORKER"] in (0, 1), f"TCP flow: {t}")
        u = [f for f in flows if f["PROTO"] == 17]
        expect(all(f["STATE"] == "NEW" and f["DPORT"] == 5000 and "TCP_STATE" not in f and 0 < f["TIMEOUT"] <= 30
                   for f in u), f"UDP flows: {u[:2]}")
        expect({f["WORKER"] for f in flows} <= {0, 1}, "WORKER attribute")
        r = c.request(M["CT_GET"], nl.DUMP, [ct_filter(proto=6)])
        expect(len(r.messages) == 1, f"CT_GET filtered by PROTO 6: {len(r.messages)} flows")

        evs = events_of(sub, lambda l: sum(1 for x in l if x["EVENT"] == 1) >= 21)
        new = [x for x in evs if x["EVENT"] == 1]
        expect(len(new) == 21, f"CT_SUBSCRIBE: {len(new)} NEW events, expected 21")
        expect(any(x["PROTO"] == 6 and x["SPORT"] == 40000 for x in new), "NEW event of the TCP flow")

        # -- delete one, flush the rest (executed by the owning workers)
        step('delete one, flush the rest (executed by the owning workers)')
        r = c.request(M["CT_DELETE"], nl.ACK, [ct_filter(proto=17, sport=1000)])
        n = nl.attr_map(r.messages[0].attrs())[A["COUNT"]].u64() if r.messages else None
        expect(r.err == 0 and n == 1, f"CT_DELETE sport 1000: {r} count {n}")
        expect(count(c) == 20, f"CT_COUNT after delete: {count(c)}")
        evs = events_of(sub, lambda l: any(x["EVENT"] == 2 for x in l))
        expect([x["SPORT"] for x in evs if x["EVENT"] == 2] == [1000], f"DESTROY event after CT_DELETE: {evs}")
        r = c.request(M["CT_DELETE"], 0, [ct_filter()])
        expect(r.err == 22 and "empty" in r.text, f"CT_DELETE with an empty filter: {r}")
        r = c.request(M["CT_FLUSH"])
        n = nl.attr_map(r.messages[0].attrs())[A["COUNT"]].u64() if r.messages else None
        expect(r.err == 0 and n == 20, f"CT_FLUSH: {r} count {n}")
        expect(count(c) == 0, f"CT_COUNT after flush: {count(c)}")
        evs = events_of(sub, lambda l: sum(1 for x in l if x["EVENT"] == 2) >= 20)
        expect(sum(1 for x in evs if x["EVENT"] == 2) == 20, f"{len(evs)} DESTROY events after CT_FLUSH")

        # -- rule counters
        step('rule counters')
        expect(cross(c, east, [udp(A4, 2000, 9) for _ in range(3)], A4, 9) == 0, "UDP to port 9 must be dropped")
        drop9 = [x for x in rules(c) if x[3] == "-p udp -m udp --dport 9 -j DROP"]
        expect(drop9 and drop9[0][4] == 3 and drop9[0][5] == 3 * 60, f"RULE_GET counters of the port 9 rule: {drop9}")

        # -- STATS_GET
        step('STATS_GET')
        r = c.request(M["STATS_GET"], nl.DUMP)
        s = sections(r)
        expect(s.get(("port", "west"), {}).get("rx_packets", 0) >= 25, f"STATS_GET port west: {s.get(('port', 'west'))}")
        expect(s.get(("port", "east"), {}).get("tx_packets", 0) >= 22, f"STATS_GET port east: {s.get(('port', 'east'))}")
        expect(("worker", "0") in s and ("worker", "1") in s and "busy_cycles" in s[("worker", "0")], "worker sections")
        expect(set(s.get(("drops", ""), {})) == set(drop_reasons()), "drops section: every reason of packet_fate.hpp")
        expect(s.get(("drops", ""), {}).get("policy_drop") == 3, f"drops policy_drop {s.get(('drops', ''))}")
        expect(set(s.get(("monitor", ""), {})) == set(drop_reasons()), "monitor section")
        expect(s.get(("conntrack", ""), {}).get("created", 0) >= 21, f"conntrack section {s.get(('conntrack', ''))}")
        expect(s.get(("policy", ""), {}).get("generation") == 7, f"policy section {s.get(('policy', ''))}")

        # -- FP_SETS: a set a DROP rule uses, changed live
        step('FP_SETS: a set a DROP rule uses, changed live')
        blocked = "192.0.2.66"
        expect(cross(c, east, [udp(blocked, 3000 + i, 6000) for i in range(5)], blocked, 6000) == 5,
               "traffic from 192.0.2.66 before it is in the set")
        r = c.request(M["FP_SETS"], nl.ACK, [nl.u32(A["GENERATION"], 8), nl.string(A["SETS"], f"add blocked {blocked}\n")])
        expect(r.err == 0 and generation(c)[0] == 8, f"FP_SETS add: {r}, generation {generation(c)}")
        expect(cross(c, east, [udp(blocked, 3100 + i, 6000) for i in range(5)], blocked, 6000) == 0,
               "traffic from 192.0.2.66 once it is in the set")
        setrule = [x for x in rules(c) if "match-set" in x[3]]
        expect(setrule and setrule[0][4] == 5, f"set rule counters: {setrule}")
        r = c.request(M["FP_SETS"], nl.ACK, [nl.u32(A["GENERATION"], 9), nl.string(A["SETS"], f"del blocked {blocked}\n")])
        expect(r.err == 0 and generation(c)[0] == 9, f"FP_SETS del: {r}")
        expect(cross(c, east, [udp(blocked, 3200 + i, 6000) for i in range(5)], blocked, 6000) == 5,
               "traffic from 192.0.2.66 after FP_SETS del")
        r = c.request(M["FP_SETS"], nl.ACK, [nl.u32(A["GENERATION"], 10),
                                             nl.string(A["SETS"], f"add blocked {blocked}\ncreate x hash:ip\n")])
        expect(r.err == 22 and r.text.startswith("sets:2:1: FP_SETS takes add, del, flush and swap"), f"FP_SETS create: {r}")
        r = c.request(M["FP_SETS"], nl.ACK, [nl.u32(A["GENERATION"], 10), nl.string(A["SETS"], "add blocked 192.0.2.300\n")])
        expect(r.err == 22 and r.text.startswith("sets:1:"), f"FP_SETS bad element: {r}")
        expect(generation(c)[0] == 9, "generation after refused FP_SETS")
        expect(cross(c, east, [udp(blocked, 3300, 6000)], blocked, 6000) == 1,
               "a refused FP_SETS changed nothing (all or nothing)")

        # -- FP_POLICY good and bad
        step('FP_POLICY good and bad')
        good = STATE_RULES.replace("--dport 9", "--dport 7")
        r = c.request(M["FP_POLICY"], nl.ACK, [nl.u32(A["GENERATION"], 11), nl.string(A["MODE"], "enforce"),
                                               nl.string(A["RULES4"], good), nl.string(A["SETS"], STATE_SETS)])
        expect(r.err == 0 and generation(c) == (11, "enforce"), f"FP_POLICY good: {r} {generation(c)}")
        expect([x[3] for x in rules(c)][1] == "-p udp -m udp --dport 7 -j DROP", f"rules after FP_POLICY: {rules(c)}")
        bad = good.replace("-p udp --dport 7", "-p udp --dprot 7")
        r = c.request(M["FP_POLICY"], nl.ACK, [nl.u32(A["GENERATION"], 12), nl.string(A["RULES4"], bad)])
        expect(r.err == 22 and re.match(r"rules\.v4:6:\d+: .*dprot", r.text or ""), f"FP_POLICY bad: {r}")
        expect(generation(c) == (11, "enforce"), f"generation after a refused FP_POLICY: {generation(c)}")
        expect([x[3] for x in rules(c)][1] == "-p udp -m udp --dport 7 -j DROP", "rules after a refused FP_POLICY")
        r = c.request(M["FP_POLICY"], nl.ACK, [nl.u32(A["GENERATION"], 12), nl.string(A["MODE"], "loud")])
        expect(r.err == 22 and "MODE 'loud'" in r.text and r.offset == 24, f"FP_POLICY bad mode: {r}")

        # -- malformed input
        step('malformed input')
        c.send(b"\x05\x00\x00")
        m = c.recv(2)
        expect(m is not None and m.type == nl.ERROR and m.error()[0] == 22 and "malformed datagram" in m.error()[1],
               f"truncated datagram: {m and m.error()}")
        r = c.request(M["GEN_GET"], 0, [nl.u16(A["GENERATION"], 1)])
        expect(r.err == 22 and r.offset == 16 and "GENERATION" in r.text, f"GEN_GET with an attribute: {r}")
        r = c.request(M["FP_SETS"], 0, [nl.u16(A["GENERATION"], 1)])
        expect(r.err == 22 and r.offset == 16 and "expected u32" in r.text, f"FP_SETS short GENERATION: {r}")
        r = c.request(0x1234)
        expect(r.err == 95 and r.text == "unsupported message type 0x1234", f"unknown type: {r}")
        r = c.request(M["RULE_NEW"], nl.ACK)
        expect(r.err == 95 and r.text == "unsupported message RULE_NEW", f"RULE_NEW: {r}")
        r = c.request(M["CT_GET"])
        expect(r.err == 22 and "NLM_F_DUMP" in r.text, f"CT_GET without DUMP: {r}")
        r = c.request(M["CT_COUNT"], 0, [ct_filter(src="192.0.2.999")])
        expect(r.err == 22 and r.offset == 20 and "192.0.2.999" in r.text, f"bad CT_FILTER SRC: {r}")
        r = c.request(M["CT_COUNT"], 0, [nl.attr(A["CT_FILTER"], b"\x09\x00\x28\x00", nested=True)])
        expect(r.err == 22 and r.offset == 20 and "out of bounds" in r.text, f"CT_FILTER with a bad length: {r}")
        seq = c.next_seq()
        c.send(nl.message(M["GEN_GET"], 0, seq))
        r = c.collect(seq, 0)
        expect(r.err == 22 and "NLM_F_REQUEST" in r.text, f"message without REQUEST: {r}")
        import random
        rnd = random.Random(4)
        for i in range(100):
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 200)))
            if rnd.random() < 0.5:  # a plausible header with garbage attributes
                junk = struct.pack("=IHHII", 16 + len(junk), rnd.choice(list(M.values())), 1, 99, 0) + junk
            c.send(junk)
            expect(c.recv(2.0) is not None, f"no answer to junk datagram {junk.hex()}")
            while c.recv(0.005) is not None:
                pass
        expect(generation(c) == (11, "enforce"), "GEN_GET after the garbage")
        expect(cross(c, east, [udp(A4, 4000 + i, 5001) for i in range(5)], A4, 5001) == 5,
               "still forwarding after the garbage")

        # -- SIGHUP reloads from the state dir (what sluice-control persisted), not `rules`
        step('SIGHUP reloads the state dir')
        with open(os.path.join(state, "rules.v4"), "w") as f:
            f.write(STATE_RULES.replace("--dport 9", "--dport 19"))
        with open(os.path.join(state, "generation"), "w") as f:
            f.write("20\n")
        fp.proc.send_signal(signal.SIGHUP)
        end = time.time() + 10
        while generation(c)[0] != 20 and time.time() < end:
            time.sleep(0.05)
        expect(generation(c) == (20, "enforce"), f"GEN_GET after SIGHUP: {generation(c)}")
        expect([x[3] for x in rules(c)][1] == "-p udp -m udp --dport 19 -j DROP", f"rules after SIGHUP: {rules(c)}")

        sub.close()
        c.close()
        rc, stats = fp.stop()
        expect(rc == 0, f"exit code {rc} after SIGTERM")
        expect(not os.path.exists(sock), "the socket file is removed at exit")
        expect(stats["policy"]["generation"] == 20, f"stats file policy {stats['policy']['generation']}")
    finally:
        fp.kill()


def main():
    binary = sys.argv[1]
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, af_packet)")
        return 77
    probe = f"sa-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], stderr=subprocess.DEVNULL).returncode != 0:
        print("SKIP: cannot create network namespaces")
        return 77
    sh("ip", "netns", "del", probe)
    lab = Lab()
    tmp = tempfile.mkdtemp(prefix="sluice-agent-")
    # meson's timeout sends SIGTERM: unwind, so the daemon is killed and the lab removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    try:
        lab.down()
        lab.up()
        run(binary, lab, tmp)
    except Exception as e:  # noqa: BLE001 - report and fail
        import traceback
        traceback.print_exc()
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        if FP[0]:
            FP[0].kill()
        remove_dpdk_files(f"sluice-agent-{os.getpid()}")
        lab.down()
    if failures:
        print("FAIL\n  " + "\n  ".join(failures))
        if FP[0]:
            print(FP[0].read_log())
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(FP[0].dir, ignore_errors=True)
    print("ok: state dir, GEN_GET/MODE_GET, RULE_GET, STATS_GET, CT_GET/COUNT/DELETE/FLUSH, CT_SUBSCRIBE, "
          "FP_SETS live, FP_POLICY good/bad, malformed input")
    return 0


if __name__ == "__main__":
    sys.exit(main())
