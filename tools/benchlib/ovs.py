#!/usr/bin/python3
"""The OVS-DPDK peer of tools/bench: Open vSwitch's userspace (DPDK) datapath as a stateful
firewall with conntrack, driven by sluice-gen with the same traffic as the Sluice scenarios.

The instance. A private ovsdb-server + ovs-vswitchd-dpdk (Debian's openvswitch-switch-dpdk,
/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk, called directly: the system's
update-alternatives choice and its openvswitch-switch service are never touched), with its own
database, run, log directory and unix sockets in a directory of the caller's temp dir
(OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR point there, every tool gets explicit socket
paths). ovs-vswitchd runs in a private network namespace (`unshare --net`): the tap devices
of the netdev datapath (ovs-netdev, the bridge's local port) are created there and vanish with
it, nothing appears in the host's namespace. DPDK: dpdk-init=true, the main lcore on CPU 0
(dpdk-lcore-mask 0x1), one PMD thread on CPU 1 (pmd-cpu-mask 0x2, the CPU of sluice-fastpath's
worker), 256 MiB of hugepages (limit 512), per-port mempools, dpdk-extra
`--file-prefix=<unique> --no-pci` (OVS adds --in-memory itself). One netdev bridge,
fail_mode=secure (no NORMAL flow before ours), OpenFlow 1.3, two dpdkvhostuser ports: west
(ofport 1) and east (ofport 2); OVS serves the vhost-user sockets, sluice-gen (CPU 0) is the
virtio front end on them with net_virtio_user (queues=1). Not memif: with the memif ports of
this machine's OVS every packet is dropped because OVS transmits on a second queue; vhost-user
has no such issue. sluice-gen's EAL gets --single-file-segments so that its memory fits in
the 8 memory regions a vhost-user front end may hand to the back end.

The firewall (firewall_flows(); loaded with `ovs-ofctl -O OpenFlow13 add-flows`), the
equivalent of common.ruleset()'s iptables FORWARD chain on a two-port bump in the wire:

  table 0   ip, ct_state=-trk        -> ct(table=1, zone=1)   every IPv4 packet through conntrack
            anything else            -> drop                  (FORWARD only sees IP; sluice-gen
                                                               sends nothing else)
  table 1   +trk+est / +trk+rel      -> output to the other port     (-m conntrack --ctstate
                                                                       RELATED,ESTABLISHED -j ACCEPT)
            N x tcp, nw_src=10.a.b.c, tp_dst=P, +trk -> drop  (-s 10.a.b.c/32 -p tcp --dport P -j DROP;
                                                               below +est: only NEW or INVALID reach it)
            udp, +trk+new            -> ct(commit), output    (-p udp -j ACCEPT; netfilter creates the
            udp, +trk+inv            -> output                 entry of an accepted NEW packet, an
                                                               INVALID one passes without an entry)
            tcp, in_port=west, +new  -> ct(commit), output    (-i west -p tcp -j ACCEPT)
            tcp, in_port=west, +inv  -> output
            anything else            -> drop                  (policy DROP)

  norules: +est/+rel -> output; ip +new -> ct(commit), output; ip +inv -> output (FORWARD
  ACCEPT with every packet tracked, as the netfilter peer's and the appliance's "norules").

So it is a firewall with connection tracking, not plain forwarding: every packet is looked up
in OVS's userspace conntrack (a recirculation: two datapath passes per packet), NEW
connections are committed, the drop rules are consulted for every packet that is not part of
a connection, and the reply direction is only accepted as ESTABLISHED. One difference that
does not matter here: OVS's userspace conntrack marks the second packet of a committed UDP
connection in the original direction ESTABLISHED already, netfilter only after a reply; both
accept it. The drop rules are real: scenario tcp_check sends TCP SYNs from west to the last
rule's source and port (must be dropped), to the next port (accepted) and from east (dropped
with rules), and records the received ratios.

Scenarios (each run bounded in packets and seconds; figures ovs.<ruleset>.<scenario>.<figure>,
as tools/bench names Sluice's; the traffic is common.py's, as the appliance gets it):
  udp_new            every packet a new UDP flow, west->east;
  udp_established    256 UDP flows both ways after a warm-up that sends every flow both ways;
                     on norules also udp_established_<N>flows for N = 1, 1000, 10k, 100k;
  tcp_10kcps         sluice-gen's TCP workload, 10k connections/s (norules and rules10k);
  tcp_check          the sanity check of the drop rules above.
Figures per run: offered/received Mpps per core (OVS forwards on one PMD core), loss, latency
(common.add_stream_figures), pmd_cycles_per_packet: the PMD's "processing cycles" / "packets
received" of `ovs-appctl dpif-netdev/pmd-stats-show` (cleared with pmd-stats-clear before the
measured run, so warm-ups are excluded; idle polling is not counted, upcalls handled by the
PMD are; TSC time, so time the PMD thread spends preempted on a shared CPU counts too), and
after the established runs ct_entries (`dpctl/ct-stats-show` Total: conntrack really ran, one
entry per flow). A run with failed upcalls is logged as not representative. Conntrack is
flushed before every scenario. Once per round, before the first ruleset, an unmeasured udp_new
run lets the fresh ovs-vswitchd grow its heap for a million connections (the first such run
costs ~2.5x the cycles per packet of the next ones).

Rulesets: common.RULESETS (rules100k not with --quick: loading 100k OpenFlow flows takes ~20 s).

API for tools/bench: ovs_available() (None, or why the peer cannot run), run_ovs_round(fig,
quick, rnd, d) (one round: start, every ruleset and scenario, stop, clean up, even on failure).
Standalone: /usr/bin/python3 tools/benchlib/ovs.py [--quick] [--rounds N] [--rulesets a,b]
prints the figure table as JSON on stdout (the log goes to stderr). Needs root, hugepages and
build/tools/gen/sluice-gen."""
import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchlib.common import (BUILD, ESTABLISHED_FLOWS, RULESETS, Figures, Gen,  # noqa: E402
                             add_stream_figures, add_tcp_figures, established_args, established_name, established_warm, free_hugepages, log,
                             new_flow_count, remove_dpdk_files, timed_args, udp_streams)

VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "unshare")
QUICK_RULESETS = ("norules", "rules1", "rules1k", "rules10k")  # rules100k: 10-25 s to load into OVS
WEST, EAST = 1, 2  # OpenFlow port numbers (ofport_request)
ZONE = 1           # the conntrack zone of the firewall
HUGEPAGES_NEEDED = 384  # OVS: up to 512 MiB (socket-limit); sluice-gen: ~100 MiB


def ovs_available():
    """None if the OVS-DPDK peer can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(VSWITCHD, os.X_OK):
        return f"{VSWITCHD} not installed (Debian package openvswitch-switch-dpdk; tools/bootstrap installs it)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing or not os.path.exists(SCHEMA):
        return f"missing {', '.join(missing) or SCHEMA} (packages openvswitch-switch, util-linux)"
    if not os.access(os.path.join(BUILD, "tools", "gen", "sluice-gen"), os.X_OK):
        return "build/tools/gen/sluice-gen not built"
    if free_hugepages() < HUGEPAGES_NEEDED:
        return f"needs {HUGEPAGES_NEEDED} free 2 MiB hugepages (tools/bootstrap reserves them)"
    return None


def drop_rule(i):
    """(source address, TCP port) of common.ruleset()'s i-th DROP rule."""
    return "10.%d.%d.%d" % (200 + (i >> 16 & 15), i >> 8 & 255, i & 255), 1 + i % 60000


def firewall_flows(path, n_drop):
    """Writes the OpenFlow flows equivalent to common.ruleset(path, n_drop) (n_drop = 0: the
    tracked accept-all "norules") for ovs-ofctl add-flows; see the module docstring."""
    z = ZONE
    lines = [
        # table 0: IPv4 through conntrack, recirculated into table 1 with its ct_state.
        f"table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone={z})",
        "table=0,priority=0,actions=drop",
    ]
    for a, b in ((WEST, EAST), (EAST, WEST)):
        # -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        lines += [f"table=1,priority=300,ip,ct_state=+trk+est,in_port={a},actions=output:{b}",
                  f"table=1,priority=300,ip,ct_state=+trk+rel,in_port={a},actions=output:{b}"]
    if not n_drop:
        for a, b in ((WEST, EAST), (EAST, WEST)):
            lines += [f"table=1,priority=100,ip,ct_state=+trk+new,in_port={a},actions=ct(commit,zone={z}),output:{b}",
                      f"table=1,priority=90,ip,ct_state=+trk+inv,in_port={a},actions=output:{b}"]
    else:
        # -s 10.a.b.c/32 -p tcp --dport P -j DROP (NEW or INVALID: +est/+rel matched above)
        for i in range(n_drop):
            src, port = drop_rule(i)
            lines.append(f"table=1,priority=200,tcp,ct_state=+trk,nw_src={src},tp_dst={port},actions=drop")
        for a, b in ((WEST, EAST), (EAST, WEST)):
            # -p udp -j ACCEPT
            lines += [f"table=1,priority=100,udp,ct_state=+trk+new,in_port={a},actions=ct(commit,zone={z}),output:{b}",
                      f"table=1,priority=90,udp,ct_state=+trk+inv,in_port={a},actions=output:{b}"]
        # -i west -p tcp -j ACCEPT
        lines += [f"table=1,priority=100,tcp,ct_state=+trk+new,in_port={WEST},actions=ct(commit,zone={z}),output:{EAST}",
                  f"table=1,priority=90,tcp,ct_state=+trk+inv,in_port={WEST},actions=output:{EAST}"]
    lines.append("table=1,priority=0,actions=drop")  # :FORWARD DROP
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def parse_pmd_stats(text):
    """{packets, cycles, failed_upcalls}: "packets received", "processing cycles" and "miss
    with failed upcall" summed over the PMD threads of `ovs-appctl dpif-netdev/pmd-stats-show`
    (the "main thread" block is not a PMD)."""
    out = {"packets": 0, "cycles": 0, "failed_upcalls": 0}
    pats = {"packets": r"packets received:\s+(\d+)", "cycles": r"\n\s*processing cycles:\s+(\d+)",
            "failed_upcalls": r"miss with failed upcall:\s+(\d+)"}
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("pmd thread"):
            for k, p in pats.items():
                m = re.search(p, block)
                out[k] += int(m.group(1)) if m else 0
    return out


class Ovs:
    """One private OVS-DPDK instance in directory `d`/ovs (see the module docstring).
    start(), then load() a ruleset per run; stop() always (kills what is left, removes the
    DPDK runtime files and the directory)."""

    def __init__(self, d):
        self.dir = os.path.join(d, "ovs")
        self.prefix = f"sluice-bench-ovs-{os.getpid()}"
        self.bridge = f"sbovs{os.getpid() % 100000}"  # at most 15 characters
        self.db_sock = os.path.join(self.dir, "db.sock")
        self.ctl = os.path.join(self.dir, "ovs-vswitchd.ctl")
        self.db_ctl = os.path.join(self.dir, "ovsdb-server.ctl")
        self.mgmt = os.path.join(self.dir, f"{self.bridge}.mgmt")
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir)
        self.db_proc = self.sw_proc = None
        self.outs = []

    def sock(self, port):
        """The vhost-user socket OVS serves for `port` (west, east): vhost-sock-dir = OVS_RUNDIR."""
        return os.path.join(self.dir, port)

    def _run(self, *cmd, timeout=60):
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ...: exit {p.returncode}\n{p.stdout}{p.stderr}")
        return p.stdout

    def vsctl(self, *args, wait=False, timeout=60):
        return self._run("ovs-vsctl", f"--db=unix:{self.db_sock}", f"--timeout={timeout}",
                         *([] if wait else ["--no-wait"]), *args, timeout=timeout + 5)

    def appctl(self, *args, timeout=60):
        return self._run("ovs-appctl", "-t", self.ctl, f"--timeout={timeout}", *args, timeout=timeout + 5)

    def ofctl(self, *args, timeout=120):
        return self._run("ovs-ofctl", "-O", "OpenFlow13", f"--timeout={timeout}", *args, timeout=timeout + 5)

    def _spawn(self, name, cmd):
        """A daemon in the foreground, as our child: SIGTERM to it if this process dies
        (PR_SET_PDEATHSIG), so not even a killed bench leaves OVS running."""
        out = open(os.path.join(self.dir, name + ".out"), "w")
        self.outs.append(out)
        libc = ctypes.CDLL(None, use_errno=True)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                preexec_fn=lambda: libc.prctl(1, signal.SIGTERM))  # 1: PR_SET_PDEATHSIG

    def _wait_for(self, what, cond, proc, timeout):
        deadline = time.time() + timeout
        while not cond():
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: the process exited ({proc.returncode})")
            if time.time() > deadline:
                raise RuntimeError(f"{what}: not ready after {timeout} s")
            time.sleep(0.05)

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)  # no stale sockets from an earlier round
        os.makedirs(self.dir)
        if len(self.sock("west")) > 100:
            raise RuntimeError(f"{self.dir}: too long for unix socket paths")
        self._run("ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), SCHEMA)
        self.db_proc = self._spawn("ovsdb-server", [
            "ovsdb-server", os.path.join(self.dir, "conf.db"), f"--remote=punix:{self.db_sock}",
            f"--unixctl={self.db_ctl}", f"--pidfile={self.dir}/ovsdb-server.pid",
            f"--log-file={self.dir}/ovsdb-server.log", "-vconsole:off"])
        self._wait_for("ovsdb-server", lambda: os.path.exists(self.db_sock), self.db_proc, 20)
        self.vsctl("init")
        self.vsctl("set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true", "other_config:dpdk-lcore-mask=0x1",
                   "other_config:pmd-cpu-mask=0x2", "other_config:dpdk-socket-mem=256",
                   "other_config:dpdk-socket-limit=512", "other_config:per-port-memory=true",
                   f"other_config:dpdk-extra=--file-prefix={self.prefix} --no-pci")
        self.vsctl("add-br", self.bridge, "--", "set", "Bridge", self.bridge, "datapath_type=netdev",
                   "fail_mode=secure", "protocols=OpenFlow13",
                   "--", "add-port", self.bridge, "west", "--", "set", "Interface", "west",
                   "type=dpdkvhostuser", f"ofport_request={WEST}",
                   "--", "add-port", self.bridge, "east", "--", "set", "Interface", "east",
                   "type=dpdkvhostuser", f"ofport_request={EAST}")
        self.sw_proc = self._spawn("ovs-vswitchd", [
            "unshare", "--net", VSWITCHD, f"unix:{self.db_sock}", f"--unixctl={self.ctl}",
            f"--pidfile={self.dir}/ovs-vswitchd.pid", f"--log-file={self.dir}/ovs-vswitchd.log",
            "-vconsole:off"])
        def ready():
            return all(os.path.exists(p) for p in (self.ctl, self.mgmt, self.sock("west"), self.sock("east")))
        self._wait_for("ovs-vswitchd", ready, self.sw_proc, 90)
        self.vsctl("set", "Open_vSwitch", ".", "external_ids:sluice-bench=1", wait=True)  # config applied
        ports = self.vsctl("--bare", "--columns=name,ofport", "list", "Interface").split()
        got = dict(zip(ports[0::2], ports[1::2]))
        if got.get("west") != str(WEST) or got.get("east") != str(EAST):
            raise RuntimeError(f"OVS ports not as requested: {got}")

    def load(self, n_drop):
        """Replaces the bridge's flows with the firewall of `n_drop` rules; flushes conntrack."""
        path = os.path.join(self.dir, f"flows-{n_drop}.txt")
        firewall_flows(path, n_drop)
        self.ofctl("del-flows", f"unix:{self.mgmt}")
        self.ofctl("add-flows", f"unix:{self.mgmt}", path, timeout=300)
        n = int(re.search(r"flow_count=(\d+)", self.ofctl("dump-aggregate", f"unix:{self.mgmt}")).group(1))
        with open(path) as f:
            want = sum(1 for _ in f)
        if n != want:
            raise RuntimeError(f"OVS holds {n} flows, {path} has {want}")
        self.flush()

    def flush(self):
        """Conntrack emptied: the next run starts without connections. (Not the datapath
        flows: `dpctl/del-flows` bypasses ofproto's upcall keys, and every upcall of the same
        megaflow then fails until the revalidator notices, which made runs 40x slower. The
        megaflows do not depend on the traffic's addresses anyway, and a new OpenFlow table
        is revalidated by OVS itself.)"""
        self.appctl("dpctl/flush-conntrack")

    def pmd_clear(self):
        self.appctl("dpif-netdev/pmd-stats-clear")

    def pmd_stats(self):
        return parse_pmd_stats(self.appctl("dpif-netdev/pmd-stats-show"))

    def ct_entries(self):
        m = re.search(r"Total:\s+(\d+)", self.appctl("dpctl/ct-stats-show"))
        return int(m.group(1)) if m else 0

    def log_tail(self, n=4000):
        try:
            with open(os.path.join(self.dir, "ovs-vswitchd.log"), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        """ovs-vswitchd: `exit --cleanup` (it removes its ports), SIGTERM after 20 s, SIGKILL
        after 10 more; ovsdb-server: SIGTERM; then the DPDK runtime files and the directory."""
        if self.sw_proc and self.sw_proc.poll() is None:
            try:
                self.appctl("exit", "--cleanup", timeout=20)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"ovs: exit --cleanup failed: {str(e)[:200]}")
        for proc, grace in ((self.sw_proc, 20), (self.db_proc, 0)):
            if not proc:
                continue
            for how, wait in ((None, grace), (proc.terminate, 10), (proc.kill, 10)):
                if proc.poll() is not None:
                    break
                if how:
                    how()
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    pass
        for f in self.outs:
            f.close()
        remove_dpdk_files(self.prefix)
        shutil.rmtree(self.dir, ignore_errors=True)


class VhostGen(Gen):
    """sluice-gen (CPU 0) as the virtio-user front end of OVS's two vhost-user ports; its EAL
    gets --single-file-segments (a vhost-user front end shares at most 8 memory regions)."""

    def __init__(self, d, ovs):
        super().__init__(d, [f"west=net_virtio_user0,path={ovs.sock('west')},queues=1,queue_size=1024,"
                             "mac=02:00:00:00:00:01",
                             f"east=net_virtio_user1,path={ovs.sock('east')},queues=1,queue_size=1024,"
                             "mac=02:00:00:00:00:02"],
                         f"sluice-bench-ovsgen-{os.getpid()}")

    def run(self, name, args, timeout=90):
        return super().run(name, [*args, "--", "--single-file-segments"], timeout)


def tcp_check_streams(n_drop):
    """TCP SYNs: `deny` from west to the last DROP rule's source and port, `allow` from the
    same source to the next port, `east` a new connection from east (netfilter: no rule
    accepts it). With no rules all three pass."""
    src, port = drop_rule(max(n_drop, 1) - 1)
    common = "proto=tcp,flags=S,size=74,rate=20k,count=2000"
    return ["--stream", f"name=deny,tx=west,rx=east,{common},src={src},dport={port}",
            "--stream", f"name=allow,tx=west,rx=east,{common},src={src},dport={port % 60000 + 1}",
            "--stream", f"name=east,tx=east,rx=west,{common},src=198.51.100.7,dst=192.0.2.1,dport=80"]


def measured_run(ovs, gen, fig, key, name, args, rnd):
    """One measured sluice-gen run (after any warm-up) with the PMD's counters cleared before:
    stream (or TCP) figures and pmd_cycles_per_packet."""
    ovs.pmd_clear()
    res = gen.run(f"{name}-{rnd}", args)
    st = ovs.pmd_stats()
    pk = st["packets"]
    cpp = st["cycles"] / pk if pk else 0
    if st["failed_upcalls"]:
        log(f"{key} round {rnd}: {st['failed_upcalls']} failed upcalls (OVS's slow path): figures not representative")
    fig.add(f"{key}.pmd_cycles_per_packet", cpp, "cycles/packet", "lower")
    if "tcp" in res:
        t = add_tcp_figures(fig, key, res)
        log(f"{key} round {rnd}: {t['completed']}/{t['opened']} connections, {t['cps']:.0f}/s, "
            f"{cpp:.0f} PMD cycles/packet")
    else:
        tx, rx = add_stream_figures(fig, key, res)
        log(f"{key} round {rnd}: tx {tx} rx {rx} in {res['send_seconds']:.2f} s, "
            f"{rx / max(1e-9, res['send_seconds']) / 1e6:.2f} Mpps received, {cpp:.0f} PMD cycles/packet ({pk} packets)")
    return res


def run_ruleset(ovs, gen, fig, quick, rnd, rs, n):
    ovs.load(n)
    pre = f"ovs.{rs}"
    # udp_new: every packet a new flow, one way.
    measured_run(ovs, gen, fig, f"{pre}.udp_new", f"{rs}-udp_new",
                 timed_args(quick, *udp_streams(False, "unlimited", new_flow_count(quick), True)), rnd)
    # Established flows as the appliance's (the flow counts on norules only): the warm-up sends
    # every flow both ways, then the measured run.
    ct = 0
    for flows in ESTABLISHED_FLOWS if n == 0 else (256,):
        if flows > 100_000:
            continue
        sc = established_name(flows)
        ovs.flush()
        established_warm(gen, f"{rs}-{sc}-{rnd}", flows)
        measured_run(ovs, gen, fig, f"{pre}.{sc}", f"{rs}-{sc}", established_args(quick, flows), rnd)
        ct = ovs.ct_entries()
        fig.add(f"{pre}.{sc}.ct_entries", ct, "connections", "higher")
    # tcp_10kcps: as the appliance's.
    if rs in ("norules", "rules10k"):
        ovs.flush()
        conns = 5_000 if quick else 20_000
        measured_run(ovs, gen, fig, f"{pre}.tcp_10kcps", f"{rs}-tcp_10kcps",
                     timed_args(quick, "--tcp", f"client=west,server=east,cps=10000,conns={conns},"
                      "src=192.0.2.0/26,sport=1024-33791,request=64,response=256,timeout=1000"), rnd)
    # tcp_check: the drop rules drop, the rest passes.
    ovs.flush()
    res = gen.run(f"{rs}-tcp_check-{rnd}", ["--duration", "2", "--drain-ms", "300", "--start-delay-ms", "1200",
                                            *tcp_check_streams(n)])
    got = {s["name"]: s.get("rx_packets", 0) / max(1, s["tx_packets"]) for s in res["streams"]}
    for name, r in got.items():
        fig.add(f"{pre}.tcp_check.{name}_received_ratio", r, "ratio", "lower" if n and name != "allow" else "higher")
    want = {"deny": 0 if n else 1, "allow": 1, "east": 0 if n else 1}
    bad = [f"{k} {got.get(k, 0):.3f} (want {v})" for k, v in want.items() if abs(got.get(k, 0) - v) > 0.01]
    log(f"{pre}.tcp_check round {rnd}: received ratio " + ", ".join(f"{k} {v:.3f}" for k, v in got.items())
        + (f"; NOT the ruleset's verdicts: {', '.join(bad)}" if bad else "; as the ruleset says")
        + f"; {ct} conntrack entries after the last established run")


def run_ovs_round(fig, quick, rnd, d, rulesets=None):
    """One round of the OVS-DPDK peer: a private OVS started in `d` (the caller's temp dir),
    every ruleset's scenarios, then OVS stopped and everything it and sluice-gen created
    removed (processes, sockets, /var/run/dpdk/<prefix>, /dev/hugepages/<prefix>map_*), also
    when a run fails (the exception propagates after the clean-up, with OVS's log tail on
    stderr). rulesets: names of RULESETS (default: all, without rules100k when quick)."""
    names = rulesets or (QUICK_RULESETS if quick else tuple(RULESETS))
    ovs = Ovs(d)
    gen = VhostGen(d, ovs)
    try:
        t0 = time.time()
        ovs.start()
        log(f"ovs: private ovs-vswitchd-dpdk up in {time.time() - t0:.1f} s (PMD on CPU 1, bridge {ovs.bridge})")
        # Not measured: the first million connections of a fresh ovs-vswitchd grow its heap
        # (page faults, ~2.5x the cycles per packet of the next runs); a long-running OVS,
        # like Sluice with its preallocated flow table, does not pay that per run.
        ovs.load(0)
        gen.run(f"udp_new-prefault-{rnd}", ["--duration", "20", "--drain-ms", "300", "--start-delay-ms", "1200",
                                            *udp_streams(False, "unlimited", new_flow_count(quick), True)])
        for rs in names:
            run_ruleset(ovs, gen, fig, quick, rnd, rs, RULESETS[rs])
    except Exception:
        print(ovs.log_tail(), file=sys.stderr)
        raise
    finally:
        ovs.stop()
        remove_dpdk_files(gen.prefix)


def main():
    ap = argparse.ArgumentParser(description="OVS-DPDK conntrack firewall peer of tools/bench, standalone: "
                                             "prints the figures as JSON on stdout")
    ap.add_argument("--quick", action="store_true", help="short runs, no rules100k")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rulesets", help=f"comma-separated subset of {','.join(RULESETS)}")
    a = ap.parse_args()
    names = a.rulesets.split(",") if a.rulesets else None
    if names and set(names) - set(RULESETS):
        ap.error(f"unknown ruleset(s): {', '.join(sorted(set(names) - set(RULESETS)))}")
    why = ovs_available()
    if why:
        print(f"ovs: cannot run: {why}", file=sys.stderr)
        return 2
    fig = Figures()
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the log; stdout is the JSON
            for rnd in range(a.rounds):
                run_ovs_round(fig, a.quick, rnd, d, names)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    json.dump(fig.table(), sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
