// See stream_spec.hpp. A line is split into key=value pairs first (duplicate and unknown
// keys are errors), then keys are read in a fixed order so that cross-key checks (address
// family against ip=, size against the headers) see their inputs.
#include "stream_spec.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <sstream>

namespace sluice::gen {

namespace {

using key_values = std::map<std::string, std::string, std::less<>>;

std::string bad(std::string_view key, std::string_view value, std::string_view why) {
    std::string s = "key '";
    s.append(key).append("' value '").append(value).append("': ").append(why);
    return s;
}

std::string split(std::string_view text, const std::vector<std::string_view>& known, key_values& out) {
    if (text.empty()) return "empty specification (expected key=value pairs separated by ',')";
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto comma = text.find(',', pos);
        auto item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        auto eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return "'" + std::string(item) + "' is not key=value";
        auto key = item.substr(0, eq);
        bool ok = false;
        for (auto k : known) ok = ok || k == key;
        if (!ok) {
            std::string list;
            for (auto k : known) list.append(list.empty() ? "" : ", ").append(k);
            return "unknown key '" + std::string(key) + "' (known: " + list + ")";
        }
        if (!out.emplace(std::string(key), std::string(item.substr(eq + 1))).second)
            return "key '" + std::string(key) + "' given twice";
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return {};
}

// Unsigned decimal with an optional k/m/g suffix (x1000 each), no sign, no overflow.
bool parse_count(std::string_view v, uint64_t max, uint64_t& out) {
    if (v.empty()) return false;
    uint64_t mult = 1;
    char last = v.back();
    if (last == 'k' || last == 'K') mult = 1000;
    else if (last == 'm' || last == 'M') mult = 1000000;
    else if (last == 'g' || last == 'G') mult = 1000000000;
    if (mult != 1) v.remove_suffix(1);
    if (v.empty() || v.size() > 19) return false;
    uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + uint64_t(c - '0');
    }
    if (n > max / mult) return false;
    out = n * mult;
    return true;
}

bool parse_u(std::string_view v, uint64_t lo, uint64_t hi, uint64_t& out) {
    if (v.empty() || v.size() > 10) return false;
    uint64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        n = n * 10 + uint64_t(c - '0');
    }
    if (n < lo || n > hi) return false;
    out = n;
    return true;
}

bool parse_one_addr(std::string_view v, bool& v6, std::array<uint8_t, 16>& out) {
    std::string s(v);
    out.fill(0);
    if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
        v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
        v6 = true;
        return true;
    }
    return false;
}

// Big-endian 128-bit arithmetic on the low 64 bits with carry (ranges hold <= 2^32).
void add(std::array<uint8_t, 16>& a, unsigned len, uint64_t k) {
    for (int i = int(len) - 1; i >= 0 && k; --i) {
        uint64_t s = uint64_t(a[std::size_t(i)]) + (k & 0xff);
        a[std::size_t(i)] = uint8_t(s);
        k = (k >> 8) + (s >> 8);
    }
}

// b - a when b >= a and b - a < 2^32, else nullopt (addresses as 128-bit big-endian).
std::optional<uint64_t> diff(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, unsigned len) {
    uint64_t ah = 0, al = 0, bh = 0, bl = 0;
    for (unsigned i = 0; i < len; ++i) {
        bool low = len - i <= 8;
        (low ? al : ah) = (low ? al : ah) << 8 | a[i];
        (low ? bl : bh) = (low ? bl : bh) << 8 | b[i];
    }
    if (bh < ah || (bh == ah && bl < al)) return std::nullopt;
    uint64_t dl = bl - al, dh = bh - ah - (bl < al ? 1 : 0);
    if (dh != 0 || dl >= (1ull << 32)) return std::nullopt;
    return dl;
}

std::string parse_range(std::string_view key, std::string_view v, addr_range& out) {
    auto dash = v.find('-');
    auto slash = v.find('/');
    addr_range r;
    if (dash != std::string_view::npos) {
        bool v6b = false;
        std::array<uint8_t, 16> last{};
        if (!parse_one_addr(v.substr(0, dash), r.v6, r.first) || !parse_one_addr(v.substr(dash + 1), v6b, last))
            return bad(key, v, "expected ADDRESS, FIRST-LAST or ADDRESS/PREFIX");
        if (r.v6 != v6b) return bad(key, v, "both ends must be of the same address family");
        auto d = diff(r.first, last, r.v6 ? 16 : 4);
        if (!d || *d + 1 > UINT32_MAX)
            return bad(key, v, "LAST must not be below FIRST and the range may hold at most 2^32 - 1 addresses");
        r.count = uint32_t(*d + 1);
    } else if (slash != std::string_view::npos) {
        uint64_t plen = 0;
        if (!parse_one_addr(v.substr(0, slash), r.v6, r.first))
            return bad(key, v, "expected ADDRESS, FIRST-LAST or ADDRESS/PREFIX");
        unsigned bits = r.v6 ? 128 : 32;
        if (!parse_u(v.substr(slash + 1), 0, bits, plen)) return bad(key, v, "bad prefix length");
        if (bits - plen >= 32) return bad(key, v, "the prefix may hold at most 2^32 - 1 addresses (use a longer prefix)");
        for (unsigned b = unsigned(plen); b < bits; ++b) r.first[b / 8] &= uint8_t(~(0x80u >> (b % 8)));
        r.count = 1u << (bits - plen);
    } else {
        if (!parse_one_addr(v, r.v6, r.first)) return bad(key, v, "expected ADDRESS, FIRST-LAST or ADDRESS/PREFIX");
    }
    out = r;
    return {};
}

std::string parse_ports(std::string_view key, std::string_view v, port_range& out) {
    auto dash = v.find('-');
    uint64_t a = 0, b = 0;
    if (!parse_u(v.substr(0, dash), 0, 65535, a) ||
        (dash != std::string_view::npos && !parse_u(v.substr(dash + 1), 0, 65535, b)))
        return bad(key, v, "expected PORT or FIRST-LAST (0..65535)");
    if (dash == std::string_view::npos) b = a;
    if (b < a) return bad(key, v, "LAST must not be below FIRST");
    out = {uint16_t(a), uint32_t(b - a + 1)};
    return {};
}

std::string parse_mac(std::string_view key, std::string_view v, mac_addr& out) {
    if (v.size() != 17) return bad(key, v, "expected a MAC address xx:xx:xx:xx:xx:xx");
    for (unsigned i = 0; i < 6; ++i) {
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        int h = hex(v[i * 3]), l = hex(v[i * 3 + 1]);
        if (h < 0 || l < 0 || (i < 5 && v[i * 3 + 2] != ':')) return bad(key, v, "expected a MAC address xx:xx:xx:xx:xx:xx");
        out[i] = uint8_t(h << 4 | l);
    }
    return {};
}

bool valid_port_name(std::string_view v) {
    if (v.empty() || v.size() > 15) return false;
    for (char c : v)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    return true;
}

constexpr std::string_view tcp_flag_letters = "FSRPAUEC"; // bit i = letter i

// Address family: ip= if given, else that of src/dst, else 4. Defaults per family.
std::string read_family(const key_values& kv, unsigned& ip, addr_range& src, addr_range& dst,
                        const char* def_src4, const char* def_dst4, const char* def_src6, const char* def_dst6) {
    std::optional<unsigned> fam;
    if (auto it = kv.find("ip"); it != kv.end()) {
        if (it->second == "4") fam = 4;
        else if (it->second == "6") fam = 6;
        else return bad("ip", it->second, "must be 4 or 6");
    }
    bool have_src = false, have_dst = false;
    if (auto it = kv.find("src"); it != kv.end()) {
        if (auto e = parse_range("src", it->second, src); !e.empty()) return e;
        have_src = true;
    }
    if (auto it = kv.find("dst"); it != kv.end()) {
        if (auto e = parse_range("dst", it->second, dst); !e.empty()) return e;
        have_dst = true;
    }
    if (!fam) fam = have_src ? (src.v6 ? 6 : 4) : have_dst ? (dst.v6 ? 6 : 4) : 4;
    ip = *fam;
    if (!have_src) parse_range("src", ip == 4 ? def_src4 : def_src6, src);
    if (!have_dst) parse_range("dst", ip == 4 ? def_dst4 : def_dst6, dst);
    bool v6 = ip == 6;
    if (src.v6 != v6) return bad("src", kv.at("src"), ip == 6 ? "not an IPv6 address (ip=6)" : "not an IPv4 address (ip=4)");
    if (dst.v6 != v6) return bad("dst", kv.at("dst"), ip == 6 ? "not an IPv6 address (ip=6)" : "not an IPv4 address (ip=4)");
    return {};
}

std::string read_vlan(const key_values& kv, int& vlan) {
    if (auto it = kv.find("vlan"); it != kv.end()) {
        uint64_t v = 0;
        if (!parse_u(it->second, 0, 4095, v)) return bad("vlan", it->second, "must be a VLAN id 0..4095");
        vlan = int(v);
    }
    return {};
}

std::string read_port_name(const key_values& kv, const char* key, std::string& out, bool required) {
    auto it = kv.find(key);
    if (it == kv.end()) return required ? std::string("key '") + key + "' is required (a port name)" : std::string();
    if (!valid_port_name(it->second)) return bad(key, it->second, "not a port name (letters, digits, '-', '_', '.'; at most 15)");
    out = it->second;
    return {};
}

uint64_t mul_sat(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

std::string range_text(const addr_range& r) {
    if (r.count == 1) return format_addr(r, 0);
    return format_addr(r, 0) + "-" + format_addr(r, r.count - 1);
}

std::string ports_text(const port_range& p) {
    if (p.count == 1) return std::to_string(p.first);
    return std::to_string(p.first) + "-" + std::to_string(p.first + p.count - 1);
}

std::string mac_text(const mac_addr& m) {
    char b[18];
    std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return b;
}

} // namespace

void addr_range::at(uint32_t k, uint8_t* out) const noexcept {
    auto a = first;
    add(a, v6 ? 16 : 4, k);
    std::memcpy(out, a.data(), v6 ? 16 : 4);
}

std::string format_addr(const addr_range& r, uint32_t k) {
    uint8_t a[16];
    r.at(k, a);
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(r.v6 ? AF_INET6 : AF_INET, a, buf, sizeof buf);
    return buf;
}

const char* l4_name(l4_kind k) {
    switch (k) {
    case l4_kind::udp: return "udp";
    case l4_kind::tcp: return "tcp";
    case l4_kind::icmp: return "icmp";
    }
    return "?";
}

uint64_t stream_spec::flows() const noexcept {
    uint64_t dports = proto == l4_kind::icmp ? 1 : dport.count;
    return mul_sat(mul_sat(mul_sat(src.count, dst.count), sport.count), dports);
}

uint16_t stream_spec::header_len() const noexcept {
    unsigned l2 = 14 + (vlan >= 0 ? 4 : 0);
    unsigned l3 = ip == 6 ? 40 : 20;
    unsigned l4 = proto == l4_kind::tcp ? 20 : 8;
    return uint16_t(l2 + l3 + l4);
}

uint16_t stream_spec::min_size() const noexcept { return uint16_t(header_len() + signature_len + 4); }

uint16_t stream_spec::largest_size() const noexcept { return imix ? 1518 : size; }

uint64_t tcp_spec::flows() const noexcept {
    return mul_sat(mul_sat(mul_sat(src.count, dst.count), sport.count), dport.count);
}

uint16_t tcp_spec::header_len() const noexcept {
    return uint16_t(14 + (vlan >= 0 ? 4 : 0) + (ip == 6 ? 40 : 20) + 20);
}

std::string parse_stream_spec(std::string_view text, stream_spec& out) {
    key_values kv;
    if (auto e = split(text, {"name", "tx", "rx", "ip", "proto", "size", "rate", "count", "src", "dst", "sport",
                              "dport", "vlan", "ttl", "flags", "smac", "dmac"},
                       kv);
        !e.empty())
        return e;
    stream_spec s;
    if (auto it = kv.find("name"); it != kv.end()) {
        if (!valid_port_name(it->second)) return bad("name", it->second, "letters, digits, '-', '_', '.'; at most 15");
        s.name = it->second;
    }
    if (auto e = read_port_name(kv, "tx", s.tx, true); !e.empty()) return e;
    if (auto e = read_port_name(kv, "rx", s.rx, false); !e.empty()) return e;
    if (auto e = read_family(kv, s.ip, s.src, s.dst, "192.0.2.1", "198.51.100.1", "2001:db8::1", "2001:db8:1::1"); !e.empty())
        return e;
    if (auto it = kv.find("proto"); it != kv.end()) {
        if (it->second == "udp") s.proto = l4_kind::udp;
        else if (it->second == "tcp") s.proto = l4_kind::tcp;
        else if (it->second == "icmp") s.proto = l4_kind::icmp;
        else return bad("proto", it->second, "must be udp, tcp or icmp");
    }
    if (auto e = read_vlan(kv, s.vlan); !e.empty()) return e;
    s.sport = {1024, 1};
    s.dport = {9, 1};
    if (auto it = kv.find("sport"); it != kv.end())
        if (auto e = parse_ports("sport", it->second, s.sport); !e.empty()) return e;
    if (auto it = kv.find("dport"); it != kv.end()) {
        if (s.proto == l4_kind::icmp) return bad("dport", it->second, "ICMP has no ports (sport sets the echo identifier)");
        if (auto e = parse_ports("dport", it->second, s.dport); !e.empty()) return e;
    }
    if (s.proto == l4_kind::icmp) s.dport = {0, 1};
    if (auto it = kv.find("size"); it != kv.end()) {
        uint64_t v = 0;
        if (it->second == "imix") s.imix = true;
        else if (!parse_u(it->second, min_frame, max_frame, v))
            return bad("size", it->second, "must be a frame size 64..9000 (bytes, FCS included) or imix");
        else s.size = uint16_t(v);
    }
    if (!s.imix && s.size < s.min_size())
        return bad("size", std::to_string(s.size),
                   "too small: IPv" + std::to_string(s.ip) + "/" + l4_name(s.proto) + (s.vlan >= 0 ? " with a VLAN tag" : "") +
                       " headers, the 16-byte signature and the FCS need at least " + std::to_string(s.min_size()));
    if (auto it = kv.find("rate"); it != kv.end()) {
        if (it->second != "unlimited" && (!parse_count(it->second, 1000000000, s.rate_pps) || s.rate_pps == 0))
            return bad("rate", it->second, "must be packets per second 1..1g (k/m/g suffixes) or unlimited");
    } else {
        s.rate_pps = 1000;
    }
    if (auto it = kv.find("count"); it != kv.end())
        if (!parse_count(it->second, 1000000000000ull, s.count))
            return bad("count", it->second, "must be a packet count 0..1000g (0: until the duration ends)");
    if (auto it = kv.find("ttl"); it != kv.end()) {
        uint64_t v = 0;
        if (!parse_u(it->second, 1, 255, v)) return bad("ttl", it->second, "must be 1..255");
        s.ttl = uint8_t(v);
    }
    if (auto it = kv.find("flags"); it != kv.end()) {
        if (s.proto != l4_kind::tcp) return bad("flags", it->second, "only with proto=tcp");
        s.tcp_flags = 0;
        for (char c : it->second) {
            auto i = tcp_flag_letters.find(c);
            if (i == std::string_view::npos || (s.tcp_flags >> i & 1))
                return bad("flags", it->second, "letters from FSRPAUEC, each at most once");
            s.tcp_flags |= uint8_t(1u << i);
        }
        if (!s.tcp_flags) return bad("flags", it->second, "letters from FSRPAUEC, each at most once");
    }
    for (const char* k : {"smac", "dmac"})
        if (auto it = kv.find(k); it != kv.end()) {
            mac_addr m{};
            if (auto e = parse_mac(k, it->second, m); !e.empty()) return e;
            (k[0] == 's' ? s.smac : s.dmac) = m;
        }
    out = std::move(s);
    return {};
}

std::string parse_tcp_spec(std::string_view text, tcp_spec& out) {
    key_values kv;
    if (auto e = split(text, {"client", "server", "ip", "src", "dst", "sport", "dport", "cps", "conns", "request",
                              "response", "timeout", "vlan"},
                       kv);
        !e.empty())
        return e;
    tcp_spec t;
    if (auto e = read_port_name(kv, "client", t.client, true); !e.empty()) return e;
    if (auto e = read_port_name(kv, "server", t.server, true); !e.empty()) return e;
    if (t.client == t.server) return bad("server", t.server, "must be another port than the client's");
    if (auto e = read_family(kv, t.ip, t.src, t.dst, "192.0.2.1", "198.51.100.1", "2001:db8::1", "2001:db8:1::1"); !e.empty())
        return e;
    if (auto e = read_vlan(kv, t.vlan); !e.empty()) return e;
    t.sport = {1024, 64512};
    t.dport = {80, 1};
    if (auto it = kv.find("sport"); it != kv.end())
        if (auto e = parse_ports("sport", it->second, t.sport); !e.empty()) return e;
    if (auto it = kv.find("dport"); it != kv.end())
        if (auto e = parse_ports("dport", it->second, t.dport); !e.empty()) return e;
    if (t.flows() > max_tcp_flows)
        return "the address and port ranges make " + std::to_string(t.flows()) +
               " flows; a TCP workload may use at most " + std::to_string(max_tcp_flows);
    if (auto it = kv.find("cps"); it != kv.end())
        if (!parse_count(it->second, 10000000, t.cps) || t.cps == 0)
            return bad("cps", it->second, "must be connections per second 1..10m (k/m suffixes)");
    if (auto it = kv.find("conns"); it != kv.end())
        if (!parse_count(it->second, 1000000000000ull, t.conns))
            return bad("conns", it->second, "must be a connection count (0: until the duration ends)");
    uint16_t room = uint16_t(max_frame - 4 - t.header_len());
    for (const char* k : {"request", "response"})
        if (auto it = kv.find(k); it != kv.end()) {
            uint64_t v = 0;
            if (!parse_u(it->second, k[2] == 'q' ? 1 : 0, room, v))
                return bad(k, it->second, std::string("must be payload bytes ") + (k[2] == 'q' ? "1" : "0") + ".." +
                                              std::to_string(room));
            (k[2] == 'q' ? t.request : t.response) = uint16_t(v);
        }
    if (auto it = kv.find("timeout"); it != kv.end()) {
        uint64_t v = 0;
        if (!parse_u(it->second, 1, 60000, v)) return bad("timeout", it->second, "must be milliseconds 1..60000");
        t.timeout_ms = uint32_t(v);
    }
    out = std::move(t);
    return {};
}

std::string format_stream_spec(const stream_spec& s) {
    std::ostringstream o;
    if (!s.name.empty()) o << "name=" << s.name << ",";
    o << "tx=" << s.tx;
    if (!s.rx.empty()) o << ",rx=" << s.rx;
    o << ",ip=" << s.ip << ",proto=" << l4_name(s.proto) << ",size=";
    if (s.imix) o << "imix";
    else o << s.size;
    o << ",rate=";
    if (s.rate_pps) o << s.rate_pps;
    else o << "unlimited";
    o << ",count=" << s.count << ",src=" << range_text(s.src) << ",dst=" << range_text(s.dst) << ",sport="
      << ports_text(s.sport);
    if (s.proto != l4_kind::icmp) o << ",dport=" << ports_text(s.dport);
    if (s.vlan >= 0) o << ",vlan=" << s.vlan;
    o << ",ttl=" << unsigned(s.ttl);
    if (s.proto == l4_kind::tcp) {
        o << ",flags=";
        for (unsigned i = 0; i < tcp_flag_letters.size(); ++i)
            if (s.tcp_flags >> i & 1) o << tcp_flag_letters[i];
    }
    if (s.smac) o << ",smac=" << mac_text(*s.smac);
    if (s.dmac) o << ",dmac=" << mac_text(*s.dmac);
    return o.str();
}

std::string format_tcp_spec(const tcp_spec& t) {
    std::ostringstream o;
    o << "client=" << t.client << ",server=" << t.server << ",ip=" << t.ip << ",src=" << range_text(t.src)
      << ",dst=" << range_text(t.dst) << ",sport=" << ports_text(t.sport) << ",dport=" << ports_text(t.dport)
      << ",cps=" << t.cps << ",conns=" << t.conns << ",request=" << t.request << ",response=" << t.response
      << ",timeout=" << t.timeout_ms;
    if (t.vlan >= 0) o << ",vlan=" << t.vlan;
    return o.str();
}

} // namespace sluice::gen
