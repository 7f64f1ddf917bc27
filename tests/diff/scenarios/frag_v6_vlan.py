"""IPv4 fragments (first and non-first, in and out of order, of an allowed and of a denied
flow), IPv6 TCP/ICMPv6/REJECT, and 802.1Q-tagged frames."""
from dsl import A4, A6, B4, B6, NET2, Scenario, Tcp
from scapy.all import (IP, UDP, Dot1Q, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                       ICMPv6PacketTooBig, IPerror6, IPv6, Raw, TCPerror, fragment)

FRAG = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def frags(s, sport, dport, ident, size=2400, fragsize=1000):
    src, dst = (A4, B4) if s == "A" else (B4, A4)
    payload = (bytes(range(256)) * (size // 256 + 1))[:size]
    dgram = IP(src=src, dst=dst, id=ident) / UDP(sport=sport, dport=dport) / Raw(payload)
    return [(s, f) for f in fragment(dgram, fragsize=fragsize)]


def ipv4_fragments():
    ok = frags("A", 7000, 53, 0x1111)            # 3 fragments, allowed flow
    bad = frags("A", 7001, 99, 0x2222)           # denied flow
    rev = frags("A", 7002, 53, 0x3333)           # allowed, arrives last-first
    lone = frags("A", 7003, 53, 0x4444)          # first fragment only, never completed
    reply = frags("B", 53, 7000, 0x5555)         # the answer to `ok`, fragmented too
    return [
        *[(f, "pass") for f in ok],
        *[(f, "drop") for f in bad],
        *[(f, "pass") for f in reversed(rev)],
        (lone[0], "drop"),
        *[(f, "pass") for f in reply],
        # A non-first fragment alone (its first never comes).
        (frags("A", 7004, 53, 0x6666)[1], "drop"),
    ]


V6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i {west} -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 514 -j REJECT --reject-with icmp6-port-unreachable
-A FORWARD -p tcp -m tcp --dport 25 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
"""


def ipv6_tcp():
    t = Tcp(A6, B6, 45000, 22, v6=True)
    rows = [*t.handshake(),
            (t.data("A", b"hello over v6"), "pass"),
            (t.ack("B"), "pass"),
            (t.seg("A", "PA", b"way out", seq=t.nxt["A"] + 50_000_000), "drop"),
            (("B", IPv6(src=NET2.replace("198.51.100.", "2001:db8:1::") + "1", dst=A6) /
              ICMPv6PacketTooBig(mtu=1280) /
              IPerror6(src=A6, dst=B6) / TCPerror(sport=45000, dport=22, flags="PA")), "pass"),
            (t.data("B", b"bye"), "pass"),
            (t.fin("A"), "pass"),
            (t.fin("B"), "pass"),
            (t.ack("A"), "pass"),
            (Tcp(B6, A6, 45001, 22, client="B", v6=True).syn(), "drop"),
            (Tcp(A6, B6, 45002, 80, v6=True).syn(), "drop"),
            (Tcp(A6, B6, 45003, 113, v6=True).syn(), "reject:tcp-reset"),
            (Tcp(A6, B6, 45004, 25, v6=True).syn(), "reject:icmp6-adm-prohibited"),
            (("A", IPv6(src=A6, dst=B6) / UDP(sport=45005, dport=514) / Raw(b"log")),
             "reject:icmp6-port-unreachable"),
            (("A", IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(id=9, seq=1)), "pass"),
            (("B", IPv6(src=B6, dst=A6) / ICMPv6EchoReply(id=9, seq=1)), "pass"),
            (("B", IPv6(src=B6, dst=A6) / ICMPv6EchoReply(id=10, seq=1)), "drop"),
            (("B", IPv6(src=B6, dst=A6) / ICMPv6DestUnreach(code=4) /
              IPerror6(src=A6, dst=B6) / TCPerror(sport=45999, dport=22)), "drop"),
            ]
    return rows


VLAN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def tagged(rows, vid):
    return [((s, Dot1Q(vlan=vid) / p), e) for (s, p), e in rows]


def vlan_tagged():
    t = Tcp(A4, B4, 46000, 80)
    u = Tcp(A4, B4, 46001, 23)
    w = Tcp(A4, B4, 46002, 80)
    return [
        *tagged([*t.handshake(), (t.data("A", b"GET /"), "pass"), (t.ack("B"), "pass")], 10),
        *tagged([(u.syn(), "drop")], 10),
        *tagged([(Tcp(B4, A4, 46003, 80, client="B").syn(), "drop")], 20),
        # Untagged and a different VLAN on the same segment, same rules.
        (w.syn(), "pass"),
        *tagged([(w.synack(), "pass")], 30),
    ]


SCENARIOS = [
    Scenario("ipv4_fragments", "fragments of allowed/denied UDP flows, out of order, incomplete",
             ipv4_fragments(), rules=FRAG),
    Scenario("ipv6_tcp", "IPv6: TCP handshake/close, out of window, PTB RELATED, REJECT, ICMPv6 echo",
             ipv6_tcp(), rules6=V6),
    Scenario("vlan_tagged", "802.1Q-tagged TCP through ctstate rules (bridge-nf-filter-vlan-tagged)",
             vlan_tagged(), rules=VLAN),
]
