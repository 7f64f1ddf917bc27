// Tests of lib/classifier: tables of (table text, packet, context, expected verdict and
// matched rules), the Calico felix table, the established-bypass analysis, compile errors,
// large indexed chains against the reference evaluator, and the randomized differential
// test (the generator of tests/fuzz/classifier_fuzz.cpp fed by a seeded PRNG) comparing
// verdict, policy flag, terminating rule and the matched-rule list with rule_eval for
// many thousands of (table, hook, packet) cases.
#define SLUICE_CLASSIFIER_FUZZ_NO_MAIN
#include "../fuzz/classifier_fuzz.cpp"

#include "classifier.hpp"
#include "ipset_parser.hpp"
#include "rule_eval.hpp"
#include "ruleset.hpp"
#include "ruleset_parser.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace sluice;
using namespace sluice::cls_fuzz;

namespace {

ruleset parse_ok(std::string_view text, ip_family fam = ip_family::ipv4) {
    auto r = parse_iptables_save(text, "rules", fam);
    EXPECT_TRUE(r.ok()) << r.error.to_string();
    return r.ok() ? *r.value : ruleset::empty(fam);
}

std::string wrap(std::string_view rules, std::string_view fwd_policy = "ACCEPT",
                 std::string_view chains = ":a - [0:0]\n:b - [0:0]\n") {
    return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD " + std::string(fwd_policy) +
           " [0:0]\n:OUTPUT ACCEPT [0:0]\n" + std::string(chains) + std::string(rules) +
           "COMMIT\n";
}

ip_addr v4addr(const char* s) {
    ip_addr a{};
    a.b[10] = a.b[11] = 0xff;
    if (inet_pton(AF_INET, s, a.b + 12) != 1) ADD_FAILURE() << s;
    return a;
}
ip_addr v6addr(const char* s) {
    ip_addr a{};
    if (inet_pton(AF_INET6, s, a.b) != 1) ADD_FAILURE() << s;
    return a;
}

// A packet_meta built field by field (the classifier reads nothing else).
struct pkt {
    packet_meta m{};
    pkt(const char* src, const char* dst, uint8_t proto = 6, uint16_t sport = 40000,
        uint16_t dport = 80) {
        bool v6 = std::string_view(src).find(':') != std::string_view::npos;
        m.l3 = v6 ? l3_kind::ipv6 : l3_kind::ipv4;
        m.src = v6 ? v6addr(src) : v4addr(src);
        m.dst = v6 ? v6addr(dst) : v4addr(dst);
        m.l4_proto = proto;
        m.sport = sport;
        m.dport = dport;
        m.frag_flags = frag::first;
        m.tcp_flags = tcp_flag::syn;
    }
    pkt& icmp(uint8_t type, uint8_t code) {
        m.icmp_type = type;
        m.icmp_code = code;
        m.sport = 0;
        m.dport = uint16_t(type << 8 | code);
        return *this;
    }
    pkt& flags(uint8_t f) {
        m.tcp_flags = f;
        return *this;
    }
    pkt& later_fragment() {
        m.frag_flags = frag::is_fragment;
        m.frag_offset = 1480;
        return *this;
    }
};

std::vector<port_binding> ports() {
    return {{"eth0", 0}, {"eth1", 1}, {"tap7f470881-51", 2}, {"tap9", 3}};
}
uint8_t port_of(std::string_view name) {
    for (const auto& p : ports())
        if (p.name == name) return p.index;
    return port_none;
}

struct ctx_in {
    uint8_t ct = ct_bit(ct_state::new_);
    std::string_view in = "eth0", out = "eth1";
    std::optional<std::array<uint8_t, 6>> mac;
};

struct outcome {
    verdict v;
    bool by_policy;
    std::vector<rule_ref> matched;
};

// Classify with the compiled form, check it against the reference, return it.
outcome run_with(const classifier& cls, const ruleset& rs, hook h, const packet_meta& m,
                 const ctx_in& c, const set_table& st) {
    classify_input in;
    in.ct = c.ct;
    in.in_port = port_of(c.in);
    in.out_port = port_of(c.out);
    in.src_mac = c.mac ? c.mac->data() : nullptr;
    classify_worker w;
    classify_result r;
    cls.classify(m, in, w, r);
    outcome o{r.v, bool(r.by_policy), {}};
    for (uint32_t i = 0; i < r.n_matched && i < max_recorded_matches; ++i)
        o.matched.push_back(cls.rule_at(r.matched[i]));

    packet_context ctx;
    ctx.ct = c.ct;
    ctx.in_iface = c.in;
    ctx.out_iface = c.out;
    ctx.src_mac = c.mac;
    eval_hooks hooks;
    hooks.sets = [&](std::string_view name, const packet_meta& p, dim_flags d,
                     const packet_context& x) {
        const ip_set* s = st.find(name);
        return s && s->match(p, d, x.in_iface, x.out_iface);
    };
    eval_result ref = evaluate(rs, builtin_chain_names[size_t(h)], m, ctx, hooks);
    EXPECT_EQ(ref.v, r.v);
    EXPECT_EQ(ref.by_policy, bool(r.by_policy));
    EXPECT_EQ(ref.matched, o.matched);
    return o;
}

outcome run(const ruleset& rs, hook h, const packet_meta& m, const ctx_in& c,
            const set_table& st) {
    compile_result cr = compile(rs, h, st, ports());
    EXPECT_TRUE(cr.ok()) << cr.error;
    if (!cr.ok()) return {verdict::drop, false, {}};
    return run_with(*cr.cls, rs, h, m, c, st);
}

const set_table& no_sets() {
    static set_table t;
    return t;
}

} // namespace

// ---- tables -------------------------------------------------------------------------------

struct row {
    const char* what;
    pkt p;
    ctx_in c;
    verdict v;
    size_t n_matched;
};

TEST(classifier, basic_table) {
    ruleset rs = parse_ok(wrap("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                               "-A FORWARD -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT\n"
                               "-A FORWARD -s 192.0.2.7/32 -j LOG --log-prefix \"seven \"\n"
                               "-A FORWARD -p udp -m multiport --dports 53,5000:5010 -j a\n"
                               "-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT\n"
                               "-A FORWARD -f -j DROP\n"
                               "-A FORWARD ! -i eth+ -j REJECT --reject-with icmp-host-prohibited\n"
                               "-A FORWARD -p tcp --tcp-flags SYN,ACK SYN -j b\n"
                               "-A a -d 198.51.100.0/24 -j RETURN\n"
                               "-A a -j ACCEPT\n"
                               "-A b -m statistic --mode random --probability 0 -j ACCEPT\n",
                               "DROP"));
    ctx_in est;
    est.ct = ct_bit(ct_state::established);
    ctx_in from_tap;
    from_tap.in = "tap9";
    const row rows[] = {
        {"established", pkt("203.0.113.1", "198.51.100.2"), est, verdict::accept, 1},
        {"ssh from doc net", pkt("192.0.2.9", "198.51.100.2", 6, 1000, 22), {}, verdict::accept, 1},
        {"ssh from .7 logs first? no: ACCEPT comes first", pkt("192.0.2.7", "198.51.100.2", 6, 1000, 22), {}, verdict::accept, 1},
        {".7 to 80 logs, then policy", pkt("192.0.2.7", "198.51.100.2", 6, 1000, 80).flags(tcp_flag::ack), {}, verdict::drop, 1},
        {"dns to a, returns, policy", pkt("203.0.113.1", "198.51.100.2", 17, 1000, 53), {}, verdict::drop, 2},
        {"dns elsewhere accepted in a", pkt("203.0.113.1", "203.0.113.2", 17, 1000, 5005), {}, verdict::accept, 2},
        {"ping", pkt("203.0.113.1", "198.51.100.2", 1).icmp(8, 0), {}, verdict::accept, 1},
        {"pong: policy", pkt("203.0.113.1", "198.51.100.2", 1).icmp(0, 0), {}, verdict::drop, 0},
        {"later fragment of udp 53 skips multiport, hits -f", pkt("203.0.113.1", "198.51.100.2", 17, 1000, 53).later_fragment(), {}, verdict::drop, 1},
        {"from tap: reject", pkt("203.0.113.1", "198.51.100.2", 6, 1, 9), from_tap, verdict::reject, 1},
        {"syn to b, statistic 0 never", pkt("203.0.113.1", "198.51.100.2", 6, 1, 9), {}, verdict::drop, 1},
    };
    for (const row& r : rows) {
        SCOPED_TRACE(r.what);
        outcome o = run(rs, hook::forward, r.p.m, r.c, no_sets());
        EXPECT_EQ(o.v, r.v);
        EXPECT_EQ(o.matched.size(), r.n_matched);
    }
}

TEST(classifier, ipv6_table) {
    ruleset rs = parse_ok(wrap("-A FORWARD -s 2001:db8::/32 -d 2001:db8:1::/48 -p tcp --dport 443 -j ACCEPT\n"
                               "-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n"
                               "-A FORWARD ! -s 2001:db8::/32 -j REJECT --reject-with icmp6-adm-prohibited\n",
                               "DROP"),
                          ip_family::ipv6);
    EXPECT_EQ(run(rs, hook::forward, pkt("2001:db8::1", "2001:db8:1::2", 6, 1, 443).m, {}, no_sets()).v,
              verdict::accept);
    EXPECT_EQ(run(rs, hook::forward, pkt("2001:db8::1", "2001:db8:2::2", 6, 1, 443).m, {}, no_sets()).v,
              verdict::drop);
    EXPECT_EQ(run(rs, hook::forward, pkt("2001:db9::1", "2001:db8:1::2", 58).icmp(128, 0).m, {}, no_sets()).v,
              verdict::accept);
    EXPECT_EQ(run(rs, hook::forward, pkt("2001:db9::1", "2001:db8:1::2", 17).m, {}, no_sets()).v,
              verdict::reject);
    // An IPv4 packet does not traverse an IPv6 table: policy, nothing matched.
    outcome o = run(rs, hook::forward, pkt("192.0.2.1", "198.51.100.1").m, {}, no_sets());
    EXPECT_TRUE(o.by_policy);
    EXPECT_TRUE(o.matched.empty());
}

// The felix fragment of tests/unit/ruleset_test.cpp (Calico's FORWARD path for one
// endpoint), with its set.
const char* const felix_rules = R"(*filter
:INPUT ACCEPT [1200:96000]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [1180:101222]
:felix-FORWARD - [0:0]
:felix-FROM-ENDPOINT - [0:0]
:felix-TO-ENDPOINT - [0:0]
:felix-from-7f470881-51 - [0:0]
:felix-p-_6b340324948a39b-i - [0:0]
:felix-p-_6b340324948a39b-o - [0:0]
:felix-to-7f470881-51 - [0:0]
[10:840] -A FORWARD -m comment --comment "felix:forward-entry" -j felix-FORWARD
-A felix-FORWARD -i tap+ -j felix-FROM-ENDPOINT
-A felix-FORWARD -o tap+ -j felix-TO-ENDPOINT
-A felix-FORWARD -i tap+ -j ACCEPT
-A felix-FORWARD -o tap+ -j ACCEPT
-A felix-FROM-ENDPOINT -i tap7f470881-51 -g felix-from-7f470881-51
-A felix-FROM-ENDPOINT -m comment --comment "From unknown endpoint" -j DROP
-A felix-TO-ENDPOINT -o tap7f470881-51 -g felix-to-7f470881-51
-A felix-TO-ENDPOINT -m comment --comment "To unknown endpoint" -j DROP
-A felix-from-7f470881-51 -m conntrack --ctstate INVALID -j DROP
-A felix-from-7f470881-51 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A felix-from-7f470881-51 -s 10.28.0.40/32 -m mac --mac-source FA:16:3E:4E:7A:0E -g felix-p-_6b340324948a39b-o
-A felix-from-7f470881-51 -m comment --comment "Anti-spoof DROP (endpoint 7f470881-5156-47ce-a67d-b971ef5e5cde):" -j DROP
-A felix-p-_6b340324948a39b-i -p icmp -m set --match-set felix-v4-_6b340324948a39b src -j RETURN
-A felix-p-_6b340324948a39b-i -s 172.18.203.20/32 -p tcp -m multiport --dports 22 -j RETURN
-A felix-p-_6b340324948a39b-i -m comment --comment "Drop if no profiles matched" -j DROP
-A felix-p-_6b340324948a39b-o -j RETURN
-A felix-to-7f470881-51 -m conntrack --ctstate INVALID -j DROP
-A felix-to-7f470881-51 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A felix-to-7f470881-51 -g felix-p-_6b340324948a39b-i
COMMIT
)";

TEST(classifier, felix_table) {
    ruleset rs = parse_ok(felix_rules);
    set_table st;
    ASSERT_FALSE(restore_ipset(st, "create felix-v4-_6b340324948a39b hash:ip\n"
                                   "add felix-v4-_6b340324948a39b 172.18.203.7\n",
                               "felix"));
    const std::array<uint8_t, 6> vm_mac{0xfa, 0x16, 0x3e, 0x4e, 0x7a, 0x0e};
    const std::array<uint8_t, 6> other_mac{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01};
    struct frow {
        const char* what;
        pkt p;
        uint8_t ct;
        const char* in;
        const char* out;
        std::optional<std::array<uint8_t, 6>> mac;
        verdict v;
    };
    const frow rows[] = {
        {"from VM, right mac: returns up to felix-FORWARD, -i tap+ ACCEPT",
         pkt("10.28.0.40", "172.18.203.20"), 8, "tap7f470881-51", "eth0", vm_mac, verdict::accept},
        {"from VM, spoofed source", pkt("10.28.0.41", "172.18.203.20"), 8, "tap7f470881-51", "eth0",
         vm_mac, verdict::drop},
        {"from VM, wrong mac", pkt("10.28.0.40", "172.18.203.20"), 8, "tap7f470881-51", "eth0",
         other_mac, verdict::drop},
        {"from VM, invalid", pkt("10.28.0.40", "172.18.203.20"), 1, "tap7f470881-51", "eth0", vm_mac,
         verdict::drop},
        {"from unknown tap", pkt("10.28.0.40", "172.18.203.20"), 8, "tap9", "eth0", vm_mac, verdict::drop},
        {"to VM, ssh from allowed host", pkt("172.18.203.20", "10.28.0.40", 6, 5000, 22), 8, "eth0",
         "tap7f470881-51", std::nullopt, verdict::accept},
        {"to VM, http from allowed host", pkt("172.18.203.20", "10.28.0.40", 6, 5000, 80), 8, "eth0",
         "tap7f470881-51", std::nullopt, verdict::drop},
        {"to VM, ping from a set member", pkt("172.18.203.7", "10.28.0.40", 1).icmp(8, 0), 8, "eth0",
         "tap7f470881-51", std::nullopt, verdict::accept},
        {"to VM, ping from a stranger", pkt("172.18.203.8", "10.28.0.40", 1).icmp(8, 0), 8, "eth0",
         "tap7f470881-51", std::nullopt, verdict::drop},
        {"to VM, established", pkt("192.0.2.1", "10.28.0.40", 6, 80, 5000), 2, "eth0",
         "tap7f470881-51", std::nullopt, verdict::accept},
        {"neither side a tap: FORWARD policy", pkt("192.0.2.1", "198.51.100.1"), 8, "eth0", "eth1",
         std::nullopt, verdict::drop},
    };
    for (const frow& r : rows) {
        SCOPED_TRACE(r.what);
        ctx_in c;
        c.ct = r.ct;
        c.in = r.in;
        c.out = r.out;
        c.mac = r.mac;
        EXPECT_EQ(run(rs, hook::forward, r.p.m, c, st).v, r.v);
    }
    compile_result cr = compile(rs, hook::forward, st, ports());
    ASSERT_TRUE(cr.ok());
    EXPECT_FALSE(cr.cls->established_bypass_safe()); // established still goes through chains
    // The set is referenced while the classifier lives.
    EXPECT_FALSE(st.destroy("felix-v4-_6b340324948a39b").ok());
    cr.cls.reset();
    EXPECT_TRUE(st.destroy("felix-v4-_6b340324948a39b").ok());
}

TEST(classifier, established_bypass) {
    struct brow {
        const char* rules;
        const char* policy;
        bool safe;
    };
    const brow rows[] = {
        {"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -j DROP\n", "DROP", true},
        {"-A FORWARD -m state --state ESTABLISHED -j ACCEPT\n", "DROP", true},
        {"-A FORWARD -m conntrack --ctstate NEW -j LOG\n-A FORWARD -m conntrack ! --ctstate NEW,INVALID -j ACCEPT\n", "DROP", true},
        {"-A FORWARD -m conntrack --ctstate NEW -s 192.0.2.0/24 -j DROP\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n", "DROP", true},
        {"-A FORWARD -j a\n-A a -m conntrack --ctstate ESTABLISHED -j ACCEPT\n", "DROP", true},
        {"-A FORWARD -j a\n-A a -m conntrack --ctstate ESTABLISHED -j RETURN\n", "ACCEPT", true},
        {"-A FORWARD -j a\n-A a -m conntrack --ctstate ESTABLISHED -j RETURN\n", "DROP", false},
        {"", "ACCEPT", true},
        {"", "DROP", false},
        {"-A FORWARD -s 192.0.2.1 -j DROP\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n", "DROP", false},
        {"-A FORWARD -m conntrack --ctstate ESTABLISHED -p tcp -j ACCEPT\n", "DROP", false},
        {"-A FORWARD -m conntrack --ctstate ESTABLISHED -j LOG\n-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n", "DROP", false},
        {"-A FORWARD -m conntrack --ctstate RELATED -j ACCEPT\n", "DROP", false},
        {"-A FORWARD -m conntrack ! --ctstate ESTABLISHED -j DROP\n", "ACCEPT", true},
    };
    for (const brow& r : rows) {
        SCOPED_TRACE(r.rules);
        ruleset rs = parse_ok(wrap(r.rules, r.policy));
        compile_result cr = compile(rs, hook::forward, no_sets(), ports());
        ASSERT_TRUE(cr.ok()) << cr.error;
        EXPECT_EQ(cr.cls->established_bypass_safe(), r.safe);
    }
}

TEST(classifier, compile_errors) {
    ruleset rs = parse_ok(wrap("-A FORWARD -m set --match-set nosuch src -j DROP\n"));
    compile_result cr = compile(rs, hook::forward, no_sets(), ports());
    EXPECT_FALSE(cr.ok());
    EXPECT_NE(cr.error.find("nosuch"), std::string::npos) << cr.error;

    ruleset loop = parse_ok(wrap("-A FORWARD -j a\n-A a -j b\n"));
    loop.find("b")->rules.push_back(loop.find("a")->rules[0]); // b -> b
    cr = compile(loop, hook::forward, no_sets(), ports());
    EXPECT_FALSE(cr.ok());

    std::vector<port_binding> bad{{"eth0", 63}};
    cr = compile(parse_ok(wrap("")), hook::forward, no_sets(), bad);
    EXPECT_FALSE(cr.ok());
    std::vector<port_binding> dup{{"eth0", 1}, {"eth0", 2}};
    cr = compile(parse_ok(wrap("")), hook::forward, no_sets(), dup);
    EXPECT_FALSE(cr.ok());
}

TEST(classifier, matched_list_overflow_and_counts) {
    std::string rules;
    for (int i = 0; i < 40; ++i) rules += "-A FORWARD -s 192.0.2.0/24 -j LOG\n";
    rules += "-A FORWARD -j DROP\n";
    ruleset rs = parse_ok(wrap(rules));
    compile_result cr = compile(rs, hook::forward, no_sets(), ports());
    ASSERT_TRUE(cr.ok());
    EXPECT_EQ(cr.cls->rule_count(), 41u);
    classify_input in;
    classify_worker w;
    classify_result r;
    cr.cls->classify(pkt("192.0.2.1", "198.51.100.1").m, in, w, r);
    EXPECT_EQ(r.v, verdict::drop);
    EXPECT_EQ(r.n_matched, 41u);
    EXPECT_EQ(r.terminal, cr.cls->global_index({1, 40}));
    for (uint32_t i = 0; i < max_recorded_matches; ++i) EXPECT_EQ(r.matched[i], i);
}

TEST(classifier, limit_buckets_are_per_worker) {
    ruleset rs = parse_ok(wrap("-A FORWARD -m limit --limit 1/sec --limit-burst 2 -j ACCEPT\n", "DROP"));
    compile_result cr = compile(rs, hook::forward, no_sets(), ports());
    ASSERT_TRUE(cr.ok());
    ASSERT_EQ(cr.cls->limit_count(), 1u);
    EXPECT_EQ(cr.cls->limit_rule(0), (rule_ref{1, 0}));
    std::vector<limit_bucket> b(1);
    cr.cls->init_limits(b, 0);
    classify_input in;
    classify_worker w{b, 0};
    classify_result r;
    pkt p("192.0.2.1", "198.51.100.1");
    std::vector<verdict> got;
    for (uint64_t t : {0ull, 1ull, 2ull, 500'000'000ull, 1'000'000'002ull, 1'000'000'003ull}) {
        w.now_ns = t;
        cr.cls->classify(p.m, in, w, r);
        got.push_back(r.v);
    }
    EXPECT_EQ(got, (std::vector<verdict>{verdict::accept, verdict::accept, verdict::drop,
                                         verdict::drop, verdict::accept, verdict::drop}));
}

// Thousands of rules: the index must give exactly the reference's answer.
TEST(classifier, large_indexed_chains_match_reference) {
    std::mt19937 rng(7);
    std::string rules = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
    for (int i = 0; i < 10000; ++i) {
        char buf[200];
        switch (i % 5) {
        case 0:
            std::snprintf(buf, sizeof buf, "-A FORWARD -s 10.%d.%d.%d/32 -p tcp -m tcp --dport %d -j ACCEPT\n",
                          i / 65536, (i / 256) % 256, i % 256, 1000 + i % 50);
            break;
        case 1:
            std::snprintf(buf, sizeof buf, "-A FORWARD -d 172.16.%d.0/24 -p udp -j DROP\n", i % 256);
            break;
        case 2:
            std::snprintf(buf, sizeof buf, "-A FORWARD -p tcp -m tcp --dport %d:%d -j a\n", 2000 + i, 2010 + i);
            break;
        case 3:
            std::snprintf(buf, sizeof buf, "-A FORWARD -s 10.%d.0.0/16 -j LOG\n", i % 200);
            break;
        default:
            std::snprintf(buf, sizeof buf, "-A FORWARD -i tap%d -o eth+ -j REJECT\n", i % 12);
            break;
        }
        rules += buf;
    }
    rules += "-A a -s 10.0.0.0/8 -j RETURN\n-A a -j ACCEPT\n";
    ruleset rs = parse_ok(wrap(rules, "DROP"));
    compile_result cr = compile(rs, hook::forward, no_sets(), ports());
    ASSERT_TRUE(cr.ok()) << cr.error;
    for (int k = 0; k < 3000; ++k) {
        char src[32], dst[32];
        std::snprintf(src, sizeof src, "10.%u.%u.%u", unsigned(rng() % 2), unsigned(rng() % 256), unsigned(rng() % 256));
        std::snprintf(dst, sizeof dst, "172.16.%u.%u", unsigned(rng() % 256), unsigned(rng() % 4));
        uint8_t proto = rng() % 2 ? 6 : 17;
        pkt p(src, dst, proto, 1000, uint16_t(rng() % 2 ? 1000 + rng() % 60 : 2000 + rng() % 3100));
        ctx_in c;
        c.ct = rng() % 10 ? 8 : 2;
        c.in = rng() % 2 ? "tap9" : "eth0";
        SCOPED_TRACE(std::string(src) + " -> " + dst);
        run_with(*cr.cls, rs, hook::forward, p.m, c, no_sets());
        if (HasFailure()) break;
    }
}

// ---- the differential test --------------------------------------------------------------

struct prng {
    std::mt19937_64 g;
    uint32_t next(uint32_t bound) { return bound ? uint32_t(g() % bound) : 0; }
};

TEST(classifier, differential_against_reference) {
    prng r{std::mt19937_64(20260517)};
    generator<prng> g{r};
    diff_stats stats;
    uint32_t tables = 0;
    for (int i = 0; i < 10000; ++i) {
        g.v4 = i % 4 != 3;
        std::string d = run_case(g, i % 10 == 0 ? 80 : 30, 40, stats);
        ++tables;
        ASSERT_TRUE(d.empty()) << "table " << i << ": " << d;
    }
    std::printf("differential: %u tables, %llu (hook, packet) cases, %llu matched a rule, "
                "%llu decided by a rule, %llu rejects, %llu bypass checks\n",
                tables, (unsigned long long)stats.cases, (unsigned long long)stats.matched_any,
                (unsigned long long)stats.by_rule, (unsigned long long)stats.rejects,
                (unsigned long long)stats.bypass_checked);
    EXPECT_GT(stats.cases, 400000u);
    EXPECT_GT(stats.by_rule, stats.cases / 4);
}

// Writes tests/fuzz/corpus/classifier/ seeds: run with --gtest_also_run_disabled_tests
// from the source root.
TEST(classifier, DISABLED_write_fuzz_corpus) {
    std::filesystem::create_directories("tests/fuzz/corpus/classifier");
    std::mt19937 g(99);
    for (int i = 0; i < 24; ++i) {
        std::vector<uint8_t> bytes(64 + 48 * i);
        for (auto& b : bytes) b = uint8_t(g());
        bytes[0] = uint8_t(i % 3 == 2); // every third one IPv6
        std::ofstream out("tests/fuzz/corpus/classifier/seed-" + std::to_string(i) + ".bin",
                          std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
}
