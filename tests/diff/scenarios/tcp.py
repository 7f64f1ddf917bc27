"""TCP over IPv4: handshake/data/close under ctstate rules, DROP and REJECT, window tracking
(INVALID), mid-stream pickup (nf_conntrack_tcp_loose=1)."""
from dsl import A4, B4, Scenario, Tcp
from scapy.all import IP, TCP, UDP, Raw

STATEFUL = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -o {east} -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def handshake_close():
    t = Tcp(A4, B4, 40000, 22)
    u = Tcp(B4, A4, 40001, 22, client="B")  # B opens towards A: NEW from the east side
    v = Tcp(A4, B4, 40002, 23)   # a port with no NEW rule
    return [
        *t.handshake(),
        (t.data("A", b"SSH-2.0-client\r\n"), "pass"),
        (t.ack("B"), "pass"),
        (t.data("B", b"SSH-2.0-server\r\n"), "pass"),
        (t.ack("A"), "pass"),
        (t.fin("A"), "pass"),
        (t.ack("B"), "pass"),
        (t.fin("B"), "pass"),
        (t.ack("A"), "pass"),
        (u.syn(), "drop"),
        (v.syn(), "drop"),
        (v.syn(), "drop"),
    ]


BLOCK_REJECT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 23 -j DROP
-A FORWARD -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
-A FORWARD -p tcp -m tcp --dport 25 -j REJECT
-A FORWARD -p udp -m udp --dport 514 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p udp -m udp --dport 161 -j REJECT --reject-with icmp-admin-prohibited
-A FORWARD -p udp -m udp --dport 162 -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -p udp -m udp --dport 163 -j REJECT --reject-with icmp-net-unreachable
COMMIT
"""


def seg4(s, sport, dport, flags="S", payload=b""):
    src, dst = (A4, B4) if s == "A" else (B4, A4)
    p = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=7, ack=5 if "A" in flags else 0)
    return (s, p / Raw(payload) if payload else p)


def dgram4(s, sport, dport, payload=b""):
    src, dst = (A4, B4) if s == "A" else (B4, A4)
    return (s, IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def block_reject():
    return [
        (seg4("A", 41000, 80), "pass"),
        (seg4("A", 41001, 23), "drop"),
        (seg4("A", 41002, 113), "reject:tcp-reset"),
        (seg4("B", 41003, 113), "reject:tcp-reset"),
        (seg4("A", 41004, 113, "PA", b"x" * 10), "reject:tcp-reset"),
        (seg4("A", 41005, 25), "reject:icmp-port-unreachable"),
        (dgram4("A", 41006, 514, b"<13>hello"), "reject:icmp-port-unreachable"),
        (dgram4("A", 41007, 161, b"snmp"), "reject:icmp-admin-prohibited"),
        (dgram4("B", 41008, 162, b"trap"), "reject:icmp-host-prohibited"),
        (dgram4("A", 41009, 163), "reject:icmp-net-unreachable"),
        (dgram4("A", 41010, 515), "pass"),
        # An RST is never answered with an RST.
        (seg4("A", 41011, 113, "R"), "drop"),
    ]


WINDOW = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -j ACCEPT
COMMIT
"""


def out_of_window():
    t = Tcp(A4, B4, 42000, 80)
    rows = [*t.handshake(),
            (t.data("A", b"GET / HTTP/1.0\r\n\r\n"), "pass"),
            (t.ack("B"), "pass")]
    # Far beyond the receiver's window: INVALID.
    rows.append((t.seg("A", "PA", b"z" * 20, seq=t.nxt["A"] + 10_000_000), "drop"))
    # Far behind (old data long since acknowledged): since Linux 6.1 conntrack lets such
    # overly delayed segments through without updating state (NFCT_TCP_IGNORE), not INVALID.
    rows.append((t.seg("A", "PA", b"z" * 20, seq=t.nxt["A"] - 3_000_000), "pass"))
    # Acknowledges data B never sent: INVALID.
    rows.append((t.seg("A", "A", ack=t.nxt["B"] + 5_000_000, advance=False), "drop"))
    # The connection is still fine after all that.
    rows += [(t.data("B", b"HTTP/1.0 200 OK\r\n\r\n"), "pass"),
             (t.ack("A"), "pass"),
             # A retransmission of already-acknowledged data is in window.
             (t.seg("B", "PA", b"HTTP/1.0 200 OK\r\n\r\n", seq=t.nxt["B"] - 19), "pass"),
             # An RST outside the window is INVALID; the in-window one closes the flow.
             (t.seg("A", "R", seq=t.nxt["A"] + 200_000_000, ack=0, advance=False), "drop"),
             (t.rst("A"), "pass"),
             # CLOSE state: the entry lives on (10 s) and still passes in-window packets.
             (t.data("B", b"late"), "pass")]
    return rows


LOOSE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {west} -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i {west} -p tcp -m tcp --dport 2222 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def midstream():
    t = Tcp(A4, B4, 43000, 22, isn_c=777777, isn_s=888888)
    w = Tcp(A4, B4, 43001, 2222, isn_c=5555, isn_s=6666)
    x = Tcp(A4, B4, 43002, 80)
    y = Tcp(A4, B4, 43003, 22)
    z = Tcp(A4, B4, 43004, 22)
    return [
        # No handshake seen: with tcp_loose the ACK is picked up, as NEW.
        (t.seg("A", "PA", b"mid-stream data"), "pass"),
        (t.ack("B"), "pass"),
        (t.data("B", b"reply"), "pass"),
        (t.ack("A"), "pass"),
        # The --syn rule does not take a mid-stream ACK; a SYN it does.
        (w.seg("A", "A", advance=False), "drop"),
        (w.syn(), "pass"),
        (w.synack("B"), "pass"),
        # Port without a NEW rule.
        (x.seg("A", "A"), "drop"),
        # RST or FIN cannot start a flow.
        (y.seg("A", "R", ack=0, advance=False), "drop"),
        (z.seg("A", "FA", advance=False), "drop"),
        # SYN-ACK as the first packet seen.
        (Tcp(A4, B4, 43005, 22).seg("A", "SA", advance=False), "drop"),
    ]


SCENARIOS = [
    Scenario("tcp_handshake_close", "ESTABLISHED rule + NEW-only accept on :22; close; NEW from B dropped",
             handshake_close(), rules=STATEFUL),
    Scenario("tcp_block_reject", "DROP and REJECT: tcp-reset, icmp-port-unreachable and other codes",
             block_reject(), rules=BLOCK_REJECT),
    Scenario("tcp_out_of_window", "out-of-window segments are INVALID and dropped by --ctstate INVALID",
             out_of_window(), rules=WINDOW),
    Scenario("tcp_midstream_pickup", "ACK without handshake picked up as NEW (tcp_loose=1), --syn rule",
             midstream(), rules=LOOSE),
]
