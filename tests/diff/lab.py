"""The two-host lab of tools/netns-lab.sh, in two flavours, plus raw L2 taps into the hosts.

    host A (ns P-a, P-a0)  ==veth==  P-fa [ns P-fw] P-fb  ==veth==  (P-b0, ns P-b) host B

  kernel  the reference. Inside P-fw the two veth ends are renamed to the scenario's port names
          (interface names are per namespace, so `west`, `tap7f470881-51` ... are free there)
          and enslaved to a Linux bridge; br_netfilter (bridge-nf-call-iptables/ip6tables=1,
          bridge-nf-filter-vlan-tagged=1, all per namespace) hands every bridged IPv4/IPv6
          frame to iptables FORWARD, so the kernel sees exactly the frames Sluice sees. The
          bridge carries an address in each family (192.0.2.254/24, 2001:db8::fe/64) and
          permanent neighbour entries for A and B only so that REJECT can route its TCP RST /
          ICMP error back to the sender; ICMP rate limits are off so REJECT is deterministic.
  sluice  the subject: P-fa and P-fb are left as they are and sluice-fastpath runs in P-fw on
          two net_af_packet ports named as the scenario says.

In both flavours the hosts' own stacks are silenced (iptables/ip6tables INPUT policy DROP in P-a
and P-b): crafted TCP must not be answered by a real stack with RSTs. The taps are AF_PACKET
sockets, opened inside the host namespaces (setns on this thread only), promiscuous, with
PACKET_AUXDATA so a VLAN tag the veth moved into metadata is put back into the frame; they see
every frame before the silenced stack drops it.

Lifecycle: Lab(...).up() ... .down(); down() is idempotent and removes every namespace the lab
made (also called from the harness's signal handlers). Single-threaded use only."""
import ctypes
import fcntl
import os
import socket
import struct
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS_LAB = os.path.join(HERE, "..", "..", "tools", "netns-lab.sh")

CLONE_NEWNET = 0x40000000
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_ALL = 0x0003

BRIDGE = "difbr"
FW4, FW6 = "192.0.2.254", "2001:db8::fe"
HOST4 = {"A": "192.0.2.1", "B": "192.0.2.2"}
HOST6 = {"A": "2001:db8::1", "B": "2001:db8::2"}

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(Exception):
    pass


def run(cmd, ns=None, input=None, check=True, timeout=30):
    """Run a command (list), optionally inside a namespace; returns CompletedProcess."""
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd),
                                                          r.stdout, r.stderr))
    return r


class netns:
    """Context manager: this thread enters namespace `name`, and comes back on exit."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise LabError("setns(%s): %s" % (self.name, os.strerror(e)))
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        rc = _libc.setns(self.orig, CLONE_NEWNET)
        os.close(self.orig)
        if rc != 0:
            raise LabError("setns back to the original namespace failed")


class Tap:
    """A promiscuous AF_PACKET socket on one host interface: send raw frames, drain what came."""

    def __init__(self, ns, ifname):
        with netns(ns):
            self.ifindex = socket.if_nametoindex(ifname)
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, ETH_P_ALL))
            mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.setblocking(False)
            # /sys shows the original namespace's devices: ask the socket (SIOCGIFHWADDR).
            req = fcntl.ioctl(self.sock, 0x8927, struct.pack("256s", ifname.encode()))
            self.mac = ":".join("%02x" % b for b in req[18:24])

    def send(self, frame):
        n = self.sock.send(frame)
        if n != len(frame):
            raise LabError("short send: %d of %d bytes" % (n, len(frame)))

    def drain(self, limit=10000):
        """Frames received since the last drain (incoming only), VLAN tags restored."""
        out = []
        for _ in range(limit):
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(20))
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, typ, cdata in anc:
                if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                    status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
                            tpid = 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            out.append(data)
        return out

    def close(self):
        self.sock.close()


HOST_SILENCE = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


class Lab:
    """kind: 'kernel' or 'sluice'. ports: (name of the port facing A, name facing B)."""

    def __init__(self, prefix, kind, ports):
        self.P, self.kind, self.ports = prefix, kind, ports
        self.ns = {"A": prefix + "-a", "B": prefix + "-b", "fw": prefix + "-fw"}
        self.taps = {}

    def _bash(self, fn):
        run(["bash", "-c", 'source "$0"; %s "$1"' % fn, NETNS_LAB, self.P])

    def up(self):
        self._bash("lab_up")
        for h in "AB":
            ns = self.ns[h]
            run(["iptables-restore"], ns=ns, input=HOST_SILENCE)
            run(["ip6tables-restore"], ns=ns, input=HOST_SILENCE)
            # No router solicitations / MLD noise worth speaking of; harmless either way.
            run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"], ns=ns, check=False)
        if self.kind == "kernel":
            self._kernel_fw()
        self.taps = {"A": Tap(self.ns["A"], self.P + "-a0"), "B": Tap(self.ns["B"], self.P + "-b0")}

    def _kernel_fw(self):
        fw = self.ns["fw"]
        west, east = self.ports
        run(["ip", "link", "add", BRIDGE, "type", "bridge", "stp_state", "0",
             "forward_delay", "0"], ns=fw)
        for old, new in ((self.P + "-fa", west), (self.P + "-fb", east)):
            run(["ip", "link", "set", old, "down"], ns=fw)
            if new != old:
                run(["ip", "link", "set", old, "name", new], ns=fw)
            run(["ip", "link", "set", new, "master", BRIDGE], ns=fw)
            run(["ip", "link", "set", new, "up"], ns=fw)
        run(["sysctl", "-qw", "net.ipv6.conf.%s.accept_ra=0" % BRIDGE], ns=fw, check=False)
        run(["ip", "addr", "add", FW4 + "/24", "dev", BRIDGE], ns=fw)
        run(["ip", "addr", "add", FW6 + "/64", "dev", BRIDGE, "nodad"], ns=fw)
        run(["ip", "link", "set", BRIDGE, "up"], ns=fw)
        for h in "AB":
            mac = run(["cat", "/sys/class/net/%s-%s0/address" % (self.P, h.lower())],
                      ns=self.ns[h]).stdout.strip()
            run(["ip", "neigh", "replace", HOST4[h], "lladdr", mac, "dev", BRIDGE, "nud",
                 "permanent"], ns=fw)
            run(["ip", "-6", "neigh", "replace", HOST6[h], "lladdr", mac, "dev", BRIDGE, "nud",
                 "permanent"], ns=fw)
        for kv in ("net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1",
                   "net.bridge.bridge-nf-filter-vlan-tagged=1",
                   "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_ratemask=0",
                   "net.ipv6.icmp.ratelimit=0"):
            r = run(["sysctl", "-qw", kv], ns=fw, check=False)
            if r.returncode != 0:
                raise LabError("br_netfilter setting unavailable: sysctl %s: %s" %
                               (kv, r.stderr.strip()))

    def load_kernel_policy(self, rules4, rules6, sets):
        fw = self.ns["fw"]
        if sets.strip():
            run(["ipset", "restore"], ns=fw, input=sets)
        run(["iptables-restore"], ns=fw, input=rules4)
        run(["ip6tables-restore"], ns=fw, input=rules6)
        # Conntrack defaults, stated so the reference does not depend on the host's settings.
        for kv in ("net.netfilter.nf_conntrack_tcp_loose=1",
                   "net.netfilter.nf_conntrack_tcp_be_liberal=0",
                   "net.netfilter.nf_conntrack_checksum=1"):
            run(["sysctl", "-qw", kv], ns=fw, check=False)

    def conntrack_dump(self):
        r = run(["conntrack", "-L"], ns=self.ns["fw"], check=False)
        r6 = run(["conntrack", "-L", "-f", "ipv6"], ns=self.ns["fw"], check=False)
        return r.stdout + r6.stdout

    def down(self):
        for t in self.taps.values():
            t.close()
        self.taps = {}
        for _ in range(3):
            try:
                self._bash("lab_down")
                return
            except (LabError, subprocess.TimeoutExpired):
                time.sleep(0.2)


def leftover_namespaces(prefix_start):
    r = run(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith(prefix_start)]
