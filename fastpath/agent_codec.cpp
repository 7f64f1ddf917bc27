// See agent_codec.hpp.
#include "agent_codec.hpp"

#include "policy_api.hpp"

#include <arpa/inet.h>

#include <atomic>
#include <cerrno>
#include <charconv>

namespace sluice {

namespace {

std::string_view kind_name(attr_kind k) {
    switch (k) {
    case attr_kind::u8:
        return "u8 (1 byte)";
    case attr_kind::u16:
        return "u16 (2 bytes)";
    case attr_kind::u32:
        return "u32 (4 bytes)";
    case attr_kind::u64:
        return "u64 (8 bytes)";
    case attr_kind::str:
    case attr_kind::text:
        return "NUL-terminated string";
    case attr_kind::nest:
        return "nested attributes";
    case attr_kind::flag:
        return "flag (no payload)";
    }
    return "?";
}

size_t fixed_size(attr_kind k) {
    switch (k) {
    case attr_kind::u8:
        return 1;
    case attr_kind::u16:
        return 2;
    case attr_kind::u32:
        return 4;
    case attr_kind::u64:
        return 8;
    case attr_kind::flag:
        return 0;
    default:
        return SIZE_MAX;
    }
}

std::string where(std::string_view what, const nl::attr& a) {
    return std::string(what) + ": attribute " + attribute_name(a.type) + " at offset " +
           std::to_string(a.offset);
}

// Parse "ADDR" or "ADDR/LEN" (IPv4 or IPv6) into a masked prefix; `v6` tells the family.
bool parse_prefix(std::string_view s, ct_prefix& out, bool& v6) {
    std::string addr(s.substr(0, s.find('/')));
    int len = -1;
    if (auto slash = s.find('/'); slash != std::string_view::npos) {
        auto t = s.substr(slash + 1);
        unsigned v = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc() || p != t.data() + t.size() || v > 128) return false;
        len = int(v);
    }
    out = ct_prefix{};
    if (inet_pton(AF_INET, addr.c_str(), out.addr.b + 12) == 1) {
        v6 = false;
        out.addr.b[10] = out.addr.b[11] = 0xff;
        if (len > 32) return false;
        out.bits = uint8_t(96 + (len < 0 ? 32 : len));
    } else if (inet_pton(AF_INET6, addr.c_str(), out.addr.b) == 1) {
        v6 = true;
        out.bits = uint8_t(len < 0 ? 128 : len);
    } else {
        return false;
    }
    for (unsigned i = 0; i < 16; ++i) {
        int keep = int(out.bits) - int(i * 8);
        if (keep >= 8) continue;
        out.addr.b[i] &= keep <= 0 ? 0 : uint8_t(0xff << (8 - keep));
    }
    return true;
}

bool in_prefix(const ip_addr& a, const ct_prefix& p) noexcept {
    for (unsigned i = 0; i < 16; ++i) {
        int keep = int(p.bits) - int(i * 8);
        if (keep <= 0) break;
        uint8_t mask = keep >= 8 ? 0xff : uint8_t(0xff << (8 - keep));
        if ((a.b[i] & mask) != p.addr.b[i]) return false;
    }
    return true;
}

} // namespace

std::string attribute_name(uint16_t type) {
    using namespace api;
    switch (type) {
    case a_generation:
        return "GENERATION";
    case a_family:
        return "FAMILY";
    case a_chain:
        return "CHAIN";
    case a_spec:
        return "SPEC";
    case a_position:
        return "POSITION";
    case a_packets:
        return "PACKETS";
    case a_bytes:
        return "BYTES";
    case a_policy:
        return "POLICY";
    case a_rules:
        return "RULES";
    case a_rules4:
        return "RULES4";
    case a_rules6:
        return "RULES6";
    case a_sets:
        return "SETS";
    case a_set:
        return "SET";
    case a_set2:
        return "SET2";
    case a_type:
        return "TYPE";
    case a_options:
        return "OPTIONS";
    case a_elem:
        return "ELEM";
    case a_exist:
        return "EXIST";
    case a_elements:
        return "ELEMENTS";
    case a_references:
        return "REFERENCES";
    case a_ct_filter:
        return "CT_FILTER";
    case a_ct_flow:
        return "CT_FLOW";
    case a_count:
        return "COUNT";
    case a_events:
        return "EVENTS";
    case a_event:
        return "EVENT";
    case a_section:
        return "SECTION";
    case a_kind:
        return "KIND";
    case a_name:
        return "NAME";
    case a_counter:
        return "COUNTER";
    case a_value:
        return "VALUE";
    case a_mode:
        return "MODE";
    case a_l3:
        return "L3";
    case a_proto:
        return "PROTO";
    case a_src:
        return "SRC";
    case a_dst:
        return "DST";
    case a_sport:
        return "SPORT";
    case a_dport:
        return "DPORT";
    case a_state:
        return "STATE";
    case a_zone:
        return "ZONE";
    case a_timeout:
        return "TIMEOUT";
    case a_worker:
        return "WORKER";
    case a_tcp_state:
        return "TCP_STATE";
    case a_assured:
        return "ASSURED";
    default:
        return "#" + std::to_string(type);
    }
}

std::optional<request_error> check_attrs(std::string_view what, const nl::attr_list& al,
                                         std::span<const attr_spec> spec) {
    if (!al.error.empty())
        return request_error{EINVAL,
                             std::string(what) + ": malformed attributes at offset " +
                                 std::to_string(al.error_offset) + ": " + al.error,
                             al.error_offset};
    for (size_t i = 0; i < al.items.size(); ++i) {
        const nl::attr& a = al.items[i];
        const attr_spec* s = nullptr;
        for (const auto& x : spec)
            if (x.type == a.type) s = &x;
        if (!s) return request_error{EINVAL, where(what, a) + ": not accepted here", a.offset};
        if (s->kind != attr_kind::text)
            for (size_t j = 0; j < i; ++j)
                if (al.items[j].type == a.type)
                    return request_error{EINVAL, where(what, a) + ": given more than once",
                                         a.offset};
        size_t fs = fixed_size(s->kind);
        bool ok = fs != SIZE_MAX ? a.data.size() == fs
                                 : s->kind == attr_kind::nest || a.str().has_value();
        if (!ok)
            return request_error{
                EINVAL,
                where(what, a) + ": expected " + std::string(kind_name(s->kind)) + ", got " +
                    std::to_string(a.data.size()) + " byte(s)" +
                    (fs == SIZE_MAX ? " without a terminating NUL or with an embedded one" : ""),
                a.offset};
    }
    for (const auto& s : spec)
        if (s.required && !al.find(s.type))
            return request_error{
                EINVAL,
                std::string(what) + ": attribute " + attribute_name(s.type) + " is required", 0};
    return std::nullopt;
}

// ---- flows ----

bool read_flow_entry(const flow_entry& shared, flow_entry& out) noexcept {
    // Word loads through a may_alias type: the entry is a plain struct the worker writes.
    typedef uint32_t __attribute__((may_alias)) word;
    constexpr size_t n = sizeof(flow_entry) / sizeof(word);
    static_assert(sizeof(flow_entry) % sizeof(word) == 0 && alignof(flow_entry) >= alignof(word));
    const word* src = reinterpret_cast<const word*>(&shared);
    auto copy = [&](flow_entry& dst) noexcept {
        word w[n];
        for (size_t k = 0; k < n; ++k)
            w[k] = __atomic_load_n(src + k, __ATOMIC_RELAXED);
        std::memcpy(static_cast<void*>(&dst), w, sizeof dst);
    };
    for (int attempt = 0; attempt < 4; ++attempt) {
        flow_entry a, b;
        copy(a);
        std::atomic_thread_fence(std::memory_order_acquire);
        copy(b);
        auto live = [](const flow_entry& e) {
            return (e.status & flow_status::confirmed) && !(e.status & flow_status::reserved);
        };
        if (!live(a) && !live(b)) return false;
        if (live(a) && live(b) && a.key == b.key && a.status == b.status &&
            a.l4_class == b.l4_class && a.created == b.created) {
            out = b;
            return true;
        }
    }
    return false;
}

ct_flow_view view_of(const flow_entry& e, uint32_t now) noexcept {
    ct_flow_view v;
    const flow_key& k = e.key;
    const bool orig_hi = e.status & flow_status::orig_hi;
    v.l3 = (k.flags & flow_key_flag::ipv6) ? 6 : 4;
    v.proto = k.proto;
    v.src = orig_hi ? k.hi : k.lo;
    v.dst = orig_hi ? k.lo : k.hi;
    if (detail::has_ports(k.proto)) {
        v.has_ports = true;
        v.sport = orig_hi ? k.port_hi : k.port_lo;
        v.dport = orig_hi ? k.port_lo : k.port_hi;
    } else if (detail::is_icmp_proto(k.proto)) {
        v.has_ports = true; // identifier and request type, as the key holds them
        v.sport = k.port_lo;
        v.dport = k.port_hi;
    }
    v.state = (e.status & flow_status::seen_reply) ? ct_state::established : ct_state::new_;
    v.tcp = ct_l4(e.l4_class) == ct_l4::tcp;
    if (v.tcp) v.tcp_st = e.l4_state < tcp_state_count ? tcp_state(e.l4_state) : tcp_state::none;
    v.timeout = int32_t(e.expires - now) > 0 ? e.expires - now : 0;
    v.zone = k.zone;
    v.assured = e.status & flow_status::assured;
    return v;
}

std::string format_address(const ip_addr& a, bool ipv6) {
    char buf[INET6_ADDRSTRLEN];
    if (ipv6)
        inet_ntop(AF_INET6, a.b, buf, sizeof buf);
    else
        inet_ntop(AF_INET, a.b + 12, buf, sizeof buf);
    return buf;
}

bool ct_filter::matches(const ct_flow_view& v) const noexcept {
    if (l3 && v.l3 != l3) return false;
    if (proto && v.proto != *proto) return false;
    if (src && !in_prefix(v.src, *src)) return false;
    if (dst && !in_prefix(v.dst, *dst)) return false;
    if (sport && (!v.has_ports || v.sport != *sport)) return false;
    if (dport && (!v.has_ports || v.dport != *dport)) return false;
    if (zone && v.zone != *zone) return false;
    if (has_state) {
        bool ok = (state != ct_state::none && v.state == state) ||
                  (tcp_st >= 0 && v.tcp && int(v.tcp_st) == tcp_st);
        if (!ok) return false;
    }
    return true;
}

bool ct_filter::matches(const flow_entry& e, uint32_t now) const noexcept {
    if (!(e.status & flow_status::confirmed) || int32_t(now - e.expires) >= 0) return false;
    return matches(view_of(e, now));
}

std::optional<request_error> parse_ct_filter(const nl::attr& nest, ct_filter& out) {
    out = ct_filter{};
    auto al = nl::parse_attrs(nest.data, nest.offset + uint32_t(nl::attr_header_len));
    using namespace api;
    static constexpr attr_spec spec[] = {
        {a_l3, attr_kind::u8},     {a_proto, attr_kind::u8},  {a_src, attr_kind::str},
        {a_dst, attr_kind::str},   {a_sport, attr_kind::u16}, {a_dport, attr_kind::u16},
        {a_state, attr_kind::str}, {a_zone, attr_kind::u16},
    };
    if (auto e = check_attrs("CT_FILTER", al, spec)) return e;
    std::optional<bool> fam6;
    for (const nl::attr& a : al.items) {
        auto bad = [&](std::string why) {
            return request_error{EINVAL, where("CT_FILTER", a) + ": " + why, a.offset};
        };
        switch (a.type) {
        case a_l3:
            if (*a.u8() != 4 && *a.u8() != 6)
                return bad("must be 4 or 6, not " + std::to_string(*a.u8()));
            out.l3 = *a.u8();
            break;
        case a_proto:
            out.proto = *a.u8();
            break;
        case a_sport:
            out.sport = *a.u16();
            break;
        case a_dport:
            out.dport = *a.u16();
            break;
        case a_zone:
            out.zone = *a.u16();
            break;
        case a_src:
        case a_dst: {
            ct_prefix p;
            bool v6 = false;
            if (!parse_prefix(*a.str(), p, v6))
                return bad("'" + std::string(*a.str()) +
                           "' is not an IPv4/IPv6 address or ADDRESS/PREFIXLEN");
            if (fam6 && *fam6 != v6) return bad("SRC and DST are of different families");
            fam6 = v6;
            (a.type == a_src ? out.src : out.dst) = p;
            break;
        }
        case a_state: {
            std::string_view s = *a.str();
            out.has_state = true;
            if (s == name_of(ct_state::new_))
                out.state = ct_state::new_;
            else if (s == name_of(ct_state::established))
                out.state = ct_state::established;
            for (int t = 1; t < tcp_state_count; ++t)
                if (s == name_of(tcp_state(t))) out.tcp_st = int8_t(t);
            if (out.state == ct_state::none && out.tcp_st < 0)
                return bad("unknown state '" + std::string(s) +
                           "' (NEW, ESTABLISHED or a TCP state: SYN_SENT, SYN_RECV, FIN_WAIT, "
                           "CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2)");
            break;
        }
        }
    }
    if (fam6 && out.l3 && (out.l3 == 6) != *fam6) {
        const nl::attr* a = al.find(a_src) ? al.find(a_src) : al.find(a_dst);
        return request_error{EINVAL,
                             where("CT_FILTER", *a) + ": address family differs from L3 " +
                                 std::to_string(out.l3),
                             a->offset};
    }
    if (fam6 && !out.l3) out.l3 = *fam6 ? 6 : 4;
    return std::nullopt;
}

void put_ct_flow(nl::builder& b, const ct_flow_view& v, uint32_t worker) {
    using namespace api;
    size_t nest = b.begin_nest(a_ct_flow);
    b.put_u8(a_l3, v.l3);
    b.put_u8(a_proto, v.proto);
    b.put_str(a_src, format_address(v.src, v.l3 == 6));
    b.put_str(a_dst, format_address(v.dst, v.l3 == 6));
    if (v.has_ports) {
        b.put_u16(a_sport, v.sport);
        b.put_u16(a_dport, v.dport);
    }
    b.put_str(a_state, name_of(v.state));
    if (v.tcp) b.put_str(a_tcp_state, name_of(v.tcp_st));
    b.put_u32(a_timeout, v.timeout);
    b.put_u16(a_zone, v.zone);
    b.put_u32(a_worker, worker);
    b.put_u8(a_assured, v.assured ? 1 : 0);
    b.end_nest(nest);
}

flow_entry entry_of(const ct_event_record& r) noexcept {
    flow_entry e;
    std::memset(static_cast<void*>(&e), 0, sizeof e);
    std::memcpy(static_cast<void*>(&e), r.entry, sizeof r.entry);
    return e;
}

// ---- sets and state ----

std::string parse_fp_sets(std::string_view text, const set_table& sets,
                          std::vector<ipset_command>& out) {
    auto r = parse_ipset(text, "sets", &sets);
    if (!r.ok()) return r.error->to_string();
    for (const auto& c : r.commands) {
        using op = ipset_command::op;
        if (c.kind == op::add || c.kind == op::del || c.kind == op::flush || c.kind == op::swap)
            continue;
        static constexpr const char* names[] = {"create", "add",     "del",  "test",
                                                "flush",  "destroy", "swap", "rename"};
        return ipset_error{"sets", c.line, 1,
                           std::string("FP_SETS takes add, del, flush and swap lines only; '") +
                               names[size_t(c.kind)] +
                               "' changes the sets themselves (send FP_POLICY)"}
            .to_string();
    }
    out = std::move(r.commands);
    return {};
}

} // namespace sluice
