#!/bin/sh
# The appliance side of the Pktgen-DPDK benchmark (README.md, "Benchmarking with Pktgen-DPDK").
#
#   tools/pktgen/run-sluice-side.sh [--jumbo] [sluice-fastpath options...]
#       runs sluice-fastpath in the foreground as the memif server of
#       /run/sluice/memif-{west,east}.sock (tools/pktgen/sluice-fastpath-pktgen.conf);
#       Ctrl-C stops it and removes its DPDK runtime files.
#   tools/pktgen/run-sluice-side.sh stats
#       from another shell: SIGUSR1 to it, then prints its busy cycles per received packet,
#       cumulative and since the previous `stats` (call it before and after a Pktgen scenario).
# Run from the repository root, as root (hugepages, /run/sluice).
set -eu
CONF=tools/pktgen/sluice-fastpath-pktgen.conf
PREFIX=sluice-pg-fp
PIDFILE=/run/sluice/pktgen-fastpath.pid
STATS=/run/sluice/pktgen-fastpath-stats.json

if [ "${1:-}" = stats ]; then
    [ -s "$PIDFILE" ] || { echo "no sluice-fastpath running ($PIDFILE)" >&2; exit 1; }
    before=$(stat -c %Y.%N "$STATS" 2>/dev/null || echo none)
    kill -USR1 "$(cat "$PIDFILE")"
    i=0
    while [ "$(stat -c %Y.%N "$STATS" 2>/dev/null || echo none)" = "$before" ] && [ $i -lt 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
    exec python3 - "$STATS" "$STATS.prev" <<'PY'
import json, shutil, sys
cur = json.load(open(sys.argv[1]))
def totals(s):
    return (sum(w["busy_cycles"] for w in s["workers"]), sum(p["rx_packets"] for p in s["ports"]),
            sum(p["tx_packets"] for p in s["ports"]))
cyc, rx, tx = totals(cur)
print(f"cumulative: rx {rx} tx {tx} packets, busy {cyc} cycles, {cyc / rx if rx else 0:.1f} busy cycles/packet")
try:
    pcyc, prx, ptx = totals(json.load(open(sys.argv[2])))
    d = rx - prx
    print(f"since last: rx {d} tx {tx - ptx} packets, {(cyc - pcyc) / d if d else 0:.1f} busy cycles/packet")
except (OSError, ValueError):
    pass
for name, n in sorted(cur.get("drops", {}).items() if isinstance(cur.get("drops"), dict) else []):
    if n:
        print(f"drop {name}: {n}")
shutil.copyfile(sys.argv[1], sys.argv[2])
PY
fi

EXTRA=""
if [ "${1:-}" = --jumbo ]; then
    shift
    EXTRA="--mtu 9000 --mbuf-size 9216 --mbufs 16383"
fi
mkdir -p /run/sluice
rm -f "$STATS.prev"
cleanup() {
    rm -f "$PIDFILE" /dev/hugepages/${PREFIX}map_*
    rm -rf "/var/run/dpdk/$PREFIX"
}
# shellcheck disable=SC2086
build/fastpath/sluice-fastpath --config "$CONF" $EXTRA "$@" &
pid=$!
echo "$pid" > "$PIDFILE"
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
rc=0
wait "$pid" || rc=$?
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || rc=$?; fi
cleanup
exit "$rc"
