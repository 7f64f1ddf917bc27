#!/usr/bin/python3
"""EAL test: sluice-gen drives sluice-fastpath over two net_memif links.

sluice-fastpath serves two memif sockets (role=server, ports west and east, paired);
sluice-gen connects to both as a client (and waits 1.2 s after its links are up: the
appliance polls link state once a second and drops towards a port it believes down), in its own DPDK primary (own --file-prefix, lcore
on another CPU than the appliance's worker). Two runs, each bounded in time and count:
  1. stateless: UDP west->east and east->west, 64 B over 256 flows, 50k pps each for 1 s;
     what left one side must come out of the other (>= 99.9 %), with latency samples;
  2. stateful TCP: 2000 connections at 1000/s, client on west, server on east; every
     connection's eight segments cross the appliance: >= 99 % must complete, opened =
     completed + lost, and the appliance must have forwarded the segments;
  3. policy replaced under traffic: UDP both ways at 50k pps each for 3 s on the flows of
     run 1 (established), and after 1 s the 4-rule policy is replaced (SIGHUP) by one of
     10 000 rules; the appliance must count no drop other than transmit back-pressure
     (tx_full: the memif peer not draining on a busy machine), sluice-gen must see what it
     sent come back (>= 99.9 %, less what back-pressure dropped), and the log must show
     the reload with its time to publish.
The appliance runs a stateful policy throughout (first: UDP and TCP accepted, replies by
conntrack).
Skips (77) without root or without free hugepages (two DPDK processes share memif memory).

usage: gen_fastpath_test.py SLUICE_GEN_BINARY SLUICE_FASTPATH_BINARY"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fastpath_harness import Fastpath, free_hugepages, remove_dpdk_files  # noqa: E402


def run_gen(binary, d, name, args):
    out = os.path.join(d, name + ".json")
    cmd = [binary, "--port", f"west=net_memif0,role=client,id=0,socket={d}/west.sock",
           "--port", f"east=net_memif1,role=client,id=0,socket={d}/east.sock",
           "--cpu", "0", "--file-prefix", f"sluice-gen-fp-{os.getpid()}", "--hugepages", "yes",
           "--mbufs", "16383", "--link-wait", "10", "--start-delay-ms", "1200", "--log-level", "warn", "--json", out, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"sluice-gen exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    with open(out) as f:
        return json.load(f), p.stdout


def policy(path, extra_rules):
    """A stateful FORWARD chain: ESTABLISHED first, `extra_rules` lines, then what runs 1-3 need."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
             "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", *extra_rules,
             "-A FORWARD -p udp -j ACCEPT", "-A FORWARD -i west -p tcp -j ACCEPT", "COMMIT", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def ten_thousand_rules():
    return ["-A FORWARD -s 10.%d.%d.%d/32 -p tcp -m tcp --dport %d -j DROP"
            % (i >> 16 & 255, i >> 8 & 255, i & 255, 1 + i % 60000) for i in range(10000)]


def main():
    gen, fastpath = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("SKIP: needs root (memif sockets, hugepages)")
        return 77
    if free_hugepages() < 256:
        print("SKIP: needs 256 free 2 MiB hugepages and hugetlbfs mounted (tools/bootstrap reserves them)")
        return 77
    d = tempfile.mkdtemp(prefix="sluice-gen-fp-")
    rules = os.path.join(d, "rules")
    policy(rules, [])
    fp = Fastpath(fastpath, [
        f"rules = {rules}",
        f"port = west=net_memif0,role=server,id=0,socket={d}/west.sock",
        f"port = east=net_memif1,role=server,id=0,socket={d}/east.sock",
        "pair = west:east", "workers = 1", "cpus = 0,1", "idle = poll", "hugepages = yes",
        "mbufs = 16383", f"file-prefix = sluice-fp-{os.getpid()}", "log-level = info",
    ])
    failures = []
    try:
        fp.start()
        udp, udp_text = run_gen(gen, d, "udp", [
            "--duration", "3", "--drain-ms", "500",
            "--stream", "name=w2e,tx=west,rx=east,size=64,rate=50k,count=50k,src=192.0.2.0/28,dport=1000-1015",
            "--stream", "name=e2w,tx=east,rx=west,size=64,rate=50k,count=50k,src=198.51.100.1,dst=192.0.2.0/28,"
                        "sport=9,dport=1000-1015"])
        for s in udp["streams"]:
            if s["tx_packets"] != 50000 or s["rx_packets"] < 0.999 * s["tx_packets"]:
                failures.append(f"stream {s['name']}: tx {s['tx_packets']}, rx {s['rx_packets']}")
            if s["latency"]["samples"] != s["rx_packets"] or s["reordered"]:
                failures.append(f"stream {s['name']}: {s}")
        tcp, tcp_text = run_gen(gen, d, "tcp", [
            "--duration", "5",
            "--tcp", "client=west,server=east,cps=1000,conns=2000,src=192.0.2.1-192.0.2.16,"
                     "sport=1024-1123,request=100,response=400,timeout=1000"])
        t = tcp["tcp"]
        if t["opened"] != 2000 or t["completed"] < 0.99 * 2000 or t["completed"] + t["lost"] != t["opened"]:
            failures.append(f"tcp: {t}")
        if t["unexpected"]:
            failures.append(f"tcp: {t['unexpected']} unexpected segments")
        c = fp.wait_quiet()
        before = dict(c["drops"])
        # 3. the same UDP flows (established by run 1) while the policy is replaced.
        policy(rules, ten_thousand_rules())
        gen_args = ["--duration", "4", "--drain-ms", "500",
                    "--stream", "name=w2e,tx=west,rx=east,size=64,rate=50k,count=150k,src=192.0.2.0/28,dport=1000-1015",
                    "--stream", "name=e2w,tx=east,rx=west,size=64,rate=50k,count=150k,src=198.51.100.1,dst=192.0.2.0/28,"
                                "sport=9,dport=1000-1015"]
        out = os.path.join(d, "reload.json")
        cmd = [gen, "--port", f"west=net_memif0,role=client,id=0,socket={d}/west.sock",
               "--port", f"east=net_memif1,role=client,id=0,socket={d}/east.sock",
               "--cpu", "0", "--file-prefix", f"sluice-gen-fp-{os.getpid()}", "--hugepages", "yes",
               "--mbufs", "16383", "--link-wait", "10", "--start-delay-ms", "1200", "--log-level", "warn",
               "--json", out, *gen_args]
        g = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.2 + 1.0)  # links up, then 1 s of traffic
        fp.proc.send_signal(signal.SIGHUP)
        gen_out, _ = g.communicate(timeout=60)
        if g.returncode != 0:
            raise RuntimeError(f"sluice-gen exit {g.returncode}\n{gen_out}")
        with open(out) as f:
            reload_run = json.load(f)
        reload_line = [ln for ln in fp.read_log().splitlines() if "policy reloaded" in ln]
        if not reload_line or "generation 2" not in reload_line[0] or "10003 IPv4 rule(s)" not in reload_line[0]:
            failures.append(f"no reload to the 10k-rule policy in the log: {reload_line}")
        c = fp.wait_quiet()
        # Every drop reason but transmit back-pressure (the memif peer not draining in time
        # on a busy machine) must stay where it was: the policy change itself drops nothing.
        grown = {r: n - before[r] for r, n in c["drops"].items() if n != before[r]}
        backpressure = grown.pop("tx_full", 0)
        if grown:
            failures.append(f"reload: the appliance dropped packets: {grown}")
        for st in reload_run["streams"]:
            if st["tx_packets"] != 150000 or \
                    st["rx_packets"] + backpressure < 0.999 * st["tx_packets"]:
                failures.append(f"reload: stream {st['name']}: tx {st['tx_packets']}, rx {st['rx_packets']}, "
                                f"tx_full at the appliance {backpressure}")
        reload_text = "reload under traffic: %s; tx_full %d; %s" % (
            reload_line[0].split("info ")[-1] if reload_line else "?", backpressure,
            ", ".join("%s tx %d rx %d" % (st["name"], st["tx_packets"], st["rx_packets"])
                      for st in reload_run["streams"]))
        ports = {p["name"]: p for p in c["ports"]}
        # Each completed connection: 5 segments client->server (west rx), 3 back (east rx).
        if ports["west"]["rx_packets"] < 200000 * 0.999 + 5 * t["completed"] or \
                ports["east"]["rx_packets"] < 200000 * 0.999 + 3 * t["completed"]:
            failures.append(f"appliance counters: {ports}")
        rc, _ = fp.stop()
        if rc != 0:
            failures.append(f"sluice-fastpath exit code {rc}")
    except Exception as e:  # report with the appliance's log
        failures.append(str(e))
    finally:
        fp.kill()
        remove_dpdk_files(f"sluice-fp-{os.getpid()}")
        remove_dpdk_files(f"sluice-gen-fp-{os.getpid()}")
    if failures:
        print("FAIL\n  " + "\n  ".join(failures))
        print("--- fastpath log\n" + fp.read_log())
        shutil.rmtree(d, ignore_errors=True)
        return 1
    print(udp_text)
    print(tcp_text)
    print(reload_text)
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(fp.dir, ignore_errors=True)
    print("ok: UDP both ways, TCP connections, and a 10k-rule policy replace under traffic "
          "through sluice-fastpath over memif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
