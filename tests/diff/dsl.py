"""How a differential scenario is written.

A scenario is a ruleset (iptables-save text for IPv4 and IPv6, ipset-save text) and a row
table of steps. Each step is (sender, packet, expect[, wait]):

  sender  "A" (host A, behind the first port) or "B" (host B, behind the second port)
  packet  a scapy packet from L3 (IP(...)/TCP(...)), or from Dot1Q(...) for a tagged frame, or
          a full Ether(...) when the source MAC matters (dst, when not given, is the other
          host's MAC; src, when not given, the sender's). Raw L2 injection: anything scapy can
          build, however malformed, goes out as written.
  expect  what the scenario's author means the step to test: "pass", "drop",
          "reject:tcp-reset", "reject:icmp-port-unreachable", "reject:icmp6-adm-prohibited",
          ... (see netfilter_diff.FATE_NAMES). The harness checks the kernel against it (a
          mismatch means the scenario is wrong, not Sluice) and Sluice against the kernel.
  wait    seconds to wait after sending before the next step (default Scenario.wait).

Port placeholders: the rules say `-i {west}` / `-o {east}` (the scenario's port names, by
default west/east; Scenario(ports=(...)) renames them, e.g. for Calico's `tap+`). Both sides
get the same names: Sluice's ports are called that, and the kernel reference renames its two
bridge ports in the firewall namespace to the same names, so a wildcard (`-i tap+`) means the
same thing on both. Because the reference is a bridge, the harness rewrites `[!] -i X` /
`[!] -o X` to `-m physdev [!] --physdev-in X` / `[!] --physdev-out X` for the kernel only
(with br_netfilter, iptables -i/-o see the bridge device, physdev sees the port).

Tcp(...) keeps sequence numbers for a conversation so tables stay readable:
    t = Tcp(A4, B4, 40000, 22)
    steps = [t.syn(), "pass"], ...   (each method returns (sender, packet))"""
from scapy.all import IP, TCP, IPv6, Raw

A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
# Spoofable outside addresses (documentation ranges) for set and address-match scenarios.
NET2 = "198.51.100."
NET3 = "203.0.113."

FILTER_ACCEPT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


class Scenario:
    def __init__(self, name, doc, steps, rules=FILTER_ACCEPT, rules6=FILTER_ACCEPT, sets="",
                 ports=("west", "east"), wait=0.03):
        self.name, self.doc = name, doc
        self.rules, self.rules6, self.sets = rules, rules6, sets
        self.ports, self.wait = ports, wait
        self.steps = []
        for i, row in enumerate(steps):
            if len(row) == 2 and isinstance(row[0], tuple):  # ((sender, pkt), expect)
                (sender, pkt), expect, w = row[0], row[1], None
            elif len(row) == 3 and isinstance(row[0], tuple):
                (sender, pkt), expect, w = row
            elif len(row) == 3:
                sender, pkt, expect = row
                w = None
            else:
                sender, pkt, expect, w = row
            if sender not in ("A", "B"):
                raise ValueError("%s step %d: sender must be A or B" % (name, i + 1))
            self.steps.append(Step(sender, pkt, expect, wait if w is None else w))

    def expand(self, text):
        return text.replace("{west}", self.ports[0]).replace("{east}", self.ports[1])


class Step:
    def __init__(self, sender, pkt, expect, wait):
        self.sender, self.pkt, self.expect, self.wait = sender, pkt, expect, wait


class Tcp:
    """One TCP conversation; keeps seq/ack of both ends. The client is on host `client`
    ("A" by default) with address `caddr`, the server on the other host with `saddr`.
    Methods take the sending host ("A"/"B"), build its next segment and advance that end's
    sequence number by what the segment consumes (SYN/FIN 1, payload its length); they
    return (sender, packet), ready for a step row."""

    def __init__(self, caddr, saddr, sport, dport, client="A", isn_c=1000, isn_s=500000,
                 win=64240, v6=False):
        server = "B" if client == "A" else "A"
        self.client, self.server = client, server
        self.addr = {client: caddr, server: saddr}
        self.port = {client: sport, server: dport}
        self.nxt = {client: isn_c, server: isn_s}
        self.win, self.v6 = win, v6

    def _other(self, s):
        return "B" if s == "A" else "A"

    def seg(self, s, flags, payload=b"", seq=None, ack=None, advance=True, win=None):
        o = self._other(s)
        l3 = (IPv6(src=self.addr[s], dst=self.addr[o]) if self.v6
              else IP(src=self.addr[s], dst=self.addr[o]))
        if ack is None:
            ack = self.nxt[o] if "A" in flags else 0
        p = l3 / TCP(sport=self.port[s], dport=self.port[o], flags=flags,
                     seq=(self.nxt[s] if seq is None else seq) % 2**32, ack=ack % 2**32,
                     window=self.win if win is None else win)
        if payload:
            p = p / Raw(payload)
        if advance and seq is None:
            self.nxt[s] = (self.nxt[s] + len(payload) + ("S" in flags) + ("F" in flags)) % 2**32
        return (s, p)

    def syn(self, s=None):
        return self.seg(s or self.client, "S")

    def synack(self, s=None):
        return self.seg(s or self.server, "SA")

    def ack(self, s):
        return self.seg(s, "A")

    def data(self, s, payload):
        return self.seg(s, "PA", payload)

    def fin(self, s):
        return self.seg(s, "FA")

    def rst(self, s):
        return self.seg(s, "R", ack=0, advance=False)

    def handshake(self, expect="pass"):
        return [(self.syn(), expect), (self.synack(), expect), (self.ack(self.client), expect)]
