"""Run sluice-fastpath as a test subject: start it with a config, wait until it forwards,
ask for counters (SIGUSR1 -> --stats-file JSON), stop it with SIGTERM and check it exits
cleanly. Used by the EAL and end-to-end tests; runs under Debian's /usr/bin/python3."""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time


def free_hugepages():
    """Free 2 MiB hugepages, 0 when hugetlbfs is not mounted."""
    try:
        with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
            n = int(f.read())
        with open("/proc/mounts") as f:
            return n if " hugetlbfs " in f.read() else 0
    except OSError:
        return 0


def remove_dpdk_files(prefix):
    """What a DPDK primary leaves behind: its hugepage files and its runtime directory."""
    for f in glob.glob(f"/dev/hugepages/{prefix}map_*"):
        os.unlink(f)
    shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)


class Fastpath:
    def __init__(self, binary, config_lines, netns=None, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="sluice-test-")
        self.conf = os.path.join(self.dir, "fastpath.conf")
        self.stats = os.path.join(self.dir, "stats.json")
        self.log = os.path.join(self.dir, "fastpath.log")
        with open(self.conf, "w") as f:
            f.write("\n".join(config_lines) + "\n")
        cmd = [binary, "--config", self.conf, "--stats-file", self.stats, *extra_args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.cmd = cmd
        self.proc = None

    def start(self, timeout=20):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "forwarding with" in self.read_log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("sluice-fastpath exited early:\n" + self.read_log())
            time.sleep(0.05)
        raise RuntimeError("sluice-fastpath did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def counters(self, timeout=5):
        """Ask the running daemon for its counters (SIGUSR1) and return the parsed JSON."""
        before = os.path.getmtime(self.stats) if os.path.exists(self.stats) else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.stats) and os.path.getmtime(self.stats) != before:
                with open(self.stats) as f:
                    return json.load(f)
            time.sleep(0.05)
        raise RuntimeError("no counters from sluice-fastpath:\n" + self.read_log())

    def wait_quiet(self, field="rx_packets", settle=0.5, timeout=20):
        """Counters until the total of `field` over all ports stops moving."""
        last, since = None, time.time()
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = self.counters()
            total = sum(p[field] for p in c["ports"])
            if total != last:
                last, since = total, time.time()
            elif time.time() - since >= settle:
                return c
            time.sleep(0.1)
        return c

    def stop(self, timeout=20):
        """SIGTERM; returns (exit code, final counters from the stats file)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("sluice-fastpath did not stop on SIGTERM:\n" + self.read_log())
        self.logf.close()
        with open(self.stats) as f:
            return rc, json.load(f)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
