// Fuzz target for lib/classifier.cpp, checked against the reference evaluator
// (lib/rule_eval.cpp): the input bytes are decoded into a random filter table (user chains
// that jump and go to each other without loops, CIDRs with negations, protocols, port
// ranges, multiport, icmp types, tcp flags, ctstate, interfaces with wildcards, sets, mac,
// statistic, limit, LOG/NFLOG/REJECT/RETURN) and a handful of packets with their conntrack
// state, ports and MAC; each packet is classified by the compiled classifier and by
// `evaluate`, and any difference in verdict, reject kind, policy flag, terminating rule or
// the list of matched rules traps.
//
// The generator below is also the differential test of tests/unit/classifier_test.cpp,
// which includes this file with SLUICE_CLASSIFIER_FUZZ_NO_MAIN defined and feeds it a
// seeded PRNG instead of fuzzer bytes.
//
// Seeds: tests/fuzz/corpus/classifier/ (written by the DISABLED_write_fuzz_corpus test in
// tests/unit/classifier_test.cpp).
#include "classifier.hpp"
#include "ipset_parser.hpp"
#include "rule_eval.hpp"
#include "ruleset.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sluice::cls_fuzz {

// The ports every generated table is compiled against.
inline const std::vector<port_binding>& test_ports() {
    static const std::vector<port_binding> p{{"eth0", 0}, {"eth1", 1}, {"tap1", 2},
                                             {"tap2", 3}, {"tapx", 4}, {"cali12", 7}};
    return p;
}
inline std::string_view port_name(uint8_t idx) {
    for (const auto& p : test_ports())
        if (p.index == idx) return p.name;
    return {};
}
inline const uint8_t port_choices[] = {0, 1, 2, 3, 4, 7, port_none, port_none};

inline constexpr std::array<uint8_t, 6> mac_pool[3] = {
    {0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}, {0x00, 0x00, 0x5e, 0x00, 0x53, 0x02},
    {0xfa, 0x16, 0x3e, 0x4e, 0x7a, 0x0e}};

// Addresses are drawn from a small pool so that rules and packets meet.
inline ip_addr pool_addr(bool v4, uint32_t pick) {
    ip_addr a{};
    if (v4) {
        a.b[10] = a.b[11] = 0xff;
        static const uint8_t bases[4][2] = {{10, 0}, {192, 0}, {198, 51}, {10, 1}};
        a.b[12] = bases[pick & 3][0];
        a.b[13] = bases[pick & 3][1];
        a.b[14] = uint8_t((pick >> 2) & 3);
        a.b[15] = uint8_t((pick >> 4) & 15);
    } else {
        a.b[0] = 0x20;
        a.b[1] = 0x01;
        a.b[2] = 0x0d;
        a.b[3] = 0xb8;
        a.b[5] = uint8_t(pick & 3);
        a.b[7] = uint8_t((pick >> 2) & 3);
        a.b[15] = uint8_t((pick >> 4) & 15);
    }
    return a;
}

inline std::string addr_text(bool v4, const ip_addr& a) {
    char buf[64];
    if (v4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.b[12], a.b[13], a.b[14], a.b[15]);
    } else {
        std::snprintf(buf, sizeof buf, "2001:db8:%x:%x::%x", a.b[5], a.b[7], a.b[15]);
    }
    return buf;
}

// The sets every generated table may use (the same for every input: built once).
struct fixture_sets {
    set_table v4, v6;
};

inline std::string set_restore_text(bool v4) {
    std::string fam = v4 ? "" : " family inet6";
    std::string t;
    t += "create s_ip hash:ip" + fam + "\n";
    t += "create s_net hash:net" + fam + "\n";
    t += "create s_ipport hash:ip,port" + fam + "\n";
    t += "create s_netif hash:net,iface" + fam + "\n";
    t += "create s_bport bitmap:port range 0-1023\n";
    for (uint32_t i = 0; i < 64; i += 3) t += "add s_ip " + addr_text(v4, pool_addr(v4, i)) + "\n";
    for (uint32_t i = 1; i < 64; i += 5) {
        std::string a = addr_text(v4, pool_addr(v4, i));
        t += "add s_net " + a + (v4 ? "/30" : "/126") + "\n";
        t += "add s_ipport " + a + ",tcp:80\n";
        t += "add s_ipport " + a + ",udp:53\n";
        t += "add s_netif " + a + (v4 ? "/28" : "/124") + ",tap1\n";
        t += "add s_netif " + a + (v4 ? "/24" : "/120") + ",eth0\n";
    }
    t += "add s_bport 22\nadd s_bport 80\nadd s_bport 100-200\n";
    t += "create s_list list:set\nadd s_list s_ip\nadd s_list s_bport\n";
    return t;
}

inline const fixture_sets& sets() {
    static const std::unique_ptr<fixture_sets> s = [] {
        auto f = std::make_unique<fixture_sets>();
        if (restore_ipset(f->v4, set_restore_text(true), "v4") ||
            restore_ipset(f->v6, set_restore_text(false), "v6"))
            __builtin_trap();
        return f;
    }();
    return *s;
}
inline const char* const set_names[] = {"s_ip", "s_net", "s_ipport", "s_netif", "s_bport",
                                        "s_list"};

// A packet and what the caller knows about it.
struct test_packet {
    packet_meta m{};
    classify_input in;
    std::optional<std::array<uint8_t, 6>> mac;
};

// Random choices; `R` has `uint32_t next(uint32_t bound)` returning 0..bound-1.
template <class R>
struct generator {
    R& r;
    bool v4 = true;

    uint32_t pick(uint32_t n) { return n ? r.next(n) : 0; }
    // "u3", "u4", ... (appended, not operator+: GCC 12 -O3 -Wrestrict false positive)
    static std::string chain_name(uint32_t i) {
        std::string s("u");
        s.append(std::to_string(i));
        return s;
    }
    bool chance(uint32_t percent) { return pick(100) < percent; }

    cidr gen_cidr() {
        cidr c;
        c.v4 = v4;
        ip_addr a = pool_addr(v4, pick(64));
        static const uint8_t lens4[] = {0, 8, 16, 24, 26, 28, 30, 32, 32, 32, 31, 12};
        static const uint8_t lens6[] = {0, 32, 48, 64, 120, 124, 126, 128, 128, 128, 127, 16};
        c.prefix = v4 ? lens4[pick(12)] : lens6[pick(12)];
        if (chance(5)) c.prefix = uint8_t(pick(v4 ? 33 : 129));
        unsigned start = v4 ? 12 : 0, bits = c.prefix;
        for (unsigned i = 0; i < 16; ++i) {
            if (i < start) {
                c.addr[i] = a.b[i]; // the IPv4-mapped prefix
                continue;
            }
            unsigned keep = bits >= 8 ? 0xff : (0xff00u >> bits) & 0xff;
            c.addr[i] = uint8_t(a.b[i] & keep);
            bits = bits >= 8 ? bits - 8 : 0;
        }
        return c;
    }

    uint16_t gen_port() {
        static const uint16_t pool[] = {0, 22, 53, 80, 443, 1000, 1023, 1024, 8080, 65535};
        return chance(80) ? pool[pick(10)] : uint16_t(pick(65536));
    }
    port_range gen_range() {
        uint16_t a = gen_port();
        if (chance(60)) return {a, a};
        uint16_t b = gen_port();
        return {std::min(a, b), std::max(a, b)};
    }

    iface_match gen_iface() {
        static const char* const names[] = {"eth0", "eth1", "tap1", "tap2", "tapx", "cali12",
                                            "tap", "eth", "cali", "", "wlan0", "tap1x"};
        iface_match m;
        m.name = names[pick(12)];
        m.wildcard = m.name.empty() || chance(35);
        m.negate = chance(20);
        return m;
    }

    uint8_t gen_proto() {
        static const uint8_t v4p[] = {6, 17, 1, 132, 47, 6, 17};
        static const uint8_t v6p[] = {6, 17, 58, 132, 47, 6, 17};
        return v4 ? v4p[pick(7)] : v6p[pick(7)];
    }

    rule gen_rule(uint32_t ci, uint32_t n_chains, bool in_input, bool in_output) {
        rule ru;
        if (chance(45)) ru.src = addr_match{gen_cidr(), chance(15)};
        if (chance(35)) ru.dst = addr_match{gen_cidr(), chance(15)};
        if (!in_output && chance(20)) ru.in = gen_iface();
        if (!in_input && chance(20)) ru.out = gen_iface();
        uint8_t proto = 0;
        if (chance(55)) {
            proto = gen_proto();
            ru.proto = proto_match{proto, chance(8)};
        }
        if (v4 && chance(5)) ru.fragment = chance(50);
        bool pos_proto = ru.proto && !ru.proto->negate;
        uint32_t nm = pick(4);
        for (uint32_t k = 0; k < nm; ++k) {
            switch (pick(10)) {
            case 0:
            case 1:
                if (pos_proto && (proto == 6 || proto == 17 || proto == 132)) {
                    tcpudp_match t;
                    t.proto = proto;
                    if (chance(40)) {
                        t.sport = gen_range();
                        t.sport_negate = chance(15);
                    }
                    if (chance(70)) {
                        t.dport = gen_range();
                        t.dport_negate = chance(15);
                    }
                    if (proto == 6 && chance(30)) {
                        uint8_t mask = uint8_t(pick(256)), comp = uint8_t(pick(256) & mask);
                        if (chance(50)) {
                            mask = 0x17;
                            comp = 0x02;
                        }
                        t.flags = std::make_pair(mask, comp);
                        t.flags_negate = chance(25);
                    }
                    ru.matches.push_back(t);
                }
                break;
            case 2:
                if (pos_proto && (proto == 6 || proto == 17 || proto == 132)) {
                    multiport_match mp;
                    mp.dir = multiport_dir(pick(3));
                    uint32_t np = 1 + pick(5);
                    for (uint32_t i = 0; i < np; ++i) mp.ports.push_back(gen_range());
                    mp.negate = chance(20);
                    ru.matches.push_back(mp);
                }
                break;
            case 3:
                if (pos_proto && (proto == 1 || proto == 58)) {
                    icmp_match im;
                    im.v6 = !v4;
                    static const uint8_t types[] = {0, 3, 8, 11, 128, 129, 1, 255};
                    im.type = types[pick(8)];
                    if (chance(50)) {
                        im.code_lo = im.code_hi = uint8_t(pick(5));
                    } else if (chance(30)) {
                        im.code_lo = uint8_t(pick(3));
                        im.code_hi = uint8_t(im.code_lo + pick(4));
                    }
                    im.negate = chance(20);
                    ru.matches.push_back(im);
                }
                break;
            case 4:
            case 5: {
                ctstate_match ct;
                static const uint8_t masks[] = {2, 6, 8, 1, 9, 0x4f, 64, 4};
                ct.mask = chance(80) ? masks[pick(8)] : uint8_t(pick(0x50) & ct_state_all);
                if (ct.mask == 0) ct.mask = 2;
                ct.negate = chance(20);
                ct.state_module = chance(20);
                ru.matches.push_back(ct);
                break;
            }
            case 6: {
                set_match sm;
                sm.name = set_names[pick(6)];
                static const char* const dims[] = {"src", "dst", "src,dst", "dst,src", "src,src",
                                                   "dst,dst", "src,dst,src"};
                sm.dims = parse_dim_flags(dims[pick(7)]).value_or(dim_flags{});
                sm.negate = chance(20);
                ru.matches.push_back(sm);
                break;
            }
            case 7:
                if (in_input || chance(30)) {
                    mac_match mm;
                    mm.addr = mac_pool[pick(3)];
                    mm.negate = chance(20);
                    ru.matches.push_back(mm);
                } else {
                    ru.matches.push_back(comment_match{std::to_string(pick(100))});
                }
                break;
            case 8: {
                statistic_match st;
                st.threshold = chance(30) ? 0x40000000u : pick(0x80000000u);
                st.negate = chance(20);
                ru.matches.push_back(st);
                break;
            }
            case 9: {
                limit_match lm;
                lm.period = 1 + pick(100000);
                lm.burst = 1 + pick(4);
                ru.matches.push_back(lm);
                break;
            }
            }
        }
        // Target. User chains are numbered from 3; jumps only go to later chains (no loops).
        uint32_t first_target = std::max<uint32_t>(3, ci + 1);
        bool can_jump = first_target < n_chains;
        uint32_t t = pick(100);
        if (t < 14) ru.target.kind = target_kind::accept;
        else if (t < 28) ru.target.kind = target_kind::drop;
        else if (t < 33) {
            ru.target.kind = target_kind::reject;
            ru.target.reject = reject_kind(pick(14));
        } else if (t < 43) ru.target.kind = target_kind::return_;
        else if (t < 48) ru.target.kind = target_kind::log;
        else if (t < 51) ru.target.kind = target_kind::nflog;
        else if (t < 61) ru.target.kind = target_kind::none;
        else if (can_jump) {
            ru.target.kind = t < 85 ? target_kind::jump : target_kind::go_to;
            ru.target.chain = chain_name(first_target + pick(n_chains - first_target));
        } else ru.target.kind = target_kind::drop;
        return ru;
    }

    // A table. Some chains are long and share fields so that the indexes get used.
    ruleset gen_ruleset(uint32_t max_rules) {
        ruleset rs = ruleset::empty(v4 ? ip_family::ipv4 : ip_family::ipv6);
        for (auto& c : rs.chains) c.policy = chance(50) ? chain_policy::accept : chain_policy::drop;
        uint32_t n_user = pick(6);
        uint32_t n_chains = 3 + n_user;
        for (uint32_t i = 3; i < n_chains; ++i) {
            chain c;
            c.name = chain_name(i);
            rs.chains.push_back(c);
        }
        for (uint32_t ci = 0; ci < n_chains; ++ci) {
            uint32_t n = chance(30) ? pick(max_rules + 1) : pick(std::min<uint32_t>(max_rules, 10) + 1);
            for (uint32_t k = 0; k < n; ++k)
                rs.chains[ci].rules.push_back(gen_rule(ci, n_chains, ci == 0, ci == 2));
        }
        return rs;
    }

    test_packet gen_packet(const ruleset& rs) {
        test_packet p;
        packet_meta& m = p.m;
        m.l3 = v4 ? l3_kind::ipv4 : l3_kind::ipv6;
        if (chance(2)) m.l3 = v4 ? l3_kind::ipv6 : l3_kind::ipv4;
        // Bias: take addresses and ports from a random rule now and then.
        const rule* like = nullptr;
        if (chance(60)) {
            const chain& c = rs.chains[pick(uint32_t(rs.chains.size()))];
            if (!c.rules.empty()) like = &c.rules[pick(uint32_t(c.rules.size()))];
        }
        m.src = pool_addr(v4, pick(64));
        m.dst = pool_addr(v4, pick(64));
        if (like && like->src && chance(70)) std::memcpy(m.src.b, like->src->net.addr.data(), 16);
        if (like && like->dst && chance(70)) std::memcpy(m.dst.b, like->dst->net.addr.data(), 16);
        if (chance(20)) m.src.b[15] = uint8_t(m.src.b[15] + pick(3));
        if (chance(3)) m.src.b[pick(16)] ^= uint8_t(1u << pick(8));
        m.l4_proto = like && like->proto && chance(70) ? like->proto->proto : gen_proto();
        if (chance(3)) m.l4_proto = uint8_t(pick(256));
        m.sport = gen_port();
        m.dport = gen_port();
        if (like)
            for (const match& mt : like->matches)
                if (const auto* t = std::get_if<tcpudp_match>(&mt); t && chance(70)) {
                    if (t->dport) m.dport = uint16_t(t->dport->lo + pick(uint32_t(t->dport->hi - t->dport->lo) + 1));
                    if (t->sport) m.sport = uint16_t(t->sport->lo + pick(uint32_t(t->sport->hi - t->sport->lo) + 1));
                }
        m.tcp_flags = chance(50) ? uint8_t(pick(256)) : uint8_t(chance(50) ? 0x02 : 0x10);
        static const uint8_t types[] = {0, 3, 8, 11, 128, 129, 1, 255};
        m.icmp_type = chance(70) ? types[pick(8)] : uint8_t(pick(256));
        m.icmp_code = uint8_t(chance(70) ? pick(5) : pick(256));
        if (m.l4_proto == 1 || m.l4_proto == 58) m.dport = uint16_t(m.icmp_type << 8 | m.icmp_code);
        uint32_t f = pick(20);
        m.frag_flags = f == 0 ? frag::is_fragment : f == 1 ? uint8_t(frag::is_fragment | frag::first | frag::more)
                                                          : frag::first;
        if (f == 0) m.frag_offset = 8;
        static const uint8_t cts[] = {1, 2, 4, 8, 64, 8, 2, 8};
        p.in.ct = chance(97) ? cts[pick(8)] : uint8_t(pick(256));
        p.in.in_port = port_choices[pick(8)];
        p.in.out_port = port_choices[pick(8)];
        p.in.random = chance(50) ? pick(0x10000) << 16 : pick(0xffffffffu);
        if (chance(80)) p.mac = mac_pool[pick(3)];
        return p;
    }
};

// Map limit matches to the classifier's bucket numbers (compile order: chains, rules,
// matches).
inline std::map<const limit_match*, uint32_t> limit_numbers(const ruleset& rs) {
    std::map<const limit_match*, uint32_t> out;
    uint32_t n = 0;
    for (const chain& c : rs.chains)
        for (const rule& r : c.rules)
            for (const match& m : r.matches)
                if (const auto* l = std::get_if<limit_match>(&m)) out[l] = n++;
    return out;
}

struct diff_stats {
    uint64_t cases = 0, matched_any = 0, by_rule = 0, rejects = 0, bypass_checked = 0;
};

// One packet through both; returns "" when they agree, else a description.
inline std::string compare_one(const ruleset& rs, hook h, const classifier& cls,
                               const set_table& st, const test_packet& p,
                               std::vector<limit_bucket>& cls_buckets,
                               std::vector<limit_bucket>& ref_buckets,
                               const std::map<const limit_match*, uint32_t>& limit_no,
                               uint64_t now_ns, diff_stats& stats) {
    packet_context ctx;
    ctx.ct = p.in.ct;
    ctx.in_iface = port_name(p.in.in_port);
    ctx.out_iface = port_name(p.in.out_port);
    ctx.src_mac = p.mac;
    uint32_t draw = p.in.random;
    eval_hooks hooks;
    hooks.sets = [&](std::string_view name, const packet_meta& pkt, dim_flags dims,
                     const packet_context& c) {
        const ip_set* s = st.find(name);
        return s ? s->match(pkt, dims, c.in_iface, c.out_iface) : false;
    };
    hooks.random = [&]() {
        uint32_t v = draw;
        draw = statistic_draw_next(draw);
        return v;
    };
    hooks.limit = [&](rule_ref, const limit_match& lm) {
        return limit_take(ref_buckets[limit_no.at(&lm)], lm, now_ns);
    };
    eval_result ref = evaluate(rs, builtin_chain_names[size_t(h)], p.m, ctx, hooks);

    classify_input in = p.in;
    in.src_mac = p.mac ? p.mac->data() : nullptr;
    classify_worker w{cls_buckets, now_ns};
    classify_result got;
    cls.classify(p.m, in, w, got);

    ++stats.cases;
    if (!ref.matched.empty()) ++stats.matched_any;
    if (!ref.by_policy) ++stats.by_rule;
    if (ref.v == verdict::reject) ++stats.rejects;

    std::string why;
    if (got.v != ref.v) why += " verdict";
    if (ref.v == verdict::reject && got.reject != ref.reject) why += " reject-kind";
    if (bool(got.by_policy) != ref.by_policy) why += " by_policy";
    if (got.n_matched != ref.matched.size()) why += " n_matched";
    for (size_t i = 0; i < ref.matched.size() && i < got.n_matched && i < max_recorded_matches; ++i)
        if (got.matched[i] != cls.global_index(ref.matched[i])) {
            why += " matched[" + std::to_string(i) + "]";
            break;
        }
    if (!ref.by_policy && !ref.matched.empty() && got.terminal != cls.global_index(ref.matched.back()))
        why += " terminal";
    if (ref.by_policy && got.terminal != no_rule) why += " terminal";
    if (cls.established_bypass_safe() && p.m.l3 == (rs.family == ip_family::ipv4 ? l3_kind::ipv4 : l3_kind::ipv6) &&
        ctx.ct == ct_bit(ct_state::established)) {
        ++stats.bypass_checked;
        if (ref.v != verdict::accept) why += " bypass-unsafe";
    }
    if (why.empty()) return why;
    std::string d = "mismatch:" + why + "\n  reference: v=" + std::to_string(int(ref.v)) +
                    " by_policy=" + std::to_string(ref.by_policy) + " matched=";
    for (auto m : ref.matched) d += std::to_string(cls.global_index(m)) + ",";
    d += "\n  classifier: v=" + std::to_string(int(got.v)) + " by_policy=" +
         std::to_string(got.by_policy) + " terminal=" + std::to_string(got.terminal) + " matched=";
    for (uint32_t i = 0; i < got.n_matched && i < max_recorded_matches; ++i)
        d += std::to_string(got.matched[i]) + ",";
    d += "\n  packet: l3=" + std::to_string(int(p.m.l3)) + " proto=" + std::to_string(p.m.l4_proto) +
         " src=" + addr_text(rs.family == ip_family::ipv4, p.m.src) +
         " dst=" + addr_text(rs.family == ip_family::ipv4, p.m.dst) + " sport=" +
         std::to_string(p.m.sport) + " dport=" + std::to_string(p.m.dport) + " flags=" +
         std::to_string(p.m.tcp_flags) + " frag=" + std::to_string(p.m.frag_flags) +
         " icmp=" + std::to_string(p.m.icmp_type) + "/" + std::to_string(p.m.icmp_code) +
         " ct=" + std::to_string(p.in.ct) + " in=" + std::string(ctx.in_iface) + " out=" +
         std::string(ctx.out_iface) + " mac=" + (p.mac ? std::to_string((*p.mac)[5]) : "none") +
         " random=" + std::to_string(p.in.random) + "\n  hook " +
         std::string(builtin_chain_names[size_t(h)]) + " of:\n" + save(rs);
    return d;
}

// Generate one table and `n_packets` packets with `g`, compare for every hook. Returns
// the first mismatch ("" if none). Tables check_ruleset refuses are skipped.
template <class R>
std::string run_case(generator<R>& g, uint32_t max_rules, uint32_t n_packets, diff_stats& stats) {
    ruleset rs = g.gen_ruleset(max_rules);
    if (check_ruleset(rs)) return {};
    const set_table& st = rs.family == ip_family::ipv4 ? sets().v4 : sets().v6;
    std::vector<test_packet> pkts;
    for (uint32_t i = 0; i < n_packets; ++i) pkts.push_back(g.gen_packet(rs));
    auto limit_no = limit_numbers(rs);
    for (hook h : {hook::input, hook::forward, hook::output}) {
        compile_result cr = compile(rs, h, st, test_ports());
        if (!cr.ok()) return "compile failed: " + cr.error + "\n" + save(rs);
        std::vector<limit_bucket> cb(cr.cls->limit_count()), rb(cr.cls->limit_count());
        uint64_t now = 1'000'000'000;
        cr.cls->init_limits(cb, now);
        cr.cls->init_limits(rb, now);
        for (const test_packet& p : pkts) {
            now += g.pick(3) * 20'000'000ull;
            std::string d = compare_one(rs, h, *cr.cls, st, p, cb, rb, limit_no, now, stats);
            if (!d.empty()) return d;
        }
    }
    return {};
}

// Choices taken from fuzzer bytes; past the end, zeros.
struct byte_source {
    const uint8_t* data;
    size_t size;
    size_t pos = 0;
    uint32_t next(uint32_t bound) {
        uint32_t v = 0;
        int bytes = bound <= 0x100 ? 1 : bound <= 0x10000 ? 2 : 4;
        for (int i = 0; i < bytes; ++i) v = (v << 8) | (pos < size ? data[pos++] : 0);
        return bound ? v % bound : 0;
    }
};

} // namespace sluice::cls_fuzz

#ifndef SLUICE_CLASSIFIER_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace sluice::cls_fuzz;
    if (size < 2) return 0;
    byte_source src{data, size};
    generator<byte_source> g{src};
    g.v4 = (data[0] & 1) == 0;
    src.pos = 1;
    diff_stats stats;
    if (!run_case(g, 16, 8, stats).empty()) __builtin_trap();
    return 0;
}
#endif
