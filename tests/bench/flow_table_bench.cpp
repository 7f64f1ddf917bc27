// Flow table / conntrack micro-benchmark (a program, not a timed test).
//
// For 1, 10k and 1M established flows: cycles (rdtsc) per key for flow_table::lookup_bulk
// and per packet for conntrack::classify + commit (UDP packets of established flows, random
// order, bursts of 32): median and 10th/90th percentile over all bursts of 5 runs; then new
// flows per second through classify + commit (median, min, max of 5 runs). rdtsc costs
// ~100 cycles in some VMs: two per burst, i.e. a few cycles per packet, are included.
// Output: one JSON object per line.
//
// Usage: flow_table_bench [max_flows]   (default 1000000)
#include "conntrack.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static uint64_t ticks() { return __rdtsc(); }
static const char* tick_unit = "cycles";
#else
static uint64_t ticks() {
    return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
}
static const char* tick_unit = "ns";
#endif

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

struct stats {
    double median, min, max;
};

// median, 10th and 90th percentile
stats summarise(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v[v.size() / 10], v[v.size() * 9 / 10]};
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
    std::vector<double> lookup_c, classify_c;
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
    }
    const stats a = summarise(lookup_c), b = summarise(classify_c);
    std::printf("{\"bench\":\"flow_lookup\",\"flows\":%u,\"unit\":\"%s/lookup\",\"median\":%.1f,"
                "\"p10\":%.1f,\"p90\":%.1f}\n",
                flows, tick_unit, a.median, a.min, a.max);
    std::printf("{\"bench\":\"ct_classify_established\",\"flows\":%u,\"unit\":\"%s/packet\","
                "\"median\":%.1f,\"p10\":%.1f,\"p90\":%.1f}\n",
                flows, tick_unit, b.median, b.min, b.max);
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
    const stats a = summarise(rate), b = summarise(cyc);
    std::printf("{\"bench\":\"ct_new_flows\",\"flows\":%u,\"unit\":\"flows/s\",\"median\":%.0f,"
                "\"min\":%.0f,\"max\":%.0f,\"%s_per_flow\":%.1f}\n",
                flows, a.median, a.min, a.max, tick_unit, b.median);
}

} // namespace

int main(int argc, char** argv) {
    const uint32_t max_flows = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 10)) : 1000000;
    std::printf("{\"bench\":\"layout\",\"flow_entry_bytes\":%zu,\"bytes_per_flow\":%.1f}\n",
                sizeof(flow_entry),
                double(flow_table(max_flows).memory_bytes()) / max_flows);
    for (uint32_t flows : {1u, 10000u, max_flows})
        if (flows <= max_flows) bench_established(flows);
    bench_new_flows(max_flows);
    return 0;
}
