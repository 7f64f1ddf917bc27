"""What tools/bench's scenario modules share: the figure table, sluice-gen runs, rulesets,
DPDK runtime-file cleanup. Runs under Debian's /usr/bin/python3."""
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
sys.path.insert(0, os.path.join(ROOT, "tests", "eal"))
# Re-exported for the scenario modules: the test harness's helpers for DPDK processes.
from fastpath_harness import free_hugepages, remove_dpdk_files  # noqa: E402,F401


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Figures:
    """name -> {value (median), unit, better, runs, min, max}; the runs of one figure are added
    one by one (one per repetition)."""

    def __init__(self):
        self.runs = {}
        self.meta = {}

    def add(self, name, value, unit, better):
        self.runs.setdefault(name, []).append(float(value))
        self.meta[name] = (unit, better)

    def table(self):
        out = {}
        for name, vals in self.runs.items():
            unit, better = self.meta[name]
            out[name] = {"value": statistics.median(vals), "unit": unit, "better": better,
                         "min": min(vals), "max": max(vals), "runs": vals}
        return out


def ruleset(path, n_drop):
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
             "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    lines += ["-A FORWARD -s 10.%d.%d.%d/32 -p tcp -m tcp --dport %d -j DROP"
              % (200 + (i >> 16 & 15), i >> 8 & 255, i & 255, 1 + i % 60000) for i in range(n_drop)]
    # UDP accepted; TCP opened from west accepted (the connections/s scenario).
    lines += ["-A FORWARD -p udp -j ACCEPT", "-A FORWARD -i west -p tcp -j ACCEPT", "COMMIT", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


class Gen:
    """sluice-gen with a fixed pair of ports; one bounded run per call."""

    def __init__(self, d, ports, prefix, cpu=0):
        self.d, self.ports, self.prefix, self.cpu = d, ports, prefix, cpu

    def command(self, args, json_out, log_level="warn"):
        cmd = [os.path.join(BUILD, "tools", "gen", "sluice-gen")]
        for p in self.ports:
            cmd += ["--port", p]
        return cmd + ["--cpu", str(self.cpu), "--file-prefix", self.prefix, "--hugepages", "yes", "--burst", BURST,
                      "--mbufs", "16383", "--link-wait", "10", "--log-level", log_level, "--json", json_out, *args]

    def run(self, name, args, timeout=90):
        out = os.path.join(self.d, name + ".json")
        p = subprocess.run(self.command(args, out), capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"sluice-gen exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        with open(out) as f:
            return json.load(f)


# RX/TX burst of every DPDK process on the links (sluice-gen, sluice-fastpath, testpmd; OVS
# has its fixed 32): over memif, 128 forwards 10-25 % more than 32 here, both sides polling
# each other's short bursts otherwise.
BURST = "128"

# Rulesets (ruleset(path, N)) by name; the appliance and OVS-DPDK run them all, netfilter the
# first, 1k and 10k.
RULESETS = {"norules": 0, "rules1": 1, "rules1k": 1000, "rules10k": 10000, "rules100k": 100000}
# Flow counts of the established-flow scenarios (1M: the appliance, and not with --quick).
ESTABLISHED_FLOWS = (1, 256, 1000, 10_000, 100_000, 1_000_000)


def established_name(flows):
    """udp_established (256 flows: the scenario every peer runs) or udp_established_<N>flows."""
    return "udp_established" if flows == 256 else f"udp_established_{flows}flows"


def run_seconds(quick):
    """Length of a measured run: long enough for per-second figures."""
    return 6 if quick else 20


def new_flow_count(quick):
    """Packets (each a new flow) of the udp_new scenario: within the default conntrack-max."""
    return 200_000 if quick else 1_000_000


def established_warm(gen, name, flows=256, size=64):
    """Every flow sent both ways at a moderate rate, so that the measured run finds them all in
    the flow table (ESTABLISHED)."""
    gen.run(f"{name}-warm", ["--duration", "5" if flows > 100_000 else "2", "--drain-ms", "300",
                             "--start-delay-ms", "1200",
                             *udp_streams(True, "1m" if flows > 10_000 else "50k", max(4096, 2 * flows),
                                          flows=flows, size=size)],
            timeout=120)


def timed_args(quick, *traffic):
    """sluice-gen arguments of a measured run: run_seconds of `traffic` (--stream/--tcp ...)."""
    return ["--duration", str(run_seconds(quick)), "--drain-ms", "500", "--start-delay-ms", "1200", *traffic]


def established_args(quick, flows=256, size=64):
    """The measured "established UDP both ways" run: both directions as fast as sluice-gen goes."""
    return timed_args(quick, *udp_streams(True, "unlimited", 0, flows=flows, size=size))


def flow_ranges(flows):
    """(src range, dport range) of `flows` established flows west->east: 192.0.2.0/28 x 16
    ports for 256 (the scenario every peer runs), else sources from 10.128.0.0 x up to 16 ports."""
    if flows == 256:
        return "192.0.2.0/28", "1000-1015"
    ports = min(16, flows)
    n_src = max(1, flows // ports)
    first = ipaddress.IPv4Address("10.128.0.0")
    return f"{first}-{first + n_src - 1}", f"1000-{999 + ports}"


def udp_streams(both_ways, rate, count, new_flows=False, flows=256, size=64):
    """UDP frames of `size` bytes west->east (and east->west). new_flows: `count` distinct flows
    (sources from 10.0.0.0/12 x 16 ports, never repeating within a run), else `flows` flows
    (flow_ranges) sent round-robin."""
    if new_flows:
        w2e = f"name=w2e,tx=west,rx=east,size={size},rate={rate},count={count},src=10.0.0.0/12,sport=1000-1015,dport=53"
        return ["--stream", w2e]
    src, dport = flow_ranges(flows)
    s = ["--stream", f"name=w2e,tx=west,rx=east,size={size},rate={rate},count={count},src={src},dport={dport}"]
    if both_ways:
        # The reply direction of the same flows: conntrack sees both ways, ESTABLISHED.
        s += ["--stream", f"name=e2w,tx=east,rx=west,size={size},rate={rate},count={count},src=198.51.100.1,"
                          f"sport={dport},dst={src},dport=1024"]
    return s


def add_stream_figures(fig, key, res, cores=1):
    secs = res["send_seconds"] or 1e-9
    tx = sum(s["tx_packets"] for s in res["streams"])
    rx = sum(s.get("rx_packets", 0) for s in res["streams"])
    fig.add(f"{key}.offered_mpps_per_core", tx / secs / 1e6 / cores, "Mpps", "higher")
    fig.add(f"{key}.received_mpps_per_core", rx / secs / 1e6 / cores, "Mpps", "higher")
    fig.add(f"{key}.loss_ratio", (tx - rx) / tx if tx else 0, "ratio", "lower")
    lat = [s["latency"] for s in res["streams"] if s.get("latency", {}).get("samples")]
    if lat:
        fig.add(f"{key}.latency_median_us", statistics.median(x["median_us"] for x in lat), "us", "lower")
        fig.add(f"{key}.latency_p99_us", max(x["p99_us"] for x in lat), "us", "lower")
    return tx, rx


def add_tcp_figures(fig, key, res):
    """sluice-gen's TCP workload result as figures (completed connections/s and share,
    SYN-to-last-ACK latency); returns its tcp section."""
    t = res["tcp"]
    fig.add(f"{key}.completed_cps", t["cps"], "connections/s", "higher")
    fig.add(f"{key}.completed_ratio", t["completed"] / max(1, t["opened"]), "ratio", "higher")
    cl = t.get("complete_latency", {})
    if cl.get("samples"):
        fig.add(f"{key}.latency_median_us", cl["median_us"], "us", "lower")
        fig.add(f"{key}.latency_p99_us", cl["p99_us"], "us", "lower")
    return t


def busy_delta(before, after):
    """(busy cycles, idle cycles, packets received) of the appliance between two readings of
    its counters."""
    def delta(f):
        return sum(w[f] for w in after["workers"]) - sum(w[f] for w in before["workers"])
    pk = sum(p["rx_packets"] for p in after["ports"]) - sum(p["rx_packets"] for p in before["ports"])
    return delta("busy_cycles"), delta("idle_cycles"), pk


def percentile(vals, q):
    v = sorted(vals)
    k = (len(v) - 1) * q
    lo = int(k)
    return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (k - lo)


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


APPLIANCE_PREFIX = f"sluice-bench-fp-{os.getpid()}"


def appliance_conf(d, *extra):
    """sluice-fastpath as the memif server of two links west/east (sockets in d), one worker on
    CPU 1 polling, hugepages, its agent socket in d (not the shared default); extra config lines
    appended."""
    return [f"port = west=net_memif0,role=server,id=0,socket={d}/west.sock",
            f"port = east=net_memif1,role=server,id=0,socket={d}/east.sock",
            "pair = west:east", "workers = 1", "cpus = 0,1", "idle = poll", "hugepages = yes", f"burst = {BURST}",
            "mbufs = 16383", f"file-prefix = {APPLIANCE_PREFIX}", "log-level = info",
            f"agent-socket = {d}/agent.sock", *extra]


def memif_gen(d):
    """sluice-gen (CPU 0) as the memif client of appliance_conf's two links."""
    return Gen(d, [f"west=net_memif0,role=client,id=0,socket={d}/west.sock",
                   f"east=net_memif1,role=client,id=0,socket={d}/east.sock"],
               f"sluice-bench-gen-{os.getpid()}")
