"""Calico felix style chains: dispatch on `-i tap+`, per-endpoint from/to chains with
conntrack INVALID/RELATED,ESTABLISHED, anti-spoof (-s + -m mac, -g to the policy chain),
policy chains that RETURN to accept, an ipset for ICMP sources, multiport.

The endpoint (a VM at 10.28.0.40, MAC FA:16:3E:4E:7A:0E) sits behind the first port, named
tap7f470881-51 as felix's workload interface would be; the rest of the world (172.18.203.0/24)
behind the second, eth1. Addresses are the issue's own: the lab injects raw frames, so they
need not be the hosts' addresses."""
from dsl import Scenario, Tcp
from scapy.all import ICMP, IP, TCP, Ether

VM, VM_MAC = "10.28.0.40", "fa:16:3e:4e:7a:0e"
SSH_PEER, OTHER, PINGER = "172.18.203.20", "172.18.203.21", "172.18.203.30"

SETS = """create felix-v4-_6b340324948a39b hash:ip family inet hashsize 1024 maxelem 1048576
add felix-v4-_6b340324948a39b 172.18.203.30
add felix-v4-_6b340324948a39b 172.18.203.31
"""

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:felix-FORWARD - [0:0]
:felix-FROM-ENDPOINT - [0:0]
:felix-TO-ENDPOINT - [0:0]
:felix-from-7f470881-51 - [0:0]
:felix-to-7f470881-51 - [0:0]
:felix-p-_6b340324948a39b-i - [0:0]
:felix-p-_6b340324948a39b-o - [0:0]
-A FORWARD -j felix-FORWARD
-A felix-FORWARD -i tap+ -j felix-FROM-ENDPOINT
-A felix-FORWARD -o tap+ -j felix-TO-ENDPOINT
-A felix-FORWARD -i tap+ -j ACCEPT
-A felix-FORWARD -o tap+ -j ACCEPT
-A felix-FROM-ENDPOINT -i tap7f470881-51 -g felix-from-7f470881-51
-A felix-FROM-ENDPOINT -m comment --comment "From unknown endpoint" -j DROP
-A felix-TO-ENDPOINT -o tap7f470881-51 -g felix-to-7f470881-51
-A felix-TO-ENDPOINT -m comment --comment "To unknown endpoint" -j DROP
-A felix-from-7f470881-51 -m conntrack --ctstate INVALID -j DROP
-A felix-from-7f470881-51 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A felix-from-7f470881-51 -s 10.28.0.40/32 -m mac --mac-source FA:16:3E:4E:7A:0E -g felix-p-_6b340324948a39b-o
-A felix-from-7f470881-51 -m comment --comment "Anti-spoof DROP (endpoint 7f470881-5156-47ce-a67d-b971ef5e5cde):" -j DROP
-A felix-to-7f470881-51 -m conntrack --ctstate INVALID -j DROP
-A felix-to-7f470881-51 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A felix-to-7f470881-51 -g felix-p-_6b340324948a39b-i
-A felix-p-_6b340324948a39b-i -p icmp -m set --match-set felix-v4-_6b340324948a39b src -j RETURN
-A felix-p-_6b340324948a39b-i -s 172.18.203.20/32 -p tcp -m multiport --dports 22 -j RETURN
-A felix-p-_6b340324948a39b-i -m comment --comment "Default DROP rule (7f470881-5156-47ce-a67d-b971ef5e5cde)" -j DROP
-A felix-p-_6b340324948a39b-o -j RETURN
COMMIT
"""


def from_vm(pkt, mac=VM_MAC):
    return ("A", Ether(src=mac) / pkt)


def felix():
    out = Tcp(VM, SSH_PEER, 51000, 80)                   # the VM opens a connection out
    ssh = Tcp(SSH_PEER, VM, 52000, 22, client="B")       # the allowed peer ssh-es in
    bad = Tcp(OTHER, VM, 52001, 22, client="B")          # another host may not
    port = Tcp(SSH_PEER, VM, 52002, 23, client="B")      # nor may the peer use another port
    rows = []
    for (s, p), e in out.handshake():
        rows.append(((from_vm(p) if s == "A" else (s, p)), e))
    s, p = out.data("A", b"GET / HTTP/1.1\r\n\r\n")
    rows.append((from_vm(p), "pass"))
    rows.append((out.ack("B"), "pass"))
    # Out of window from the VM: INVALID, dropped in the from-chain.
    s, p = out.seg("A", "PA", b"junk", seq=out.nxt["A"] + 80_000_000)
    rows.append((from_vm(p), "drop"))
    # Anti-spoof: right address, wrong MAC; wrong address, right MAC.
    rows.append((from_vm(IP(src=VM, dst=SSH_PEER) / TCP(sport=51001, dport=80, flags="S"),
                         mac="02:00:00:00:00:99"), "drop"))
    rows.append((from_vm(IP(src="10.28.0.41", dst=SSH_PEER) / TCP(sport=51002, dport=80, flags="S")),
                 "drop"))
    # Inbound policy: the peer on 22 yes, on 23 no, another host no.
    rows += ssh.handshake()
    rows.append((port.syn(), "drop"))
    rows.append((bad.syn(), "drop"))
    # ICMP from a set member is allowed in, from others not; the reply goes out.
    rows.append((("B", IP(src=PINGER, dst=VM) / ICMP(type=8, id=5)), "pass"))
    rows.append((from_vm(IP(src=VM, dst=PINGER) / ICMP(type=0, id=5)), "pass"))
    rows.append((("B", IP(src=OTHER, dst=VM) / ICMP(type=8, id=6)), "drop"))
    return rows


SCENARIOS = [
    Scenario("calico_felix", "felix chains: tap+ dispatch, anti-spoof -m mac -g, policy RETURN, ipset, multiport",
             felix(), rules=RULES, sets=SETS, ports=("tap7f470881-51", "eth1")),
]
