// iptables-save / iptables-restore text into the policy model. See ruleset_parser.hpp for
// the contract; this file is organised as: word splitting (iptables' add_param_to_argv),
// value parsers (addresses, ports, names), the rule-spec parser (one rule's options,
// iptables' option dispatch to loaded match modules), and the file parser (tables, chains,
// COMMIT, load-time checks).
//
// Failures inside are thrown as `failure` (column + reason) and caught at the two entry
// points, which add the file and line. Pure functions; call from any thread.
#include "ruleset_parser.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

namespace sluice {

std::string parse_error::to_string() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + reason;
}

namespace {

struct failure {
    uint32_t column;
    std::string reason;
};

[[noreturn]] void fail(uint32_t column, std::string reason) {
    throw failure{column, std::move(reason)};
}

std::string quoted(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// ---- words -------------------------------------------------------------------------------

struct word {
    std::string text;
    uint32_t col; // 1-based column of the word's first character (or its opening quote)
};

// iptables-restore's add_param_to_argv: whitespace separates words; a double quote opens a
// quoted part in which a backslash takes the next character literally; a closing quote
// ends the word. Outside quotes a backslash is an ordinary character.
std::vector<word> split_words(std::string_view line, uint32_t col0) {
    std::vector<word> out;
    std::string cur;
    bool have = false, quote_open = false, escaped = false;
    uint32_t start = 0, quote_col = 0;
    auto finish = [&] {
        if (have) out.push_back(word{cur, start});
        cur.clear();
        have = false;
    };
    for (size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        uint32_t col = col0 + uint32_t(i);
        if (quote_open) {
            if (escaped) {
                cur += c;
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                quote_open = false;
                finish();
            } else {
                cur += c;
            }
            continue;
        }
        if (c == '"') {
            if (!have) {
                have = true;
                start = col;
            }
            quote_open = true;
            quote_col = col;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            finish();
            continue;
        }
        if (!have) {
            have = true;
            start = col;
        }
        cur += c;
    }
    if (quote_open) fail(quote_col, "unterminated quote");
    finish();
    return out;
}

// ---- values ------------------------------------------------------------------------------

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

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    for (;;) {
        size_t next = s.find(sep, pos);
        out.push_back(s.substr(pos, next == std::string_view::npos ? s.npos : next - pos));
        if (next == std::string_view::npos) break;
        pos = next + 1;
    }
    return out;
}

cidr parse_cidr(const word& w, std::string_view text, ip_family fam) {
    auto slash = text.find('/');
    std::string addr(text.substr(0, slash));
    cidr c;
    c.v4 = fam == ip_family::ipv4;
    unsigned max = c.v4 ? 32 : 128;
    if (c.v4) {
        uint8_t b[4];
        if (inet_pton(AF_INET, addr.c_str(), b) != 1)
            fail(w.col, "host/network " + quoted(addr) +
                            " is not an IPv4 address (names are not resolved)");
        c.addr[10] = c.addr[11] = 0xff;
        std::copy(b, b + 4, c.addr.begin() + 12);
    } else {
        if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) != 1)
            fail(w.col, "host/network " + quoted(addr) +
                            " is not an IPv6 address (names are not resolved)");
    }
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        std::string_view mask = text.substr(slash + 1);
        if (auto n = parse_uint(mask, max)) {
            prefix = unsigned(*n);
        } else if (c.v4 && mask.find('.') != std::string_view::npos) {
            uint8_t m[4];
            std::string ms(mask);
            if (inet_pton(AF_INET, ms.c_str(), m) != 1)
                fail(w.col, "invalid mask " + quoted(mask));
            uint32_t v = (uint32_t(m[0]) << 24) | (uint32_t(m[1]) << 16) | (uint32_t(m[2]) << 8) | m[3];
            prefix = 0;
            while (prefix < 32 && (v & (0x80000000u >> prefix))) ++prefix;
            if (prefix < 32 && (v << prefix) != 0)
                fail(w.col, "non-contiguous mask " + quoted(mask) + " is not supported");
        } else {
            fail(w.col, "invalid mask " + quoted(mask) + " (0.." + std::to_string(max) + ")");
        }
    }
    c.prefix = uint8_t(prefix);
    unsigned total = c.v4 ? 96 + prefix : prefix;
    for (unsigned bit = total; bit < 128; ++bit) c.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
    return c;
}

struct service_entry {
    std::string_view name;
    uint16_t port;
};
constexpr service_entry services[] = {
    {"ftp-data", 20}, {"ftp", 21},      {"ssh", 22},     {"telnet", 23},  {"smtp", 25},
    {"domain", 53},   {"bootps", 67},   {"bootpc", 68},  {"tftp", 69},    {"http", 80},
    {"pop3", 110},    {"ntp", 123},     {"imap", 143},   {"snmp", 161},   {"bgp", 179},
    {"ldap", 389},    {"https", 443},   {"syslog", 514}, {"ldaps", 636},  {"imaps", 993},
    {"pop3s", 995},   {"mysql", 3306},  {"postgresql", 5432},
};

uint16_t parse_port(const word& w, std::string_view s) {
    if (auto n = parse_uint(s, 65535)) return uint16_t(*n);
    for (const auto& e : services)
        if (e.name == s) return e.port;
    fail(w.col, "invalid port/service " + quoted(s) + " specified");
}

port_range parse_port_range(const word& w, std::string_view s) {
    port_range r;
    auto colon = s.find(':');
    if (colon == std::string_view::npos) {
        r.lo = r.hi = parse_port(w, s);
        return r;
    }
    std::string_view a = s.substr(0, colon), b = s.substr(colon + 1);
    r.lo = a.empty() ? 0 : parse_port(w, a);
    r.hi = b.empty() ? 0xffff : parse_port(w, b);
    if (r.lo > r.hi) fail(w.col, "invalid port range " + quoted(s) + " (min > max)");
    return r;
}

uint8_t parse_tcp_flag_list(const word& w, std::string_view s) {
    static constexpr std::pair<std::string_view, uint8_t> names[] = {
        {"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08},
        {"ACK", 0x10}, {"URG", 0x20}, {"ALL", 0x3f}, {"NONE", 0x00},
    };
    uint8_t v = 0;
    for (auto part : split(s, ',')) {
        bool ok = false;
        for (auto [n, bit] : names)
            if (iequals(n, part)) {
                v |= bit;
                ok = true;
            }
        if (!ok) fail(w.col, "unknown TCP flag " + quoted(part));
    }
    return v;
}

uint8_t parse_ctstates(const word& w, std::string_view s) {
    static constexpr std::pair<std::string_view, ct_state> names[] = {
        {"INVALID", ct_state::invalid},         {"NEW", ct_state::new_},
        {"RELATED", ct_state::related},         {"ESTABLISHED", ct_state::established},
        {"UNTRACKED", ct_state::untracked},
    };
    uint8_t v = 0;
    for (auto part : split(s, ',')) {
        bool ok = false;
        for (auto [n, bit] : names)
            if (iequals(n, part)) {
                v |= ct_bit(bit);
                ok = true;
            }
        if (!ok) {
            if (iequals(part, "SNAT") || iequals(part, "DNAT"))
                fail(w.col, "conntrack state " + std::string(part) + " is not supported");
            fail(w.col, "bad conntrack state " + quoted(part));
        }
    }
    return v;
}

struct icmp_name {
    std::string_view name;
    uint8_t type, code_lo, code_hi;
};
constexpr icmp_name icmp4_names[] = {
    {"any", 0xff, 0, 0xff},
    {"echo-reply", 0, 0, 0xff},
    {"pong", 0, 0, 0xff},
    {"destination-unreachable", 3, 0, 0xff},
    {"network-unreachable", 3, 0, 0},
    {"host-unreachable", 3, 1, 1},
    {"protocol-unreachable", 3, 2, 2},
    {"port-unreachable", 3, 3, 3},
    {"fragmentation-needed", 3, 4, 4},
    {"source-route-failed", 3, 5, 5},
    {"network-unknown", 3, 6, 6},
    {"host-unknown", 3, 7, 7},
    {"network-prohibited", 3, 9, 9},
    {"host-prohibited", 3, 10, 10},
    {"TOS-network-unreachable", 3, 11, 11},
    {"TOS-host-unreachable", 3, 12, 12},
    {"communication-prohibited", 3, 13, 13},
    {"host-precedence-violation", 3, 14, 14},
    {"precedence-cutoff", 3, 15, 15},
    {"source-quench", 4, 0, 0xff},
    {"redirect", 5, 0, 0xff},
    {"network-redirect", 5, 0, 0},
    {"host-redirect", 5, 1, 1},
    {"TOS-network-redirect", 5, 2, 2},
    {"TOS-host-redirect", 5, 3, 3},
    {"echo-request", 8, 0, 0xff},
    {"ping", 8, 0, 0xff},
    {"router-advertisement", 9, 0, 0xff},
    {"router-solicitation", 10, 0, 0xff},
    {"time-exceeded", 11, 0, 0xff},
    {"ttl-exceeded", 11, 0, 0xff},
    {"ttl-zero-during-transit", 11, 0, 0},
    {"ttl-zero-during-reassembly", 11, 1, 1},
    {"parameter-problem", 12, 0, 0xff},
    {"ip-header-bad", 12, 0, 0},
    {"required-option-missing", 12, 1, 1},
    {"timestamp-request", 13, 0, 0xff},
    {"timestamp-reply", 14, 0, 0xff},
    {"address-mask-request", 17, 0, 0xff},
    {"address-mask-reply", 18, 0, 0xff},
};
constexpr icmp_name icmp6_names[] = {
    {"destination-unreachable", 1, 0, 0xff},
    {"no-route", 1, 0, 0},
    {"communication-prohibited", 1, 1, 1},
    {"beyond-scope", 1, 2, 2},
    {"address-unreachable", 1, 3, 3},
    {"port-unreachable", 1, 4, 4},
    {"failed-policy", 1, 5, 5},
    {"reject-route", 1, 6, 6},
    {"packet-too-big", 2, 0, 0xff},
    {"time-exceeded", 3, 0, 0xff},
    {"ttl-exceeded", 3, 0, 0xff},
    {"ttl-zero-during-transit", 3, 0, 0},
    {"ttl-zero-during-reassembly", 3, 1, 1},
    {"parameter-problem", 4, 0, 0xff},
    {"bad-header", 4, 0, 0},
    {"unknown-header-type", 4, 1, 1},
    {"unknown-option", 4, 2, 2},
    {"echo-request", 128, 0, 0xff},
    {"ping", 128, 0, 0xff},
    {"echo-reply", 129, 0, 0xff},
    {"pong", 129, 0, 0xff},
    {"mld-listener-query", 130, 0, 0xff},
    {"mld-listener-report", 131, 0, 0xff},
    {"mld-listener-done", 132, 0, 0xff},
    {"mld-listener-reduction", 132, 0, 0xff},
    {"router-solicitation", 133, 0, 0xff},
    {"router-advertisement", 134, 0, 0xff},
    {"neighbour-solicitation", 135, 0, 0xff},
    {"neighbor-solicitation", 135, 0, 0xff},
    {"neighbour-advertisement", 136, 0, 0xff},
    {"neighbor-advertisement", 136, 0, 0xff},
    {"redirect", 137, 0, 0xff},
};

icmp_match parse_icmp_type(const word& w, std::string_view s, bool v6) {
    icmp_match m;
    m.v6 = v6;
    const auto* begin = v6 ? std::begin(icmp6_names) : std::begin(icmp4_names);
    const auto* end = v6 ? std::end(icmp6_names) : std::end(icmp4_names);
    for (const auto* e = begin; e != end; ++e)
        if (iequals(e->name, s)) {
            m.type = e->type;
            m.code_lo = e->code_lo;
            m.code_hi = e->code_hi;
            return m;
        }
    auto slash = s.find('/');
    auto type = parse_uint(s.substr(0, slash), 255);
    if (!type) fail(w.col, std::string("invalid ICMP") + (v6 ? "v6" : "") + " type " + quoted(s));
    m.type = uint8_t(*type);
    if (slash != std::string_view::npos) {
        auto code = parse_uint(s.substr(slash + 1), 255);
        if (!code) fail(w.col, std::string("invalid ICMP") + (v6 ? "v6" : "") + " code " + quoted(s));
        m.code_lo = m.code_hi = uint8_t(*code);
    }
    return m;
}

std::array<uint8_t, 6> parse_mac(const word& w, std::string_view s) {
    std::array<uint8_t, 6> out{};
    auto parts = split(s, ':');
    if (parts.size() != 6) fail(w.col, "bad mac address " + quoted(s));
    for (size_t i = 0; i < 6; ++i) {
        auto p = parts[i];
        unsigned v = 0;
        if (p.empty() || p.size() > 2) fail(w.col, "bad mac address " + quoted(s));
        auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v, 16);
        if (ec != std::errc() || ptr != p.data() + p.size()) fail(w.col, "bad mac address " + quoted(s));
        out[i] = uint8_t(v);
    }
    return out;
}

// libxt_limit's parse_rate: N[/second|/minute|/hour|/day], any prefix of the unit.
uint32_t parse_rate(const word& w, std::string_view s) {
    uint32_t mult = 1;
    auto slash = s.find('/');
    std::string_view num = s.substr(0, slash);
    if (slash != std::string_view::npos) {
        std::string_view unit = s.substr(slash + 1);
        auto is_prefix = [&](std::string_view full) {
            return !unit.empty() && unit.size() <= full.size() && iequals(full.substr(0, unit.size()), unit);
        };
        if (is_prefix("second")) mult = 1;
        else if (is_prefix("minute")) mult = 60;
        else if (is_prefix("hour")) mult = 3600;
        else if (is_prefix("day")) mult = 86400;
        else fail(w.col, "bad rate " + quoted(s));
    }
    auto r = parse_uint(num, 0xffffffffu);
    if (!r || *r == 0) fail(w.col, "bad rate " + quoted(s));
    uint32_t period = uint32_t(10000ull * mult / *r);
    if (period == 0) fail(w.col, "rate too fast " + quoted(s));
    return period;
}

reject_kind parse_reject_with(const word& w, std::string_view s, ip_family fam) {
    struct entry {
        std::string_view name, alias;
        reject_kind kind;
        bool v6;
    };
    static constexpr entry table[] = {
        {"icmp-net-unreachable", "net-unreach", reject_kind::icmp_net_unreachable, false},
        {"icmp-host-unreachable", "host-unreach", reject_kind::icmp_host_unreachable, false},
        {"icmp-port-unreachable", "port-unreach", reject_kind::icmp_port_unreachable, false},
        {"icmp-proto-unreachable", "proto-unreach", reject_kind::icmp_proto_unreachable, false},
        {"icmp-net-prohibited", "net-prohib", reject_kind::icmp_net_prohibited, false},
        {"icmp-host-prohibited", "host-prohib", reject_kind::icmp_host_prohibited, false},
        {"icmp-admin-prohibited", "admin-prohib", reject_kind::icmp_admin_prohibited, false},
        {"tcp-reset", "tcp-rst", reject_kind::tcp_reset, false},
        {"icmp6-no-route", "no-route", reject_kind::icmp6_no_route, true},
        {"icmp6-adm-prohibited", "adm-prohibited", reject_kind::icmp6_adm_prohibited, true},
        {"icmp6-addr-unreachable", "addr-unreach", reject_kind::icmp6_addr_unreachable, true},
        {"icmp6-port-unreachable", "port-unreach", reject_kind::icmp6_port_unreachable, true},
        {"icmp6-policy-fail", "policy-fail", reject_kind::icmp6_policy_fail, true},
        {"icmp6-reject-route", "reject-route", reject_kind::icmp6_reject_route, true},
        {"tcp-reset", "tcp-rst", reject_kind::tcp_reset, true},
    };
    bool v6 = fam == ip_family::ipv6;
    for (const auto& e : table)
        if (e.v6 == v6 && (s == e.name || s == e.alias)) return e.kind;
    fail(w.col, "unknown reject type " + quoted(s) + " for " + (v6 ? "IPv6" : "IPv4"));
}

uint8_t parse_log_level(const word& w, std::string_view s) {
    if (auto n = parse_uint(s, 7)) return uint8_t(*n);
    static constexpr std::pair<std::string_view, uint8_t> names[] = {
        {"alert", 1}, {"crit", 2}, {"debug", 7}, {"emerg", 0}, {"error", 3},
        {"info", 6},  {"notice", 5}, {"panic", 0}, {"warning", 4},
    };
    for (auto [n, v] : names)
        if (iequals(n, s)) return v;
    fail(w.col, "log level " + quoted(s) + " unknown");
}

// ---- one rule ----------------------------------------------------------------------------

enum class module : uint8_t {
    tcp, udp, sctp, icmp, icmp6, multiport, conntrack, state, set, mac, comment, statistic, limit
};

struct module_state {
    module kind;
    size_t match_index;    // into rule::matches
    uint32_t col;          // where it was loaded (-m word, or the option that loaded it)
    std::set<std::string> seen; // canonical option names given
    bool has_mode = false; // statistic
};

constexpr std::string_view unsupported_targets[] = {
    "MASQUERADE", "SNAT", "DNAT", "REDIRECT", "MARK", "CONNMARK", "CT", "NOTRACK", "TCPMSS",
    "QUEUE", "NFQUEUE", "TRACE", "AUDIT", "CHECKSUM", "CLASSIFY", "DSCP", "TOS", "TTL", "HL",
    "HMARK", "SET", "TEE", "TPROXY", "ULOG", "CLUSTERIP", "SECMARK", "CONNSECMARK", "IDLETIMER",
    "LED", "RATEEST", "SYNPROXY", "NETMAP", "TCPOPTSTRIP", "NFLOG6",
};

constexpr std::string_view unsupported_matches[] = {
    "addrtype", "physdev", "owner", "recent", "hashlimit", "connlimit", "connmark", "mark",
    "string", "u32", "length", "ttl", "hl", "tos", "dscp", "iprange", "pkttype", "policy",
    "rpfilter", "socket", "time", "frag", "ah", "esp", "ipv6header", "rt", "hbh", "dst",
    "mh", "udplite", "dccp", "helper", "cgroup", "bpf", "cpu", "devgroup", "ecn", "realm",
    "quota", "connbytes", "nfacct", "osf", "ipvs", "cluster", "geoip", "tcpmss", "conntrack6",
};

class spec_parser {
  public:
    spec_parser(const std::vector<word>& words, size_t first, ip_family fam)
        : w_(words), i_(first), fam_(fam) {}

    // Parses the words from `first` to the end. Returns the rules (after -s/-d expansion)
    // and the column of the target's value (for load-time errors about jumps).
    std::vector<rule> parse(uint32_t& target_col) {
        while (i_ < w_.size()) step();
        if (neg_col_) fail(*neg_col_, "\"!\" at the end of the rule");
        finish();
        target_col = target_col_;
        return expand();
    }

  private:
    const word& next_value(const word& opt) {
        if (i_ >= w_.size()) fail(opt.col, "option " + quoted(opt.text) + " requires an argument");
        return w_[i_++];
    }

    bool take_negation(const word& opt, bool allowed) {
        if (!neg_col_) return false;
        if (!allowed) fail(*neg_col_, "unexpected ! flag before " + opt.text);
        neg_col_.reset();
        return true;
    }

    void once(bool& seen, const word& opt, std::string_view flag) {
        if (seen) fail(opt.col, "multiple " + std::string(flag) + " flags not allowed");
        seen = true;
    }

    void step() {
        const word& w = w_[i_++];
        const std::string& o = w.text;
        if (o == "!") {
            if (neg_col_) fail(w.col, "multiple ! flags not allowed");
            neg_col_ = w.col;
            return;
        }
        if (o == "-s" || o == "--source" || o == "--src") return addresses(w, src_, src_neg_, seen_s_, "-s");
        if (o == "-d" || o == "--destination" || o == "--dst")
            return addresses(w, dst_, dst_neg_, seen_d_, "-d");
        if (o == "-p" || o == "--protocol") {
            bool neg = take_negation(w, true);
            once(seen_p_, w, "-p");
            const word& v = next_value(w);
            auto p = proto_from_name(v.text);
            if (!p) fail(v.col, "unknown protocol " + quoted(v.text) + " specified");
            if (*p == 0) {
                if (neg) fail(v.col, "rule would never match protocol");
            } else {
                rule_.proto = proto_match{*p, neg};
            }
            return;
        }
        if (o == "-i" || o == "--in-interface") return iface(w, rule_.in, seen_i_, "-i");
        if (o == "-o" || o == "--out-interface") return iface(w, rule_.out, seen_o_, "-o");
        if (o == "-f" || o == "--fragment") {
            if (fam_ == ip_family::ipv6) fail(w.col, "-f is not supported in IPv6 (use -m frag)");
            bool neg = take_negation(w, true);
            bool seen = rule_.fragment.has_value();
            once(seen, w, "-f");
            rule_.fragment = !neg;
            return;
        }
        if (o == "-j" || o == "--jump" || o == "-g" || o == "--goto") return jump(w, o[1] == 'g' || o == "--goto");
        if (o == "-m" || o == "--match") {
            take_negation(w, false);
            const word& v = next_value(w);
            load_module(v.text, w.col, v);
            return;
        }
        if (o == "-c" || o == "--set-counters") {
            take_negation(w, false);
            const word& p = next_value(w);
            const word& b = next_value(w);
            if (!parse_uint(p.text, UINT64_MAX)) fail(p.col, "bad packet counter " + quoted(p.text));
            if (!parse_uint(b.text, UINT64_MAX)) fail(b.col, "bad byte counter " + quoted(b.text));
            return;
        }
        if (o.size() >= 2 && o[0] == '-' && o[1] == '-') {
            if (target_option(w)) return;
            for (size_t k = mods_.size(); k-- > 0;)
                if (module_option(mods_[k], w)) return;
            // iptables loads the protocol's match module when it sees an option it does
            // not know and -p names a protocol that has one.
            if (rule_.proto) {
                std::optional<module> implicit;
                switch (rule_.proto->proto) {
                case 6: implicit = module::tcp; break;
                case 17: implicit = module::udp; break;
                case 132: implicit = module::sctp; break;
                case 1: if (fam_ == ip_family::ipv4) implicit = module::icmp; break;
                case 58: if (fam_ == ip_family::ipv6) implicit = module::icmp6; break;
                default: break;
                }
                if (implicit && module_knows(*implicit, o)) {
                    add_module(*implicit, w.col);
                    if (module_option(mods_.back(), w)) return;
                }
            }
        }
        fail(w.col, "unknown option " + quoted(o));
    }

    void addresses(const word& opt, std::vector<cidr>& list, bool& neg, bool& seen, std::string_view flag) {
        neg = take_negation(opt, true);
        once(seen, opt, flag);
        const word& v = next_value(opt);
        auto parts = split(v.text, ',');
        if (neg && parts.size() > 1)
            fail(opt.col, "! not allowed with multiple source or destination IP addresses");
        for (auto p : parts) list.push_back(parse_cidr(v, p, fam_));
    }

    void iface(const word& opt, std::optional<iface_match>& slot, bool& seen, std::string_view flag) {
        bool neg = take_negation(opt, true);
        once(seen, opt, flag);
        const word& v = next_value(opt);
        std::string name = v.text;
        if (name.size() > 15)
            fail(v.col, "interface name " + quoted(name) + " must be shorter than IFNAMSIZ (16)");
        iface_match m;
        m.negate = neg;
        if (!name.empty() && name.back() == '+') {
            m.wildcard = true;
            name.pop_back();
        }
        m.name = name;
        if (name.empty()) m.wildcard = true; // "" and "+" match every interface
        if (m.wildcard && m.name.empty() && !neg) return;
        slot = m;
    }

    void jump(const word& opt, bool go_to) {
        take_negation(opt, false);
        if (target_seen_) fail(opt.col, "multiple -j flags not allowed");
        target_seen_ = true;
        const word& v = next_value(opt);
        target_col_ = v.col;
        const std::string& t = v.text;
        rule_target& tg = rule_.target;
        auto builtin = [&](target_kind k) {
            if (go_to) fail(v.col, "-g needs a user chain, not " + t);
            tg.kind = k;
        };
        if (t == "ACCEPT") return builtin(target_kind::accept);
        if (t == "DROP") return builtin(target_kind::drop);
        if (t == "RETURN") return builtin(target_kind::return_);
        if (t == "REJECT") {
            builtin(target_kind::reject);
            tg.reject = fam_ == ip_family::ipv4 ? reject_kind::icmp_port_unreachable
                                                : reject_kind::icmp6_port_unreachable;
            return;
        }
        if (t == "LOG") return builtin(target_kind::log);
        if (t == "NFLOG") return builtin(target_kind::nflog);
        for (auto u : unsupported_targets)
            if (t == u) fail(v.col, "target " + t + " is not supported (ACCEPT, DROP, REJECT, RETURN, LOG, NFLOG or a chain)");
        if (auto problem = chain_name_problem(t)) fail(v.col, *problem);
        tg.kind = go_to ? target_kind::go_to : target_kind::jump;
        tg.chain = t;
    }

    bool target_option(const word& w) {
        const std::string& o = w.text;
        rule_target& tg = rule_.target;
        auto seen_once = [&](std::string_view canon) {
            if (!target_opts_.insert(std::string(canon)).second)
                fail(w.col, "option " + std::string(canon) + " given twice");
        };
        if (tg.kind == target_kind::reject && o == "--reject-with") {
            take_negation(w, false);
            seen_once(o);
            const word& v = next_value(w);
            tg.reject = parse_reject_with(v, v.text, fam_);
            return true;
        }
        if (tg.kind == target_kind::log) {
            if (o == "--log-prefix") {
                take_negation(w, false);
                seen_once(o);
                const word& v = next_value(w);
                if (v.text.empty()) fail(v.col, "no prefix specified for --log-prefix");
                if (v.text.size() > 29) fail(v.col, "maximum prefix length 29 for --log-prefix");
                if (v.text.find('\n') != std::string::npos) fail(v.col, "newlines not allowed in --log-prefix");
                tg.log.prefix = v.text;
                return true;
            }
            if (o == "--log-level") {
                take_negation(w, false);
                seen_once(o);
                const word& v = next_value(w);
                tg.log.level = parse_log_level(v, v.text);
                return true;
            }
            static constexpr std::pair<std::string_view, uint8_t> flags[] = {
                {"--log-tcp-sequence", log_flag::tcp_sequence}, {"--log-tcp-options", log_flag::tcp_options},
                {"--log-ip-options", log_flag::ip_options},     {"--log-uid", log_flag::uid},
                {"--log-macdecode", log_flag::macdecode},
            };
            for (auto [name, bit] : flags)
                if (o == name) {
                    take_negation(w, false);
                    seen_once(o);
                    tg.log.flags |= bit;
                    return true;
                }
        }
        if (tg.kind == target_kind::nflog) {
            if (o == "--nflog-prefix") {
                take_negation(w, false);
                seen_once(o);
                const word& v = next_value(w);
                if (v.text.empty()) fail(v.col, "no prefix specified for --nflog-prefix");
                if (v.text.size() > 63) fail(v.col, "maximum prefix length 63 for --nflog-prefix");
                tg.nflog.prefix = v.text;
                return true;
            }
            auto number = [&](uint64_t max) {
                take_negation(w, false);
                seen_once(o);
                const word& v = next_value(w);
                auto n = parse_uint(v.text, max);
                if (!n) fail(v.col, "invalid value " + quoted(v.text) + " for " + o);
                return *n;
            };
            if (o == "--nflog-group") return tg.nflog.group = uint16_t(number(65535)), true;
            if (o == "--nflog-size") return tg.nflog.size = uint32_t(number(0xffffffffu)), true;
            if (o == "--nflog-threshold") {
                auto n = number(65535);
                if (n == 0) fail(w.col, "--nflog-threshold must be at least 1");
                tg.nflog.threshold = uint16_t(n);
                return true;
            }
            if (o == "--nflog-range") { // never worked in the kernel; iptables ignores it
                number(0xffffffffu);
                return true;
            }
        }
        return false;
    }

    static bool module_knows(module m, std::string_view o) {
        switch (m) {
        case module::tcp:
            return o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port" ||
                   o == "--tcp-flags" || o == "--syn" || o == "--tcp-option";
        case module::udp:
            return o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port";
        case module::sctp:
            return o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port" ||
                   o == "--chunk-types";
        case module::icmp: return o == "--icmp-type";
        case module::icmp6: return o == "--icmpv6-type";
        case module::multiport:
            return o == "--sports" || o == "--source-ports" || o == "--dports" ||
                   o == "--destination-ports" || o == "--ports";
        case module::conntrack:
            return o == "--ctstate" || o == "--ctproto" || o == "--ctorigsrc" || o == "--ctorigdst" ||
                   o == "--ctreplsrc" || o == "--ctrepldst" || o == "--ctorigsrcport" ||
                   o == "--ctorigdstport" || o == "--ctreplsrcport" || o == "--ctrepldstport" ||
                   o == "--ctstatus" || o == "--ctexpire" || o == "--ctdir";
        case module::state: return o == "--state";
        case module::set:
            return o == "--match-set" || o == "--set" || o == "--return-nomatch" ||
                   o == "--update-counters" || o == "--update-subcounters" || o == "--packets-eq" ||
                   o == "--packets-lt" || o == "--packets-gt" || o == "--bytes-eq" ||
                   o == "--bytes-lt" || o == "--bytes-gt";
        case module::mac: return o == "--mac-source";
        case module::comment: return o == "--comment";
        case module::statistic:
            return o == "--mode" || o == "--probability" || o == "--every" || o == "--packet";
        case module::limit: return o == "--limit" || o == "--limit-burst";
        }
        return false;
    }

    void add_module(module m, uint32_t col) {
        match mt;
        switch (m) {
        case module::tcp: mt = tcpudp_match{6, {}, {}, false, false, {}, false}; break;
        case module::udp: mt = tcpudp_match{17, {}, {}, false, false, {}, false}; break;
        case module::sctp: mt = tcpudp_match{132, {}, {}, false, false, {}, false}; break;
        case module::icmp: mt = icmp_match{false, 0xff, 0, 0xff, false}; break;
        case module::icmp6: mt = icmp_match{true, 0, 0, 0xff, false}; break;
        case module::multiport: mt = multiport_match{}; break;
        case module::conntrack: mt = ctstate_match{0, false, false}; break;
        case module::state: mt = ctstate_match{0, false, true}; break;
        case module::set: mt = set_match{}; break;
        case module::mac: mt = mac_match{}; break;
        case module::comment: mt = comment_match{}; break;
        case module::statistic: mt = statistic_match{}; break;
        case module::limit: mt = limit_match{10000u * 3600 / 3, 5}; break;
        }
        rule_.matches.push_back(std::move(mt));
        mods_.push_back(module_state{m, rule_.matches.size() - 1, col, {}, false});
    }

    void load_module(const std::string& name, uint32_t col, const word& v) {
        static constexpr std::pair<std::string_view, module> names[] = {
            {"tcp", module::tcp},           {"udp", module::udp},
            {"sctp", module::sctp},         {"icmp", module::icmp},
            {"icmp6", module::icmp6},       {"multiport", module::multiport},
            {"conntrack", module::conntrack}, {"state", module::state},
            {"set", module::set},           {"mac", module::mac},
            {"comment", module::comment},   {"statistic", module::statistic},
            {"limit", module::limit},
        };
        for (auto [n, m] : names)
            if (n == name) {
                if (m == module::icmp && fam_ == ip_family::ipv6)
                    fail(v.col, "match icmp is IPv4 only (use -m icmp6)");
                if (m == module::icmp6 && fam_ == ip_family::ipv4)
                    fail(v.col, "match icmp6 is IPv6 only (use -m icmp)");
                add_module(m, col);
                return;
            }
        for (auto u : unsupported_matches)
            if (u == name) fail(v.col, "match " + name + " is not supported");
        fail(v.col, "unknown match " + quoted(name));
    }

    // Handles `w` if module `ms` knows it; false otherwise.
    bool module_option(module_state& ms, const word& w) {
        const std::string& o = w.text;
        if (!module_knows(ms.kind, o)) return false;
        match& mt = rule_.matches[ms.match_index];
        auto canonical = [&]() -> std::string {
            if (o == "--source-port") return "--sport";
            if (o == "--destination-port") return "--dport";
            if (o == "--source-ports" || o == "--destination-ports" || o == "--sports" ||
                o == "--dports" || o == "--ports")
                return "ports";
            if (o == "--set") return "--match-set";
            return o;
        };
        auto seen_once = [&](std::string_view flag) {
            if (!ms.seen.insert(canonical()).second) {
                if (canonical() == "ports") fail(w.col, "multiport can only have one option");
                fail(w.col, "only one " + std::string(flag) + " allowed");
            }
        };
        switch (ms.kind) {
        case module::tcp:
        case module::udp:
        case module::sctp: {
            auto& m = std::get<tcpudp_match>(mt);
            std::string c = canonical();
            if (c == "--sport" || c == "--dport") {
                bool neg = take_negation(w, true);
                seen_once(c);
                const word& v = next_value(w);
                port_range r = parse_port_range(v, v.text);
                bool full = r.lo == 0 && r.hi == 0xffff && !neg;
                if (c == "--sport") {
                    m.sport = full ? std::nullopt : std::optional<port_range>(r);
                    m.sport_negate = neg;
                } else {
                    m.dport = full ? std::nullopt : std::optional<port_range>(r);
                    m.dport_negate = neg;
                }
                return true;
            }
            if (o == "--tcp-flags" || o == "--syn") {
                bool neg = take_negation(w, true);
                if (ms.seen.count("--tcp-flags") || ms.seen.count("--syn"))
                    fail(w.col, "only one of --syn or --tcp-flags allowed");
                ms.seen.insert(o);
                if (o == "--syn") {
                    m.flags = std::pair<uint8_t, uint8_t>{0x17, 0x02};
                } else {
                    const word& mask = next_value(w);
                    const word& comp = next_value(w);
                    m.flags = std::pair<uint8_t, uint8_t>{parse_tcp_flag_list(mask, mask.text),
                                                          parse_tcp_flag_list(comp, comp.text)};
                }
                m.flags_negate = neg;
                return true;
            }
            fail(w.col, "option " + o + " is not supported");
        }
        case module::icmp:
        case module::icmp6: {
            bool neg = take_negation(w, true);
            seen_once(o);
            const word& v = next_value(w);
            auto& m = std::get<icmp_match>(mt);
            m = parse_icmp_type(v, v.text, ms.kind == module::icmp6);
            m.negate = neg;
            return true;
        }
        case module::multiport: {
            bool neg = take_negation(w, true);
            seen_once(o);
            const word& v = next_value(w);
            auto& m = std::get<multiport_match>(mt);
            m.negate = neg;
            m.dir = (o == "--sports" || o == "--source-ports") ? multiport_dir::src
                    : o == "--ports"                          ? multiport_dir::any
                                                              : multiport_dir::dst;
            size_t slots = 0;
            for (auto p : split(v.text, ',')) {
                port_range r = parse_port_range(v, p);
                slots += r.lo == r.hi ? 1 : 2;
                m.ports.push_back(r);
            }
            if (slots > 15) fail(v.col, "too many ports specified (at most 15, a range counts 2)");
            return true;
        }
        case module::conntrack:
        case module::state: {
            if (o != "--ctstate" && o != "--state")
                fail(w.col, "conntrack option " + o + " is not supported (only --ctstate)");
            bool neg = take_negation(w, true);
            seen_once(o);
            const word& v = next_value(w);
            auto& m = std::get<ctstate_match>(mt);
            m.mask = parse_ctstates(v, v.text);
            m.negate = neg;
            return true;
        }
        case module::set: {
            if (canonical() != "--match-set") fail(w.col, "set option " + o + " is not supported");
            bool neg = take_negation(w, true);
            seen_once("--match-set");
            const word& name = next_value(w);
            const word& dirs = next_value(w);
            if (name.text.empty() || name.text.size() > 31)
                fail(name.col, "set name " + quoted(name.text) + " must be 1 to 31 characters");
            auto& m = std::get<set_match>(mt);
            m.name = name.text;
            m.negate = neg;
            auto parts = split(dirs.text, ',');
            if (parts.size() > 6) fail(dirs.col, "can't be more src/dst options than 6");
            m.dims = dim_flags{};
            for (size_t k = 0; k < parts.size(); ++k) {
                if (parts[k] == "src") m.dims.src_mask |= uint8_t(1u << k);
                else if (parts[k] != "dst")
                    fail(dirs.col, "you must specify (the comma separated list of) 'src' or 'dst'");
            }
            m.dims.count = uint8_t(parts.size());
            return true;
        }
        case module::mac: {
            bool neg = take_negation(w, true);
            seen_once(o);
            const word& v = next_value(w);
            auto& m = std::get<mac_match>(mt);
            m.addr = parse_mac(v, v.text);
            m.negate = neg;
            return true;
        }
        case module::comment: {
            take_negation(w, false);
            seen_once(o);
            const word& v = next_value(w);
            if (v.text.size() > 255) fail(v.col, "comment too long (at most 255 characters)");
            std::get<comment_match>(mt).text = v.text;
            return true;
        }
        case module::statistic: {
            auto& m = std::get<statistic_match>(mt);
            if (o == "--mode") {
                take_negation(w, false);
                seen_once(o);
                const word& v = next_value(w);
                if (v.text == "nth") fail(v.col, "statistic --mode nth is not supported");
                if (v.text != "random") fail(v.col, "bad statistic mode " + quoted(v.text));
                ms.has_mode = true;
                return true;
            }
            if (o == "--probability") {
                bool neg = take_negation(w, true);
                seen_once(o);
                const word& v = next_value(w);
                char* end = nullptr;
                std::string s = v.text;
                double p = s.empty() ? -1 : std::strtod(s.c_str(), &end);
                if (s.empty() || end != s.c_str() + s.size() || !(p >= 0.0 && p <= 1.0))
                    fail(v.col, "--probability must be between 0 and 1");
                m.threshold = uint32_t(std::lround(2147483648.0 * p));
                m.negate = neg;
                return true;
            }
            fail(w.col, "statistic option " + o + " is not supported (only --mode random)");
        }
        case module::limit: {
            auto& m = std::get<limit_match>(mt);
            take_negation(w, false);
            seen_once(o);
            const word& v = next_value(w);
            if (o == "--limit") {
                m.period = parse_rate(v, v.text);
            } else {
                auto n = parse_uint(v.text, 0xffffffffu);
                if (!n || *n == 0) fail(v.col, "bad --limit-burst " + quoted(v.text));
                m.burst = uint32_t(*n);
            }
            return true;
        }
        }
        return false;
    }

    bool proto_is(uint8_t p) const { return rule_.proto && !rule_.proto->negate && rule_.proto->proto == p; }

    // End-of-rule checks: mandatory options and the protocol each match module needs (the
    // kernel's xt_check_match), target constraints.
    void finish() {
        for (const auto& ms : mods_) {
            const match& mt = rule_.matches[ms.match_index];
            auto need = [&](bool ok, std::string reason) {
                if (!ok) fail(ms.col, std::move(reason));
            };
            switch (ms.kind) {
            case module::tcp: need(proto_is(6), "tcp match: only valid for protocol 6 (-p tcp)"); break;
            case module::udp: need(proto_is(17), "udp match: only valid for protocol 17 (-p udp)"); break;
            case module::sctp: need(proto_is(132), "sctp match: only valid for protocol 132 (-p sctp)"); break;
            case module::icmp:
                need(ms.seen.count("--icmp-type") > 0, "icmp: option \"--icmp-type\" must be specified");
                need(proto_is(1), "icmp match: only valid for protocol 1 (-p icmp)");
                break;
            case module::icmp6:
                need(ms.seen.count("--icmpv6-type") > 0, "icmp6: option \"--icmpv6-type\" must be specified");
                need(proto_is(58), "icmp6 match: only valid for protocol 58 (-p ipv6-icmp)");
                break;
            case module::multiport:
                need(!ms.seen.empty(), "multiport: one of --sports, --dports or --ports must be specified");
                need(proto_is(6) || proto_is(17) || proto_is(136) || proto_is(132) || proto_is(33),
                     "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
                break;
            case module::conntrack:
                need(!ms.seen.empty(), "conntrack: option \"--ctstate\" must be specified");
                break;
            case module::state: need(!ms.seen.empty(), "state: option \"--state\" must be specified"); break;
            case module::set: need(!ms.seen.empty(), "set: option \"--match-set\" must be specified"); break;
            case module::mac: need(!ms.seen.empty(), "mac: option \"--mac-source\" must be specified"); break;
            case module::comment: need(!ms.seen.empty(), "comment: option \"--comment\" must be specified"); break;
            case module::statistic:
                need(ms.has_mode, "statistic: option \"--mode\" must be specified");
                need(ms.seen.count("--probability") > 0, "statistic: option \"--probability\" must be specified");
                break;
            case module::limit: {
                const auto& m = std::get<limit_match>(mt);
                need(uint64_t(m.period) * m.burst <= 0xffffffffu, "limit: overflow, try a lower rate or burst");
                break;
            }
            }
        }
        if (rule_.target.kind == target_kind::reject && rule_.target.reject == reject_kind::tcp_reset &&
            !proto_is(6))
            fail(target_col_, "REJECT --reject-with tcp-reset is only valid with -p tcp");
    }

    std::vector<rule> expand() {
        std::vector<rule> out;
        auto addr = [](const std::vector<cidr>& list, bool neg, size_t k) -> std::optional<addr_match> {
            if (list.empty()) return std::nullopt;
            const cidr& c = list[k];
            if (c.prefix == 0 && !neg) return std::nullopt; // 0/0 matches everything
            return addr_match{c, neg};
        };
        size_t ns = std::max<size_t>(1, src_.size()), nd = std::max<size_t>(1, dst_.size());
        for (size_t a = 0; a < ns; ++a)
            for (size_t b = 0; b < nd; ++b) {
                rule r = rule_;
                r.src = addr(src_, src_neg_, a);
                r.dst = addr(dst_, dst_neg_, b);
                out.push_back(std::move(r));
            }
        return out;
    }

    const std::vector<word>& w_;
    size_t i_;
    ip_family fam_;
    rule rule_;
    std::vector<cidr> src_, dst_;
    bool src_neg_ = false, dst_neg_ = false;
    bool seen_s_ = false, seen_d_ = false, seen_p_ = false, seen_i_ = false, seen_o_ = false;
    bool target_seen_ = false;
    uint32_t target_col_ = 0;
    std::optional<uint32_t> neg_col_;
    std::vector<module_state> mods_;
    std::set<std::string> target_opts_;
};

// ---- the file ----------------------------------------------------------------------------

struct rule_pos {
    uint32_t line, start_col, target_col;
};

bool is_counters(std::string_view s) {
    if (s.size() < 5 || s.front() != '[' || s.back() != ']') return false;
    auto inner = s.substr(1, s.size() - 2);
    auto colon = inner.find(':');
    if (colon == std::string_view::npos) return false;
    return parse_uint(inner.substr(0, colon), UINT64_MAX) && parse_uint(inner.substr(colon + 1), UINT64_MAX);
}

class file_parser {
  public:
    file_parser(std::string_view text, ip_family fam) : text_(text), fam_(fam), rs_(ruleset::empty(fam)) {
        pos_.resize(rs_.chains.size());
    }

    ruleset run(uint32_t& line_out) {
        line_out_ = &line_out;
        size_t off = 0;
        while (off < text_.size()) {
            size_t nl = text_.find('\n', off);
            std::string_view line = text_.substr(off, nl == std::string_view::npos ? text_.npos : nl - off);
            off = nl == std::string_view::npos ? text_.size() : nl + 1;
            ++line_no_;
            line_out = line_no_;
            do_line(line);
        }
        if (in_table_) {
            line_out = line_no_ + 1;
            throw failure{1, "missing COMMIT for table filter (opened at line " + std::to_string(table_line_) + ")"};
        }
        return std::move(rs_);
    }

  private:
    void do_line(std::string_view line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos) return;
        if (line[first] == '#') return;
        uint32_t col0 = uint32_t(first) + 1;
        std::string_view body = line.substr(first);
        if (body[0] == '*') return table_line(body, col0);
        if (body == "COMMIT" || (body.substr(0, 6) == "COMMIT" && body.find_first_not_of(" \t", 6) == std::string_view::npos))
            return commit(col0);
        if (body[0] == ':') return chain_line(body, col0);
        auto words = split_words(body, col0);
        if (words.empty()) return;
        rule_line(words);
    }

    void table_line(std::string_view body, uint32_t col) {
        std::string_view name = body.substr(1);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
        if (in_table_) fail(col, "table " + std::string(name) + " starts before COMMIT of table filter");
        if (name != "filter") {
            if (name.empty()) fail(col, "missing table name after '*'");
            fail(col, "table " + std::string(name) + " not supported; only *filter");
        }
        if (seen_filter_) fail(col, "table filter given twice");
        in_table_ = seen_filter_ = true;
        table_line_ = line_no_;
    }

    void commit(uint32_t col) {
        if (!in_table_) fail(col, "COMMIT without a table (missing *filter)");
        in_table_ = false;
        if (auto p = check_ruleset(rs_)) {
            size_t ci = 0;
            while (ci < rs_.chains.size() && rs_.chains[ci].name != p->chain) ++ci;
            if (ci < rs_.chains.size() && p->rule >= 0 && size_t(p->rule) < pos_[ci].size()) {
                const rule_pos& rp = pos_[ci][size_t(p->rule)];
                *line_out_ = rp.line;
                bool about_jump = p->reason.find("ELOOP") != std::string::npos ||
                                  p->reason.find("jump") != std::string::npos ||
                                  p->reason.find("does not exist") != std::string::npos;
                fail(about_jump ? rp.target_col : rp.start_col, p->reason);
            }
            fail(col, "chain " + p->chain + ": " + p->reason);
        }
    }

    void chain_line(std::string_view body, uint32_t col0) {
        if (!in_table_) fail(col0, "chain declaration outside a table (missing *filter)");
        auto words = split_words(body.substr(1), col0 + 1);
        if (words.empty()) fail(col0, "missing chain name after ':'");
        const word& name = words[0];
        if (words.size() < 2) fail(name.col, "missing policy for chain " + name.text);
        const word& policy = words[1];
        if (words.size() > 2 && !is_counters(words[2].text))
            fail(words[2].col, "bad counters " + quoted(words[2].text) + " (expected [packets:bytes])");
        if (words.size() > 3) fail(words[3].col, "unexpected " + quoted(words[3].text) + " after chain counters");
        chain* existing = rs_.find(name.text);
        bool builtin = existing && existing->builtin;
        if (builtin) {
            if (declared_.count(name.text)) fail(name.col, "chain " + name.text + " declared twice");
            declared_.insert(name.text);
            if (policy.text == "ACCEPT") existing->policy = chain_policy::accept;
            else if (policy.text == "DROP") existing->policy = chain_policy::drop;
            else if (policy.text != "-")
                fail(policy.col, "invalid policy " + quoted(policy.text) + " for built-in chain " + name.text +
                                     " (ACCEPT or DROP)");
            return;
        }
        if (existing) fail(name.col, "chain " + name.text + " declared twice");
        if (auto problem = chain_name_problem(name.text)) fail(name.col, *problem);
        if (policy.text != "-")
            fail(policy.col, "can't set policy " + quoted(policy.text) + " on user-defined chain " + name.text);
        rs_.chains.push_back(chain{name.text, false, chain_policy::none, {}});
        pos_.emplace_back();
    }

    void rule_line(const std::vector<word>& words) {
        size_t k = 0;
        if (is_counters(words[0].text)) ++k;
        else if (words[0].text.front() == '[') fail(words[0].col, "bad counters " + quoted(words[0].text));
        if (k >= words.size()) fail(words[0].col, "counters without a rule");
        const word& cmd = words[k];
        if (!in_table_) fail(cmd.col, "rule outside a table (missing *filter)");
        bool insert = cmd.text == "-I" || cmd.text == "--insert";
        if (!insert && cmd.text != "-A" && cmd.text != "--append") {
            if (cmd.text.size() > 1 && cmd.text[0] == '-')
                fail(cmd.col, "command " + cmd.text + " is not supported in a restore file (only -A and -I)");
            fail(cmd.col, "unexpected " + quoted(cmd.text) + "; expected *filter, :CHAIN, -A CHAIN or COMMIT");
        }
        if (k + 1 >= words.size()) fail(cmd.col, "option " + quoted(cmd.text) + " requires an argument");
        const word& cname = words[k + 1];
        size_t ci = 0;
        while (ci < rs_.chains.size() && rs_.chains[ci].name != cname.text) ++ci;
        if (ci == rs_.chains.size()) fail(cname.col, "chain " + quoted(cname.text) + " does not exist");
        size_t first = k + 2;
        size_t at = rs_.chains[ci].rules.size();
        if (insert) {
            at = 0;
            if (first < words.size()) {
                if (auto n = parse_uint(words[first].text, 1u << 30)) {
                    if (*n == 0 || *n > rs_.chains[ci].rules.size() + 1)
                        fail(words[first].col, "index of insertion too big");
                    at = size_t(*n - 1);
                    ++first;
                }
            }
        }
        uint32_t target_col = 0;
        spec_parser sp(words, first, fam_);
        std::vector<rule> rules = sp.parse(target_col);
        const rule& r0 = rules.front();
        const chain& c = rs_.chains[ci];
        if (c.builtin && c.name == "INPUT" && r0.out) fail(cmd.col, "can't use -o with INPUT");
        if (c.builtin && c.name == "OUTPUT" && r0.in) fail(cmd.col, "can't use -i with OUTPUT");
        if (r0.target.kind == target_kind::jump || r0.target.kind == target_kind::go_to) {
            const chain* to = rs_.find(r0.target.chain);
            if (!to) fail(target_col, "chain " + quoted(r0.target.chain) + " does not exist");
            if (to->builtin) fail(target_col, "cannot jump to built-in chain " + to->name);
        }
        auto& list = rs_.chains[ci].rules;
        auto& plist = pos_[ci];
        for (auto& r : rules) {
            list.insert(list.begin() + long(at), std::move(r));
            plist.insert(plist.begin() + long(at), rule_pos{line_no_, cmd.col, target_col});
            ++at;
        }
    }

    std::string_view text_;
    ip_family fam_;
    ruleset rs_;
    std::vector<std::vector<rule_pos>> pos_; // parallel to rs_.chains[i].rules
    std::set<std::string> declared_;
    uint32_t line_no_ = 0, table_line_ = 0;
    uint32_t* line_out_ = nullptr;
    bool in_table_ = false, seen_filter_ = false;
};

} // namespace

parsed<ruleset> parse_iptables_save(std::string_view text, std::string_view filename, ip_family family) noexcept {
    parsed<ruleset> out;
    uint32_t line = 0;
    try {
        file_parser p(text, family);
        out.value = p.run(line);
    } catch (const failure& f) {
        out.value.reset();
        out.error = parse_error{std::string(filename), line, f.column, f.reason};
    } catch (const std::exception& e) {
        out.value.reset();
        out.error = parse_error{std::string(filename), line, 1, std::string("internal error: ") + e.what()};
    }
    return out;
}

parsed<std::vector<rule>> parse_rule_spec(std::string_view args, ip_family family, std::string_view source) noexcept {
    parsed<std::vector<rule>> out;
    try {
        auto words = split_words(args, 1);
        uint32_t target_col = 0;
        spec_parser sp(words, 0, family);
        out.value = sp.parse(target_col);
    } catch (const failure& f) {
        out.value.reset();
        out.error = parse_error{std::string(source), 1, f.column, f.reason};
    } catch (const std::exception& e) {
        out.value.reset();
        out.error = parse_error{std::string(source), 1, 1, std::string("internal error: ") + e.what()};
    }
    return out;
}

std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max) noexcept {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

} // namespace sluice
