-- Pktgen-DPDK benchmark of sluice-fastpath (README.md, "Benchmarking with Pktgen-DPDK").
--
-- Pktgen port 0 is the memif client of the appliance's `west` port, port 1 of `east`
-- (tools/pktgen/sluice-fastpath-pktgen.conf). Both ports send: port 0 the "request" direction
-- of every flow, port 1 the "reply" direction of the same flows, so the appliance's conntrack
-- sees each flow both ways (ESTABLISHED), as tools/bench's established-UDP scenario does.
--
-- Scenarios, in order (the same shapes as tools/bench):
--   many_flows  64 B UDP both ways, SRC_IPS x DST_PORTS flows, RATE_PCT, DURATION_S seconds
--   one_flow    the same with 1 flow per direction
--   sweep_<p>   many_flows at each rate of SWEEP_PCT (% of Pktgen's idea of the link speed)
--   size_<n>    many_flows at each frame size of SIZES (and 9000 B when JUMBO)
--   imix        7 x 64 B, 4 x 594 B, 1 x 1518 B in Pktgen's sequence mode (12 flows per direction)
-- After each: tx/rx packets per second per port (the whole run's counters / DURATION_S, and the
-- median of the per-second rate samples), lost packets per direction, one CSV line in RESULTS.
--
-- Written for the Lua API of Pktgen-DPDK 23.x/24.x (app/lpktgenlib.c: pktgen.set, set_ipaddr,
-- set_proto, pktgen.range.* and pktgen.set_range, seqTable, portStats(..., "port"|"rate"), clr,
-- delay); the older flat range names of Pktgen 3.x-21.x (pktgen.dst_ip, pktgen.range(port, "on"))
-- are used when pktgen.range is not a table. Frame sizes are Pktgen's: FCS included (64 B = 60 B
-- on the memif ring), as sluice-gen counts them.

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
pcall(require, "Pktgen")

---------------------------------------------------------------------------------------------------
-- Parameters
---------------------------------------------------------------------------------------------------
DURATION_S = 10              -- seconds of sending per scenario
DRAIN_MS   = 500             -- wait after stop before reading counters (in-flight packets)
SETTLE_MS  = 1500            -- before each run: sluice-fastpath polls link state once a second
WEST, EAST = "0", "1"        -- Pktgen port ids of the appliance's west and east memif links
PORTS      = WEST .. "," .. EAST

-- many_flows: flows = lcm(SRC_IPS, DST_PORTS) (both fields step on every packet; keep the two
-- coprime to get SRC_IPS * DST_PORTS). 256 x 101 = 25 856 flows per direction.
SRC_IPS    = 256             -- 198.18.0.0 .. 198.18.0.255 (west side hosts), at most 65536
DST_PORTS  = 101             -- destination ports 1000 .. 1100 on 198.19.0.1 (east side host)
WEST_NET   = {198, 18}       -- must match tools/pktgen/sluice-pktgen.rules
EAST_IP    = "198.19.0.1"
SPORT      = 1024            -- fixed source port of the west side

RATE_PCT   = 100             -- % of line rate for the fixed-rate scenarios (100: as fast as possible)
SWEEP_PCT  = {1, 5, 10, 25, 50, 75, 100}
SIZES      = {64, 128, 594, 1518}
JUMBO      = false           -- add a 9000 B run: start Pktgen with -j and sluice with --mtu 9000
IMIX       = true            -- 7:4:1 IMIX through sequence mode

RESULTS    = os.getenv("SLUICE_PKTGEN_RESULTS") or "sluice-pktgen-results.csv"
QUIT_AT_END = false          -- quit Pktgen after the last scenario (unattended runs)

---------------------------------------------------------------------------------------------------
-- Pktgen API, whichever generation of it this Pktgen has
---------------------------------------------------------------------------------------------------
local R = (type(pktgen.range) == "table") and pktgen.range or pktgen

local function set_range(port, state)
    if pktgen.set_range then pktgen.set_range(port, state)
    elseif type(pktgen.range) == "function" then pktgen.range(port, state) end
end

local function range4(fn, port, start, min, max, inc)
    fn(port, "start", start); fn(port, "min", min); fn(port, "max", max); fn(port, "inc", inc)
end

local function ip(a, b, c, d) return string.format("%d.%d.%d.%d", a, b, c, d) end
local function host(i) return ip(WEST_NET[1], WEST_NET[2], (i >> 8) & 255, i & 255) end

local function say(fmt, ...)
    local s = string.format(fmt, ...)
    if printf then printf("%s\n", s) else print(s) end
end

-- Range setup of both ports: `ips` west hosts x `dports` ports, frames of `size` bytes.
-- West sends host_i:SPORT -> EAST_IP:(1000+j); east sends EAST_IP:(1000+j) -> host_i:SPORT with
-- i and j stepping in the same lockstep, i.e. exactly the reply packets of west's flows.
local function setup_flows(ips, dports, size)
    local last_ip, last_port = host(ips - 1), 1000 + dports - 1
    local ip_inc = (ips > 1) and "0.0.0.1" or "0.0.0.0"
    local port_inc = (dports > 1) and 1 or 0

    range4(R.src_ip, WEST, host(0), host(0), last_ip, ip_inc)
    range4(R.dst_ip, WEST, EAST_IP, EAST_IP, EAST_IP, "0.0.0.0")
    range4(R.src_port, WEST, SPORT, SPORT, SPORT, 0)
    range4(R.dst_port, WEST, 1000, 1000, last_port, port_inc)

    range4(R.src_ip, EAST, EAST_IP, EAST_IP, EAST_IP, "0.0.0.0")
    range4(R.dst_ip, EAST, host(0), host(0), last_ip, ip_inc)
    range4(R.src_port, EAST, 1000, 1000, last_port, port_inc)
    range4(R.dst_port, EAST, SPORT, SPORT, SPORT, 0)

    range4(R.pkt_size, PORTS, size, size, size, 0)
    if R.ip_proto then R.ip_proto(PORTS, "udp") end
    pktgen.set_proto(PORTS, "udp")
    pktgen.set(PORTS, "size", size)
    pcall(pktgen.set, PORTS, "seq_cnt", 0) -- leave sequence mode (imix)
    set_range(PORTS, "on")
end

-- IMIX in sequence mode: 12 packets per port (7 x 64, 4 x 594, 1 x 1518), each its own flow.
local IMIX_SIZES = {64, 64, 64, 64, 64, 64, 64, 594, 594, 594, 594, 1518}
local function setup_imix()
    set_range(PORTS, "off")
    for k, size in ipairs(IMIX_SIZES) do
        local h = host(k - 1)
        local common = {ethType = "ipv4", ipProto = "udp", vlanid = 1, pktSize = size,
                        eth_dst_addr = "02:00:00:00:00:02", eth_src_addr = "02:00:00:00:00:01"}
        local w, e = {}, {}
        for key, v in pairs(common) do w[key] = v; e[key] = v end
        w.ip_src_addr, w.ip_dst_addr, w.sport, w.dport = h .. "/16", EAST_IP, SPORT, 1000 + k
        e.ip_src_addr, e.ip_dst_addr, e.sport, e.dport = EAST_IP .. "/16", h, 1000 + k, SPORT
        e.eth_dst_addr, e.eth_src_addr = common.eth_src_addr, common.eth_dst_addr
        pktgen.seqTable(k - 1, WEST, w)
        pktgen.seqTable(k - 1, EAST, e)
    end
    pktgen.set(PORTS, "seq_cnt", #IMIX_SIZES)
end

---------------------------------------------------------------------------------------------------
-- One run: clear, start both ports, sample rates every second, stop, drain, read, report
---------------------------------------------------------------------------------------------------
local function median(t)
    if #t == 0 then return 0 end
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    return c[(#c + 1) // 2]
end

local function csv_line(fields)
    local f = io.open(RESULTS, "r")
    local new = (f == nil)
    if f then f:close() end
    f = io.open(RESULTS, "a")
    if not f then say("sluice.lua: cannot write %s", RESULTS); return end
    if new then
        f:write("time,pktgen_version,scenario,size,flows,rate_pct,duration_s," ..
                "west_tx_pps,west_rx_pps,east_tx_pps,east_rx_pps," ..
                "west_rx_pps_median,east_rx_pps_median,tx_packets,rx_packets," ..
                "lost_west_to_east,lost_east_to_west,loss_ratio\n")
    end
    f:write(table.concat(fields, ",") .. "\n")
    f:close()
end

local function run(name, size, flows, rate)
    pktgen.set(PORTS, "count", 0)            -- 0: send until stopped
    pktgen.set(PORTS, "rate", rate)
    pktgen.delay(SETTLE_MS)
    pktgen.clr()
    pktgen.delay(200)

    local w, e = tonumber(WEST), tonumber(EAST)
    local rx_w, rx_e = {}, {}
    pktgen.start(PORTS)
    for _ = 1, DURATION_S do
        pktgen.delay(1000)
        local r = pktgen.portStats(PORTS, "rate")
        rx_w[#rx_w + 1] = r[w].pkts_rx or r[w].ipackets or 0
        rx_e[#rx_e + 1] = r[e].pkts_rx or r[e].ipackets or 0
    end
    pktgen.stop(PORTS)
    pktgen.delay(DRAIN_MS)

    local s = pktgen.portStats(PORTS, "port")
    local wtx, wrx, etx, erx = s[w].opackets, s[w].ipackets, s[e].opackets, s[e].ipackets
    local lost_w2e, lost_e2w = wtx - erx, etx - wrx
    local tx, rx = wtx + etx, wrx + erx
    local loss = (tx > 0) and (tx - rx) / tx or 0
    local d = DURATION_S
    say("%-12s size %-5s flows %-6d rate %3s%%: west tx %.3f rx %.3f Mpps, east tx %.3f rx %.3f Mpps;" ..
        " lost w->e %d e->w %d (%.4f %%)", name, tostring(size), flows, tostring(rate),
        wtx / d / 1e6, wrx / d / 1e6, etx / d / 1e6, erx / d / 1e6, lost_w2e, lost_e2w, loss * 100)
    csv_line({os.date("!%Y-%m-%dT%H:%M:%SZ"), (pktgen.info and pktgen.info.Pktgen_Version or "?"):gsub(",", " "),
              name, tostring(size), flows, rate, d,
              string.format("%.0f", wtx / d), string.format("%.0f", wrx / d),
              string.format("%.0f", etx / d), string.format("%.0f", erx / d),
              median(rx_w), median(rx_e), tx, rx, lost_w2e, lost_e2w, string.format("%.6f", loss)})
end

local function scenario(name, fn)
    local ok, err = pcall(fn)
    if not ok then
        say("sluice.lua: scenario %s failed: %s", name, tostring(err))
        pcall(pktgen.stop, PORTS)
    end
end

---------------------------------------------------------------------------------------------------
-- Scenarios
---------------------------------------------------------------------------------------------------
if pktgen.screen then pktgen.screen("off") end
say("sluice.lua: Pktgen %s, %s; results appended to %s",
    pktgen.info and pktgen.info.Pktgen_Version or "?", pktgen.info and pktgen.info.DPDK_Version or "?", RESULTS)

-- Wait (up to 15 s) until both memif links are up: Pktgen may run the script before it has
-- connected to the appliance's sockets.
if pktgen.linkState then
    for _ = 1, 30 do
        local ok, ls = pcall(pktgen.linkState, PORTS)
        if not ok or type(ls) ~= "table" then break end
        local up = true
        for _, p in ipairs({tonumber(WEST), tonumber(EAST)}) do
            if not tostring(ls[p] or ""):find("UP") then up = false end
        end
        if up then break end
        pktgen.delay(500)
    end
end

local MANY = SRC_IPS * DST_PORTS   -- flows when the two counts are coprime

scenario("many_flows", function()
    setup_flows(SRC_IPS, DST_PORTS, 64)
    run("many_flows", 64, MANY, RATE_PCT)
end)

scenario("one_flow", function()
    setup_flows(1, 1, 64)
    run("one_flow", 64, 1, RATE_PCT)
end)

scenario("sweep", function()
    setup_flows(SRC_IPS, DST_PORTS, 64)
    for _, pct in ipairs(SWEEP_PCT) do run("sweep_" .. pct, 64, MANY, pct) end
end)

scenario("sizes", function()
    local sizes = {}
    for i, v in ipairs(SIZES) do sizes[i] = v end
    if JUMBO then sizes[#sizes + 1] = 9000 end
    for _, size in ipairs(sizes) do
        setup_flows(SRC_IPS, DST_PORTS, size)
        run("size_" .. size, size, MANY, RATE_PCT)
    end
end)

if IMIX then
    scenario("imix", function()
        setup_imix()
        run("imix", "imix", #IMIX_SIZES, RATE_PCT)
        pktgen.set(PORTS, "seq_cnt", 0)
    end)
end

if pktgen.screen then pktgen.screen("on") end
say("sluice.lua: done; %s", RESULTS)
if QUIT_AT_END and pktgen.quit then pktgen.quit() end
