"""UDP and ICMP pseudo-state over IPv4: request/response with NEW allowed one way, echo
request/reply, ICMP errors RELATED to the flow they quote or INVALID when they quote nothing."""
from dsl import A4, B4, NET2, Scenario, Tcp
from scapy.all import ICMP, IP, UDP, IPerror, TCPerror, UDPerror, Raw

ONE_WAY = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p udp -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def udp(s, sport, dport, payload=b"q"):
    src, dst = (A4, B4) if s == "A" else (B4, A4)
    return (s, IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def udp_one_way():
    return [
        (udp("A", 5000, 53, b"query"), "pass"),
        (udp("B", 53, 5000, b"answer"), "pass"),
        (udp("B", 53, 5000, b"second answer"), "pass"),
        (udp("A", 5000, 53, b"again"), "pass"),
        # B may not start anything: another port, another source port.
        (udp("B", 53, 5001, b"unsolicited"), "drop"),
        (udp("B", 7000, 9999, b"new from east"), "drop"),
        (udp("B", 54, 5000, b"wrong source port"), "drop"),
        (udp("A", 5002, 123, b"ntp"), "pass"),
        (udp("B", 123, 5002, b"ntp reply"), "pass"),
        # A reply from an address the request did not go to.
        (("B", IP(src=NET2 + "9", dst=A4) / UDP(sport=123, dport=5002)), "drop"),
    ]


ECHO = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -i {west} -p icmp -m icmp --icmp-type timestamp-request -j ACCEPT
COMMIT
"""


def echo(s, typ, id_, seq=1):
    src, dst = (A4, B4) if s == "A" else (B4, A4)
    return (s, IP(src=src, dst=dst) / ICMP(type=typ, id=id_, seq=seq) / Raw(b"ping-payload"))


def icmp_echo():
    return [
        (echo("A", 8, 100), "pass"),
        (echo("B", 0, 100), "pass"),
        (echo("B", 0, 100), "pass"),          # a duplicate reply is still ESTABLISHED
        (echo("B", 0, 101), "drop"),          # reply to nothing: INVALID, policy drops it
        (echo("B", 8, 102), "drop"),          # echo request from the east side
        (echo("A", 8, 103, 1), "pass"),
        (echo("A", 8, 103, 2), "pass"),
        (echo("B", 0, 103, 2), "pass"),
        (echo("A", 13, 104), "pass"),         # timestamp request / reply
        (echo("B", 14, 104), "pass"),
        (echo("A", 0, 105), "drop"),          # unsolicited reply from the west
    ]


ERRORS = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p udp -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i {west} -p tcp --syn -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def icmp_errors():
    t = Tcp(A4, B4, 44000, 443)
    quoted_udp = IPerror(src=A4, dst=B4) / UDPerror(sport=6000, dport=53) / Raw(b"query")
    rows = [
        (udp("A", 6000, 53, b"query"), "pass"),
        # B's port unreachable quoting A's datagram: RELATED.
        (("B", IP(src=B4, dst=A4) / ICMP(type=3, code=3) / quoted_udp), "pass"),
        # A router on the way (another address) saying host unreachable: RELATED too.
        (("B", IP(src=NET2 + "254", dst=A4) / ICMP(type=3, code=1) / quoted_udp), "pass"),
        # Quoting a flow never seen: INVALID.
        (("B", IP(src=B4, dst=A4) / ICMP(type=3, code=3) /
          IPerror(src=A4, dst=B4) / UDPerror(sport=6999, dport=53)), "drop"),
        # Quoting the right flow but sent to the wrong host (outer dst != inner src).
        (("B", IP(src=B4, dst=NET2 + "7") / ICMP(type=3, code=3) / quoted_udp), "drop"),
        # Time exceeded quoting the tracked flow: RELATED.
        (("B", IP(src=NET2 + "254", dst=A4) / ICMP(type=11, code=0) / quoted_udp), "pass"),
        *t.handshake(),
        # Fragmentation needed quoting the TCP flow (PMTU discovery): RELATED.
        (("B", IP(src=NET2 + "254", dst=A4) / ICMP(type=3, code=4, nexthopmtu=1400) /
          IPerror(src=A4, dst=B4) / TCPerror(sport=44000, dport=443, seq=1001, flags="A")), "pass"),
        # An ICMP error from the west quoting a flow that B never started: INVALID.
        (("A", IP(src=A4, dst=B4) / ICMP(type=3, code=3) /
          IPerror(src=B4, dst=A4) / UDPerror(sport=53, dport=7777)), "drop"),
    ]
    return rows


SCENARIOS = [
    Scenario("udp_one_way", "UDP request/response, NEW allowed only from the west",
             udp_one_way(), rules=ONE_WAY),
    Scenario("icmp_echo", "ICMP echo/timestamp request and reply pseudo-state",
             icmp_echo(), rules=ECHO),
    Scenario("icmp_error_related", "ICMP errors RELATED to the quoted flow, INVALID for unknown flows",
             icmp_errors(), rules=ERRORS),
]
