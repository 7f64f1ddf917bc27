// Stateful fast-path micro-benchmark (a program, not a timed test): the flow table,
// conntrack, and the whole per-burst filter stage (packet_filter::run: conntrack + the
// policy snapshot's classifier + commit) that a worker runs on every burst.
//
// For 1, 10k, 100k and 1M established flows: cycles (rdtsc) per key for
// flow_table::lookup_bulk, per packet for conntrack::classify + commit, and per packet for
// packet_filter::run under a netfilter-style stateful policy (UDP packets of established
// flows, random order, both directions, bursts of 32): median and 10th/90th percentile over
// all bursts of 5 runs. Then new flows per second (first packets creating their entries)
// through conntrack alone and through packet_filter, and full TCP connections per second
// (SYN, SYN/ACK, ACK, FIN, FIN, ACK) through packet_filter; bytes per tracked flow. rdtsc
// costs ~100 cycles in some VMs: two per burst, i.e. a few cycles per packet, are included.
// Output: one JSON object per line.
//
// Usage: stateful_bench [max_flows]   (default 1000000)
#include "bench_clock.hpp"
#include "conntrack.hpp"
#include "packet_filter.hpp"
#include "policy.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace sluice;

namespace {

constexpr uint32_t burst = 32;
constexpr int reps = 5;

packet_meta udp_meta(uint32_t n, bool reply) {
    packet_meta m{};
    ip_addr a{}, b{};
    a.b[10] = a.b[11] = b.b[10] = b.b[11] = 0xff;
    a.b[12] = 10;
    a.b[13] = uint8_t(n >> 16);
    a.b[14] = uint8_t(n >> 8);
    a.b[15] = uint8_t(n);
    b.b[12] = 198;
    b.b[13] = 51;
    b.b[14] = 100;
    b.b[15] = 2;
    const uint16_t pa = uint16_t(1024 + (n >> 24)), pb = 53;
    m.l3 = l3_kind::ipv4;
    m.l4_proto = ipproto_udp;
    m.src = reply ? b : a;
    m.dst = reply ? a : b;
    m.sport = reply ? pb : pa;
    m.dport = reply ? pa : pb;
    m.payload_len = 64;
    m.tcp_wscale = 0xff;
    return m;
}

// The policy a stateful firewall typically runs: INVALID dropped, replies accepted,
// new flows allowed by port.
const char* const stateful_rules = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i west -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -i west -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
)";

std::unique_ptr<policy_snapshot> stateful_policy() {
    const port_binding ports[] = {{"west", 0}, {"east", 1}};
    policy_sources src;
    src.rules4 = {"bench.rules", stateful_rules};
    auto r = build_policy(src, filter_mode::enforce, 1, ports, 1, 0);
    if (!r.snapshot) {
        std::fprintf(stderr, "policy: %s\n", r.error.c_str());
        std::exit(1);
    }
    return std::move(r.snapshot);
}

filter_input input_for(bool reply) {
    filter_input f;
    f.in_port = reply ? 1 : 0;
    f.out_port = reply ? 0 : 1;
    f.wire_len = 110;
    return f;
}

// Run pkts through the filter in bursts; every decision must be `want`.
void filter_all(packet_filter& pf, const policy_snapshot& p, const std::vector<packet_meta>& pkts,
                bool reply, uint32_t now, filter_action want = filter_action::forward) {
    filter_input in[burst];
    filter_decision out[burst];
    for (auto& f : in) f = input_for(reply);
    for (size_t base = 0; base < pkts.size(); base += burst) {
        const size_t n = std::min<size_t>(burst, pkts.size() - base);
        pf.run(p, {pkts.data() + base, n}, {in, n}, {out, n}, now, 0);
        for (size_t i = 0; i < n; ++i)
            if (out[i].action != want) {
                std::fprintf(stderr, "unexpected fate %s\n", std::string(name_of(out[i].reason)).c_str());
                std::exit(1);
            }
    }
}

void run_all(conntrack& ct, const std::vector<packet_meta>& pkts, uint32_t now) {
    std::vector<ct_result> res(burst);
    const std::vector<uint8_t> acc(burst, 1);
    for (size_t base = 0; base < pkts.size(); base += burst) {
        const size_t n = std::min<size_t>(burst, pkts.size() - base);
        std::span<const packet_meta> b(pkts.data() + base, n);
        ct.classify(b, nullptr, std::span<ct_result>(res.data(), n), now);
        ct.commit(b, std::span<ct_result>(res.data(), n), acc.data(), now);
    }
}

void bench_established(uint32_t flows) {
    conntrack ct(conntrack_config{}, std::max<uint32_t>(1024, flows + flows / 8));
    std::vector<packet_meta> req, rep;
    req.reserve(flows);
    rep.reserve(flows);
    for (uint32_t n = 0; n < flows; ++n) {
        req.push_back(udp_meta(n, false));
        rep.push_back(udp_meta(n, true));
    }
    run_all(ct, req, 0);
    run_all(ct, rep, 1);
    if (ct.table().size() != flows) {
        std::fprintf(stderr, "setup failed: %u of %u flows\n", ct.table().size(), flows);
        std::exit(1);
    }

    // Measured traffic: 1M packets (at least), flows in random order, both directions.
    // Each burst's packet_meta are written just before the timed region (as the parser
    // would leave them: hot in L1), so only the lookup itself is measured.
    const uint32_t n_pkts = std::max<uint32_t>(flows, 1u << 20);
    std::mt19937 rng(7);
    std::vector<uint32_t> order(n_pkts);
    for (auto& o : order) o = rng() % flows;

    // Per-burst samples (cycles per packet of each burst): the median is robust against
    // preemption on a shared machine; p10/p90 give the spread.
    auto policy = stateful_policy();
    packet_filter pf(conntrack_config{}, std::max<uint32_t>(1024, flows + flows / 8), 64, 0);
    filter_all(pf, *policy, req, false, 0);
    filter_all(pf, *policy, rep, true, 1);

    std::vector<double> lookup_c, classify_c, filter_c;
    filter_input fin[burst];
    filter_decision fdec[burst];
    lookup_c.reserve(size_t(reps) * (n_pkts / burst + 1));
    classify_c.reserve(size_t(reps) * (n_pkts / burst + 1));
    packet_meta metas[burst];
    flow_key keys[burst];
    uint32_t hashes[burst], out[burst];
    ct_result res[burst];
    uint8_t acc[burst];
    std::fill(acc, acc + burst, uint8_t(1));
    for (int r = 0; r < reps; ++r) {
        // (a) flow_table alone: prepare pass (key + hash) and bulk lookup.
        uint64_t misses = 0;
        for (uint32_t base = 0; base < n_pkts; base += burst) {
            const uint32_t n = std::min(burst, n_pkts - base);
            for (uint32_t i = 0; i < n; ++i) metas[i] = udp_meta(order[base + i], (base + i) & 1);
            const uint64_t t0 = ticks();
            for (uint32_t i = 0; i < n; ++i) {
                make_flow_key(metas[i], 0, keys[i]);
                hashes[i] = flow_hash(keys[i]);
            }
            ct.table().lookup_bulk(keys, hashes, n, out);
            lookup_c.push_back(double(ticks() - t0) / n);
            for (uint32_t i = 0; i < n; ++i) misses += out[i] == flow_table::no_entry;
        }
        if (misses) std::abort();

        // (b) conntrack classify + commit (state update included).
        for (uint32_t base = 0; base < n_pkts; base += burst) {
            const uint32_t n = std::min(burst, n_pkts - base);
            for (uint32_t i = 0; i < n; ++i) metas[i] = udp_meta(order[base + i], (base + i) & 1);
            const uint64_t t0 = ticks();
            ct.classify(std::span<const packet_meta>(metas, n), nullptr,
                        std::span<ct_result>(res, n), 2);
            ct.commit(std::span<const packet_meta>(metas, n), std::span<ct_result>(res, n), acc, 2);
            classify_c.push_back(double(ticks() - t0) / n);
        }

        // (c) the worker's whole filter stage under the stateful policy.
        for (uint32_t base = 0; base < n_pkts; base += burst) {
            const uint32_t n = std::min(burst, n_pkts - base);
            for (uint32_t i = 0; i < n; ++i) {
                metas[i] = udp_meta(order[base + i], (base + i) & 1);
                fin[i] = input_for((base + i) & 1);
            }
            const uint64_t t0 = ticks();
            pf.run(*policy, {metas, n}, {fin, n}, {fdec, n}, 2, 0);
            filter_c.push_back(double(ticks() - t0) / n);
            for (uint32_t i = 0; i < n; ++i)
                if (fdec[i].action != filter_action::forward) std::abort();
        }
    }
    const spread a = summarise(lookup_c), b = summarise(classify_c), c = summarise(filter_c);
    std::printf("{\"bench\":\"flow_lookup\",\"flows\":%u,\"unit\":\"%s/lookup\",\"median\":%.1f,"
                "\"p10\":%.1f,\"p90\":%.1f}\n",
                flows, tick_unit, a.median, a.p10, a.p90);
    std::printf("{\"bench\":\"ct_classify_established\",\"flows\":%u,\"unit\":\"%s/packet\","
                "\"median\":%.1f,\"p10\":%.1f,\"p90\":%.1f}\n",
                flows, tick_unit, b.median, b.p10, b.p90);
    std::printf("{\"bench\":\"filter_established\",\"flows\":%u,\"unit\":\"%s/packet\","
                "\"median\":%.1f,\"p10\":%.1f,\"p90\":%.1f,\"established_bypass\":%s}\n",
                flows, tick_unit, c.median, c.p10, c.p90,
                policy->forward(false).established_bypass_safe() ? "true" : "false");
    std::fflush(stdout);
}

// New flows (one packet each, each creating an entry) and full TCP connections through
// the filter stage, per second of one core: median, p10, p90 of 5 runs.
void bench_filter_new(uint32_t flows) {
    auto policy = stateful_policy();
    std::vector<packet_meta> pkts(flows);
    for (uint32_t n = 0; n < flows; ++n) pkts[n] = udp_meta(n, false);
    std::vector<double> rate;
    for (int r = 0; r < reps; ++r) {
        packet_filter pf(conntrack_config{}, flows + flows / 8, 64, 0);
        const auto t0 = std::chrono::steady_clock::now();
        filter_all(pf, *policy, pkts, false, 0);
        rate.push_back(flows / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (pf.tracker().table().size() != flows) std::abort();
    }
    const spread a = summarise(rate);
    std::printf("{\"bench\":\"filter_new_flows\",\"flows\":%u,\"unit\":\"flows/s\",\"median\":%.0f,"
                "\"p10\":%.0f,\"p90\":%.0f}\n",
                flows, a.median, a.p10, a.p90);

    // TCP: connections in groups of 32, each burst one step of the handshake-to-teardown
    // conversation for the 32 connections of the group (so no burst defers).
    constexpr uint32_t steps = 6;
    const uint32_t conns = flows - flows % burst;
    auto seg = [](uint32_t c, uint32_t step) {
        const bool reply = step == 1 || step == 4;
        packet_meta m = udp_meta(c, reply);
        m.l4_proto = ipproto_tcp;
        if (reply) m.sport = 80;
        else m.dport = 80;
        m.payload_len = 0;
        m.l4_len = 20;
        m.tcp_window = 65535;
        const uint32_t cs = 1000, ss = 5000;
        static constexpr uint8_t flags[steps] = {tcp_flag::syn, tcp_flag::syn | tcp_flag::ack, tcp_flag::ack,
                                                 tcp_flag::fin | tcp_flag::ack, tcp_flag::fin | tcp_flag::ack,
                                                 tcp_flag::ack};
        static constexpr uint32_t seq_c[steps] = {0, 0, 1, 1, 0, 2}, seq_s[steps] = {0, 0, 0, 0, 1, 0};
        static constexpr uint32_t ack_c[steps] = {0, 1, 1, 1, 2, 2}, ack_s[steps] = {0, 1, 1, 1, 2, 2};
        m.tcp_flags = flags[step];
        m.tcp_seq = reply ? ss + seq_s[step] : cs + seq_c[step];
        m.tcp_ack = step == 0 ? 0 : (reply ? cs + ack_c[step] : ss + ack_s[step]);
        return m;
    };
    std::vector<double> cps;
    packet_meta metas[burst];
    filter_input in[burst];
    filter_decision out[burst];
    for (int r = 0; r < reps; ++r) {
        packet_filter pf(conntrack_config{}, conns + conns / 8, 64, 0);
        const auto t0 = std::chrono::steady_clock::now();
        for (uint32_t g = 0; g < conns; g += burst)
            for (uint32_t step = 0; step < steps; ++step) {
                const bool reply = step == 1 || step == 4;
                for (uint32_t i = 0; i < burst; ++i) {
                    metas[i] = seg(g + i, step);
                    in[i] = input_for(reply);
                }
                pf.run(*policy, {metas, burst}, {in, burst}, {out, burst}, 0, 0);
                for (uint32_t i = 0; i < burst; ++i)
                    if (out[i].action != filter_action::forward) {
                        std::fprintf(stderr, "TCP step %u dropped: %s\n", step,
                                     std::string(name_of(out[i].reason)).c_str());
                        std::exit(1);
                    }
            }
        cps.push_back(conns / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const spread c = summarise(cps);
    std::printf("{\"bench\":\"filter_tcp_connections\",\"connections\":%u,\"unit\":\"connections/s\","
                "\"median\":%.0f,\"p10\":%.0f,\"p90\":%.0f}\n",
                conns, c.median, c.p10, c.p90);
}

void bench_new_flows(uint32_t flows) {
    std::vector<packet_meta> pkts(flows);
    for (uint32_t n = 0; n < flows; ++n) pkts[n] = udp_meta(n, false);
    std::vector<double> rate, cyc;
    for (int r = 0; r < reps; ++r) {
        conntrack ct(conntrack_config{}, flows + flows / 8);
        const auto t0 = std::chrono::steady_clock::now();
        const uint64_t c0 = ticks();
        run_all(ct, pkts, 0);
        const uint64_t c1 = ticks();
        const auto t1 = std::chrono::steady_clock::now();
        const double s = std::chrono::duration<double>(t1 - t0).count();
        rate.push_back(flows / s);
        cyc.push_back(double(c1 - c0) / flows);
        if (ct.table().size() != flows) std::abort();
    }
    const spread a = summarise(rate), b = summarise(cyc);
    std::printf("{\"bench\":\"ct_new_flows\",\"flows\":%u,\"unit\":\"flows/s\",\"median\":%.0f,"
                "\"p10\":%.0f,\"p90\":%.0f,\"%s_per_flow\":%.1f}\n",
                flows, a.median, a.p10, a.p90, tick_unit, b.median);
}

} // namespace

int main(int argc, char** argv) {
    const uint32_t max_flows = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 10)) : 1000000;
    std::printf("{\"bench\":\"layout\",\"flow_entry_bytes\":%zu,\"bytes_per_flow\":%.1f}\n",
                sizeof(flow_entry),
                double(flow_table(max_flows).memory_bytes()) / max_flows);
    for (uint32_t flows : {1u, 10000u, 100000u})
        if (flows < max_flows) bench_established(flows);
    bench_established(max_flows);
    bench_new_flows(max_flows);
    bench_filter_new(max_flows);
    return 0;
}
