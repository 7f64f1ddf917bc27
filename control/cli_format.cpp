// See cli_format.hpp.
#include "cli_format.hpp"

#include "policy_api.hpp"
#include "ruleset_parser.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cinttypes>
#include <cstdio>
#include <map>

namespace sluice::cli {

using namespace api;

namespace {

std::string rstrip(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
    return s;
}

std::string pad_right(std::string_view s, size_t w) {
    std::string out(s);
    if (out.size() < w) out.append(w - out.size(), ' ');
    return out;
}
std::string pad_left(std::string_view s, size_t w) {
    std::string out;
    if (s.size() < w) out.append(w - s.size(), ' ');
    return out + std::string(s);
}

std::string text_of(const nl::attr_list& al, uint16_t type) { return al.text(type).value_or(""); }

template <class T> std::optional<T> num(const nl::attr_list& al, uint16_t type) {
    const nl::attr* a = al.find(type);
    if (!a) return std::nullopt;
    if constexpr (sizeof(T) == 1) return a->u8();
    else if constexpr (sizeof(T) == 2) return a->u16();
    else if constexpr (sizeof(T) == 4) return a->u32();
    else return a->u64();
}

// ---- iptables -L columns ----

// Protocol names iptables -n still prints as names (xtables_chain_protos); others as numbers.
std::string list_proto_name(uint8_t p) {
    switch (p) {
    case 0: return "all";
    case 6: return "tcp";
    case 17: return "udp";
    case 132: return "sctp";
    case 136: return "udplite";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 50: return "esp";
    case 51: return "ah";
    case 135: return "ipv6-mh";
    default: return std::to_string(p);
    }
}

std::string address_column(const std::optional<addr_match>& a, bool v6) {
    if (!a) return v6 ? "::/0" : "0.0.0.0/0";
    std::string s = to_string(a->net);
    if ((a->net.v4 && a->net.prefix == 32) || (!a->net.v4 && a->net.prefix == 128)) s = s.substr(0, s.find('/'));
    return s;
}

std::string iface_column(const std::optional<iface_match>& m) {
    if (!m) return "*";
    return (m->negate ? "!" : "") + m->name + (m->wildcard ? "+" : "");
}

std::string ports_text(const char* name, const std::optional<port_range>& r, bool neg) {
    if (!r) return {};
    if (r->lo == 0 && r->hi == 0xffff && !neg) return {};
    std::string inv = neg ? "!" : "";
    if (r->lo == r->hi) return " " + std::string(name) + ":" + inv + std::to_string(r->lo);
    return " " + std::string(name) + "s:" + inv + std::to_string(r->lo) + ":" + std::to_string(r->hi);
}

std::string hex2(uint8_t v) {
    char b[8];
    std::snprintf(b, sizeof b, "0x%02X", v);
    return b;
}

std::string states_text(uint8_t mask) {
    std::string out;
    for (ct_state s : {ct_state::invalid, ct_state::new_, ct_state::related, ct_state::established,
                       ct_state::untracked})
        if (mask & ct_bit(s)) out += (out.empty() ? "" : ",") + std::string(name_of(s));
    return out;
}

std::string rate_text(uint32_t period) {
    // libxt_limit's print_rate: the largest unit the period divides into well.
    static const std::pair<const char*, uint32_t> rates[] = {
        {"day", 10000u * 24 * 60 * 60}, {"hour", 10000u * 60 * 60}, {"min", 10000u * 60}, {"sec", 10000u}};
    if (period == 0) return " inf";
    size_t i = 1;
    for (; i < std::size(rates); ++i)
        if (period > rates[i].second || rates[i].second / period < rates[i].second % period) break;
    return " " + std::to_string(rates[i - 1].second / period) + "/" + rates[i - 1].first;
}

struct match_text_visitor {
    std::string operator()(const tcpudp_match& m) const {
        std::string out = m.proto == 6 ? " tcp" : m.proto == 17 ? " udp" : " sctp";
        out += ports_text("spt", m.sport, m.sport_negate);
        out += ports_text("dpt", m.dport, m.dport_negate);
        if (m.flags)
            out += " flags:" + std::string(m.flags_negate ? "!" : "") + hex2(m.flags->first) + "/" +
                   hex2(m.flags->second);
        return out;
    }
    std::string operator()(const multiport_match& m) const {
        std::string out = " multiport ";
        out += m.dir == multiport_dir::src ? "sports" : m.dir == multiport_dir::dst ? "dports" : "ports";
        if (m.negate) out += " !";
        for (size_t i = 0; i < m.ports.size(); ++i) {
            out += i ? "," : " ";
            out += std::to_string(m.ports[i].lo);
            if (m.ports[i].hi != m.ports[i].lo) out += ":" + std::to_string(m.ports[i].hi);
        }
        return out;
    }
    std::string operator()(const icmp_match& m) const {
        std::string out = m.v6 ? " ipv6-icmp" : " icmp";
        if (!m.v6 && m.type == 255 && m.code_lo == 0 && m.code_hi == 0xff) return out + (m.negate ? " !" : "") + " any";
        if (m.negate) out += " !";
        out += "type " + std::to_string(m.type);
        if (m.code_lo == m.code_hi) out += " code " + std::to_string(m.code_lo);
        else if (m.code_lo != 0 || m.code_hi != 0xff)
            out += " codes " + std::to_string(m.code_lo) + "-" + std::to_string(m.code_hi);
        return out;
    }
    std::string operator()(const ctstate_match& m) const {
        return std::string(m.negate ? " !" : "") + (m.state_module ? " state " : " ctstate ") + states_text(m.mask);
    }
    std::string operator()(const set_match& m) const {
        std::string out = std::string(m.negate ? " !" : "") + " match-set " + m.name;
        for (int i = 0; i < m.dims.count; ++i) out += (i ? "," : " ") + std::string(m.dims.src(i) ? "src" : "dst");
        return out;
    }
    std::string operator()(const mac_match& m) const {
        char b[24];
        std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.addr[0], m.addr[1], m.addr[2], m.addr[3],
                      m.addr[4], m.addr[5]);
        return std::string(" MAC") + (m.negate ? " !" : "") + " " + b;
    }
    std::string operator()(const comment_match& m) const { return " /* " + m.text + " */"; }
    std::string operator()(const statistic_match& m) const {
        char b[48];
        std::snprintf(b, sizeof b, "%.11f", double(m.threshold) / 2147483648.0);
        return std::string(" statistic") + (m.negate ? " !" : "") + " mode random probability " + b;
    }
    std::string operator()(const limit_match& m) const {
        return " limit: avg" + rate_text(m.period) + " burst " + std::to_string(m.burst);
    }
};

std::string target_name(const rule_target& t) {
    switch (t.kind) {
    case target_kind::none: return "";
    case target_kind::accept: return "ACCEPT";
    case target_kind::drop: return "DROP";
    case target_kind::reject: return "REJECT";
    case target_kind::return_: return "RETURN";
    case target_kind::log: return "LOG";
    case target_kind::nflog: return "NFLOG";
    case target_kind::jump:
    case target_kind::go_to: return t.chain;
    }
    return "";
}

std::string target_text(const rule_target& t) {
    switch (t.kind) {
    case target_kind::reject: return " reject-with " + std::string(reject_kind_name(t.reject));
    case target_kind::log: {
        std::string out = " LOG flags " + std::to_string(t.log.flags) + " level " + std::to_string(t.log.level);
        if (!t.log.prefix.empty()) out += " prefix \"" + t.log.prefix + "\"";
        return out;
    }
    case target_kind::nflog: {
        std::string out;
        if (!t.nflog.prefix.empty()) out += " nflog-prefix " + quote_word(t.nflog.prefix);
        if (t.nflog.group) out += " nflog-group " + std::to_string(t.nflog.group);
        if (t.nflog.size) out += " nflog-size " + std::to_string(*t.nflog.size);
        if (t.nflog.threshold != 1) out += " nflog-threshold " + std::to_string(t.nflog.threshold);
        return out;
    }
    default: return {};
    }
}

std::optional<rule> parse_row_rule(const rule_row& r) {
    auto p = parse_rule_spec(r.spec, r.family == 6 ? ip_family::ipv6 : ip_family::ipv4, "rule");
    if (!p.ok() || p.value->size() != 1) return std::nullopt;
    return std::move(p.value->front());
}

std::string header_line(bool exact) {
    std::string h = pad_right("num", 4) + " ";
    h += exact ? pad_left("pkts", 8) + " " + pad_left("bytes", 10) + " " : pad_left("pkts", 5) + " " + pad_left("bytes", 5) + " ";
    h += pad_right("target", 9) + " " + " prot " + "opt" + " " + pad_right("in", 6) + " " + pad_right("out", 6) + " " +
         " " + pad_right("source", 19) + " " + " " + pad_right("destination", 19);
    return rstrip(h);
}

std::string chain_header(const chain_row& c, uint32_t refs) {
    std::string h = "Chain " + c.name;
    if (c.policy) {
        h += " (policy " + *c.policy;
        if (c.packets && c.bytes)
            h += " " + format_count(*c.packets, false) + " packets, " + format_count(*c.bytes, false) + " bytes";
        return h + ")";
    }
    return h + " (" + std::to_string(refs) + " references)";
}

// Rules of `family` grouped by chain name, in the order they came.
std::map<std::string, std::vector<const rule_row*>> by_chain(const std::vector<rule_row>& rules, uint8_t family) {
    std::map<std::string, std::vector<const rule_row*>> out;
    for (const auto& r : rules)
        if (r.family == family) out[r.chain].push_back(&r);
    for (auto& [name, v] : out)
        std::stable_sort(v.begin(), v.end(), [](const rule_row* a, const rule_row* b) { return a->position < b->position; });
    return out;
}

// The chains to list: those of `family` from `chains`, plus any a rule names that the chain
// dump did not have (a change between the two dumps).
std::vector<chain_row> listed_chains(const std::vector<chain_row>& chains,
                                     const std::map<std::string, std::vector<const rule_row*>>& rules,
                                     uint8_t family, std::string_view only) {
    std::vector<chain_row> out;
    for (const auto& c : chains)
        if (c.family == family && (only.empty() || c.name == only)) out.push_back(c);
    for (const auto& [name, v] : rules) {
        if (!only.empty() && name != only) continue;
        bool known = std::any_of(out.begin(), out.end(), [&](const chain_row& c) { return c.name == name; });
        if (!known) {
            chain_row c;
            c.family = family;
            c.name = name;
            c.rules = uint32_t(v.size());
            out.push_back(c);
        }
    }
    return out;
}

uint32_t references_of(const chain_row& c, const std::vector<rule_row>& rules) {
    if (c.references) return *c.references;
    uint32_t n = 0;
    for (const auto& r : rules) {
        if (r.family != c.family) continue;
        auto parsed = parse_row_rule(r);
        if (parsed && (parsed->target.kind == target_kind::jump || parsed->target.kind == target_kind::go_to) &&
            parsed->target.chain == c.name)
            ++n;
    }
    return n;
}

bool ports_proto(uint8_t p) { return p == 6 || p == 17 || p == 132 || p == 33 || p == 136; }

std::string flow_proto_name(uint8_t p) {
    switch (p) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 33: return "dccp";
    case 136: return "udplite";
    case 47: return "gre";
    default: return "unknown";
    }
}

// The reply type of an ICMP query type (netfilter's invmap).
uint16_t icmp_reply_type(uint8_t l3, uint16_t t) {
    if (l3 == 4) {
        switch (t) {
        case 8: return 0;
        case 13: return 14;
        case 15: return 16;
        case 17: return 18;
        default: return t;
        }
    }
    switch (t) {
    case 128: return 129;
    case 139: return 140;
    default: return t;
    }
}

bool in_prefix(const std::string& addr, const std::string& prefix) {
    auto slash = prefix.find('/');
    std::string net = prefix.substr(0, slash);
    unsigned char a[16], n[16];
    int fam = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    int nfam = net.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    if (fam != nfam || inet_pton(fam, addr.c_str(), a) != 1 || inet_pton(fam, net.c_str(), n) != 1) return false;
    unsigned bits = fam == AF_INET6 ? 128 : 32;
    unsigned len = bits;
    if (slash != std::string::npos) len = unsigned(std::min<unsigned long>(std::stoul(prefix.substr(slash + 1)), bits));
    for (unsigned i = 0; i < len; ++i) {
        unsigned byte = i / 8, bit = 7 - i % 8;
        if (((a[byte] >> bit) & 1) != ((n[byte] >> bit) & 1)) return false;
    }
    return true;
}

std::string kind_title(const std::string& kind) {
    if (kind == "port") return "Ports";
    if (kind == "worker") return "Workers";
    if (kind == "drops") return "Drops";
    if (kind == "monitor") return "Monitor (would-be drops)";
    if (kind == "conntrack") return "Conntrack";
    if (kind == "policy") return "Policy";
    if (kind == "agent") return "Fast-path agent";
    return kind;
}

bool zero_filtered(const std::string& kind) { return kind == "drops" || kind == "monitor"; }

} // namespace

std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        unsigned char c = static_cast<unsigned char>(ch);
        switch (ch) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (c < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", c);
                out += b;
            } else out += ch;
        }
    }
    return out + "\"";
}

std::string format_count(uint64_t n, bool exact) {
    if (exact || n <= 99999) return std::to_string(n);
    for (const char* unit : {"K", "M", "G"}) {
        n = (n + 500) / 1000;
        if (n <= 9999) return std::to_string(n) + unit;
    }
    return std::to_string((n + 500) / 1000) + "T";
}

std::optional<chain_row> decode_chain(const nl::message& m) {
    auto al = m.attrs();
    auto name = al.text(a_chain);
    if (!name) return std::nullopt;
    chain_row c;
    c.name = *name;
    c.family = num<uint8_t>(al, a_family).value_or(4);
    if (auto p = al.text(a_policy)) c.policy = *p;
    c.rules = num<uint32_t>(al, a_rules).value_or(0);
    c.references = num<uint32_t>(al, a_references);
    c.packets = num<uint64_t>(al, a_packets);
    c.bytes = num<uint64_t>(al, a_bytes);
    return c;
}

std::optional<rule_row> decode_rule(const nl::message& m) {
    auto al = m.attrs();
    auto chain = al.text(a_chain);
    auto spec = al.text(a_spec);
    if (!chain || !spec) return std::nullopt;
    rule_row r;
    r.chain = *chain;
    r.spec = *spec;
    r.family = num<uint8_t>(al, a_family).value_or(4);
    r.position = num<uint32_t>(al, a_position).value_or(0);
    r.packets = num<uint64_t>(al, a_packets).value_or(0);
    r.bytes = num<uint64_t>(al, a_bytes).value_or(0);
    return r;
}

std::string format_rule_line(const rule_row& r, bool exact) {
    std::string line = pad_right(std::to_string(r.position), 4) + " ";
    if (exact)
        line += pad_left(std::to_string(r.packets), 8) + " " + pad_left(std::to_string(r.bytes), 10) + " ";
    else line += pad_left(format_count(r.packets, false), 5) + " " + pad_left(format_count(r.bytes, false), 5) + " ";
    auto parsed = parse_row_rule(r);
    if (!parsed) return rstrip(line + "?          " + r.spec); // not expected: the server wrote it
    const rule& ru = *parsed;
    const bool v6 = r.family == 6;
    line += pad_right(target_name(ru.target), 9) + " ";
    line += ru.proto && ru.proto->negate ? '!' : ' ';
    line += pad_right(list_proto_name(ru.proto ? ru.proto->proto : 0), 4) + " ";
    line += ru.fragment && !*ru.fragment ? '!' : '-';
    line += ru.fragment ? 'f' : '-';
    line += ' ';
    line += " " + pad_right(iface_column(ru.in), 6) + " ";
    line += pad_right(iface_column(ru.out), 6) + " ";
    line += ru.src && ru.src->negate ? '!' : ' ';
    line += pad_right(address_column(ru.src, v6), 19) + " ";
    line += ru.dst && ru.dst->negate ? '!' : ' ';
    line += pad_right(address_column(ru.dst, v6), 19) + " ";
    if (ru.target.kind == target_kind::go_to) line += "[goto] ";
    for (const match& m : ru.matches) line += std::visit(match_text_visitor{}, m);
    line += target_text(ru.target);
    return rstrip(line);
}

std::string format_rule_listing(const std::vector<chain_row>& chains, const std::vector<rule_row>& rules,
                                uint8_t family, std::string_view only_chain, bool exact) {
    auto grouped = by_chain(rules, family);
    std::string out;
    bool first = true;
    for (const chain_row& c : listed_chains(chains, grouped, family, only_chain)) {
        if (!first) out += "\n";
        first = false;
        out += chain_header(c, references_of(c, rules)) + "\n" + header_line(exact) + "\n";
        auto it = grouped.find(c.name);
        if (it == grouped.end()) continue;
        for (const rule_row* r : it->second) out += format_rule_line(*r, exact) + "\n";
    }
    return out;
}

std::string rule_listing_json(const std::vector<chain_row>& chains, const std::vector<rule_row>& rules,
                              uint8_t family, std::string_view only_chain) {
    auto grouped = by_chain(rules, family);
    std::string out = "{\"family\":" + json_quote(family == 6 ? "ipv6" : "ipv4") + ",\"chains\":[";
    bool first = true;
    for (const chain_row& c : listed_chains(chains, grouped, family, only_chain)) {
        out += first ? "" : ",";
        first = false;
        out += "{\"name\":" + json_quote(c.name);
        out += ",\"policy\":" + (c.policy ? json_quote(*c.policy) : std::string("null"));
        if (c.packets) out += ",\"packets\":" + std::to_string(*c.packets);
        if (c.bytes) out += ",\"bytes\":" + std::to_string(*c.bytes);
        out += ",\"references\":" + std::to_string(references_of(c, rules)) + ",\"rules\":[";
        auto it = grouped.find(c.name);
        if (it != grouped.end())
            for (size_t i = 0; i < it->second.size(); ++i) {
                const rule_row& r = *it->second[i];
                auto parsed = parse_row_rule(r);
                out += (i ? "," : "") + std::string("{\"position\":") + std::to_string(r.position) +
                       ",\"spec\":" + json_quote(r.spec) +
                       ",\"target\":" + json_quote(parsed ? target_name(parsed->target) : "") +
                       ",\"packets\":" + std::to_string(r.packets) + ",\"bytes\":" + std::to_string(r.bytes) + "}";
            }
        out += "]}";
    }
    return out + "]}";
}

std::string format_chain_list(const std::vector<chain_row>& chains) {
    size_t w = 5;
    for (const auto& c : chains) w = std::max(w, c.name.size());
    std::string out = pad_right("CHAIN", w) + "  POLICY   RULES  REFERENCES\n";
    for (const auto& c : chains)
        out += pad_right(c.name, w) + "  " + pad_right(c.policy.value_or("-"), 6) + " " + pad_left(std::to_string(c.rules), 7) +
               "  " + pad_left(c.references ? std::to_string(*c.references) : "-", 10) + "\n";
    return out;
}

std::string chain_list_json(const std::vector<chain_row>& chains) {
    std::string out = "{\"chains\":[";
    for (size_t i = 0; i < chains.size(); ++i) {
        const auto& c = chains[i];
        out += (i ? "," : "") + std::string("{\"family\":") + json_quote(c.family == 6 ? "ipv6" : "ipv4") +
               ",\"name\":" + json_quote(c.name) +
               ",\"policy\":" + (c.policy ? json_quote(*c.policy) : std::string("null")) +
               ",\"rules\":" + std::to_string(c.rules);
        if (c.references) out += ",\"references\":" + std::to_string(*c.references);
        out += "}";
    }
    return out + "]}";
}

// ---- sets ----

void set_printer::close_set() {
    if (!in_set_) return;
    if (json_) out_ << (names_only_ || terse_ ? "}" : "]}");
    in_set_ = false;
}

void set_printer::on_message(const nl::message& m) {
    auto al = m.attrs();
    if (al.find(a_type)) { // a set's header
        close_set();
        std::string name = text_of(al, a_set), type = text_of(al, a_type), opts = text_of(al, a_options);
        auto refs = num<uint32_t>(al, a_references);
        auto n = num<uint32_t>(al, a_elements);
        auto mem = num<uint64_t>(al, a_bytes);
        if (json_) {
            out_ << (started_ ? (sets_ ? "," : "") : "{\"sets\":[");
            started_ = true;
            out_ << "{\"name\":" << json_quote(name);
            if (!names_only_) {
                out_ << ",\"type\":" << json_quote(type) << ",\"header\":" << json_quote(opts);
                if (mem) out_ << ",\"size_in_memory\":" << *mem;
                out_ << ",\"references\":" << refs.value_or(0) << ",\"entries\":" << n.value_or(0);
                if (!terse_) out_ << ",\"members\":[";
            }
        } else if (names_only_) {
            out_ << name << "\n";
        } else {
            if (sets_) out_ << "\n";
            out_ << "Name: " << name << "\nType: " << type << "\nHeader: " << opts << "\n";
            if (mem) out_ << "Size in memory: " << *mem << "\n";
            out_ << "References: " << refs.value_or(0) << "\nNumber of entries: " << n.value_or(0) << "\n";
            if (!terse_) out_ << "Members:\n";
        }
        ++sets_;
        in_set_ = true;
        first_member_ = true;
        return;
    }
    if (!in_set_ || names_only_ || terse_) return;
    for (const nl::attr* e : al.all(a_elem)) {
        auto s = e->str();
        if (!s) continue;
        if (json_) {
            out_ << (first_member_ ? "" : ",") << json_quote(*s);
            first_member_ = false;
        } else out_ << *s << "\n";
    }
}

void set_printer::finish() {
    close_set();
    if (json_) out_ << (started_ ? "]}" : "{\"sets\":[]}") << "\n";
}

// ---- conntrack ----

std::optional<flow_row> decode_flow(const nl::message& m) {
    auto top = m.attrs();
    nl::attr_list al = top;
    if (const nl::attr* nest = top.find(a_ct_flow)) al = nl::parse_attrs(nest->data, nest->offset + 4);
    auto src = al.text(a_src), dst = al.text(a_dst);
    auto proto = num<uint8_t>(al, a_proto);
    if (!src || !dst || !proto) return std::nullopt;
    flow_row f;
    f.proto = *proto;
    f.src = *src;
    f.dst = *dst;
    f.l3 = num<uint8_t>(al, a_l3).value_or(f.src.find(':') != std::string::npos ? 6 : 4);
    f.sport = num<uint16_t>(al, a_sport);
    f.dport = num<uint16_t>(al, a_dport);
    f.zone = num<uint16_t>(al, a_zone);
    f.state = text_of(al, a_state);
    f.tcp_state = text_of(al, a_tcp_state);
    f.timeout = num<uint32_t>(al, a_timeout);
    f.worker = num<uint32_t>(al, a_worker);
    f.assured = num<uint8_t>(al, a_assured).value_or(0) != 0;
    f.orig_packets = num<uint64_t>(al, a_orig_packets);
    f.orig_bytes = num<uint64_t>(al, a_orig_bytes);
    f.reply_packets = num<uint64_t>(al, a_reply_packets);
    f.reply_bytes = num<uint64_t>(al, a_reply_bytes);
    f.event = num<uint8_t>(top, a_event).value_or(num<uint8_t>(al, a_event).value_or(0));
    return f;
}

std::string format_flow(const flow_row& f) {
    std::string s;
    if (f.event == 1) s += "    [NEW] ";
    else if (f.event == 2) s += "[DESTROY] ";
    else if (f.event) s += "[UNKNOWN] ";
    s += pad_right(flow_proto_name(f.proto), 8) + " " + std::to_string(f.proto) + " ";
    if (f.timeout && f.event != 2) s += std::to_string(*f.timeout) + " ";
    if (f.proto == 6 && !f.tcp_state.empty()) s += f.tcp_state + " ";
    const bool icmp = f.proto == 1 || f.proto == 58;
    auto tuple = [&](const std::string& a, const std::string& b, bool reply, const std::optional<uint64_t>& pk,
                     const std::optional<uint64_t>& by) {
        s += "src=" + a + " dst=" + b + " ";
        if (f.sport && f.dport) {
            if (ports_proto(f.proto))
                s += reply ? "sport=" + std::to_string(*f.dport) + " dport=" + std::to_string(*f.sport) + " "
                           : "sport=" + std::to_string(*f.sport) + " dport=" + std::to_string(*f.dport) + " ";
            else if (icmp) // the key holds identifier (sport) and request type (dport)
                s += "type=" + std::to_string(reply ? icmp_reply_type(f.l3, *f.dport) : *f.dport) +
                     " code=0 id=" + std::to_string(*f.sport) + " ";
        }
        if (pk && by) s += "packets=" + std::to_string(*pk) + " bytes=" + std::to_string(*by) + " ";
    };
    tuple(f.src, f.dst, false, f.orig_packets, f.orig_bytes);
    if (f.state == "NEW") s += "[UNREPLIED] ";
    tuple(f.dst, f.src, true, f.reply_packets, f.reply_bytes);
    if (f.assured) s += "[ASSURED] ";
    if (f.zone) s += "zone=" + std::to_string(*f.zone);
    return rstrip(s);
}

std::string flow_json(const flow_row& f) {
    std::string s = "{";
    if (f.event) s += "\"event\":" + json_quote(f.event == 1 ? "new" : f.event == 2 ? "destroy" : "unknown") + ",";
    s += "\"family\":" + json_quote(f.l3 == 6 ? "ipv6" : "ipv4") + ",\"proto\":" + json_quote(flow_proto_name(f.proto)) +
         ",\"protonum\":" + std::to_string(f.proto) + ",\"src\":" + json_quote(f.src) + ",\"dst\":" + json_quote(f.dst);
    if (f.sport) s += ",\"sport\":" + std::to_string(*f.sport);
    if (f.dport) s += ",\"dport\":" + std::to_string(*f.dport);
    if (!f.state.empty()) s += ",\"state\":" + json_quote(f.state);
    if (!f.tcp_state.empty()) s += ",\"tcp_state\":" + json_quote(f.tcp_state);
    if (f.timeout) s += ",\"timeout\":" + std::to_string(*f.timeout);
    if (f.zone) s += ",\"zone\":" + std::to_string(*f.zone);
    if (f.worker) s += ",\"worker\":" + std::to_string(*f.worker);
    s += std::string(",\"assured\":") + (f.assured ? "true" : "false");
    if (f.orig_packets) s += ",\"orig_packets\":" + std::to_string(*f.orig_packets);
    if (f.orig_bytes) s += ",\"orig_bytes\":" + std::to_string(*f.orig_bytes);
    if (f.reply_packets) s += ",\"reply_packets\":" + std::to_string(*f.reply_packets);
    if (f.reply_bytes) s += ",\"reply_bytes\":" + std::to_string(*f.reply_bytes);
    return s + "}";
}

bool filter_matches(const ct_filter_args& flt, const flow_row& f) {
    if (flt.l3 && *flt.l3 != f.l3) return false;
    if (flt.proto && *flt.proto != f.proto) return false;
    if (flt.src && !in_prefix(f.src, *flt.src)) return false;
    if (flt.dst && !in_prefix(f.dst, *flt.dst)) return false;
    if (flt.sport && f.sport != flt.sport) return false;
    if (flt.dport && f.dport != flt.dport) return false;
    if (flt.zone && f.zone.value_or(0) != *flt.zone) return false;
    if (flt.state && *flt.state != f.state && *flt.state != f.tcp_state) return false;
    return true;
}

// ---- counters ----

std::vector<stats_section> decode_sections(const nl::message& m) {
    std::vector<stats_section> out;
    auto read = [&](const nl::attr_list& al) {
        stats_section s;
        s.kind = text_of(al, a_kind);
        s.name = text_of(al, a_name);
        for (const nl::attr* c : al.all(a_counter)) {
            auto cl = nl::parse_attrs(c->data, c->offset + 4);
            auto n = cl.text(a_name);
            auto v = num<uint64_t>(cl, a_value);
            if (n && v) s.counters.emplace_back(*n, *v);
        }
        if (!s.kind.empty()) out.push_back(std::move(s));
    };
    auto top = m.attrs();
    auto nests = top.all(a_section);
    if (nests.empty()) read(top);
    for (const nl::attr* n : nests) read(nl::parse_attrs(n->data, n->offset + 4));
    return out;
}

std::string format_stats(const std::vector<stats_section>& sections, bool all) {
    std::vector<std::string> kinds;
    for (const auto& s : sections)
        if (std::find(kinds.begin(), kinds.end(), s.kind) == kinds.end()) kinds.push_back(s.kind);
    std::string out;
    for (const auto& kind : kinds) {
        std::vector<const stats_section*> cols;
        for (const auto& s : sections)
            if (s.kind == kind) cols.push_back(&s);
        std::vector<std::string> names;
        for (const auto* c : cols)
            for (const auto& [n, v] : c->counters)
                if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
        auto value = [](const stats_section* c, const std::string& n) -> std::optional<uint64_t> {
            for (const auto& [cn, v] : c->counters)
                if (cn == n) return v;
            return std::nullopt;
        };
        const bool filtered = zero_filtered(kind) && !all;
        if (filtered)
            names.erase(std::remove_if(names.begin(), names.end(),
                                       [&](const std::string& n) {
                                           return std::all_of(cols.begin(), cols.end(), [&](const stats_section* c) {
                                               return value(c, n).value_or(0) == 0;
                                           });
                                       }),
                        names.end());
        const bool named = cols.size() > 1 || !cols[0]->name.empty();
        std::string title = kind_title(kind) + (filtered ? " (non-zero; --all for every reason)" : "");
        size_t w0 = named ? title.size() : 0;
        for (const auto& n : names) w0 = std::max(w0, n.size() + 2);
        std::vector<size_t> w(cols.size());
        for (size_t k = 0; k < cols.size(); ++k) {
            w[k] = named ? cols[k]->name.size() : 0;
            for (const auto& n : names) w[k] = std::max(w[k], std::to_string(value(cols[k], n).value_or(0)).size());
        }
        if (!out.empty()) out += "\n";
        if (named) {
            std::string line = pad_right(title, w0);
            for (size_t k = 0; k < cols.size(); ++k) line += "  " + pad_left(cols[k]->name, w[k]);
            out += rstrip(line) + "\n";
        } else out += title + "\n";
        if (names.empty()) out += "  none\n";
        for (const auto& n : names) {
            std::string line = pad_right("  " + n, w0);
            for (size_t k = 0; k < cols.size(); ++k) {
                auto v = value(cols[k], n);
                line += "  " + pad_left(v ? std::to_string(*v) : "-", w[k]);
            }
            out += line + "\n";
        }
    }
    return out;
}

std::string stats_json_fields(const std::vector<stats_section>& sections) {
    std::vector<std::string> kinds;
    for (const auto& s : sections)
        if (std::find(kinds.begin(), kinds.end(), s.kind) == kinds.end()) kinds.push_back(s.kind);
    std::string out;
    for (const auto& kind : kinds) {
        if (!out.empty()) out += ",";
        out += json_quote(kind) + ":{";
        std::string parts;
        auto add = [&](const std::string& p) { parts += (parts.empty() ? "" : ",") + p; };
        for (const auto& s : sections) {
            if (s.kind != kind) continue;
            std::string counters;
            for (size_t i = 0; i < s.counters.size(); ++i)
                counters += (i ? "," : "") + json_quote(s.counters[i].first) + ":" + std::to_string(s.counters[i].second);
            if (s.name.empty()) {
                if (!counters.empty()) add(counters);
            } else add(json_quote(s.name) + ":{" + counters + "}");
        }
        out += parts;
        out += "}";
    }
    return out;
}

} // namespace sluice::cli
