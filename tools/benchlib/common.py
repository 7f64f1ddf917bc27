"""What tools/bench's scenario modules share: the figure table, sluice-gen runs, rulesets,
DPDK runtime-file cleanup. Runs under Debian's /usr/bin/python3."""
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

    def run(self, name, args, timeout=90):
        out = os.path.join(self.d, name + ".json")
        cmd = [os.path.join(BUILD, "tools", "gen", "sluice-gen")]
        for p in self.ports:
            cmd += ["--port", p]
        cmd += ["--cpu", str(self.cpu), "--file-prefix", self.prefix, "--hugepages", "yes",
                "--mbufs", "16383", "--link-wait", "10", "--log-level", "warn", "--json", out, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"sluice-gen exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        with open(out) as f:
            return json.load(f)


def udp_streams(both_ways, rate, count, new_flows):
    """UDP 64 B west->east (and east->west). new_flows: `count` distinct flows (sources from
    10.0.0.0/12 x 16 ports, never repeating within a run), else 256 flows."""
    if new_flows:
        w2e = f"name=w2e,tx=west,rx=east,size=64,rate={rate},count={count},src=10.0.0.0/12,sport=1000-1015,dport=53"
        return ["--stream", w2e]
    s = ["--stream", f"name=w2e,tx=west,rx=east,size=64,rate={rate},count={count},src=192.0.2.0/28,dport=1000-1015"]
    if both_ways:
        # The reply direction of the same 256 flows: conntrack sees both ways, ESTABLISHED.
        s += ["--stream", f"name=e2w,tx=east,rx=west,size=64,rate={rate},count={count},src=198.51.100.1,"
                          "sport=1000-1015,dst=192.0.2.0/28,dport=1024"]
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


def busy_delta(before, after):
    cyc = sum(w["busy_cycles"] for w in after["workers"]) - sum(w["busy_cycles"] for w in before["workers"])
    pk = sum(p["rx_packets"] for p in after["ports"]) - sum(p["rx_packets"] for p in before["ports"])
    return cyc, pk


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
    CPU 1 polling, hugepages; extra config lines appended."""
    return [f"port = west=net_memif0,role=server,id=0,socket={d}/west.sock",
            f"port = east=net_memif1,role=server,id=0,socket={d}/east.sock",
            "pair = west:east", "workers = 1", "cpus = 0,1", "idle = poll", "hugepages = yes",
            "mbufs = 16383", f"file-prefix = {APPLIANCE_PREFIX}", "log-level = info", *extra]


def memif_gen(d):
    """sluice-gen (CPU 0) as the memif client of appliance_conf's two links."""
    return Gen(d, [f"west=net_memif0,role=client,id=0,socket={d}/west.sock",
                   f"east=net_memif1,role=client,id=0,socket={d}/east.sock"],
               f"sluice-bench-gen-{os.getpid()}")
