// The reference evaluator (see rule_eval.hpp): ipt_do_table and the xt_* match functions,
// transcribed for clarity. Pure; any thread (if the callbacks are).
#include "rule_eval.hpp"

#include <string>

namespace sluice {

namespace {

bool non_first_fragment(const packet_meta& p) {
    return (p.frag_flags & frag::is_fragment) && !(p.frag_flags & frag::first);
}

bool in_cidr(const cidr& c, const ip_addr& a) {
    unsigned start = c.v4 ? 12 : 0;
    unsigned bits = c.prefix;
    for (unsigned i = 0; bits > 0; ++i) {
        uint8_t mask = bits >= 8 ? 0xff : uint8_t(0xff00u >> bits);
        if ((a.b[start + i] & mask) != (c.addr[start + i] & mask)) return false;
        bits = bits >= 8 ? bits - 8 : 0;
    }
    return true;
}

// ifname_compare: exact names compare whole; `eth+` compares the prefix only.
bool iface_is(const iface_match& m, std::string_view name) {
    if (m.wildcard) return name.substr(0, m.name.size()) == m.name;
    return name == m.name;
}

bool in_range(port_range r, uint16_t port) {
    return port >= r.lo && port <= r.hi;
}

struct match_tester {
    const packet_meta& pkt;
    const packet_context& ctx;
    const eval_hooks& hooks;
    rule_ref where;

    // xt_tcpudp / xt_sctp
    bool operator()(const tcpudp_match& m) const {
        if (non_first_fragment(pkt)) return false;
        if (m.sport && (in_range(*m.sport, pkt.sport) == m.sport_negate)) return false;
        if (m.dport && (in_range(*m.dport, pkt.dport) == m.dport_negate)) return false;
        if (m.flags && (((pkt.tcp_flags & m.flags->first) == m.flags->second) == m.flags_negate))
            return false;
        return true;
    }
    // xt_multiport, revision 1
    bool operator()(const multiport_match& m) const {
        if (non_first_fragment(pkt)) return false;
        for (const port_range& r : m.ports) {
            bool hit = false;
            switch (m.dir) {
            case multiport_dir::src: hit = in_range(r, pkt.sport); break;
            case multiport_dir::dst: hit = in_range(r, pkt.dport); break;
            case multiport_dir::any: hit = in_range(r, pkt.sport) || in_range(r, pkt.dport); break;
            }
            if (hit) return !m.negate;
        }
        return m.negate;
    }
    // icmp_match / icmp6_match
    bool operator()(const icmp_match& m) const {
        if (non_first_fragment(pkt)) return false;
        bool hit = (!m.v6 && m.type == 0xff) ||
                   (pkt.icmp_type == m.type && pkt.icmp_code >= m.code_lo && pkt.icmp_code <= m.code_hi);
        return hit != m.negate;
    }
    // xt_conntrack state / xt_state
    bool operator()(const ctstate_match& m) const {
        return ((m.mask & ctx.ct) != 0) != m.negate;
    }
    bool operator()(const set_match& m) const {
        bool hit = hooks.sets ? hooks.sets(m.name, pkt, m.dims, ctx) : false;
        return hit != m.negate;
    }
    // xt_mac: no Ethernet header, no match — negated or not.
    bool operator()(const mac_match& m) const {
        if (!ctx.src_mac) return false;
        return (*ctx.src_mac == m.addr) != m.negate;
    }
    bool operator()(const comment_match&) const { return true; }
    // xt_statistic, random mode
    bool operator()(const statistic_match& m) const {
        uint32_t r = hooks.random ? hooks.random() : 0;
        return ((r & 0x7fffffffu) < m.threshold) != m.negate;
    }
    bool operator()(const limit_match& m) const {
        return hooks.limit ? hooks.limit(where, m) : true;
    }
};

} // namespace

bool rule_matches(const rule& r, ip_family family, const packet_meta& pkt,
                  const packet_context& ctx, const eval_hooks& hooks, rule_ref where) {
    (void)family;
    // ip_packet_match / ip6_packet_match
    if (r.src && in_cidr(r.src->net, pkt.src) == r.src->negate) return false;
    if (r.dst && in_cidr(r.dst->net, pkt.dst) == r.dst->negate) return false;
    if (r.in && iface_is(*r.in, ctx.in_iface) == r.in->negate) return false;
    if (r.out && iface_is(*r.out, ctx.out_iface) == r.out->negate) return false;
    if (r.proto && (pkt.l4_proto == r.proto->proto) == r.proto->negate) return false;
    if (r.fragment && non_first_fragment(pkt) != *r.fragment) return false;
    match_tester t{pkt, ctx, hooks, where};
    for (const match& m : r.matches)
        if (!std::visit(t, m)) return false;
    return true;
}

eval_result evaluate(const ruleset& rs, std::string_view hook_chain, const packet_meta& pkt,
                     const packet_context& ctx, const eval_hooks& hooks) {
    eval_result res;
    size_t hook = rs.chains.size();
    for (size_t i = 0; i < rs.chains.size(); ++i)
        if (rs.chains[i].builtin && rs.chains[i].name == hook_chain) hook = i;
    if (hook == rs.chains.size()) {
        res.v = verdict::drop;
        res.by_policy = true;
        return res;
    }
    auto policy = [&]() {
        res.v = rs.chains[hook].policy == chain_policy::drop ? verdict::drop : verdict::accept;
        res.by_policy = true;
        return res;
    };
    bool family_ok = rs.family == ip_family::ipv4 ? pkt.l3 == l3_kind::ipv4 : pkt.l3 == l3_kind::ipv6;
    if (!family_ok) return policy();

    auto chain_index = [&](const std::string& name) {
        for (size_t i = 0; i < rs.chains.size(); ++i)
            if (rs.chains[i].name == name) return i;
        return rs.chains.size();
    };

    struct position {
        size_t chain, rule;
    };
    std::vector<position> stack; // where each -j returns to
    position at{hook, 0};
    uint64_t steps = 0;
    const uint64_t step_limit = 10'000'000;
    for (;;) {
        if (++steps > step_limit) {
            res.v = verdict::drop;
            return res;
        }
        const chain& c = rs.chains[at.chain];
        if (at.rule >= c.rules.size()) {
            // End of a built-in chain: its policy. End of a user chain: implicit RETURN.
            if (stack.empty()) return policy();
            at = stack.back();
            stack.pop_back();
            continue;
        }
        const rule& r = c.rules[at.rule];
        rule_ref ref{uint32_t(at.chain), uint32_t(at.rule)};
        if (!rule_matches(r, rs.family, pkt, ctx, hooks, ref)) {
            ++at.rule;
            continue;
        }
        res.matched.push_back(ref);
        switch (r.target.kind) {
        case target_kind::none:
        case target_kind::log:
        case target_kind::nflog: ++at.rule; break;
        case target_kind::accept: res.v = verdict::accept; return res;
        case target_kind::drop: res.v = verdict::drop; return res;
        case target_kind::reject:
            res.v = verdict::reject;
            res.reject = r.target.reject;
            return res;
        case target_kind::return_:
            if (stack.empty()) return policy();
            at = stack.back();
            stack.pop_back();
            break;
        case target_kind::jump:
        case target_kind::go_to: {
            size_t next = chain_index(r.target.chain);
            if (next == rs.chains.size() || rs.chains[next].builtin) { // not loadable; be safe
                res.v = verdict::drop;
                return res;
            }
            if (r.target.kind == target_kind::jump) {
                if (stack.size() >= rs.chains.size()) { // the kernel's jumpstack overflow
                    res.v = verdict::drop;
                    return res;
                }
                stack.push_back(position{at.chain, at.rule + 1});
            }
            at = position{next, 0};
            break;
        }
        }
    }
}

} // namespace sluice
