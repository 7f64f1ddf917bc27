#!/usr/bin/python3
"""Overhead on a workload (the enforcement-node view): the CPU and memory sluice-fastpath uses
while sluice-gen offers full TCP connections through it at 1k/5k/10k/15k connections per second
(and with no traffic at all), for three appliance states:

  idle     `mode = bypass`, no ruleset: the appliance is deployed in the path but has nothing to
           enforce; it forwards every frame without conntrack or rule evaluation. This is its
           floor cost as a bump in the wire, so monitor/enforce minus idle is the price of
           filtering. (An empty ruleset in `mode = enforce` is not idle: every connection is
           still tracked, inserted into and expired from the flow table.)
  monitor  the stateful ruleset (common.ruleset, 1000 `-s ... --dport N -j DROP` rules after the
           ESTABLISHED rule, TCP from west accepted) in `mode = monitor`: verdicts computed and
           counted, everything forwarded;
  enforce  the same ruleset in `mode = enforce`.
  (norules, not in the default set: no ruleset, `mode = enforce`, i.e. tracking only.)

Each (state, load) row is one bounded run on a freshly started appliance (so the flow table,
RSS and expiry work of one row do not leak into the next: TCP TIME_WAIT keeps a flow for 120 s).
The appliance is common.appliance_conf (memif server on two links, one worker on CPU 1,
hugepages) but with `idle = sleep` instead of `idle = poll`: a polling worker uses 100 % of a
core whatever the load, so process CPU time would mean nothing; with `sleep` it backs off when
there is nothing to do. The workload is tools/bench's tcp_10kcps one (SYN, SYN|ACK, ACK,
request 64 B, response 256 B, FIN, FIN, ACK: eight segments per connection) with
conns = cps x seconds, sources 192.0.2.0/26 x sports 1024-33791 (2M distinct tuples, none reused
within a run).

Measured over the window from sluice-gen's "sending" log line to its summary (the sending phase
plus the drain, which ends as soon as every connection has completed; for the no-load row, a
fixed window with no generator attached):
  busy_pct_core          the worker's busy_cycles delta (TSC time of the loop iterations that
                         moved packets) / tsc_hz / window, in % of one core. TSC time: if the
                         worker is preempted mid-iteration, that counts as busy too;
  worker_cpu_pct         the worker thread's time on a CPU (/proc/<pid>/task/<tid>/schedstat) /
                         window: busy time plus the idle back-off (after 32 empty polls it sleeps
                         1, 2, 4 ... up to idle-sleep-max-us = 200 us, starting again at 1 us
                         after every packet), so at a few thousand packets/s it is several times
                         the busy figure;
  worker_runqueue_wait_pct
                         the time the worker was runnable but waiting for CPU 1 (schedstat) /
                         window: how much others on the machine got in its way. When it is high,
                         the CPU figures are what the appliance was granted, not what it wanted;
  gen_runqueue_wait_pct  the same for sluice-gen's lcore (CPU 0, shared with the appliance's main
                         thread): a starved generator cannot offer the full rate;
  process_cpu_pct        the whole process's utime+stime (/proc/<pid>/stat) / window: worker,
                         main thread (link polling, stats, agent socket) and any other thread;
  busy_cycles_per_connection, cpu_cycles_per_connection
                         busy cycles, and process CPU time in TSC cycles, per completed connection;
  rss_mib                VmRSS at the end of the window (includes the preallocated flow table);
  hugepages_mib          HugetlbPages of the process (/proc/<pid>/status): the 2 MiB pages it has
                         mapped (mbuf pool, rings, memzones). Cross-checked in the log against the
                         drop of the system's free_hugepages across the appliance's start (noisy
                         when others use hugepages concurrently);
  flow_table_mib         conntrack.memory_bytes from the stats (preallocated, part of rss_mib);
  flows                  conntrack.flows at the end of the window (entries in use);
  completed_cps, completed_ratio, latency_median_us, latency_p99_us
                         sluice-gen's tcp section: completed connections per second of sending,
                         completed / opened, SYN -> last ACK latency.
Figures are named overhead.<state>.<load>cps.<figure> (load 0: no traffic).

Every run is bounded (conns and --duration for sluice-gen, timeouts on every wait); processes,
the appliance's temporary directory and the DPDK runtime files of both prefixes are removed even
on failure.

usage: /usr/bin/python3 tools/benchlib/overhead.py [--quick] [--seconds S] [--states idle,...]
                                                   [--loads 0,1000,...] [--json FILE]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
for _p in (os.path.join(_ROOT, "tools"), os.path.join(_ROOT, "tests", "eal")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
from benchlib.common import (APPLIANCE_PREFIX, BUILD, Figures, appliance_conf, free_hugepages,  # noqa: E402
                             log, memif_gen, remove_dpdk_files, ruleset)
from fastpath_harness import Fastpath  # noqa: E402

STATES = ("idle", "monitor", "enforce")
EXTRA_STATES = ("norules",)
LOADS = (0, 1000, 5000, 10000, 15000)
RULES = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (figure, unit, better, the table's column title or None, format) in table order.
FIGURES = (
    ("completed_cps", "connections/s", "higher", "completed conn/s", "{:.0f}"),
    ("completed_ratio", "ratio", "higher", "completed", "{:.3f}"),
    ("latency_median_us", "us", "lower", "conn latency median us", "{:.0f}"),
    ("latency_p99_us", "us", "lower", "p99 us", "{:.0f}"),
    ("busy_pct_core", "% core", "lower", "worker busy % core", "{:.1f}"),
    ("worker_cpu_pct", "% core", "lower", "worker thread CPU %", "{:.1f}"),
    ("worker_runqueue_wait_pct", "% window", "lower", "worker run-queue wait %", "{:.1f}"),
    ("gen_runqueue_wait_pct", "% window", "lower", "generator run-queue wait %", "{:.1f}"),
    ("process_cpu_pct", "% core", "lower", "process CPU % core", "{:.1f}"),
    ("busy_cycles_per_connection", "cycles/connection", "lower", "busy cycles/conn", "{:.0f}"),
    ("cpu_cycles_per_connection", "cycles/connection", "lower", "CPU cycles/conn", "{:.0f}"),
    ("rss_mib", "MiB", "lower", "RSS MiB", "{:.0f}"),
    ("hugepages_mib", "MiB", "lower", "hugepages MiB", "{:.0f}"),
    ("flow_table_mib", "MiB", "lower", None, "{:.0f}"),
    ("flows", "entries", "lower", "flows at end", "{:.0f}"),
)
UNITS = {f[0]: f[1:3] for f in FIGURES}
COLUMNS = [(f[0], f[3], f[4]) for f in FIGURES if f[3]]


# --- /proc ---------------------------------------------------------------------------------

def cpu_seconds(stat_path):
    """utime + stime of a process or thread, in seconds, from its /proc/.../stat."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def schedstat(path):
    """(ns on a CPU, ns waiting on a run queue) of a thread, from its /proc/.../schedstat."""
    with open(path) as f:
        run, wait, _ = f.read().split()
    return int(run) / 1e9, int(wait) / 1e9


def status_kib(pid):
    """VmRSS, VmHWM, HugetlbPages ... of /proc/<pid>/status, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return out


def worker_tid(pid):
    """The thread of the appliance's worker lcore (DPDK 22.11 names it rte-worker-<lcore>;
    later releases lcore-worker-<n>), or None."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().startswith(("rte-worker", "lcore-worker")):
                    return tid
        except OSError:
            pass
    return None


class Sample:
    """One reading of the appliance: wall clock, CPU times, then its stats (SIGUSR1, answered
    within milliseconds; the wait for the file is what takes up to 50 ms)."""

    def __init__(self, fp, tid):
        pid = fp.proc.pid
        self.t = time.monotonic()
        self.cpu = cpu_seconds(f"/proc/{pid}/stat")
        self.worker_cpu, self.worker_wait = schedstat(f"/proc/{pid}/task/{tid}/schedstat") if tid else (0, 0)
        self.stats = fp.counters()


# --- one run -------------------------------------------------------------------------------

def state_conf(d, state, rules):
    """appliance_conf with `idle = sleep` (so CPU time is meaningful) and the state's policy."""
    conf = [line for line in appliance_conf(d) if not line.startswith("idle =")]
    conf += ["idle = sleep"]
    if state == "idle":
        return conf + ["mode = bypass"]
    if state == "norules":
        return conf + ["mode = enforce"]
    return conf + [f"rules = {rules}", f"mode = {state}"]


def tcp_args(cps, secs):
    """tools/bench's TCP workload at `cps` for `secs` seconds: cps*secs connections; sending
    stops when all have completed (or after secs + 3 s, the bound if the appliance stalls)."""
    return ["--duration", str(secs + 3), "--drain-ms", "300", "--start-delay-ms", "1200",
            "--tcp", f"client=west,server=east,cps={cps},conns={cps * secs},src=192.0.2.0/26,"
                     "sport=1024-33791,request=64,response=256,timeout=1000"]


def run_gen_window(gen, name, args, sample, timeout):
    """sluice-gen as common.Gen.run starts it, but at log level info and with `--json -`, so that
    its stderr marks the traffic window: the "sending:" log line its start, the summary
    ("sluice-gen: sent for ...", written after the drain, before the ports are closed and the
    EAL cleaned up, which can take a second) its end. sample() is called at both marks.
    Returns (its JSON result, first sample, second sample, % of the window its lcore thread
    waited for its CPU). The process is killed if it outlives `timeout` seconds."""
    cmd = gen.command(args, "-", log_level="info")
    out = os.path.join(gen.d, name + ".json")
    lines, started, ended = [], threading.Event(), threading.Event()

    def read(stream):
        for line in stream:
            lines.append(line)
            if "sending:" in line:
                started.set()
            elif line.startswith("sluice-gen: sent for"):
                ended.set()

    def wait(event, what, deadline):
        while not event.wait(0.02):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sluice-gen: no {what} (exit {proc.poll()}):\n" + "".join(lines)[-4000:])

    with open(out, "w") as so:
        proc = subprocess.Popen(cmd, stdout=so, stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + timeout
            wait(started, "start of sending", deadline)
            first, t0, w0 = sample(), time.monotonic(), schedstat(f"/proc/{proc.pid}/schedstat")[1]
            wait(ended, "end of the run", deadline)
            second, t1, w1 = sample(), time.monotonic(), schedstat(f"/proc/{proc.pid}/schedstat")[1]
            rc = proc.wait(max(1, deadline - time.monotonic()))
            reader.join(5)
            if rc != 0:
                raise RuntimeError(f"sluice-gen exit {rc}\n" + "".join(lines)[-4000:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with open(out) as f:
        return json.load(f), first, second, 100 * (w1 - w0) / (t1 - t0)


def measure(fig, state, load, secs, d, gen, rules):
    """One appliance start, one window (traffic at `load` connections/s, or none), figures
    added as overhead.<state>.<load>cps.*; everything the run created removed on the way out."""
    key = f"overhead.{state}.{load}cps"
    fp = Fastpath(os.path.join(BUILD, "fastpath", "sluice-fastpath"), state_conf(d, state, rules))
    free_before = free_hugepages()
    try:
        fp.start(timeout=60)
        pid = fp.proc.pid
        tid = worker_tid(pid)
        time.sleep(1.0)  # past start-up work (page faults, first link polls)
        free_running = free_hugepages()
        if load == 0:
            s0 = Sample(fp, tid)
            time.sleep(secs)
            s1 = Sample(fp, tid)
            res = None
        else:
            res, s0, s1, gen_wait = run_gen_window(gen, f"{state}-{load}", tcp_args(load, secs), lambda: Sample(fp, tid),
                                         timeout=secs + 60)
        st = status_kib(pid)
        rc, _ = fp.stop()
        if rc != 0:
            raise RuntimeError(f"sluice-fastpath exit code {rc}")
    except Exception:
        print(fp.read_log()[-4000:], file=sys.stderr)
        raise
    finally:
        fp.kill()
        remove_dpdk_files(APPLIANCE_PREFIX)
        remove_dpdk_files(gen.prefix)
        shutil.rmtree(fp.dir, ignore_errors=True)

    mode = s1.stats["policy"]["mode"]
    want = {"idle": "bypass", "norules": "enforce"}.get(state, state)
    if mode != want:
        raise RuntimeError(f"{key}: the appliance reports mode {mode}, expected {want}")
    hz = s1.stats["tsc_hz"]
    window = s1.t - s0.t
    busy = sum(w["busy_cycles"] for w in s1.stats["workers"]) - sum(w["busy_cycles"] for w in s0.stats["workers"])
    cpu = s1.cpu - s0.cpu
    ct = s1.stats["conntrack"]
    v = {"busy_pct_core": 100 * busy / hz / window,
         "process_cpu_pct": 100 * cpu / window,
         "rss_mib": st.get("VmRSS", 0) / 1024,
         "hugepages_mib": st.get("HugetlbPages", 0) / 1024,
         "flow_table_mib": ct["memory_bytes"] / 2**20,
         "flows": ct["flows"]}
    if tid:
        v["worker_cpu_pct"] = 100 * (s1.worker_cpu - s0.worker_cpu) / window
        v["worker_runqueue_wait_pct"] = 100 * (s1.worker_wait - s0.worker_wait) / window
    note = ""
    if res:
        t = res["tcp"]
        done = t["completed"]
        v["completed_cps"] = t["cps"]
        v["gen_runqueue_wait_pct"] = gen_wait
        v["completed_ratio"] = done / max(1, t["opened"])
        cl = t.get("complete_latency", {})
        if cl.get("samples"):
            v["latency_median_us"] = cl["median_us"]
            v["latency_p99_us"] = cl["p99_us"]
        if done:
            v["busy_cycles_per_connection"] = busy / done
            v["cpu_cycles_per_connection"] = cpu * hz / done
        note = (f", {done}/{t['opened']} connections ({t['lost']} lost, {t['unexpected']} unexpected, "
                f"{t['postponed']} postponed), {t['cps']:.0f}/s in {res['send_seconds']:.2f} s sending + "
                f"{res['drain_seconds']:.2f} s drain, generator waited for CPU 0 {gen_wait:.1f} %")
        for what in ("drops", "would_drop"):  # the workload is all accepted: both should stay empty
            nz = {k: c for k, c in s1.stats[what].items() if c}
            if nz:
                note += f", appliance {what} {nz}"
    for name, val in v.items():
        unit, better = UNITS[name]
        fig.add(f"{key}.{name}", val, unit, better)
    sleeps = sum(w["sleeps"] for w in s1.stats["workers"]) - sum(w["sleeps"] for w in s0.stats["workers"])
    log(f"{key}: window {window:.2f} s, busy {v['busy_pct_core']:.1f} %, worker thread CPU "
        f"{v.get('worker_cpu_pct', -1):.1f} % ({sleeps / window:.0f} sleeps/s, waited for CPU 1 "
        f"{v.get('worker_runqueue_wait_pct', -1):.1f} % of the window), process CPU {v['process_cpu_pct']:.1f} %, "
        f"RSS {v['rss_mib']:.0f} MiB, hugepages {v['hugepages_mib']:.0f} MiB "
        f"(free_hugepages {free_before} -> {free_running}: {(free_before - free_running) * 2} MiB), "
        f"flows {ct['flows']}{note}")


def run_overhead(fig, quick, d, states=STATES, loads=LOADS, secs=None):
    """Every (state, load) row into fig (a common.Figures); d: a scratch directory (memif
    sockets, ruleset, sluice-gen's JSON). secs: window length (default 10, quick 4)."""
    secs = secs or (4 if quick else 10)
    rules = os.path.join(d, "overhead.rules")
    ruleset(rules, RULES)
    gen = memif_gen(d)
    for state in states:
        for load in loads:
            measure(fig, state, load, secs, d, gen, rules)


# --- output --------------------------------------------------------------------------------

def format_table(table):
    """A markdown table of the overhead.* figures of a Figures.table() (medians): one row per
    state x offered load, in STATES then LOADS order; '-' where a figure does not apply."""
    rows = {}
    for name in table:
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "overhead" and parts[2].endswith("cps"):
            rows.setdefault((parts[1], int(parts[2][:-3])), None)
    order = list(STATES) + list(EXTRA_STATES)
    keys = sorted(rows, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[0], k[1]))
    head = ["state", "offered conn/s"] + [c[1] for c in COLUMNS]
    out = ["Appliance: sluice-fastpath, 1 worker (CPU 1), `idle = sleep` (the worker sleeps when "
           "there is nothing to do, so CPU time tracks the load); idle = `mode = bypass`, no rules; "
           f"monitor / enforce = {RULES}-rule stateful ruleset. Per row: a fresh appliance, one run.",
           "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for state, load in keys:
        cells = [state, f"{load}" if load else "no load"]
        for fname, _, fmt in COLUMNS:
            r = table.get(f"overhead.{state}.{load}cps.{fname}")
            cells.append(fmt.format(r["value"]) if r else "-")
        out.append("| " + " | ".join(cells) + " |")
    ft = next((r["value"] for n, r in table.items() if n.startswith("overhead.") and n.endswith(".flow_table_mib")), None)
    if ft is not None:
        out += ["", f"RSS includes the preallocated flow table ({ft:.0f} MiB, conntrack-max 1M); hugepages are "
                    "the 2 MiB pages the process maps (mbuf pool, rings); latency = SYN to last ACK. "
                    "Worker busy = TSC time of loop iterations that moved packets; worker thread CPU adds "
                    "the idle back-off (empty polls, short sleeps). Run-queue wait = time the thread was "
                    "runnable but another process had its CPU: where it is high, the CPU and latency "
                    "figures reflect contention, not the appliance."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="Sluice overhead on a TCP workload: CPU and memory per state and load")
    ap.add_argument("--quick", action="store_true", help="4 s windows instead of 10 s")
    ap.add_argument("--seconds", type=int, help="window length in seconds (overrides --quick)")
    ap.add_argument("--states", default=",".join(STATES), help=f"of {','.join(STATES + EXTRA_STATES)}")
    ap.add_argument("--loads", default=",".join(map(str, LOADS)), help="connections/s, 0: no traffic")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    states = a.states.split(",")
    if set(states) - set(STATES + EXTRA_STATES):
        ap.error(f"unknown state(s): {a.states}")
    loads = [int(x) for x in a.loads.split(",")]
    if os.geteuid() != 0:
        ap.error("needs root (DPDK, hugepages)")
    if free_hugepages() < 256:
        ap.error("needs 256 free 2 MiB hugepages")
    fig = Figures()
    d = tempfile.mkdtemp(prefix="sluice-overhead-")
    try:
        run_overhead(fig, a.quick, d, states, loads, a.seconds)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    table = fig.table()
    print(format_table(table))
    text = json.dumps(table, indent=1, sort_keys=True)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
