#!/usr/bin/python3
"""Differential test: Sluice's verdict for every packet must equal Linux netfilter's.

For each scenario (tests/diff/scenarios/*.py; the format is described in dsl.py) the harness
builds the two-host lab twice and plays the same packet table through both:

  kernel  iptables-restore / ip6tables-restore / ipset restore of the scenario's files in the
          firewall namespace, whose two ports are bridged with br_netfilter (see lab.py), with
          nf_conntrack_tcp_loose=1 and tcp_be_liberal=0. Played twice: the reference must
          give the same answer both times.
  sluice  sluice-fastpath in the firewall namespace on net_af_packet ports with
          `rules = FILE`, `rules6 = FILE`, `sets = FILE`, `mode = enforce`.

Each packet is injected raw (AF_PACKET, L2) on the sender's host interface; the hosts' own IP
stacks are silenced, so nothing but the scenario's frames and the firewall's replies cross.
After every step the harness drains both hosts' taps. A frame on the far host that is
byte-identical from L3 on (VLAN tags compared too) to a sent packet is that packet's delivery;
a TCP RST or ICMP/ICMPv6 destination-unreachable on the sender's side that answers a sent
packet is its rejection. The fate of a step is "pass", "drop" or "reject:NAME" (NAME as in
iptables' --reject-with), "pass(x2)" if it arrived twice. A step's delivery may come later
than its own step (the kernel holds IPv4 fragments until the datagram is complete), so frames
are matched against all steps sent so far, latest first.

Verdicts: the kernel must match the scenario's own expectation (else the scenario is wrong),
both kernel runs must agree, and Sluice's fate vector must equal the kernel's. A mismatch
prints the scenario, the step, both fates, the packet as a scapy command and as hex to replay.

usage: netfilter_diff.py SLUICE_FASTPATH [--kernel-only] [--only NAME,...] [--list] [-v]
exit:  0 all equal; 1 a mismatch, a broken scenario, or Sluice could not start; 77 skipped
       (not root, no network namespaces, a tool or br_netfilter missing)."""
import argparse
import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SKIP = 77


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(SKIP)


try:
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import (ICMP, IP, TCP, UDP, Ether, ICMPv6DestUnreach, IPerror,
                           IPerror6, IPv6, TCPerror, UDPerror, conf)
    conf.verb = 0
except ImportError as e:  # pragma: no cover
    skip("scapy is not importable by %s (%s); install python3-scapy" % (sys.executable, e))

import lab as labmod  # noqa: E402

ICMP4_CODES = {0: "net-unreachable", 1: "host-unreachable", 2: "proto-unreachable",
               3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited",
               13: "admin-prohibited"}
ICMP6_CODES = {0: "no-route", 1: "adm-prohibited", 3: "addr-unreachable", 4: "port-unreachable",
               5: "policy-fail", 6: "reject-route"}
FATE_NAMES = (["pass", "drop", "reject:tcp-reset"] +
              ["reject:icmp-" + n for n in ICMP4_CODES.values()] +
              ["reject:icmp6-" + n for n in ICMP6_CODES.values()])

TOOLS = ["ip", "bash", "iptables-restore", "ip6tables-restore", "ipset", "sysctl", "conntrack"]


# --- scenarios -------------------------------------------------------------------------------
def load_scenarios():
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "scenarios", "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location("diff_scenarios_" + name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out += mod.SCENARIOS
    names = [s.name for s in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit("duplicate scenario names: %s" % ", ".join(sorted(dup)))
    for s in out:
        for i, st in enumerate(s.steps):
            if st.expect not in FATE_NAMES:
                raise SystemExit("%s step %d: unknown expectation %r" % (s.name, i + 1, st.expect))
    return out


# --- -i/-o for a bridge ----------------------------------------------------------------------
def tokens_with_quotes(line):
    """Split an iptables-save line on blanks, keeping "quoted strings" as one token, verbatim."""
    toks, cur, q = [], "", False
    for ch in line:
        if ch == '"':
            q = not q
            cur += ch
        elif ch.isspace() and not q:
            if cur:
                toks.append(cur)
                cur = ""
        else:
            cur += ch
    if cur:
        toks.append(cur)
    return toks


def physdev_rewrite(rules):
    """Kernel-side only: `[!] -i X` / `[!] -o X` -> one `-m physdev [!] --physdev-in X
    [!] --physdev-out X` right after `-A CHAIN` (order of matches is irrelevant)."""
    out = []
    for line in rules.splitlines():
        if not line.startswith("-A ") and not line.startswith("-I "):
            out.append(line)
            continue
        toks = tokens_with_quotes(line)
        keep, phys, i = toks[:2], [], 2
        while i < len(toks):
            neg = toks[i] == "!" and i + 1 < len(toks) and toks[i + 1] in (
                "-i", "-o", "--in-interface", "--out-interface")
            j = i + 1 if neg else i
            if toks[j] in ("-i", "--in-interface", "-o", "--out-interface") and j + 1 < len(toks):
                opt = "--physdev-in" if toks[j] in ("-i", "--in-interface") else "--physdev-out"
                phys += (["!"] if neg else []) + [opt, toks[j + 1]]
                i = j + 2
                continue
            keep.append(toks[i])
            i += 1
        if phys:
            keep = keep[:2] + ["-m", "physdev"] + phys + keep[2:]
        out.append(" ".join(keep))
    return "\n".join(out) + "\n"


# --- frames and fates ------------------------------------------------------------------------
def build_frame(step, macs):
    """Bytes on the wire for a step: Ether from the sender's MAC to the receiver's unless the
    packet brings its own Ether (missing fields filled the same way)."""
    other = "B" if step.sender == "A" else "A"
    p = step.pkt.copy()
    if isinstance(p, Ether):
        if "src" not in p.fields:
            p.src = macs[step.sender]
        if "dst" not in p.fields:
            p.dst = macs[other]
    else:
        p = Ether(src=macs[step.sender], dst=macs[other]) / p
    return bytes(p)


def delivery_key(frame):
    """VLAN ids + L3 bytes (trimmed to the IP length: no Ethernet padding)."""
    off, vlans = 12, []
    while off + 4 <= len(frame) and frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
        vlans.append(int.from_bytes(frame[off + 2:off + 4], "big") & 0xfff)
        off += 4
    et, l3 = frame[off:off + 2], frame[off + 2:]
    if et == b"\x08\x00" and len(l3) >= 20:
        l3 = l3[:int.from_bytes(l3[2:4], "big")]
    elif et == b"\x86\xdd" and len(l3) >= 40:
        l3 = l3[:40 + int.from_bytes(l3[4:6], "big")]
    return (tuple(vlans), et, bytes(l3))


def l3_of(pkt):
    if IP in pkt:
        return pkt[IP]
    if IPv6 in pkt:
        return pkt[IPv6]
    return None


def reject_name(reply, sent):
    """If frame `reply` (received by the host that sent `sent`) is a firewall's answer to
    `sent`, the --reject-with name; else None."""
    r3, s3 = l3_of(reply), l3_of(sent)
    if r3 is None or s3 is None:
        return None
    if ICMP in reply and reply[ICMP].type == 3 and IPerror in reply and isinstance(s3, IP):
        inner, code = reply[IPerror], reply[ICMP].code
        name = "icmp-" + ICMP4_CODES.get(code, "3/%d" % code)
    elif ICMPv6DestUnreach in reply and IPerror6 in reply and isinstance(s3, IPv6):
        inner, code = reply[IPerror6], reply[ICMPv6DestUnreach].code
        name = "icmp6-" + ICMP6_CODES.get(code, "1/%d" % code)
    elif TCP in reply and TCP in sent and reply[TCP].flags.R and not sent[TCP].flags.R:
        if (r3.src, r3.dst, reply[TCP].sport, reply[TCP].dport) == (
                s3.dst, s3.src, sent[TCP].dport, sent[TCP].sport):
            return "tcp-reset"
        return None
    else:
        return None
    if (inner.src, inner.dst) != (s3.src, s3.dst):
        return None
    for l4, l4e in ((TCP, TCPerror), (UDP, UDPerror)):
        if l4 in sent:
            if l4e not in reply or (reply[l4e].sport, reply[l4e].dport) != (
                    sent[l4].sport, sent[l4].dport):
                return None
    return name


def fates(steps, frames, sent_frames):
    """steps: Step list; frames: [(after_step_index, host, bytes)] in arrival order;
    sent_frames: bytes per step. Returns (fate strings, stray frames)."""
    keys = [delivery_key(f) for f in sent_frames]
    parsed = [Ether(f) for f in sent_frames]
    delivered = [0] * len(steps)
    rejects = [[] for _ in steps]
    strays = []
    for k, host, frame in frames:
        key = delivery_key(frame)
        cand = [i for i in range(k + 1) if steps[i].sender != host and keys[i] == key]
        if cand:
            fresh = [i for i in cand if not delivered[i]]
            delivered[(fresh or cand)[-1]] += 1
            continue
        reply = Ether(frame)
        hits = [(i, n) for i in range(k + 1) if steps[i].sender == host
                for n in [reject_name(reply, parsed[i])] if n]
        if not hits:
            strays.append((k, host, frame))
            continue
        fresh = [h for h in hits if not rejects[h[0]]]
        i, name = (fresh or hits)[-1]
        rejects[i].append(name)
    out = []
    for i in range(len(steps)):
        parts = []
        if delivered[i]:
            parts.append("pass" if delivered[i] == 1 else "pass(x%d)" % delivered[i])
        parts += ["reject:" + r for r in rejects[i]]
        out.append("+".join(parts) or "drop")
    return out, strays


def interesting_stray(frame):
    """Strays worth showing: IPv4/IPv6 that is not the hosts' own IPv6 link-local chatter."""
    p = Ether(frame)
    if IPv6 in p and (p[IPv6].src.startswith("fe80") or p[IPv6].dst.startswith("ff")
                      or p[IPv6].src == "::"):
        return False
    if IP in p and int(p[IP].dst.split(".")[0]) >= 224:  # IGMP and other multicast
        return False
    return IP in p or IPv6 in p


# --- one side, one scenario ------------------------------------------------------------------
class SluiceStartError(Exception):
    pass


def play(lab, sc, frames_out):
    """Inject the steps, drain the taps; returns arrivals [(after_step, host, frame)]."""
    taps = lab.taps
    for t in taps.values():
        t.drain()
    arrivals = []
    for i, step in enumerate(sc.steps):
        taps[step.sender].send(frames_out[i])
        time.sleep(step.wait)
        for h in "AB":
            arrivals += [(i, h, f) for f in taps[h].drain()]
    deadline = time.time() + 0.3
    while time.time() < deadline:  # bounded settle: late deliveries and replies
        time.sleep(0.05)
        for h in "AB":
            arrivals += [(len(sc.steps) - 1, h, f) for f in taps[h].drain()]
    return arrivals


def run_side(kind, sc, args, prefix, workdir):
    """Returns dict(fates, strays, frames, extra) for one side."""
    lab = labmod.Lab(prefix, kind, sc.ports)
    fp = None
    try:
        lab.up()
        macs = {h: lab.taps[h].mac for h in "AB"}
        frames_out = [build_frame(st, macs) for st in sc.steps]
        rules4, rules6, sets = sc.expand(sc.rules), sc.expand(sc.rules6), sc.sets
        extra = ""
        if kind == "kernel":
            lab.load_kernel_policy(physdev_rewrite(rules4), physdev_rewrite(rules6), sets)
        else:
            fp = start_sluice(args, lab, sc, rules4, rules6, sets, prefix, workdir)
        arrivals = play(lab, sc, frames_out)
        if kind == "kernel":
            extra = lab.conntrack_dump()
        elif fp is not None:
            try:
                c = fp.counters()
                extra = "drops: %s" % {k: v for k, v in c.get("drops", {}).items() if v}
            except Exception as e:  # counters are diagnostics only
                extra = "(no counters: %s)" % e
        f, strays = fates(sc.steps, arrivals, frames_out)
        return {"fates": f, "strays": strays, "frames": frames_out, "extra": extra}
    finally:
        if fp is not None:
            fp.stop()
        lab.down()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)  # sluice-fastpath's runtime files


class Sluice:
    """sluice-fastpath in the firewall namespace: start (wait for "forwarding with"), ask for
    counters (SIGUSR1 -> --stats-file), stop (SIGTERM, then SIGKILL after a bound)."""

    def __init__(self, binary, conf_path, ns, d):
        self.stats = os.path.join(d, "stats.json")
        self.log = os.path.join(d, "fastpath.log")
        self.cmd = ["ip", "netns", "exec", ns, binary, "--config", conf_path,
                    "--stats-file", self.stats]
        self.proc = None

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def start(self, timeout=20):
        with open(self.log, "w") as logf:
            self.proc = subprocess.Popen(self.cmd, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "forwarding with" in self.read_log():
                return
            if self.proc.poll() is not None:
                raise SluiceStartError("exited with status %d at start:\n%s"
                                       % (self.proc.returncode, self.read_log()))
            time.sleep(0.05)
        self.stop()
        raise SluiceStartError("did not start within %d s:\n%s" % (timeout, self.read_log()))

    def counters(self, timeout=3):
        before = os.path.getmtime(self.stats) if os.path.exists(self.stats) else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.stats) and os.path.getmtime(self.stats) != before:
                time.sleep(0.05)
                with open(self.stats) as f:
                    return json.load(f)
            time.sleep(0.05)
        raise RuntimeError("no counters within %d s" % timeout)

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_sluice(args, lab, sc, rules4, rules6, sets, prefix, workdir):
    binary = args.sluice
    if not binary or not os.access(binary, os.X_OK):
        raise SluiceStartError("no executable sluice-fastpath at %r" % binary)
    d = os.path.join(workdir, sc.name)
    os.makedirs(d, exist_ok=True)
    files = {}
    for name, text in (("rules", rules4), ("rules6", rules6), ("sets", sets)):
        if name == "sets" and not text.strip():
            continue
        files[name] = os.path.join(d, name + ".save")
        with open(files[name], "w") as f:
            f.write(text)
    west, east = sc.ports
    conf = [
        "port = %s=net_pcap0,rx_iface_in=%s-fa,tx_iface=%s-fa" % (west, prefix, prefix),
        "port = %s=net_pcap1,rx_iface_in=%s-fb,tx_iface=%s-fb" % (east, prefix, prefix),
        "pair = %s:%s" % (west, east),
        "workers = 1", "mbufs = 16383", "hugepages = no", "memory-mb = 384",
        "file-prefix = " + prefix,
    ]
    if not args.no_policy:
        conf += ["mode = enforce"] + ["%s = %s" % kv for kv in files.items()]
    conf_path = os.path.join(d, "fastpath.conf")
    with open(conf_path, "w") as f:
        f.write("\n".join(conf) + "\n")
    fp = Sluice(binary, conf_path, lab.ns["fw"], d)
    try:
        fp.start()
    except SluiceStartError as e:
        log = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise SluiceStartError("\n      ".join(log[-6:]) + "\n      config: " + conf_path)
    time.sleep(0.2)  # af_packet rings up
    return fp


# --- reporting -------------------------------------------------------------------------------
def describe(step, frame):
    cmd = step.pkt.command()
    if len(cmd) > 400:
        cmd = cmd[:400] + "...(%d chars; the hex is complete)" % len(cmd)
    return ("      packet (%s sends): %s\n      replay: Ether(bytes.fromhex('%s'))"
            % (step.sender, cmd, frame.hex()))


def report_strays(strays, verbose):
    shown = [s for s in strays if interesting_stray(s[2])]
    for k, host, frame in shown[:5 if not verbose else 50]:
        print("      unexplained frame on %s after step %d: %s  (%s)"
              % (host, k + 1, Ether(frame).summary(), frame.hex()))


def main():
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sluice", nargs="?", help="path to sluice-fastpath")
    ap.add_argument("--kernel-only", action="store_true",
                    help="check only the reference (twice) against the scenarios' expectations")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--runs", type=int, default=2, help="kernel runs per scenario (default 2)")
    ap.add_argument("--no-policy", action="store_true",
                    help="start Sluice without rules/rules6/sets/mode: a plumbing check (it then "
                         "forwards everything, so every kernel drop shows as a mismatch)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    scenarios = load_scenarios()
    if args.list:
        for s in scenarios:
            print("%-28s %3d steps  %s" % (s.name, len(s.steps), s.doc))
        return 0
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {s.name for s in scenarios}
        if unknown:
            print("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
            return 2
        scenarios = [s for s in scenarios if s.name in want]

    if os.geteuid() != 0:
        skip("needs root for network namespaces")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        skip("missing tools: %s (apt-get install iproute2 iptables ipset conntrack procps)"
             % " ".join(missing))
    probe = "nfdprobe%d" % os.getpid()
    if labmod.run(["ip", "netns", "add", probe], check=False).returncode != 0:
        skip("cannot create network namespaces")
    try:
        r = labmod.run(["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"], ns=probe,
                       check=False)
        if r.returncode != 0:
            skip("br_netfilter is not available in network namespaces on this kernel "
                 "(modprobe br_netfilter); the kernel reference needs it")
    finally:
        labmod.run(["ip", "netns", "del", probe], check=False)

    base = "nfd%d" % os.getpid()
    workdir = tempfile.mkdtemp(prefix="sluice-diff-")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    problems, sluice_down, compared = [], [], 0
    last_start_error = None
    t0 = time.time()
    try:
        for sc in scenarios:
            runs = []
            for r in range(max(1, args.runs)):
                runs.append(run_side("kernel", sc, args, base + "k", workdir))
            kf = runs[0]["fates"]
            line = "%-28s %2d steps  kernel: %s" % (sc.name, len(sc.steps), " ".join(kf))
            bad = False
            for r in runs[1:]:
                if r["fates"] != kf:
                    bad = True
                    problems.append("%s: kernel not deterministic" % sc.name)
                    print("KERNEL NOT DETERMINISTIC %s\n      run 1: %s\n      run 2: %s"
                          % (sc.name, " ".join(kf), " ".join(r["fates"])))
            for i, (st, got) in enumerate(zip(sc.steps, kf)):
                if got != st.expect:
                    bad = True
                    problems.append("%s step %d: kernel %s, scenario expects %s"
                                    % (sc.name, i + 1, got, st.expect))
                    print("SCENARIO EXPECTATION WRONG %s step %d: kernel=%s expected=%s\n%s"
                          % (sc.name, i + 1, got, st.expect, describe(st, runs[0]["frames"][i])))
            if bad or args.verbose:
                report_strays(runs[0]["strays"], args.verbose)
                if args.verbose:
                    print("      conntrack after the run:\n        " +
                          runs[0]["extra"].strip().replace("\n", "\n        "))
            if args.kernel_only:
                print(("BAD  " if bad else "ok   ") + line)
                continue
            try:
                s = run_side("sluice", sc, args, base + "s", workdir)
            except SluiceStartError as e:
                sluice_down.append(sc.name)
                msg = str(e).split("\n      config:")[0].replace(os.path.join(workdir, sc.name), "")
                print("NOSL " + line + "\n      sluice side cannot start: %s"
                      % ("(same error as above)" if msg == last_start_error else e))
                last_start_error = msg
                continue
            compared += 1
            diff = [i for i in range(len(sc.steps)) if s["fates"][i] != kf[i]]
            if diff:
                problems.append("%s: sluice differs at step(s) %s"
                                % (sc.name, ",".join(str(i + 1) for i in diff)))
                print("DIFF " + line + "\n      sluice: " + " ".join(s["fates"]))
                for i in diff:
                    print("    MISMATCH %s step %d: kernel=%s sluice=%s\n%s"
                          % (sc.name, i + 1, kf[i], s["fates"][i],
                             describe(sc.steps[i], runs[0]["frames"][i])))
                report_strays(s["strays"], args.verbose)
                print("      sluice %s" % s["extra"])
                print("      rules: %s" % os.path.join(workdir, sc.name))
            else:
                print(("BAD  " if bad else "ok   ") + line + "  == sluice")
    except KeyboardInterrupt as e:
        print("interrupted (%s); cleaning up" % (str(e) or "Ctrl-C"))
        problems.append("interrupted")
    except Exception:
        traceback.print_exc()
        problems.append("harness error")
    finally:
        for ns in labmod.leftover_namespaces(base):
            labmod.run(["ip", "netns", "del", ns], check=False)
        if not problems and not sluice_down:
            shutil.rmtree(workdir, ignore_errors=True)

    dt = time.time() - t0
    print()
    if sluice_down:
        print("SLUICE SIDE COULD NOT START for %d of %d scenario(s): %s\n  (rules/config kept in %s)"
              % (len(sluice_down), len(scenarios), ", ".join(sluice_down), workdir))
    for p in problems:
        print("problem: " + p)
    mode = "kernel-only" if args.kernel_only else "%d compared with sluice" % compared
    print("netfilter_diff: %d scenario(s), %s, %d problem(s), %.1f s"
          % (len(scenarios), mode, len(problems) + len(sluice_down), dt))
    return 1 if problems or sluice_down else 0


if __name__ == "__main__":
    sys.exit(main())
