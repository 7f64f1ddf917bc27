// The policy model's text form and validation: iptables-save output for rules and tables,
// protocol and reject names, and the load-time checks iptables-restore and the kernel make
// on a whole table (missing chains, jump loops, per-hook restrictions).
//
// Everything here is a pure function of its arguments; call from any thread.
#include "ruleset.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

namespace sluice {

namespace {

struct proto_entry {
    std::string_view name;
    uint8_t number;
};

// xtables' own table first (it wins when printing), then Debian's /etc/protocols, so the
// names iptables-save writes on a typical host parse here without reading /etc/protocols.
constexpr proto_entry proto_table[] = {
    {"tcp", 6},         {"sctp", 132},       {"udp", 17},          {"udplite", 136},
    {"icmp", 1},        {"ipv6-icmp", 58},   {"icmpv6", 58},       {"esp", 50},
    {"ah", 51},         {"ipv6-mh", 135},    {"mh", 135},          {"hopopt", 0},
    {"igmp", 2},        {"ggp", 3},          {"ipencap", 4},       {"st", 5},
    {"egp", 8},         {"igp", 9},          {"pup", 12},          {"hmp", 20},
    {"xns-idp", 22},    {"rdp", 27},         {"iso-tp4", 29},      {"dccp", 33},
    {"xtp", 36},        {"ddp", 37},         {"idpr-cmtp", 38},    {"ipv6", 41},
    {"ipv6-route", 43}, {"ipv6-frag", 44},   {"idrp", 45},         {"rsvp", 46},
    {"gre", 47},        {"skip", 57},        {"ipv6-nonxt", 59},   {"ipv6-opts", 60},
    {"rspf", 73},       {"vmtp", 81},        {"eigrp", 88},        {"ospf", 89},
    {"ax.25", 93},      {"ipip", 94},        {"etherip", 97},      {"encap", 98},
    {"pim", 103},       {"ipcomp", 108},     {"vrrp", 112},        {"l2tp", 115},
    {"isis", 124},      {"fc", 133},         {"mobility-header", 135},
    {"mpls-in-ip", 137}, {"manet", 138},     {"hip", 139},         {"shim6", 140},
    {"wesp", 141},      {"rohc", 142},       {"ethernet", 143},
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = char(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// xtables_save_string: bare when only [A-Za-z0-9_-], else double-quoted with \ before
// '"', '\\' and '\''.
void append_save_string(std::string& out, std::string_view s) {
    auto plain = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    };
    out += ' ';
    if (!s.empty() && std::all_of(s.begin(), s.end(), plain)) {
        out += s;
        return;
    }
    out += '"';
    for (char c : s) {
        if (c == '"' || c == '\\' || c == '\'') out += '\\';
        out += c;
    }
    out += '"';
}

void append_ports(std::string& out, port_range p) {
    out += std::to_string(p.lo);
    if (p.hi != p.lo) {
        out += ':';
        out += std::to_string(p.hi);
    }
}

void append_neg(std::string& out, bool negate) {
    if (negate) out += " !";
}

void append_tcp_flag_names(std::string& out, uint8_t v) {
    static constexpr std::pair<uint8_t, std::string_view> names[] = {
        {0x01, "FIN"}, {0x02, "SYN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x10, "ACK"}, {0x20, "URG"},
    };
    if (v == 0) {
        out += "NONE";
        return;
    }
    bool first = true;
    for (auto [bit, name] : names) {
        if (!(v & bit)) continue;
        if (!first) out += ',';
        out += name;
        first = false;
    }
}

void append_ctstate_names(std::string& out, uint8_t mask) {
    static constexpr std::pair<ct_state, std::string_view> names[] = {
        {ct_state::invalid, "INVALID"},     {ct_state::new_, "NEW"},
        {ct_state::related, "RELATED"},     {ct_state::established, "ESTABLISHED"},
        {ct_state::untracked, "UNTRACKED"},
    };
    bool first = true;
    for (auto [bit, name] : names) {
        if (!(mask & ct_bit(bit))) continue;
        if (!first) out += ',';
        out += name;
        first = false;
    }
}

// libxt_limit's print_rate.
void append_rate(std::string& out, uint32_t period) {
    static constexpr std::pair<std::string_view, uint32_t> rates[] = {
        {"day", 10000u * 24 * 60 * 60}, {"hour", 10000u * 60 * 60}, {"min", 10000u * 60},
        {"sec", 10000u}};
    if (period == 0) {
        out += "inf";
        return;
    }
    size_t i = 1;
    for (; i < std::size(rates); ++i)
        if (period > rates[i].second || rates[i].second / period < rates[i].second % period)
            break;
    out += std::to_string(rates[i - 1].second / period);
    out += '/';
    out += rates[i - 1].first;
}

struct match_writer {
    std::string& out;

    void operator()(const tcpudp_match& m) {
        out += m.proto == 6 ? " -m tcp" : m.proto == 17 ? " -m udp" : " -m sctp";
        if (m.sport) {
            append_neg(out, m.sport_negate);
            out += " --sport ";
            append_ports(out, *m.sport);
        }
        if (m.dport) {
            append_neg(out, m.dport_negate);
            out += " --dport ";
            append_ports(out, *m.dport);
        }
        if (m.flags) {
            append_neg(out, m.flags_negate);
            out += " --tcp-flags ";
            append_tcp_flag_names(out, m.flags->first);
            out += ' ';
            append_tcp_flag_names(out, m.flags->second);
        }
    }
    void operator()(const multiport_match& m) {
        out += " -m multiport";
        append_neg(out, m.negate);
        out += m.dir == multiport_dir::src   ? " --sports "
               : m.dir == multiport_dir::dst ? " --dports "
                                             : " --ports ";
        for (size_t i = 0; i < m.ports.size(); ++i) {
            if (i) out += ',';
            append_ports(out, m.ports[i]);
        }
    }
    void operator()(const icmp_match& m) {
        out += m.v6 ? " -m icmp6" : " -m icmp";
        append_neg(out, m.negate);
        out += m.v6 ? " --icmpv6-type " : " --icmp-type ";
        if (!m.v6 && m.type == 0xff) {
            out += "any";
            return;
        }
        out += std::to_string(m.type);
        if (m.code_lo != 0 || m.code_hi != 0xff) {
            out += '/';
            out += std::to_string(m.code_lo);
        }
    }
    void operator()(const ctstate_match& m) {
        out += m.state_module ? " -m state" : " -m conntrack";
        append_neg(out, m.negate);
        out += m.state_module ? " --state " : " --ctstate ";
        append_ctstate_names(out, m.mask);
    }
    void operator()(const set_match& m) {
        out += " -m set";
        append_neg(out, m.negate);
        out += " --match-set ";
        out += m.name;
        out += ' ';
        for (int i = 0; i < m.dims.count; ++i) {
            if (i) out += ',';
            out += m.dims.src(i) ? "src" : "dst";
        }
    }
    void operator()(const mac_match& m) {
        out += " -m mac";
        append_neg(out, m.negate);
        out += " --mac-source ";
        char buf[18];
        std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m.addr[0], m.addr[1],
                      m.addr[2], m.addr[3], m.addr[4], m.addr[5]);
        out += buf;
    }
    void operator()(const comment_match& m) {
        out += " -m comment --comment";
        append_save_string(out, m.text);
    }
    void operator()(const statistic_match& m) {
        out += " -m statistic --mode random";
        append_neg(out, m.negate);
        char buf[32];
        std::snprintf(buf, sizeof buf, " --probability %.11f", double(m.threshold) / 2147483648.0);
        out += buf;
    }
    void operator()(const limit_match& m) {
        out += " -m limit --limit ";
        append_rate(out, m.period);
        if (m.burst != 5) {
            out += " --limit-burst ";
            out += std::to_string(m.burst);
        }
    }
};

void append_target(std::string& out, const rule_target& t) {
    switch (t.kind) {
    case target_kind::none: return;
    case target_kind::accept: out += " -j ACCEPT"; return;
    case target_kind::drop: out += " -j DROP"; return;
    case target_kind::return_: out += " -j RETURN"; return;
    case target_kind::reject:
        out += " -j REJECT --reject-with ";
        out += reject_kind_name(t.reject);
        return;
    case target_kind::log:
        out += " -j LOG";
        if (!t.log.prefix.empty()) {
            out += " --log-prefix";
            append_save_string(out, t.log.prefix);
        }
        if (t.log.level != 4) out += " --log-level " + std::to_string(t.log.level);
        if (t.log.flags & log_flag::tcp_sequence) out += " --log-tcp-sequence";
        if (t.log.flags & log_flag::tcp_options) out += " --log-tcp-options";
        if (t.log.flags & log_flag::ip_options) out += " --log-ip-options";
        if (t.log.flags & log_flag::uid) out += " --log-uid";
        if (t.log.flags & log_flag::macdecode) out += " --log-macdecode";
        return;
    case target_kind::nflog:
        out += " -j NFLOG";
        if (!t.nflog.prefix.empty()) {
            out += " --nflog-prefix";
            append_save_string(out, t.nflog.prefix);
        }
        if (t.nflog.group != 0) out += " --nflog-group " + std::to_string(t.nflog.group);
        if (t.nflog.size) out += " --nflog-size " + std::to_string(*t.nflog.size);
        if (t.nflog.threshold != 1)
            out += " --nflog-threshold " + std::to_string(t.nflog.threshold);
        return;
    case target_kind::jump: out += " -j " + t.chain; return;
    case target_kind::go_to: out += " -g " + t.chain; return;
    }
}

} // namespace

std::string_view reject_kind_name(reject_kind k) noexcept {
    switch (k) {
    case reject_kind::icmp_net_unreachable: return "icmp-net-unreachable";
    case reject_kind::icmp_host_unreachable: return "icmp-host-unreachable";
    case reject_kind::icmp_port_unreachable: return "icmp-port-unreachable";
    case reject_kind::icmp_proto_unreachable: return "icmp-proto-unreachable";
    case reject_kind::icmp_net_prohibited: return "icmp-net-prohibited";
    case reject_kind::icmp_host_prohibited: return "icmp-host-prohibited";
    case reject_kind::icmp_admin_prohibited: return "icmp-admin-prohibited";
    case reject_kind::tcp_reset: return "tcp-reset";
    case reject_kind::icmp6_no_route: return "icmp6-no-route";
    case reject_kind::icmp6_adm_prohibited: return "icmp6-adm-prohibited";
    case reject_kind::icmp6_addr_unreachable: return "icmp6-addr-unreachable";
    case reject_kind::icmp6_port_unreachable: return "icmp6-port-unreachable";
    case reject_kind::icmp6_policy_fail: return "icmp6-policy-fail";
    case reject_kind::icmp6_reject_route: return "icmp6-reject-route";
    }
    return "?";
}

std::string_view rule::comment() const noexcept {
    for (const auto& m : matches)
        if (auto* c = std::get_if<comment_match>(&m)) return c->text;
    return {};
}

ruleset ruleset::empty(ip_family f) {
    ruleset rs;
    rs.family = f;
    for (auto name : builtin_chain_names)
        rs.chains.push_back(chain{std::string(name), true, chain_policy::accept, {}});
    return rs;
}

chain* ruleset::find(std::string_view name) noexcept {
    for (auto& c : chains)
        if (c.name == name) return &c;
    return nullptr;
}

const chain* ruleset::find(std::string_view name) const noexcept {
    for (const auto& c : chains)
        if (c.name == name) return &c;
    return nullptr;
}

std::string to_string(const cidr& c) {
    char buf[INET6_ADDRSTRLEN];
    if (c.v4)
        inet_ntop(AF_INET, c.addr.data() + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, c.addr.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(c.prefix);
}

std::string proto_name(uint8_t proto) {
    for (const auto& e : proto_table)
        if (e.number == proto && proto != 0) return std::string(e.name);
    return std::to_string(proto);
}

std::optional<uint8_t> proto_from_name(std::string_view name) noexcept {
    if (name.empty()) return std::nullopt;
    if (iequals(name, "all")) return uint8_t{0};
    if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (name.size() > 3) return std::nullopt;
        unsigned v = 0;
        for (char c : name) v = v * 10 + unsigned(c - '0');
        if (v > 255) return std::nullopt;
        return uint8_t(v);
    }
    if (iequals(name, "ip")) return uint8_t{0};
    for (const auto& e : proto_table)
        if (iequals(e.name, name)) return e.number;
    return std::nullopt;
}

std::string to_rule_spec(const rule& r) {
    std::string out;
    if (r.src) {
        append_neg(out, r.src->negate);
        out += " -s " + to_string(r.src->net);
    }
    if (r.dst) {
        append_neg(out, r.dst->negate);
        out += " -d " + to_string(r.dst->net);
    }
    if (r.in) {
        append_neg(out, r.in->negate);
        out += " -i " + r.in->name + (r.in->wildcard ? "+" : "");
    }
    if (r.out) {
        append_neg(out, r.out->negate);
        out += " -o " + r.out->name + (r.out->wildcard ? "+" : "");
    }
    if (r.proto) {
        append_neg(out, r.proto->negate);
        out += " -p " + proto_name(r.proto->proto);
    }
    if (r.fragment) out += *r.fragment ? " -f" : " ! -f";
    match_writer w{out};
    for (const auto& m : r.matches) std::visit(w, m);
    append_target(out, r.target);
    if (!out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
}

std::string to_save_line(std::string_view chain_name, const rule& r) {
    std::string spec = to_rule_spec(r);
    std::string out = "-A ";
    out += chain_name;
    if (!spec.empty()) {
        out += ' ';
        out += spec;
    }
    return out;
}

std::string save(const ruleset& rs) {
    std::string out = "*filter\n";
    for (const auto& c : rs.chains) {
        out += ':';
        out += c.name;
        out += c.policy == chain_policy::accept ? " ACCEPT" : c.policy == chain_policy::drop ? " DROP" : " -";
        out += " [0:0]\n";
    }
    for (const auto& c : rs.chains)
        for (const auto& r : c.rules) {
            out += to_save_line(c.name, r);
            out += '\n';
        }
    out += "COMMIT\n";
    return out;
}

std::optional<std::string> chain_name_problem(std::string_view name) {
    if (name.empty()) return std::string("empty chain name");
    if (name.size() > 28)
        return "chain name \"" + std::string(name) + "\" too long (must be under 29 chars)";
    if (name[0] == '-' || name[0] == '!')
        return "chain name \"" + std::string(name) + "\" may not start with '" + name[0] + "'";
    for (char c : name)
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\0')
            return "chain name \"" + std::string(name) + "\" contains an invalid character";
    static constexpr std::string_view reserved[] = {"ACCEPT", "DROP", "REJECT", "RETURN",
                                                    "LOG", "NFLOG", "QUEUE", "NFQUEUE"};
    for (auto r : reserved)
        if (name == r) return "chain name \"" + std::string(name) + "\" is a target name";
    return std::nullopt;
}

std::optional<ruleset_problem> check_ruleset(const ruleset& rs) {
    std::map<std::string_view, size_t> index;
    for (size_t i = 0; i < rs.chains.size(); ++i) index.emplace(rs.chains[i].name, i);

    // Per-rule problems first, in chain/rule order.
    for (const auto& c : rs.chains) {
        for (size_t ri = 0; ri < c.rules.size(); ++ri) {
            const rule& r = c.rules[ri];
            auto problem = [&](std::string reason) {
                return ruleset_problem{c.name, int(ri), std::move(reason)};
            };
            if (r.target.kind == target_kind::jump || r.target.kind == target_kind::go_to) {
                auto it = index.find(r.target.chain);
                if (it == index.end())
                    return problem("chain \"" + r.target.chain + "\" does not exist");
                if (rs.chains[it->second].builtin)
                    return problem("cannot jump to built-in chain " + r.target.chain);
            }
            if (c.builtin && c.name == "INPUT" && r.out) return problem("can't use -o with INPUT");
            if (c.builtin && c.name == "OUTPUT" && r.in) return problem("can't use -i with OUTPUT");
        }
    }

    // Jump loops reachable from a built-in chain, found the way the kernel's
    // mark_source_chains finds them: a chain re-entered while it is on the current path is
    // a loop (ELOOP). Chains no built-in chain reaches are not checked, as in the kernel.
    // Colours: 0 unseen, 1 on the path, 2 done (nothing below it loops).
    std::optional<ruleset_problem> found;
    std::vector<uint8_t> colour(rs.chains.size(), 0);
    std::function<void(size_t)> walk = [&](size_t ci) {
        colour[ci] = 1;
        const chain& c = rs.chains[ci];
        for (size_t ri = 0; ri < c.rules.size() && !found; ++ri) {
            const rule& r = c.rules[ri];
            if (r.target.kind != target_kind::jump && r.target.kind != target_kind::go_to)
                continue;
            size_t next = index.at(r.target.chain);
            if (colour[next] == 1) {
                found = ruleset_problem{c.name, int(ri),
                                        "jump to chain \"" + r.target.chain +
                                            "\" makes a loop (ELOOP)"};
                return;
            }
            if (colour[next] == 0) walk(next);
        }
        colour[ci] = 2;
    };
    for (size_t i = 0; i < rs.chains.size() && !found; ++i)
        if (rs.chains[i].builtin && colour[i] == 0) walk(i);
    if (found) return found;

    // -m mac is refused (by the match's hook mask) in any rule reachable from OUTPUT.
    std::vector<uint8_t> from_output(rs.chains.size(), 0);
    std::vector<size_t> todo;
    if (auto it = index.find("OUTPUT"); it != index.end() && rs.chains[it->second].builtin) {
        from_output[it->second] = 1;
        todo.push_back(it->second);
    }
    while (!todo.empty()) {
        size_t ci = todo.back();
        todo.pop_back();
        for (const rule& r : rs.chains[ci].rules) {
            if (r.target.kind != target_kind::jump && r.target.kind != target_kind::go_to)
                continue;
            size_t next = index.at(r.target.chain);
            if (!from_output[next]) {
                from_output[next] = 1;
                todo.push_back(next);
            }
        }
    }
    for (size_t ci = 0; ci < rs.chains.size() && !found; ++ci) {
        if (!from_output[ci]) continue;
        const chain& c = rs.chains[ci];
        for (size_t ri = 0; ri < c.rules.size() && !found; ++ri)
            for (const auto& m : c.rules[ri].matches)
                if (std::holds_alternative<mac_match>(m)) {
                    found = ruleset_problem{c.name, int(ri),
                                            "-m mac is only valid in INPUT and FORWARD "
                                            "(rule reachable from OUTPUT)"};
                    break;
                }
    }
    return found;
}

} // namespace sluice
