// Classifier micro-benchmark (a program, not a timed test): rdtsc cycles per classification
// of a NEW-flow packet against a FORWARD chain of 1, 1k, 10k and 100k rules.
//
// Rules are what firewall generators emit: `-s 10.x.y.z/32 -p tcp --dport P -j ACCEPT`
// (distinct /32 sources) or the same with distinct /24 sources, each with and without a
// leading `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`; policy DROP. Packets:
// 4096 distinct ones, 90% hitting a random rule, 10% missing every rule (policy), random
// order, classified in bursts of 32 with classify_burst. Per configuration: median and
// 10th/90th percentile over all bursts of 5 runs of cycles per packet (two rdtsc per burst
// included), plus the compiled size. Output: one JSON object per line, then the ratio the
// issue asks for (10k rules vs 1 rule).
//
// Then set matches: one rule `-m set --match-set big src -j ACCEPT` (policy DROP) with a
// hash:ip set of /32 sources or a hash:net set of /30 networks, holding 1 or up to 1M
// elements (90% of the packets hit an element); the same figures, the set's memory, and the
// ratio 1M vs 1 element.
//
// Usage: classifier_bench [max_rules [max_set_elements]]   (defaults 100000, 1000000)
#include "classifier.hpp"
#include "ipset_parser.hpp"

#include "bench_clock.hpp"

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
constexpr uint32_t n_packets = 4096;

ip_addr v4(uint32_t a) {
    ip_addr x{};
    x.b[10] = x.b[11] = 0xff;
    x.b[12] = uint8_t(a >> 24);
    x.b[13] = uint8_t(a >> 16);
    x.b[14] = uint8_t(a >> 8);
    x.b[15] = uint8_t(a);
    return x;
}

// Rule i's source: 10.0.0.0 + i (/32) or 10.0.0.0 + i*256 (/24); dport 1024 + i % 50000.
uint32_t rule_src(uint32_t i, bool slash24) {
    return (10u << 24) + (slash24 ? i << 8 : i);
}
uint16_t rule_port(uint32_t i) { return uint16_t(1024 + i % 50000); }

ruleset make(uint32_t n, bool slash24, bool ct_first) {
    ruleset rs = ruleset::empty(ip_family::ipv4);
    chain& fwd = rs.chains[1];
    fwd.policy = chain_policy::drop;
    if (ct_first) {
        rule r;
        ctstate_match ct;
        ct.mask = ct_bit(ct_state::related) | ct_bit(ct_state::established);
        r.matches.push_back(ct);
        r.target.kind = target_kind::accept;
        fwd.rules.push_back(r);
    }
    for (uint32_t i = 0; i < n; ++i) {
        rule r;
        addr_match s;
        ip_addr a = v4(rule_src(i, slash24));
        std::copy(a.b, a.b + 16, s.net.addr.begin());
        s.net.prefix = slash24 ? 24 : 32;
        s.net.v4 = true;
        r.src = s;
        r.proto = proto_match{6, false};
        tcpudp_match t;
        t.proto = 6;
        t.dport = port_range{rule_port(i), rule_port(i)};
        r.matches.push_back(t);
        r.target.kind = target_kind::accept;
        fwd.rules.push_back(r);
    }
    return rs;
}

// Element i of the benchmark set: 10.0.0.0 + i (hash:ip) or 12.0.0.0 + 4i /30 (hash:net).
uint32_t set_addr(uint32_t i, bool net) { return net ? (12u << 24) + (i << 2) : (10u << 24) + i; }

std::string set_text(uint32_t n, bool net) {
    std::string t = std::string("create big ") + (net ? "hash:net" : "hash:ip") +
                    " family inet hashsize 1048576 maxelem 4194304\n";
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t a = set_addr(i, net);
        t += "add big " + std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
             std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255) + (net ? "/30\n" : "\n");
    }
    return t;
}

ruleset set_rule() {
    ruleset rs = ruleset::empty(ip_family::ipv4);
    chain& fwd = rs.chains[1];
    fwd.policy = chain_policy::drop;
    rule r;
    set_match m;
    m.name = "big";
    m.dims = *parse_dim_flags("src");
    r.matches.push_back(m);
    r.target.kind = target_kind::accept;
    fwd.rules.push_back(r);
    return rs;
}

// The first packet of a flow from a random source port to 198.51.100.2 (the benchmarks'
// common part; the caller sets the source address and destination port).
packet_meta first_packet(uint8_t proto, std::mt19937& rng) {
    packet_meta m{};
    m.l3 = l3_kind::ipv4;
    m.l4_proto = proto;
    m.frag_flags = frag::first;
    if (proto == 6) m.tcp_flags = tcp_flag::syn;
    m.sport = uint16_t(1024 + rng() % 60000);
    m.dst = v4((198u << 24) | (51u << 16) | (100u << 8) | 2u);
    return m;
}

std::vector<packet_meta> set_packets(uint32_t n, bool net, std::mt19937& rng) {
    std::vector<packet_meta> out;
    for (uint32_t k = 0; k < n_packets; ++k) {
        packet_meta m = first_packet(17, rng);
        m.dport = 53;
        m.src = rng() % 10 != 0 ? v4(set_addr(rng() % n, net) + (net ? rng() % 4 : 0))
                                : v4((192u << 24) | (rng() & 0xffffff));
        out.push_back(m);
    }
    return out;
}

std::vector<packet_meta> packets(uint32_t n, bool slash24, std::mt19937& rng) {
    std::vector<packet_meta> out;
    for (uint32_t k = 0; k < n_packets; ++k) {
        packet_meta m = first_packet(6, rng);
        if (rng() % 10 != 0) { // hit rule i
            uint32_t i = rng() % n;
            m.src = v4(rule_src(i, slash24) + (slash24 ? rng() % 256 : 0));
            m.dport = rule_port(i);
        } else { // miss: a source no rule has
            m.src = v4((192u << 24) | (rng() & 0xffffff));
            m.dport = uint16_t(rng());
        }
        out.push_back(m);
    }
    return out;
}

spread measure(const classifier& cls, const std::vector<packet_meta>& pkts) {
    std::vector<classify_input> in(pkts.size());
    std::vector<classify_result> res(burst);
    std::vector<limit_bucket> buckets(cls.limit_count());
    classify_worker w{buckets, 0};
    std::vector<double> per_packet;
    uint64_t sink = 0;
    for (int rep = 0; rep < reps + 1; ++rep) {
        for (size_t off = 0; off + burst <= pkts.size(); off += burst) {
            uint64_t t0 = ticks();
            cls.classify_burst(std::span(pkts).subspan(off, burst), std::span(in).subspan(off, burst), w,
                               res);
            uint64_t t1 = ticks();
            sink += res[0].terminal;
            if (rep > 0) per_packet.push_back(double(t1 - t0) / burst); // rep 0 warms up
        }
    }
    if (sink == 42) std::puts("");
    return summarise(std::move(per_packet));
}

} // namespace

int main(int argc, char** argv) {
    uint32_t max_rules = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 10)) : 100000;
    set_table sets;
    std::vector<port_binding> ports{{"eth0", 0}, {"eth1", 1}};
    double base[2][2] = {}, at10k[2][2] = {};
    for (bool slash24 : {false, true}) {
        for (bool ct_first : {false, true}) {
            for (uint32_t n : {1u, 1000u, 10000u, 100000u}) {
                if (n > max_rules) continue;
                ruleset rs = make(n, slash24, ct_first);
                auto t0 = std::chrono::steady_clock::now();
                compile_result cr = compile(rs, hook::forward, sets, ports);
                auto t1 = std::chrono::steady_clock::now();
                if (!cr.ok()) {
                    std::fprintf(stderr, "compile: %s\n", cr.error.c_str());
                    return 1;
                }
                std::mt19937 rng(n);
                auto pkts = packets(n, slash24, rng);
                spread f = measure(*cr.cls, pkts);
                if (n == 1) base[slash24][ct_first] = f.median;
                if (n == 10000) at10k[slash24][ct_first] = f.median;
                std::printf("{\"bench\":\"classifier\",\"rules\":%u,\"sources\":\"/%d\","
                            "\"ctstate_rule_first\":%s,\"unit\":\"%s\",\"median\":%.1f,"
                            "\"p10\":%.1f,\"p90\":%.1f,\"compile_ms\":%.1f,\"bytes\":%zu}\n",
                            n, slash24 ? 24 : 32, ct_first ? "true" : "false", tick_unit, f.median,
                            f.p10, f.p90,
                            std::chrono::duration<double, std::milli>(t1 - t0).count(),
                            cr.cls->memory_bytes());
                std::fflush(stdout);
            }
        }
    }
    uint32_t max_elements = argc > 2 ? uint32_t(std::strtoul(argv[2], nullptr, 10)) : 1000000;
    for (bool net : {false, true}) {
        double one = 0;
        for (uint32_t n : {1u, 1000u, 100000u, 1000000u}) {
            if (n > max_elements) continue;
            set_table big;
            auto t0 = std::chrono::steady_clock::now();
            if (auto e = restore_ipset(big, set_text(n, net), "bench")) {
                std::fprintf(stderr, "set: %s\n", e->to_string().c_str());
                return 1;
            }
            big.collect_garbage();
            auto t1 = std::chrono::steady_clock::now();
            compile_result cr = compile(set_rule(), hook::forward, big, ports);
            if (!cr.ok()) {
                std::fprintf(stderr, "compile: %s\n", cr.error.c_str());
                return 1;
            }
            std::mt19937 rng(n + 7);
            spread f = measure(*cr.cls, set_packets(n, net, rng));
            if (n == 1) one = f.median;
            std::printf("{\"bench\":\"set_match\",\"type\":\"%s\",\"elements\":%u,\"unit\":\"%s\","
                        "\"median\":%.1f,\"p10\":%.1f,\"p90\":%.1f,\"load_ms\":%.1f,\"set_bytes\":%zu%s}\n",
                        net ? "hash:net" : "hash:ip", n, tick_unit, f.median, f.p10, f.p90,
                        std::chrono::duration<double, std::milli>(t1 - t0).count(),
                        big.find("big")->memory_bytes(),
                        n == 1000000 ? (",\"ratio_vs_1\":" + std::to_string(f.median / one)).c_str() : "");
            std::fflush(stdout);
        }
    }
    if (max_rules >= 10000)
        for (int s = 0; s < 2; ++s)
            for (int c = 0; c < 2; ++c)
                std::printf("{\"bench\":\"classifier_ratio\",\"sources\":\"/%d\","
                            "\"ctstate_rule_first\":%s,\"ratio_10k_vs_1\":%.2f}\n",
                            s ? 24 : 32, c ? "true" : "false", at10k[s][c] / base[s][c]);
    return 0;
}
