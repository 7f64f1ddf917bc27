"""ipset types (hash:ip, hash:net with nomatch, hash:ip,port, hash:net,port, bitmap:port,
list:set, inet6), -m multiport, -s/-d/-p negation, user chains with -j/-g/RETURN."""
from dsl import A4, A6, B4, B6, NET2, NET3, Scenario
from scapy.all import ICMP, IP, TCP, UDP, ICMPv6EchoRequest, IPv6, Raw

SETS = """create allow_ip hash:ip family inet hashsize 1024 maxelem 65536
add allow_ip 203.0.113.10
add allow_ip 203.0.113.12
create nets hash:net family inet hashsize 1024 maxelem 65536
add nets 198.51.100.0/24
add nets 198.51.100.128/25 nomatch
add nets 198.51.100.130
create svc hash:ip,port family inet hashsize 1024 maxelem 65536
add svc 192.0.2.2,tcp:443
add svc 192.0.2.2,udp:53
create webnets hash:net,port family inet hashsize 1024 maxelem 65536
add webnets 198.51.100.0/24,tcp:8080
create ports bitmap:port range 1000-2000
add ports 1500
create nets6 hash:net family inet6 hashsize 1024 maxelem 65536
add nets6 2001:db8:100::/48
add nets6 2001:db8:100:1::/64 nomatch
create all list:set size 8
add all allow_ip
add all nets
"""

SET_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p icmp -m set ! --match-set nets src -j DROP
-A FORWARD -m set --match-set svc dst,dst -j ACCEPT
-A FORWARD -m set --match-set all src -j ACCEPT
-A FORWARD -m set --match-set webnets src,dst -j ACCEPT
-A FORWARD -p udp -m set --match-set ports dst -j ACCEPT
COMMIT
"""

SET_RULES6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m set --match-set nets6 src -j ACCEPT
COMMIT
"""


def tcp(src, dst, dport, sport=33000, s="A"):
    return (s, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S"))


def udp(src, dst, dport, sport=33000, s="A"):
    return (s, IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(b"u"))


def ipsets():
    return [
        (tcp(A4, B4, 443), "pass"),                      # hash:ip,port hit
        (tcp(A4, B4, 444), "drop"),                      # ... port miss
        (udp(A4, B4, 53), "pass"),                       # ... udp element
        (tcp(A4, B4, 53), "drop"),                       # ... protocol miss
        (tcp(B4, A4, 443, s="B"), "drop"),               # ... address miss (dst is A)
        (tcp(NET3 + "10", B4, 80), "pass"),              # list:set -> hash:ip hit
        (tcp(NET3 + "11", B4, 80), "drop"),              # ... miss
        (tcp(NET2 + "5", B4, 80), "pass"),               # list:set -> hash:net hit
        (tcp(NET2 + "200", B4, 80), "drop"),             # ... inside a nomatch range
        (tcp(NET2 + "130", B4, 80), "pass"),             # ... /32 inside the nomatch /25
        (tcp(NET2 + "200", B4, 8080), "pass"),           # hash:net,port src,dst
        (tcp(NET2 + "200", B4, 8081), "drop"),
        (udp(NET3 + "99", B4, 1500), "pass"),            # bitmap:port dst
        (udp(NET3 + "99", B4, 2500), "drop"),            # outside the bitmap's range
        (("A", IP(src=NET3 + "10", dst=B4) / ICMP()), "drop"),   # ! --match-set nets
        (("A", IP(src=NET2 + "5", dst=B4) / ICMP()), "pass"),
        (("A", IP(src=NET2 + "200", dst=B4) / ICMP()), "drop"),  # nomatch = not in set
        (("A", IPv6(src="2001:db8:100::5", dst=B6) / ICMPv6EchoRequest()), "pass"),
        (("A", IPv6(src="2001:db8:100:1::5", dst=B6) / ICMPv6EchoRequest()), "drop"),
        (("A", IPv6(src=A6, dst=B6) / ICMPv6EchoRequest()), "drop"),
    ]


MATCHES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT
-A FORWARD -p udp -m multiport --sports 67,68 -j ACCEPT
-A FORWARD -p tcp -m multiport --ports 5060 -j ACCEPT
-A FORWARD -s 192.0.2.0/25 -p udp -m multiport ! --dports 1:1023 -j ACCEPT
-A FORWARD ! -s 198.51.100.0/24 -p icmp -j ACCEPT
-A FORWARD -s 203.0.113.0/24 ! -d 192.0.2.2/32 -p tcp -j ACCEPT
-A FORWARD ! -p tcp -d 192.0.2.200/32 -j ACCEPT
COMMIT
"""


def matches():
    return [
        (tcp(A4, B4, 22), "pass"),
        (tcp(A4, B4, 80), "pass"),
        (tcp(A4, B4, 8000), "pass"),
        (tcp(A4, B4, 8080), "pass"),
        (tcp(A4, B4, 8081), "drop"),
        (tcp(A4, B4, 21), "drop"),
        (udp(A4, B4, 9999, sport=67), "pass"),
        (udp(A4, B4, 9999, sport=69), "pass"),           # ! --dports 1:1023 from the /25
        (udp(A4, B4, 53, sport=40000), "drop"),
        (udp("192.0.2.200", B4, 9999, sport=40000), "drop"),
        (tcp(A4, B4, 9, sport=5060), "pass"),            # --ports: either side
        (tcp(A4, B4, 5060), "pass"),
        (("A", IP(src=A4, dst=B4) / ICMP()), "pass"),
        (("A", IP(src=NET2 + "9", dst=B4) / ICMP()), "drop"),
        (tcp(NET3 + "5", B4, 9), "drop"),
        (tcp(NET3 + "5", "192.0.2.3", 9), "pass"),
        (udp(NET2 + "9", "192.0.2.200", 53, sport=40000), "pass"),
        (tcp(NET2 + "9", "192.0.2.200", 9), "drop"),
    ]


CHAINS = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:c1 - [0:0]
:c2 - [0:0]
-A FORWARD -p tcp -m tcp --dport 9 -j RETURN
-A FORWARD -j c1
-A FORWARD -p udp -j DROP
-A FORWARD -j ACCEPT
-A c1 -p udp -m udp --dport 1 -j c2
-A c1 -p udp -m udp --dport 1 -j ACCEPT
-A c1 -p udp -m udp --dport 2 -g c2
-A c1 -p udp -m udp --dport 2 -j ACCEPT
-A c1 -p udp -m udp --dport 3 -j RETURN
-A c1 -p udp -m udp --dport 3 -j ACCEPT
-A c1 -i {east} -j c2
-A c1 -i {east} -j DROP
-A c2 -p udp -m udp --dport 1 -j RETURN
-A c2 -s 203.0.113.7/32 -j ACCEPT
-A c2 -p udp -m udp --dport 5 -j DROP
COMMIT
"""


def chains():
    return [
        (udp(A4, B4, 1), "pass"),             # c1 -j c2, c2 RETURNs, c1 accepts
        (udp(A4, B4, 2), "drop"),             # c1 -g c2 falls off c2 -> back in FORWARD: udp DROP
        (udp(NET3 + "7", B4, 2), "pass"),     # ... unless c2 accepts
        (udp(A4, B4, 3), "drop"),             # c1 RETURN -> FORWARD udp DROP
        (udp(A4, B4, 4), "drop"),             # c1 falls off -> FORWARD udp DROP
        (tcp(A4, B4, 80), "pass"),            # FORWARD -j ACCEPT
        (tcp(A4, B4, 9), "drop"),             # RETURN in a built-in chain: its policy
        (tcp(B4, A4, 80, s="B"), "drop"),     # -i east: c1 -j c2 (no verdict) then DROP
        (tcp(NET3 + "7", A4, 80, s="B"), "pass"),   # -i east via c2's ACCEPT
        (udp(NET3 + "7", A4, 5, s="B"), "pass"),    # c2's ACCEPT comes before its DROP
        (udp(B4, A4, 5, s="B"), "drop"),
    ]


SCENARIOS = [
    Scenario("ipset_types", "hash:ip, hash:net+nomatch, hash:ip,port, hash:net,port, bitmap:port, list:set, inet6",
             ipsets(), rules=SET_RULES, rules6=SET_RULES6, sets=SETS),
    Scenario("matches_negation", "-m multiport --dports/--sports/--ports, ! -s, ! -d, ! -p",
             matches(), rules=MATCHES),
    Scenario("user_chains", "user chains: -j, -g, RETURN from user and built-in chains, -i in a chain",
             chains(), rules=CHAINS),
]
