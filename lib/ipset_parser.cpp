// ipset save/restore text; see ipset_parser.hpp for the contract.
//
// Protocol and ICMP names come from built-in tables (ipset uses /etc/protocols and its own
// ICMP tables; these are the same names) so that parsing does not depend on the host.
#include "ipset_parser.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

namespace sluice {

namespace {

// ---------------------------------------------------------------------------------------
// Name tables

struct proto_name {
    uint8_t num;
    std::string_view name;
};
// First name per number is what save prints (as getprotobynumber would).
constexpr proto_name proto_names[] = {
    {1, "icmp"},    {2, "igmp"},        {4, "ipencap"},    {6, "tcp"},         {8, "egp"},
    {17, "udp"},    {33, "dccp"},       {41, "ipv6"},      {43, "ipv6-route"}, {44, "ipv6-frag"},
    {46, "rsvp"},   {47, "gre"},        {50, "esp"},       {51, "ah"},         {58, "ipv6-icmp"},
    {58, "icmpv6"}, {59, "ipv6-nonxt"}, {60, "ipv6-opts"}, {88, "eigrp"},      {89, "ospf"},
    {94, "ipip"},   {97, "etherip"},    {98, "encap"},     {103, "pim"},       {108, "ipcomp"},
    {112, "vrrp"},  {115, "l2tp"},      {132, "sctp"},     {136, "udplite"},   {137, "mpls-in-ip"},
};

struct icmp_name {
    std::string_view name;
    uint8_t type, code;
};
constexpr icmp_name icmp_names[] = {
    {"echo-reply", 0, 0},
    {"pong", 0, 0},
    {"network-unreachable", 3, 0},
    {"host-unreachable", 3, 1},
    {"protocol-unreachable", 3, 2},
    {"port-unreachable", 3, 3},
    {"fragmentation-needed", 3, 4},
    {"source-route-failed", 3, 5},
    {"network-unknown", 3, 6},
    {"host-unknown", 3, 7},
    {"network-prohibited", 3, 9},
    {"host-prohibited", 3, 10},
    {"TOS-network-unreachable", 3, 11},
    {"TOS-host-unreachable", 3, 12},
    {"communication-prohibited", 3, 13},
    {"host-precedence-violation", 3, 14},
    {"precedence-cutoff", 3, 15},
    {"source-quench", 4, 0},
    {"network-redirect", 5, 0},
    {"host-redirect", 5, 1},
    {"TOS-network-redirect", 5, 2},
    {"TOS-host-redirect", 5, 3},
    {"echo-request", 8, 0},
    {"ping", 8, 0},
    {"router-advertisement", 9, 0},
    {"router-solicitation", 10, 0},
    {"ttl-zero-during-transit", 11, 0},
    {"ttl-zero-during-reassembly", 11, 1},
    {"ip-header-bad", 12, 0},
    {"required-option-missing", 12, 1},
    {"timestamp-request", 13, 0},
    {"timestamp-reply", 14, 0},
    {"address-mask-request", 17, 0},
    {"address-mask-reply", 18, 0},
};
constexpr icmp_name icmpv6_names[] = {
    {"no-route", 1, 0},
    {"communication-prohibited", 1, 1},
    {"address-unreachable", 1, 3},
    {"port-unreachable", 1, 4},
    {"packet-too-big", 2, 0},
    {"ttl-zero-during-transit", 3, 0},
    {"ttl-zero-during-reassembly", 3, 1},
    {"bad-header", 4, 0},
    {"unknown-header-type", 4, 1},
    {"unknown-option", 4, 2},
    {"echo-request", 128, 0},
    {"ping", 128, 0},
    {"echo-reply", 129, 0},
    {"pong", 129, 0},
};

struct service_name {
    std::string_view name;
    uint16_t port;
};
constexpr service_name service_names[] = {
    {"ftp-data", 20},     {"ftp", 21},    {"ssh", 22},    {"telnet", 23},    {"smtp", 25},
    {"domain", 53},       {"bootps", 67}, {"bootpc", 68}, {"tftp", 69},      {"http", 80},
    {"pop3", 110},        {"ntp", 123},   {"imap2", 143}, {"imap", 143},     {"snmp", 161},
    {"bgp", 179},         {"ldap", 389},  {"https", 443}, {"syslog", 514},   {"submission", 587},
    {"ldaps", 636},       {"imaps", 993}, {"pop3s", 995}, {"openvpn", 1194}, {"mysql", 3306},
    {"postgresql", 5432},
};

constexpr uint8_t p_icmp = 1, p_tcp = 6, p_udp = 17, p_icmpv6 = 58, p_sctp = 132, p_udplite = 136;

bool has_ports(uint8_t proto) {
    return proto == p_tcp || proto == p_udp || proto == p_sctp || proto == p_udplite;
}

template <class T> bool parse_uint(std::string_view s, T& out, uint64_t max) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc{} || p != s.data() + s.size() || v > max) return false;
    out = T(v);
    return true;
}

// ---------------------------------------------------------------------------------------
// Element parsing

struct elem_error {
    std::string msg;
    size_t offset; // 0-based within the element text
};

bool parse_v4(std::string_view s, uint32_t& out) {
    uint32_t v = 0;
    int parts = 0;
    while (true) {
        size_t dot = s.find('.');
        std::string_view p = s.substr(0, dot);
        uint32_t b;
        if (p.empty() || p.size() > 3 || !parse_uint(p, b, 255)) return false;
        v = (v << 8) | b;
        ++parts;
        if (dot == std::string_view::npos) break;
        s.remove_prefix(dot + 1);
    }
    if (parts != 4) return false;
    out = v;
    return true;
}

bool parse_addr(std::string_view s, set_family fam, ip_addr& out) {
    out = ip_addr{};
    if (fam == set_family::inet) {
        uint32_t v;
        if (!parse_v4(s, v)) return false;
        out.b[10] = out.b[11] = 0xff;
        out.b[12] = uint8_t(v >> 24), out.b[13] = uint8_t(v >> 16);
        out.b[14] = uint8_t(v >> 8), out.b[15] = uint8_t(v);
        return true;
    }
    if (s.size() >= INET6_ADDRSTRLEN) return false;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = 0;
    return inet_pton(AF_INET6, buf, out.b) == 1;
}

std::string fam_word(set_family f) {
    return f == set_family::inet ? "IPv4" : "IPv6";
}

// ADDR, ADDR/CIDR or (IPv4) ADDR-ADDR.
std::optional<elem_error> parse_addr_part(std::string_view s, size_t base, set_family fam,
                                          set_element& e) {
    unsigned hl = fam == set_family::inet ? 32 : 128;
    size_t slash = s.find('/');
    size_t dash = s.find('-');
    if (slash != std::string_view::npos && dash != std::string_view::npos)
        return elem_error{"element " + std::string(s) + " mixes a prefix and a range", base};
    std::string_view a = s.substr(0, std::min(slash, dash));
    if (!parse_addr(a, fam, e.addr))
        return elem_error{
            "element " + std::string(a) + " is not a valid " + fam_word(fam) + " address", base};
    e.cidr = uint8_t(hl);
    if (slash != std::string_view::npos) {
        std::string_view c = s.substr(slash + 1);
        if (!parse_uint(c, e.cidr, hl))
            return elem_error{"'" + std::string(c) + "' is out of range 0-" + std::to_string(hl),
                              base + slash + 1};
    } else if (dash != std::string_view::npos) {
        std::string_view b = s.substr(dash + 1);
        if (fam == set_family::inet6)
            return elem_error{"IPv6 ranges are not supported, give a plain address or prefix",
                              base + dash};
        if (!parse_addr(b, fam, e.addr_to))
            return elem_error{"element " + std::string(b) + " is not a valid " + fam_word(fam) +
                                  " address",
                              base + dash + 1};
        e.addr_range = true;
    }
    return std::nullopt;
}

bool parse_port_value(std::string_view s, uint16_t& out) {
    if (parse_uint(s, out, 65535)) return true;
    for (const auto& sv : service_names)
        if (sv.name == s) {
            out = sv.port;
            return true;
        }
    return false;
}

std::optional<elem_error> parse_port_range(std::string_view s, size_t base, set_element& e) {
    size_t dash = s.find('-');
    std::string_view a = s.substr(0, dash);
    if (!parse_port_value(a, e.port))
        return elem_error{"'" + std::string(a) + "' is not a valid port number or service name",
                          base};
    e.port_to = e.port;
    if (dash != std::string_view::npos) {
        std::string_view b = s.substr(dash + 1);
        if (!parse_port_value(b, e.port_to))
            return elem_error{"'" + std::string(b) + "' is not a valid port number or service name",
                              base + dash + 1};
        if (e.port_to < e.port) std::swap(e.port, e.port_to);
    }
    return std::nullopt;
}

std::optional<uint8_t> proto_from_name(std::string_view s) {
    uint8_t n;
    if (parse_uint(s, n, 255)) return n;
    for (const auto& p : proto_names)
        if (p.name == s) return p.num;
    return std::nullopt;
}

// [proto:]port[-port] | icmp:name | icmp:type/code | proto:0
std::optional<elem_error> parse_proto_port(std::string_view s, size_t base, set_family fam,
                                           set_element& e) {
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
        e.proto = p_tcp;
        return parse_port_range(s, base, e);
    }
    std::string_view pn = s.substr(0, colon), rest = s.substr(colon + 1);
    size_t rbase = base + colon + 1;
    auto proto = proto_from_name(pn);
    if (!proto) return elem_error{"unknown protocol '" + std::string(pn) + "'", base};
    if (*proto == 0) return elem_error{"protocol number 0 cannot be used", base};
    e.proto = *proto;
    if (has_ports(e.proto)) return parse_port_range(rest, rbase, e);
    if (e.proto == p_icmp || e.proto == p_icmpv6) {
        bool v4 = e.proto == p_icmp;
        if (v4 != (fam == set_family::inet))
            return elem_error{v4 ? "Protocol ICMP can be used with family inet only"
                                 : "Protocol ICMPv6 can be used with family inet6 only",
                              base};
        size_t sl = rest.find('/');
        if (sl != std::string_view::npos) {
            uint8_t t, c;
            if (!parse_uint(rest.substr(0, sl), t, 255) || !parse_uint(rest.substr(sl + 1), c, 255))
                return elem_error{"'" + std::string(rest) + "' is not a valid ICMP type/code",
                                  rbase};
            e.port = e.port_to = uint16_t((t << 8) | c);
            return std::nullopt;
        }
        for (const auto& n :
             v4 ? std::span<const icmp_name>(icmp_names) : std::span<const icmp_name>(icmpv6_names))
            if (n.name == rest) {
                e.port = e.port_to = uint16_t((n.type << 8) | n.code);
                return std::nullopt;
            }
        return elem_error{"unknown ICMP type name '" + std::string(rest) + "'", rbase};
    }
    if (rest != "0")
        return elem_error{
            "Protocol " + std::string(pn) + " can be used with pseudo port value 0 only", rbase};
    e.port = e.port_to = 0;
    return std::nullopt;
}

bool valid_setname(std::string_view s) {
    return !s.empty() && s.size() < 32;
}

std::optional<elem_error> parse_element_impl(set_type type, set_family fam, std::string_view s,
                                             set_element& e) {
    if (s.empty()) return elem_error{"missing element", 0};
    switch (type) {
    case set_type::list_set:
        if (!valid_setname(s))
            return elem_error{"'" + std::string(s) + "' is not a valid set name", 0};
        e.member = std::string(s);
        return std::nullopt;
    case set_type::bitmap_port: {
        size_t colon = s.find(':');
        size_t base = 0;
        if (colon != std::string_view::npos) {
            auto proto = proto_from_name(s.substr(0, colon));
            if (!proto || !has_ports(*proto))
                return elem_error{"bitmap:port takes tcp, udp, sctp or udplite ports", 0};
            base = colon + 1;
        }
        return parse_port_range(s.substr(base), base, e);
    }
    case set_type::hash_ip:
    case set_type::hash_net: {
        auto err = parse_addr_part(s, 0, fam, e);
        if (err) return err;
        if (type == set_type::hash_ip && fam == set_family::inet6 && e.cidr != 128)
            return elem_error{"plain IP address must be supplied: " + std::string(s), 0};
        return std::nullopt;
    }
    default:
        break;
    }
    size_t comma = s.find(',');
    if (comma == std::string_view::npos)
        return elem_error{"element " + std::string(s) + " lacks its second part (after ',')",
                          s.size()};
    std::string_view a = s.substr(0, comma), b = s.substr(comma + 1);
    auto err = parse_addr_part(a, 0, fam, e);
    if (err) return err;
    if (type == set_type::hash_ip_port && fam == set_family::inet6 && e.cidr != 128)
        return elem_error{"plain IP address must be supplied: " + std::string(a), 0};
    if (type == set_type::hash_net_iface) {
        if (b.starts_with("physdev:"))
            return elem_error{"physdev: interfaces are not supported (there is no bridge)",
                              comma + 1};
        if (b.empty() || b.size() >= iface_name_size ||
            b.find_first_of("/ \t,") != std::string_view::npos)
            return elem_error{"'" + std::string(b) + "' is not a valid interface name", comma + 1};
        std::memcpy(e.iface, b.data(), b.size());
        return std::nullopt;
    }
    return parse_proto_port(b, comma + 1, fam, e);
}

// ---------------------------------------------------------------------------------------
// Lines

struct token {
    std::string text;
    uint32_t column;
};

// Whitespace-separated tokens; "double quoted" text (comments) is one token.
bool tokenize(std::string_view line, std::vector<token>& out, uint32_t& bad_col) {
    size_t i = 0;
    while (i < line.size()) {
        char c = line[i];
        if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
            continue;
        }
        token t{{}, uint32_t(i + 1)};
        if (c == '"') {
            size_t end = line.find('"', i + 1);
            if (end == std::string_view::npos) {
                bad_col = uint32_t(i + 1);
                return false;
            }
            t.text = std::string(line.substr(i + 1, end - i - 1));
            i = end + 1;
        } else {
            size_t end = i;
            while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r')
                ++end;
            t.text = std::string(line.substr(i, end - i));
            i = end;
        }
        out.push_back(std::move(t));
    }
    return true;
}

struct known_set {
    set_type type;
    set_family family;
    bool timeout;
};

} // namespace

std::string ipset_error::to_string() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + reason;
}

element_parse_result parse_element(set_type type, set_family family, std::string_view text) {
    element_parse_result r;
    set_element e;
    if (auto err = parse_element_impl(type, family, text, e)) {
        r.error = std::move(err->msg);
        r.column = uint32_t(err->offset + 1);
        return r;
    }
    r.element = std::move(e);
    return r;
}

ipset_parse_result parse_ipset(std::string_view text, std::string_view filename,
                               const set_table* existing) {
    ipset_parse_result res;
    std::map<std::string, known_set, std::less<>> known;
    std::vector<std::string> destroyed; // existing sets destroyed by the file
    bool all_destroyed = false;
    uint32_t lineno = 0;

    auto fail = [&](uint32_t col, std::string reason) {
        res.error = ipset_error{std::string(filename), lineno, col, std::move(reason)};
        res.commands.clear();
        return res;
    };
    auto lookup = [&](const std::string& name) -> std::optional<known_set> {
        if (auto it = known.find(name); it != known.end()) return it->second;
        if (all_destroyed || !existing) return std::nullopt;
        if (std::find(destroyed.begin(), destroyed.end(), name) != destroyed.end())
            return std::nullopt;
        const ip_set* s = existing->find(name);
        if (!s) return std::nullopt;
        return known_set{s->type(), s->family(), s->options().timeout.has_value()};
    };

    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, nl == std::string_view::npos ? text.size() - pos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        ++lineno;
        if (line.find('\0') != std::string_view::npos)
            return fail(uint32_t(line.find('\0') + 1), "NUL byte in input");
        std::vector<token> toks;
        uint32_t bad = 0;
        if (!tokenize(line, toks, bad)) return fail(bad, "unterminated quoted string");
        if (toks.empty() || toks[0].text[0] == '#') continue;
        if (toks[0].text == "COMMIT" && toks.size() == 1) continue;

        ipset_command cmd;
        cmd.line = lineno;
        cmd.column = toks[0].column;
        // Pull -exist / -! out wherever they are.
        std::vector<token> args;
        for (size_t i = 1; i < toks.size(); ++i) {
            if (toks[i].text == "-exist" || toks[i].text == "-!")
                cmd.exist = true;
            else if (toks[i].text == "-q" || toks[i].text == "-quiet")
                continue;
            else
                args.push_back(std::move(toks[i]));
        }
        const std::string& verb = toks[0].text;
        using op = ipset_command::op;
        if (verb == "create" || verb == "-N" || verb == "n")
            cmd.kind = op::create;
        else if (verb == "add" || verb == "-A" || verb == "a")
            cmd.kind = op::add;
        else if (verb == "del" || verb == "-D" || verb == "d")
            cmd.kind = op::del;
        else if (verb == "test" || verb == "-T")
            cmd.kind = op::test;
        else if (verb == "flush" || verb == "-F")
            cmd.kind = op::flush;
        else if (verb == "destroy" || verb == "-X" || verb == "x")
            cmd.kind = op::destroy;
        else if (verb == "swap" || verb == "-W" || verb == "w")
            cmd.kind = op::swap;
        else if (verb == "rename" || verb == "-E" || verb == "e")
            cmd.kind = op::rename;
        else
            return fail(toks[0].column, "unknown command '" + verb + "'");

        uint32_t end_col = uint32_t(line.size() + 1);
        auto need_name = [&](size_t i, const char* what) -> std::optional<ipset_error> {
            if (i >= args.size())
                return ipset_error{std::string(filename), lineno, end_col,
                                   std::string("missing ") + what};
            if (!valid_setname(args[i].text))
                return ipset_error{std::string(filename), lineno, args[i].column,
                                   "setname '" + args[i].text + "' is longer than 31 characters"};
            return std::nullopt;
        };

        switch (cmd.kind) {
        case op::create: {
            if (auto e = need_name(0, "setname")) return fail(e->column, e->reason);
            if (args.size() < 2) return fail(end_col, "missing set type");
            cmd.name = args[0].text;
            cmd.column = args[0].column;
            auto t = set_type_from_name(args[1].text);
            if (!t) return fail(args[1].column, "unknown set type '" + args[1].text + "'");
            cmd.type = *t;
            bool have_range = false;
            for (size_t i = 2; i < args.size(); ++i) {
                const std::string& k = args[i].text;
                auto val = [&]() -> const token* {
                    return i + 1 < args.size() ? &args[++i] : nullptr;
                };
                auto num = [&](uint32_t& out, uint64_t max) -> std::optional<ipset_error> {
                    const token* v = val();
                    if (!v)
                        return ipset_error{std::string(filename), lineno, end_col,
                                           "missing value of " + k};
                    if (!parse_uint(v->text, out, max))
                        return ipset_error{std::string(filename), lineno, v->column,
                                           "'" + v->text + "' is not a valid value of " + k};
                    return std::nullopt;
                };
                bool hash = set_type_has_family(cmd.type);
                std::optional<ipset_error> err;
                if (k == "family" && hash) {
                    const token* v = val();
                    if (!v) return fail(end_col, "missing value of family");
                    if (v->text == "inet" || v->text == "ipv4")
                        cmd.opt.family = set_family::inet;
                    else if (v->text == "inet6" || v->text == "ipv6")
                        cmd.opt.family = set_family::inet6;
                    else
                        return fail(v->column, "unknown family '" + v->text + "'");
                } else if (k == "hashsize" && hash) {
                    err = num(cmd.opt.hashsize, 1u << 30);
                    if (!err && cmd.opt.hashsize == 0)
                        return fail(args[i].column, "hashsize must be positive");
                } else if (k == "maxelem" && hash) {
                    err = num(cmd.opt.maxelem, 0xffffffffu);
                } else if (k == "bucketsize" && hash) {
                    uint32_t ignored;
                    err = num(ignored, 0xffffffffu);
                } else if (k == "initval" && hash) {
                    const token* v = val();
                    if (!v) return fail(end_col, "missing value of initval");
                    std::string_view h = v->text;
                    uint32_t ignored;
                    if (!h.starts_with("0x") ||
                        std::from_chars(h.data() + 2, h.data() + h.size(), ignored, 16).ptr !=
                            h.data() + h.size() ||
                        h.size() == 2 || h.size() > 10)
                        return fail(v->column, "'" + v->text + "' is not a valid value of initval");
                } else if (k == "timeout") {
                    uint32_t tmo = 0;
                    err = num(tmo, 2147483);
                    cmd.opt.timeout = tmo;
                } else if (k == "size" && cmd.type == set_type::list_set) {
                    err = num(cmd.opt.size, 1u << 16);
                } else if (k == "range" && cmd.type == set_type::bitmap_port) {
                    const token* v = val();
                    if (!v) return fail(end_col, "missing value of range");
                    set_element pr;
                    if (auto pe = parse_port_range(v->text, 0, pr))
                        return fail(uint32_t(v->column + pe->offset), pe->msg);
                    cmd.opt.range_from = pr.port, cmd.opt.range_to = pr.port_to;
                    have_range = true;
                } else if (k == "counters") {
                    cmd.opt.counters = true;
                } else if (k == "comment") {
                    cmd.opt.comment = true;
                } else if (k == "skbinfo") {
                    cmd.opt.skbinfo = true;
                } else if (k == "forceadd" && hash) {
                    cmd.opt.forceadd = true;
                } else {
                    return fail(args[i].column, "Unknown argument: '" + k + "' for " +
                                                    std::string(set_type_name(cmd.type)));
                }
                if (err) return fail(err->column, err->reason);
            }
            if (cmd.type == set_type::bitmap_port && !have_range)
                return fail(end_col, "Missing mandatory option: range");
            if (cmd.opt.maxelem == 0) return fail(cmd.column, "maxelem must be positive");
            if (!set_type_has_family(cmd.type)) cmd.opt.family = set_family::inet;
            known[cmd.name] = known_set{cmd.type, cmd.opt.family, cmd.opt.timeout.has_value()};
            break;
        }
        case op::add:
        case op::del:
        case op::test: {
            if (auto e = need_name(0, "setname")) return fail(e->column, e->reason);
            cmd.name = args[0].text;
            auto ks = lookup(cmd.name);
            if (!ks) return fail(args[0].column, "The set with the given name does not exist");
            if (args.size() < 2) return fail(end_col, "missing element");
            cmd.column = args[1].column;
            set_element el;
            if (auto pe = parse_element_impl(ks->type, ks->family, args[1].text, el))
                return fail(uint32_t(args[1].column + pe->offset), pe->msg);
            for (size_t i = 2; i < args.size(); ++i) {
                const std::string& k = args[i].text;
                auto val = [&]() -> const token* {
                    return i + 1 < args.size() ? &args[++i] : nullptr;
                };
                if (k == "nomatch" && set_type_supports_nomatch(ks->type)) {
                    el.nomatch = true;
                } else if (k == "timeout") {
                    const token* v = val();
                    uint32_t tmo;
                    if (!v) return fail(end_col, "missing value of timeout");
                    if (!parse_uint(v->text, tmo, 2147483))
                        return fail(v->column, "'" + v->text + "' is not a valid value of timeout");
                    if (!ks->timeout)
                        return fail(
                            args[i - 1].column,
                            "Timeout cannot be used: set was created without timeout support");
                    el.timeout = tmo;
                } else if ((k == "before" || k == "after") && ks->type == set_type::list_set) {
                    const token* v = val();
                    if (!v || !valid_setname(v->text))
                        return fail(v ? v->column : end_col, "missing set name after " + k);
                    el.where = k == "before" ? set_element::position::before
                                             : set_element::position::after;
                    el.where_ref = v->text;
                } else if (k == "packets" || k == "bytes" || k == "skbmark" || k == "skbprio" ||
                           k == "skbqueue" || k == "comment") {
                    const token* v = val(); // accepted and ignored
                    if (!v) return fail(end_col, "missing value of " + k);
                    if (k != "comment" && k != "skbmark" && k != "skbprio") {
                        uint64_t n;
                        if (!parse_uint(v->text, n, ~uint64_t(0)))
                            return fail(v->column,
                                        "'" + v->text + "' is not a valid value of " + k);
                    }
                } else {
                    return fail(args[i].column, "Unknown argument: '" + k + "'");
                }
            }
            cmd.element = std::move(el);
            break;
        }
        case op::flush:
        case op::destroy:
            if (args.size() > 1)
                return fail(args[1].column, "Unknown argument: '" + args[1].text + "'");
            if (!args.empty()) {
                if (auto e = need_name(0, "setname")) return fail(e->column, e->reason);
                cmd.name = args[0].text;
                cmd.column = args[0].column;
                if (!lookup(cmd.name))
                    return fail(args[0].column, "The set with the given name does not exist");
                if (cmd.kind == op::destroy) {
                    known.erase(cmd.name);
                    destroyed.push_back(cmd.name);
                }
            } else if (cmd.kind == op::destroy) {
                known.clear();
                all_destroyed = true;
            }
            break;
        case op::swap:
        case op::rename: {
            if (auto e = need_name(0, "setname")) return fail(e->column, e->reason);
            if (auto e = need_name(1, "second setname")) return fail(e->column, e->reason);
            if (args.size() > 2)
                return fail(args[2].column, "Unknown argument: '" + args[2].text + "'");
            cmd.name = args[0].text;
            cmd.name2 = args[1].text;
            cmd.column = args[0].column;
            auto a = lookup(cmd.name);
            if (!a) return fail(args[0].column, "The set with the given name does not exist");
            if (cmd.kind == op::swap) {
                auto b = lookup(cmd.name2);
                if (!b) return fail(args[1].column, "The set with the given name does not exist");
                known[cmd.name] = *b; // contents move; type and family are equal when valid
                known[cmd.name2] = *a;
            } else {
                if (lookup(cmd.name2))
                    return fail(args[1].column,
                                "Set cannot be renamed: a set with the new name already exists");
                known.erase(cmd.name);
                destroyed.push_back(cmd.name);
                known[cmd.name2] = *a;
            }
            break;
        }
        }
        res.commands.push_back(std::move(cmd));
    }
    return res;
}

namespace {

set_status run(set_table& t, const ipset_command& c) {
    using op = ipset_command::op;
    switch (c.kind) {
    case op::create:
        return t.create(c.name, c.type, c.opt, c.exist);
    case op::add:
        return t.add(c.name, c.element, c.exist);
    case op::del:
        return t.del(c.name, c.element, c.exist);
    case op::test: {
        bool in = false;
        set_status s = t.test(c.name, c.element, in);
        if (s.ok() && !in) s.error = "Element is not in set " + c.name;
        return s;
    }
    case op::flush:
        return c.name.empty() ? t.flush_all() : t.flush(c.name);
    case op::destroy:
        return c.name.empty() ? t.destroy_all() : t.destroy(c.name);
    case op::swap:
        return t.swap(c.name, c.name2);
    case op::rename:
        return t.rename(c.name, c.name2);
    }
    return {"unknown command"};
}

} // namespace

std::optional<ipset_error> apply_ipset(set_table& table, const std::vector<ipset_command>& cmds,
                                       std::string_view filename) {
    // Dry run on copies of every set the commands name (all sets for a nameless
    // flush/destroy), then the real thing.
    std::vector<std::string> names;
    bool all = false;
    for (const auto& c : cmds) {
        if (c.name.empty()) all = true;
        names.push_back(c.name);
        if (!c.name2.empty()) names.push_back(c.name2);
        if (!c.element.member.empty()) names.push_back(c.element.member);
        if (!c.element.where_ref.empty()) names.push_back(c.element.where_ref);
    }
    if (all)
        for (const ip_set* s : table.list())
            names.push_back(s->name());
    {
        set_table stage;
        table.clone_into(stage, names);
        for (const auto& c : cmds) {
            set_status s = run(stage, c);
            if (!s.ok()) return ipset_error{std::string(filename), c.line, c.column, s.error};
        }
    }
    for (const auto& c : cmds) {
        set_status s = run(table, c);
        if (!s.ok()) // cannot happen: the dry run saw the same state
            return ipset_error{std::string(filename), c.line, c.column,
                               "internal error after partial apply: " + s.error};
    }
    return std::nullopt;
}

std::optional<ipset_error> restore_ipset(set_table& table, std::string_view text,
                                         std::string_view filename) {
    auto r = parse_ipset(text, filename, &table);
    if (!r.ok()) return r.error;
    return apply_ipset(table, r.commands, filename);
}

std::string format_create(std::string_view name, set_type type, const set_options& opt) {
    std::string s = "create " + std::string(name) + " " + std::string(set_type_name(type));
    if (set_type_has_family(type)) {
        s += opt.family == set_family::inet ? " family inet" : " family inet6";
        s += " hashsize " + std::to_string(opt.hashsize);
        s += " maxelem " + std::to_string(opt.maxelem);
    } else if (type == set_type::bitmap_port) {
        s += " range " + std::to_string(opt.range_from) + "-" + std::to_string(opt.range_to);
    } else {
        s += " size " + std::to_string(opt.size);
    }
    if (opt.timeout) s += " timeout " + std::to_string(*opt.timeout);
    if (opt.counters) s += " counters";
    if (opt.comment) s += " comment";
    if (opt.skbinfo) s += " skbinfo";
    if (opt.forceadd && set_type_has_family(type)) s += " forceadd";
    return s;
}

namespace {

std::string format_addr(const ip_addr& a, set_family fam) {
    char buf[INET6_ADDRSTRLEN];
    if (fam == set_family::inet) {
        inet_ntop(AF_INET, a.b + 12, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, a.b, buf, sizeof buf);
    }
    return buf;
}

std::string format_proto_port(set_family fam, uint8_t proto, uint16_t port) {
    std::string pn;
    for (const auto& p : proto_names)
        if (p.num == proto) {
            pn = std::string(p.name);
            break;
        }
    if (pn.empty()) pn = std::to_string(proto);
    if (proto == p_icmp || proto == p_icmpv6) {
        uint8_t t = uint8_t(port >> 8), c = uint8_t(port);
        const auto names = proto == p_icmp ? std::span<const icmp_name>(icmp_names)
                                           : std::span<const icmp_name>(icmpv6_names);
        (void)fam;
        for (const auto& n : names)
            if (n.type == t && n.code == c) return pn + ":" + std::string(n.name);
        return pn + ":" + std::to_string(t) + "/" + std::to_string(c);
    }
    return pn + ":" + std::to_string(port);
}

} // namespace

std::string format_element(set_type type, set_family fam, const set_element& e) {
    unsigned hl = fam == set_family::inet ? 32 : 128;
    auto net = [&] {
        std::string s = format_addr(e.addr, fam);
        if (e.cidr < hl) s += "/" + std::to_string(e.cidr);
        return s;
    };
    switch (type) {
    case set_type::list_set:
        return e.member;
    case set_type::bitmap_port:
        return std::to_string(e.port);
    case set_type::hash_ip:
        return format_addr(e.addr, fam);
    case set_type::hash_net:
        return net();
    case set_type::hash_ip_port:
        return format_addr(e.addr, fam) + "," + format_proto_port(fam, e.proto, e.port);
    case set_type::hash_net_port:
        return net() + "," + format_proto_port(fam, e.proto, e.port);
    case set_type::hash_net_iface:
        return net() + "," + std::string(e.iface, strnlen(e.iface, iface_name_size));
    }
    return {};
}

} // namespace sluice
