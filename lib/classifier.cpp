// The compiled classifier (see classifier.hpp for the design and the contract): the
// compiler (control thread, allocates) and the per-packet traversal (any worker, const,
// noexcept, no allocation).
#include "classifier.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

namespace sluice {

namespace cls_detail {

// Core matches of one rule, in a fixed layout. Unconstrained address: mask 0, addr 0.
// Interfaces are bitmasks over port indices (bit 63 = no interface), negation applied.
//   0 src_addr (16)  16 src_mask (16)  32 dst_addr (16)  48 dst_mask (16)
//  64 in_ports (8)   72 out_ports (8)  80 ext_begin (4)   84 ext_count (2)
//  86 proto  87 flags  88 target  89 reject  90 pad (2)  92 jump_chain (4)  96 pad (32)
struct alignas(64) compiled_rule {
    uint64_t src_addr[2];
    uint64_t src_mask[2];
    uint64_t dst_addr[2];
    uint64_t dst_mask[2];
    uint64_t in_ports;
    uint64_t out_ports;
    uint32_t ext_begin;
    uint16_t ext_count;
    uint8_t proto;
    uint8_t flags;
    uint8_t target; // target_kind
    uint8_t reject; // reject_kind
    uint16_t pad_;
    uint32_t jump_chain;
    uint8_t pad2_[32];
};
static_assert(sizeof(compiled_rule) == 128);
static_assert(offsetof(compiled_rule, in_ports) == 64 && offsetof(compiled_rule, jump_chain) == 92);

namespace rf {
inline constexpr uint8_t has_proto = 1, proto_neg = 2, src_neg = 4, dst_neg = 8, frag_check = 16,
                         frag_want = 32;
}

enum op_kind : uint8_t { op_tcpudp, op_multiport, op_icmp, op_ctstate, op_set, op_mac,
                         op_statistic, op_limit };

namespace of {
// tcpudp
inline constexpr uint8_t has_sport = 1, sport_neg = 2, has_dport = 4, dport_neg = 8,
                         has_flags = 16, flags_neg = 32;
// every other op
inline constexpr uint8_t neg = 1;
// icmp
inline constexpr uint8_t icmp_any = 2;
} // namespace of

// One match module. 40 bytes.
//  0 kind  1 flags  2 a  3 b  4 c  5 d  6 n (2)  8 p0..p3 (8)  16 u (4)
// 20 dims_count  21 dims_src  22 mac (6)  28 pad (4)  32 set (8)
struct ext_op {
    uint8_t kind;
    uint8_t flags;
    uint8_t a, b;     // tcp flags mask/comp; icmp type; ctstate mask; multiport dir
    uint8_t c, d;     // icmp code lo/hi
    uint16_t n;       // multiport range count
    uint16_t p0, p1;  // sport lo/hi
    uint16_t p2, p3;  // dport lo/hi
    uint32_t u;       // statistic threshold; limit bucket; multiport range offset
    uint8_t dims_count, dims_src;
    uint8_t mac[6];
    uint32_t pad_;
    const ip_set* set;
};
static_assert(sizeof(ext_op) == 40);

struct addr_slot4 {
    uint32_t key;
    uint32_t list; // 0: empty slot
};
static_assert(sizeof(addr_slot4) == 8);

struct addr_slot6 {
    uint64_t k0, k1;
    uint32_t list;
    uint32_t pad_;
};
static_assert(sizeof(addr_slot6) == 24);

// One prefix length of an address dimension: an open-addressing table, linear probing.
struct addr_dim {
    uint64_t m0 = 0, m1 = 0; // the prefix mask, as loaded from the address bytes
    uint32_t m4 = 0;         // IPv4: mask of bytes 12..15 as loaded
    uint32_t slots = 0;      // offset into slots4_/slots6_
    uint32_t mask = 0;       // slot count - 1
};

struct port_dim {
    uint32_t bounds = 0; // offset into bounds_: interval starts, ascending, first is 0
    uint32_t lists = 0;  // offset into tables_: one list offset per interval
    uint32_t n = 0;      // intervals; 0: no such index
};

inline constexpr uint32_t no_table = 0xffffffffu;

struct chain_index {
    uint32_t first = 0;   // global index of rule 0
    uint32_t n_rules = 0;
    uint32_t always = 0;  // list offset
    uint8_t policy = 0;   // chain_policy
    uint8_t n_src = 0, n_dst = 0;
    addr_dim src[4], dst[4];
    port_dim sport, dport;
    uint32_t proto_tab = no_table; // 256 list offsets in tables_
    uint32_t in_tab = no_table;    // 64 list offsets in tables_
    uint32_t out_tab = no_table;
};

} // namespace cls_detail

using namespace cls_detail;

namespace {

inline constexpr uint32_t list_end = 0xffffffffu;
inline constexpr size_t max_depth = 64;
inline constexpr size_t max_heads = 16;
inline constexpr uint32_t small_chain = 6; // chains up to this size are scanned in order

inline uint64_t load64(const uint8_t* p) noexcept {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t load32(const uint8_t* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

inline uint32_t hash4(uint32_t k) noexcept {
    return uint32_t((uint64_t(k) * 0x9E3779B97F4A7C15ull) >> 32);
}
inline uint32_t hash6(uint64_t a, uint64_t b) noexcept {
    uint64_t h = (a ^ std::rotl(b, 29)) * 0x9E3779B97F4A7C15ull;
    return uint32_t(h >> 32) ^ uint32_t(h);
}

// Prefix mask bytes of a cidr the way rule_eval's in_cidr compares: IPv4 cidrs compare
// bytes 12..15, IPv6 from byte 0.
std::array<uint8_t, 16> mask_bytes(bool v4, unsigned prefix) {
    std::array<uint8_t, 16> m{};
    unsigned start = v4 ? 12 : 0;
    for (unsigned i = start; i < 16 && prefix > 0; ++i) {
        m[i] = prefix >= 8 ? 0xff : uint8_t(0xff00u >> prefix);
        prefix = prefix >= 8 ? prefix - 8 : 0;
    }
    return m;
}

bool iface_is(const iface_match& m, std::string_view name) {
    if (m.wildcard) return name.substr(0, m.name.size()) == m.name;
    return name == m.name;
}

bool non_first_fragment(const packet_meta& p) noexcept {
    return (p.frag_flags & frag::is_fragment) && !(p.frag_flags & frag::first);
}

inline bool in_range(uint16_t lo, uint16_t hi, uint16_t v) noexcept {
    return v >= lo && v <= hi;
}

} // namespace

// ---------------------------------------------------------------------------------------
// limit

void limit_init(limit_bucket& b, const limit_match& m, uint64_t now_ns) noexcept {
    uint64_t cost = uint64_t(m.period) * 100000u;
    b.credit = cost * std::max<uint32_t>(m.burst, 1);
    b.last_ns = now_ns;
}

bool limit_take(limit_bucket& b, const limit_match& m, uint64_t now_ns) noexcept {
    uint64_t cost = uint64_t(m.period) * 100000u;
    uint64_t cap = cost * std::max<uint32_t>(m.burst, 1);
    uint64_t elapsed = now_ns > b.last_ns ? now_ns - b.last_ns : 0;
    b.last_ns = std::max(b.last_ns, now_ns);
    b.credit = (cap - b.credit < elapsed) ? cap : b.credit + elapsed;
    if (b.credit >= cost) {
        b.credit -= cost;
        return true;
    }
    return false;
}

// ---------------------------------------------------------------------------------------
// the compiled form

classifier::classifier() = default;

classifier::~classifier() {
    for (ip_set* s : sets_) s->unref();
}

void classifier::init_limits(std::span<limit_bucket> buckets, uint64_t now_ns) const noexcept {
    for (size_t i = 0; i < buckets.size() && i < limits_.size(); ++i)
        limit_init(buckets[i], limits_[i], now_ns);
}

size_t classifier::memory_bytes() const noexcept {
    return sizeof(*this) + rules_.size() * sizeof(compiled_rule) + ops_.size() * sizeof(ext_op) +
           chains_.size() * sizeof(chain_index) + lists_.size() * 4 + tables_.size() * 4 +
           bounds_.size() * 2 + slots4_.size() * sizeof(addr_slot4) +
           slots6_.size() * sizeof(addr_slot6) + mp_ranges_.size() * sizeof(port_range);
}

namespace {

// The packet, loaded once per classification.
struct packet_view {
    uint64_t s0, s1, d0, d1;
    uint32_t s4, d4;
    bool nff; // non-first fragment
};

struct frame {
    const chain_index* ch;
    uint32_t n;
    const uint32_t* heads[max_heads];
};

} // namespace

namespace {

inline const uint32_t* addr_lookup4(const addr_slot4* slots, const addr_dim& d,
                                    const uint32_t* lists, uint32_t a4) noexcept {
    uint32_t key = a4 & d.m4;
    const addr_slot4* t = slots + d.slots;
    for (uint32_t i = hash4(key) & d.mask;; i = (i + 1) & d.mask) {
        if (t[i].list == 0) return nullptr;
        if (t[i].key == key) return lists + t[i].list;
    }
}

inline const uint32_t* addr_lookup6(const addr_slot6* slots, const addr_dim& d,
                                    const uint32_t* lists, uint64_t a0, uint64_t a1) noexcept {
    uint64_t k0 = a0 & d.m0, k1 = a1 & d.m1;
    const addr_slot6* t = slots + d.slots;
    for (uint32_t i = hash6(k0, k1) & d.mask;; i = (i + 1) & d.mask) {
        if (t[i].list == 0) return nullptr;
        if (t[i].k0 == k0 && t[i].k1 == k1) return lists + t[i].list;
    }
}

inline uint32_t port_lookup(const uint16_t* bounds, const uint32_t* tables, const port_dim& d,
                            uint16_t port) noexcept {
    const uint16_t* b = bounds + d.bounds;
    uint32_t lo = 0, n = d.n; // find the last start <= port (b[0] == 0)
    while (n > 1) {
        uint32_t half = n / 2;
        lo = (b[lo + half] <= port) ? lo + half : lo;
        n -= half;
    }
    return tables[d.lists + lo];
}

} // namespace

void classifier::classify(const packet_meta& pkt, const classify_input& in, classify_worker& w,
                          classify_result& out) const noexcept {
    out.reject = reject_kind::icmp_port_unreachable;
    out.by_policy = 0;
    out.terminal = no_rule;
    out.n_matched = 0;

    const chain_index* chains = chains_.data();
    auto policy = [&]() noexcept {
        out.v = chains[hook_chain_].policy == uint8_t(chain_policy::drop) ? verdict::drop
                                                                          : verdict::accept;
        out.by_policy = 1;
    };
    if (pkt.l3 != (v4_ ? l3_kind::ipv4 : l3_kind::ipv6)) {
        policy();
        return;
    }

    packet_view p;
    p.s0 = load64(pkt.src.b);
    p.s1 = load64(pkt.src.b + 8);
    p.d0 = load64(pkt.dst.b);
    p.d1 = load64(pkt.dst.b + 8);
    p.s4 = load32(pkt.src.b + 12);
    p.d4 = load32(pkt.dst.b + 12);
    p.nff = non_first_fragment(pkt);
    const uint32_t in_bit = in.in_port & 63u, out_bit = in.out_port & 63u;
    uint32_t draw = in.random;

    const compiled_rule* rules = rules_.data();
    const ext_op* ops = ops_.data();
    const uint32_t* lists = lists_.data();
    const uint32_t* tables = tables_.data();

    auto enter = [&](frame& f, uint32_t ci) noexcept {
        const chain_index& ch = chains[ci];
        f.ch = &ch;
        f.n = 0;
        f.heads[f.n++] = lists + ch.always;
        for (uint32_t i = 0; i < ch.n_src; ++i) {
            const uint32_t* l = v4_ ? addr_lookup4(slots4_.data(), ch.src[i], lists, p.s4)
                                    : addr_lookup6(slots6_.data(), ch.src[i], lists, p.s0, p.s1);
            if (l) f.heads[f.n++] = l;
        }
        for (uint32_t i = 0; i < ch.n_dst; ++i) {
            const uint32_t* l = v4_ ? addr_lookup4(slots4_.data(), ch.dst[i], lists, p.d4)
                                    : addr_lookup6(slots6_.data(), ch.dst[i], lists, p.d0, p.d1);
            if (l) f.heads[f.n++] = l;
        }
        if (ch.sport.n) {
            uint32_t l = port_lookup(bounds_.data(), tables, ch.sport, pkt.sport);
            if (l) f.heads[f.n++] = lists + l;
        }
        if (ch.dport.n) {
            uint32_t l = port_lookup(bounds_.data(), tables, ch.dport, pkt.dport);
            if (l) f.heads[f.n++] = lists + l;
        }
        if (ch.proto_tab != no_table) {
            uint32_t l = tables[ch.proto_tab + pkt.l4_proto];
            if (l) f.heads[f.n++] = lists + l;
        }
        if (ch.in_tab != no_table) {
            uint32_t l = tables[ch.in_tab + in_bit];
            if (l) f.heads[f.n++] = lists + l;
        }
        if (ch.out_tab != no_table) {
            uint32_t l = tables[ch.out_tab + out_bit];
            if (l) f.heads[f.n++] = lists + l;
        }
    };

    auto ext_ok = [&](const ext_op& o) noexcept -> bool {
        switch (o.kind) {
        case op_tcpudp:
            if (p.nff) return false;
            if ((o.flags & of::has_sport) &&
                in_range(o.p0, o.p1, pkt.sport) == bool(o.flags & of::sport_neg))
                return false;
            if ((o.flags & of::has_dport) &&
                in_range(o.p2, o.p3, pkt.dport) == bool(o.flags & of::dport_neg))
                return false;
            if ((o.flags & of::has_flags) &&
                ((pkt.tcp_flags & o.a) == o.b) == bool(o.flags & of::flags_neg))
                return false;
            return true;
        case op_multiport: {
            if (p.nff) return false;
            const port_range* r = mp_ranges_.data() + o.u;
            bool neg = o.flags & of::neg;
            for (uint32_t i = 0; i < o.n; ++i) {
                bool hit;
                if (o.a == uint8_t(multiport_dir::src))
                    hit = in_range(r[i].lo, r[i].hi, pkt.sport);
                else if (o.a == uint8_t(multiport_dir::dst))
                    hit = in_range(r[i].lo, r[i].hi, pkt.dport);
                else
                    hit = in_range(r[i].lo, r[i].hi, pkt.sport) ||
                          in_range(r[i].lo, r[i].hi, pkt.dport);
                if (hit) return !neg;
            }
            return neg;
        }
        case op_icmp: {
            if (p.nff) return false;
            bool hit = (o.flags & of::icmp_any) ||
                       (pkt.icmp_type == o.a && pkt.icmp_code >= o.c && pkt.icmp_code <= o.d);
            return hit != bool(o.flags & of::neg);
        }
        case op_ctstate:
            return ((o.a & in.ct) != 0) != bool(o.flags & of::neg);
        case op_set: {
            std::string_view in_name(port_names_[in_bit].data(), port_name_len_[in_bit]);
            std::string_view out_name(port_names_[out_bit].data(), port_name_len_[out_bit]);
            dim_flags dims;
            dims.count = o.dims_count;
            dims.src_mask = o.dims_src;
            bool hit = o.set->match(pkt, dims, in_name, out_name);
            return hit != bool(o.flags & of::neg);
        }
        case op_mac:
            if (!in.src_mac) return false;
            return (std::memcmp(in.src_mac, o.mac, 6) == 0) != bool(o.flags & of::neg);
        case op_statistic: {
            uint32_t r = draw;
            draw = statistic_draw_next(draw);
            return ((r & 0x7fffffffu) < o.u) != bool(o.flags & of::neg);
        }
        case op_limit:
            if (o.u >= w.limits.size()) return true;
            return limit_take(w.limits[o.u], limits_[o.u], w.now_ns);
        default:
            return false;
        }
    };

    auto rule_ok = [&](const compiled_rule& r) noexcept -> bool {
        bool sm = ((p.s0 & r.src_mask[0]) == r.src_addr[0]) & ((p.s1 & r.src_mask[1]) == r.src_addr[1]);
        if (sm == bool(r.flags & rf::src_neg)) return false;
        bool dm = ((p.d0 & r.dst_mask[0]) == r.dst_addr[0]) & ((p.d1 & r.dst_mask[1]) == r.dst_addr[1]);
        if (dm == bool(r.flags & rf::dst_neg)) return false;
        if (!((r.in_ports >> in_bit) & 1u)) return false;
        if (!((r.out_ports >> out_bit) & 1u)) return false;
        if ((r.flags & rf::has_proto) &&
            (pkt.l4_proto == r.proto) == bool(r.flags & rf::proto_neg))
            return false;
        if ((r.flags & rf::frag_check) && p.nff != bool(r.flags & rf::frag_want)) return false;
        const ext_op* o = ops + r.ext_begin;
        for (uint32_t i = 0; i < r.ext_count; ++i)
            if (!ext_ok(o[i])) return false;
        return true;
    };

    frame stack[max_depth];
    uint32_t depth = 0;
    frame cur;
    enter(cur, hook_chain_);
    for (;;) {
        // Next candidate: the smallest head.
        uint32_t best = list_end, bi = 0;
        for (uint32_t i = 0; i < cur.n; ++i) {
            uint32_t v = *cur.heads[i];
            if (v < best) {
                best = v;
                bi = i;
            }
        }
        if (best == list_end) { // end of chain
            if (depth == 0) {
                policy();
                return;
            }
            cur = stack[--depth];
            continue;
        }
        ++cur.heads[bi];
        const uint32_t g = cur.ch->first + best;
        const compiled_rule& r = rules[g];
        if (!rule_ok(r)) continue;
        if (out.n_matched < max_recorded_matches) out.matched[out.n_matched] = g;
        ++out.n_matched;
        switch (target_kind(r.target)) {
        case target_kind::none:
        case target_kind::log:
        case target_kind::nflog:
            break;
        case target_kind::accept:
            out.v = verdict::accept;
            out.terminal = g;
            return;
        case target_kind::drop:
            out.v = verdict::drop;
            out.terminal = g;
            return;
        case target_kind::reject:
            out.v = verdict::reject;
            out.reject = reject_kind(r.reject);
            out.terminal = g;
            return;
        case target_kind::return_:
            if (depth == 0) {
                policy();
                return;
            }
            cur = stack[--depth];
            break;
        case target_kind::jump:
            if (depth >= max_depth) { // cannot happen: compile checks the depth
                out.v = verdict::drop;
                out.terminal = g;
                return;
            }
            stack[depth++] = cur;
            enter(cur, r.jump_chain);
            break;
        case target_kind::go_to:
            enter(cur, r.jump_chain);
            break;
        }
    }
}

// The hook chain's IPv4 address-index slots for this packet.
void classifier::prefetch_index(const packet_meta& pkt) const noexcept {
    const chain_index& ch = chains_[hook_chain_];
    if (!v4_ || pkt.l3 != l3_kind::ipv4) return;
    const uint32_t s4 = load32(pkt.src.b + 12), d4 = load32(pkt.dst.b + 12);
    for (uint32_t k = 0; k < ch.n_src; ++k)
        __builtin_prefetch(&slots4_[ch.src[k].slots + (hash4(s4 & ch.src[k].m4) & ch.src[k].mask)]);
    for (uint32_t k = 0; k < ch.n_dst; ++k)
        __builtin_prefetch(&slots4_[ch.dst[k].slots + (hash4(d4 & ch.dst[k].m4) & ch.dst[k].mask)]);
}

// The first candidate rule of each list those slots point to.
void classifier::prefetch_candidates(const packet_meta& pkt) const noexcept {
    const chain_index& ch = chains_[hook_chain_];
    if (!v4_ || pkt.l3 != l3_kind::ipv4) return;
    const uint32_t s4 = load32(pkt.src.b + 12), d4 = load32(pkt.dst.b + 12);
    for (uint32_t k = 0; k < uint32_t(ch.n_src + ch.n_dst); ++k) {
        const bool src = k < ch.n_src;
        const uint32_t* l = addr_lookup4(slots4_.data(), src ? ch.src[k] : ch.dst[k - ch.n_src],
                                         lists_.data(), src ? s4 : d4);
        if (l && *l != list_end) __builtin_prefetch(&rules_[ch.first + *l]);
    }
}

void classifier::classify_burst(std::span<const packet_meta> pkts,
                                std::span<const classify_input> in, classify_worker& w,
                                std::span<classify_result> out) const noexcept {
    size_t n = std::min({pkts.size(), in.size(), out.size()});
    for (size_t i = 0; i < n; ++i) prefetch_index(pkts[i]);
    for (size_t i = 0; i < n; ++i) prefetch_candidates(pkts[i]);
    for (size_t i = 0; i < n; ++i) classify(pkts[i], in[i], w, out[i]);
}

// ---------------------------------------------------------------------------------------
// the compiler

struct compiler {
    static std::unique_ptr<classifier> make() { return std::unique_ptr<classifier>(new classifier()); }

    const ruleset& rs;
    hook h;
    const set_table& sets;
    std::span<const port_binding> ports;
    classifier& c;
    std::string error;
    std::map<std::string, uint32_t, std::less<>> chain_of;
    uint32_t n_ports_known = 0;
    uint64_t known_mask = 0; // bits of known ports + none

    bool fail(std::string msg) {
        if (error.empty()) error = std::move(msg);
        return false;
    }
    std::string where(uint32_t ci, uint32_t ri) const {
        return "chain " + rs.chains[ci].name + " rule " + std::to_string(ri + 1) + ": ";
    }

    uint64_t iface_mask(const iface_match& m) const {
        uint64_t mask = 0;
        for (uint32_t i = 0; i < 64; ++i) {
            std::string_view name(c.port_names_[i].data(), c.port_name_len_[i]);
            bool known = (known_mask >> i) & 1u;
            // Unknown indices are never passed; give them the "no interface" answer.
            if (!known) name = {};
            if (iface_is(m, name)) mask |= uint64_t(1) << i;
        }
        return m.negate ? ~mask : mask;
    }

    bool setup_ports() {
        known_mask = uint64_t(1) << port_none;
        for (const port_binding& pb : ports) {
            if (pb.index > max_port_index)
                return fail("port " + pb.name + ": index " + std::to_string(pb.index) +
                            " above " + std::to_string(max_port_index));
            if (pb.name.empty() || pb.name.size() >= iface_name_size)
                return fail("port name \"" + pb.name + "\" is not a valid interface name");
            if ((known_mask >> pb.index) & 1u)
                return fail("port index " + std::to_string(pb.index) + " bound twice");
            for (uint32_t i = 0; i < 64; ++i)
                if (((known_mask >> i) & 1u) && i != port_none &&
                    std::string_view(c.port_names_[i].data(), c.port_name_len_[i]) == pb.name)
                    return fail("port name \"" + pb.name + "\" bound twice");
            known_mask |= uint64_t(1) << pb.index;
            std::memcpy(c.port_names_[pb.index].data(), pb.name.data(), pb.name.size());
            c.port_name_len_[pb.index] = uint8_t(pb.name.size());
            ++n_ports_known;
        }
        return true;
    }

    bool compile_rule(uint32_t ci, uint32_t ri, const rule& r, compiled_rule& out) {
        std::memset(&out, 0, sizeof out);
        auto put_addr = [&](const addr_match& a, uint64_t* addr, uint64_t* mask) {
            auto m = mask_bytes(a.net.v4, a.net.prefix);
            std::array<uint8_t, 16> v{};
            for (int i = 0; i < 16; ++i) v[i] = a.net.addr[i] & m[i];
            addr[0] = load64(v.data());
            addr[1] = load64(v.data() + 8);
            mask[0] = load64(m.data());
            mask[1] = load64(m.data() + 8);
        };
        if (r.src) {
            put_addr(*r.src, out.src_addr, out.src_mask);
            if (r.src->negate) out.flags |= rf::src_neg;
        }
        if (r.dst) {
            put_addr(*r.dst, out.dst_addr, out.dst_mask);
            if (r.dst->negate) out.flags |= rf::dst_neg;
        }
        out.in_ports = r.in ? iface_mask(*r.in) : ~uint64_t(0);
        out.out_ports = r.out ? iface_mask(*r.out) : ~uint64_t(0);
        if (r.proto) {
            out.flags |= rf::has_proto;
            out.proto = r.proto->proto;
            if (r.proto->negate) out.flags |= rf::proto_neg;
        }
        if (r.fragment) {
            out.flags |= rf::frag_check;
            if (*r.fragment) out.flags |= rf::frag_want;
        }
        out.target = uint8_t(r.target.kind);
        out.reject = uint8_t(r.target.reject);
        if (r.target.kind == target_kind::jump || r.target.kind == target_kind::go_to) {
            auto it = chain_of.find(r.target.chain);
            if (it == chain_of.end())
                return fail(where(ci, ri) + "chain \"" + r.target.chain + "\" does not exist");
            out.jump_chain = it->second;
        }
        out.ext_begin = uint32_t(c.ops_.size());
        for (const match& m : r.matches) {
            ext_op o{};
            bool skip = false;
            std::visit(
                [&](const auto& x) {
                    using T = std::decay_t<decltype(x)>;
                    if constexpr (std::is_same_v<T, tcpudp_match>) {
                        o.kind = op_tcpudp;
                        if (x.sport) {
                            o.flags |= of::has_sport;
                            o.p0 = x.sport->lo;
                            o.p1 = x.sport->hi;
                        }
                        if (x.sport_negate) o.flags |= of::sport_neg;
                        if (x.dport) {
                            o.flags |= of::has_dport;
                            o.p2 = x.dport->lo;
                            o.p3 = x.dport->hi;
                        }
                        if (x.dport_negate) o.flags |= of::dport_neg;
                        if (x.flags) {
                            o.flags |= of::has_flags;
                            o.a = x.flags->first;
                            o.b = x.flags->second;
                        }
                        if (x.flags_negate) o.flags |= of::flags_neg;
                    } else if constexpr (std::is_same_v<T, multiport_match>) {
                        o.kind = op_multiport;
                        o.a = uint8_t(x.dir);
                        o.n = uint16_t(x.ports.size());
                        o.u = uint32_t(c.mp_ranges_.size());
                        c.mp_ranges_.insert(c.mp_ranges_.end(), x.ports.begin(), x.ports.end());
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, icmp_match>) {
                        o.kind = op_icmp;
                        o.a = x.type;
                        o.c = x.code_lo;
                        o.d = x.code_hi;
                        if (!x.v6 && x.type == 0xff) o.flags |= of::icmp_any;
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, ctstate_match>) {
                        o.kind = op_ctstate;
                        o.a = x.mask;
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, set_match>) {
                        o.kind = op_set;
                        const ip_set* s = sets.find(x.name);
                        if (!s) {
                            fail(where(ci, ri) + "set \"" + x.name + "\" does not exist");
                            return;
                        }
                        auto* ms = const_cast<ip_set*>(s); // ref count is atomic, any thread
                        if (std::find(c.sets_.begin(), c.sets_.end(), ms) == c.sets_.end()) {
                            c.sets_.push_back(ms);
                            ms->ref();
                        }
                        o.set = s;
                        o.dims_count = x.dims.count;
                        o.dims_src = x.dims.src_mask;
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, mac_match>) {
                        o.kind = op_mac;
                        std::memcpy(o.mac, x.addr.data(), 6);
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, comment_match>) {
                        skip = true;
                    } else if constexpr (std::is_same_v<T, statistic_match>) {
                        o.kind = op_statistic;
                        o.u = x.threshold;
                        if (x.negate) o.flags |= of::neg;
                    } else if constexpr (std::is_same_v<T, limit_match>) {
                        o.kind = op_limit;
                        o.u = uint32_t(c.limits_.size());
                        c.limits_.push_back(x);
                        c.limit_rule_.push_back(c.chain_first_[ci] + ri);
                    }
                },
                m);
            if (!error.empty()) return false;
            if (!skip) c.ops_.push_back(o);
        }
        size_t cnt = c.ops_.size() - out.ext_begin;
        if (cnt > 0xffff) return fail(where(ci, ri) + "too many matches");
        out.ext_count = uint16_t(cnt);
        return true;
    }

    // Longest chain of -j below `ci` (gotos do not push). Loops were refused by
    // check_ruleset for chains reachable from a built-in chain.
    uint32_t depth_below(uint32_t ci, std::vector<int>& memo) {
        if (memo[ci] >= 0) return uint32_t(memo[ci]);
        memo[ci] = 0; // guards against loops in unreachable chains
        uint32_t d = 0;
        for (const rule& r : rs.chains[ci].rules) {
            if (r.target.kind == target_kind::jump)
                d = std::max(d, 1 + depth_below(chain_of.at(r.target.chain), memo));
            else if (r.target.kind == target_kind::go_to)
                d = std::max(d, depth_below(chain_of.at(r.target.chain), memo));
        }
        memo[ci] = int(d);
        return d;
    }

    // ---- index building ----

    enum dim_id : uint8_t { d_none, d_src, d_dst, d_sport, d_dport, d_proto, d_in, d_out };

    struct choice {
        dim_id dim = d_none;
        uint8_t len = 0;          // address dims: the index prefix length
        std::array<uint8_t, 16> key{}; // address dims: masked address
        port_range range;         // port dims
        uint8_t proto = 0;
        uint64_t ports = 0;       // iface dims
    };

    uint32_t add_list(const std::vector<uint32_t>& l) {
        if (l.empty()) return 0;
        uint32_t off = uint32_t(c.lists_.size());
        c.lists_.insert(c.lists_.end(), l.begin(), l.end());
        c.lists_.push_back(list_end);
        return off;
    }

    static std::vector<uint8_t> top_lengths(const std::vector<int>& hist) {
        std::vector<std::pair<int, int>> v; // (count, len)
        for (int len = 1; len < int(hist.size()); ++len)
            if (hist[len] > 0) v.push_back({hist[len], len});
        std::sort(v.begin(), v.end(), [](auto a, auto b) {
            return a.first != b.first ? a.first > b.first : a.second > b.second;
        });
        std::vector<uint8_t> out;
        for (size_t i = 0; i < v.size() && i < 4; ++i) out.push_back(uint8_t(v[i].second));
        std::sort(out.begin(), out.end());
        return out;
    }

    void build_index(uint32_t ci) {
        const chain& ch = rs.chains[ci];
        chain_index& ix = c.chains_[ci];
        const uint32_t n = uint32_t(ch.rules.size());
        std::vector<uint32_t> always;
        if (n <= small_chain) {
            for (uint32_t i = 0; i < n; ++i) always.push_back(i);
            ix.always = add_list(always);
            return;
        }
        const bool v4 = rs.family == ip_family::ipv4;
        const int width = v4 ? 32 : 128;
        // Address index lengths: the four most used prefix lengths per dimension.
        std::vector<int> hs(width + 1, 0), hd(width + 1, 0);
        for (const rule& r : ch.rules) {
            if (r.src && !r.src->negate && r.src->net.v4 == v4 && r.src->net.prefix > 0)
                hs[std::min<int>(r.src->net.prefix, width)]++;
            if (r.dst && !r.dst->negate && r.dst->net.v4 == v4 && r.dst->net.prefix > 0)
                hd[std::min<int>(r.dst->net.prefix, width)]++;
        }
        std::vector<uint8_t> ls = top_lengths(hs), ld = top_lengths(hd);
        auto index_len = [](const std::vector<uint8_t>& lens, uint8_t prefix) -> uint8_t {
            uint8_t best = 0;
            for (uint8_t l : lens)
                if (l <= prefix) best = l;
            return best;
        };
        const uint32_t port_count = std::max<uint32_t>(1, n_ports_known + 1);

        // Candidate keys per rule, then bucket sizes, then the choice.
        std::vector<std::vector<choice>> cand(n);
        for (uint32_t i = 0; i < n; ++i) {
            const rule& r = ch.rules[i];
            auto addr_choice = [&](const addr_match& a, dim_id d, const std::vector<uint8_t>& lens) {
                if (a.negate || a.net.v4 != v4) return;
                uint8_t len = index_len(lens, a.net.prefix);
                if (len == 0) return;
                choice x;
                x.dim = d;
                x.len = len;
                auto m = mask_bytes(v4, len);
                for (int b = 0; b < 16; ++b) x.key[b] = a.net.addr[b] & m[b];
                cand[i].push_back(x);
            };
            if (r.src) addr_choice(*r.src, d_src, ls);
            if (r.dst) addr_choice(*r.dst, d_dst, ld);
            // A port match may serve as the index only if no match with a side effect
            // (limit token, statistic draw) is evaluated before it: skipping the rule
            // must not skip the side effect.
            for (const match& m : r.matches) {
                if (std::holds_alternative<limit_match>(m) ||
                    std::holds_alternative<statistic_match>(m))
                    break;
                if (const auto* t = std::get_if<tcpudp_match>(&m)) {
                    if (t->sport && !t->sport_negate && !(t->sport->lo == 0 && t->sport->hi == 0xffff)) {
                        choice x;
                        x.dim = d_sport;
                        x.range = *t->sport;
                        cand[i].push_back(x);
                    }
                    if (t->dport && !t->dport_negate && !(t->dport->lo == 0 && t->dport->hi == 0xffff)) {
                        choice x;
                        x.dim = d_dport;
                        x.range = *t->dport;
                        cand[i].push_back(x);
                    }
                    break; // the first one is enough
                }
            }
            if (r.proto && !r.proto->negate) {
                choice x;
                x.dim = d_proto;
                x.proto = r.proto->proto;
                cand[i].push_back(x);
            }
            auto if_choice = [&](const iface_match& m, dim_id d) {
                if (m.negate) return;
                choice x;
                x.dim = d;
                x.ports = iface_mask(m) & known_mask;
                if (std::popcount(x.ports) * 2 > int(port_count) && port_count > 2) return;
                cand[i].push_back(x);
            };
            if (r.in) if_choice(*r.in, d_in);
            if (r.out) if_choice(*r.out, d_out);
        }
        auto key_of = [](const choice& x) {
            std::string k(1, char(x.dim));
            switch (x.dim) {
            case d_src:
            case d_dst:
                k += char(x.len);
                k.append(reinterpret_cast<const char*>(x.key.data()), 16);
                break;
            case d_sport:
            case d_dport:
                k += std::to_string(x.range.lo) + "-" + std::to_string(x.range.hi);
                break;
            case d_proto: k += char(x.proto); break;
            default: k += std::to_string(x.ports); break;
            }
            return k;
        };
        std::unordered_map<std::string, uint32_t> bucket;
        for (auto& cs : cand)
            for (auto& x : cs) bucket[key_of(x)]++;
        auto cost = [&](const choice& x) {
            double sel = 1.0;
            switch (x.dim) {
            case d_src:
            case d_dst: sel = std::ldexp(1.0, -std::min<int>(x.len, 64)); break;
            case d_sport:
            case d_dport: sel = (double(x.range.hi) - x.range.lo + 1) / 65536.0; break;
            case d_proto: sel = 0.25; break;
            default: sel = double(std::popcount(x.ports)) / port_count; break;
            }
            return double(bucket[key_of(x)]) + sel * n;
        };
        std::vector<choice> chosen(n);
        for (uint32_t i = 0; i < n; ++i) {
            double best = double(n) / 2 + 1; // not worth an index above this
            for (const choice& x : cand[i]) {
                double cx = cost(x);
                if (cx < best) {
                    best = cx;
                    chosen[i] = x;
                }
            }
        }

        // Build.
        for (uint32_t i = 0; i < n; ++i)
            if (chosen[i].dim == d_none) always.push_back(i);
        ix.always = add_list(always);

        auto build_addr = [&](dim_id d, const std::vector<uint8_t>& lens, addr_dim* dims,
                              uint8_t& count) {
            for (uint8_t len : lens) {
                std::map<std::array<uint8_t, 16>, std::vector<uint32_t>> keys;
                for (uint32_t i = 0; i < n; ++i)
                    if (chosen[i].dim == d && chosen[i].len == len) keys[chosen[i].key].push_back(i);
                if (keys.empty()) continue;
                addr_dim& ad = dims[count++];
                auto m = mask_bytes(v4, len);
                ad.m0 = load64(m.data());
                ad.m1 = load64(m.data() + 8);
                ad.m4 = load32(m.data() + 12);
                uint32_t size = std::bit_ceil(uint32_t(keys.size() * 2));
                ad.mask = size - 1;
                if (v4) {
                    ad.slots = uint32_t(c.slots4_.size());
                    c.slots4_.resize(c.slots4_.size() + size, addr_slot4{0, 0});
                } else {
                    ad.slots = uint32_t(c.slots6_.size());
                    c.slots6_.resize(c.slots6_.size() + size, addr_slot6{0, 0, 0, 0});
                }
                for (auto& [k, l] : keys) {
                    uint32_t off = add_list(l);
                    if (v4) {
                        uint32_t key = load32(k.data() + 12);
                        addr_slot4* t = c.slots4_.data() + ad.slots;
                        uint32_t s = hash4(key) & ad.mask;
                        while (t[s].list != 0) s = (s + 1) & ad.mask;
                        t[s] = addr_slot4{key, off};
                    } else {
                        uint64_t k0 = load64(k.data()), k1 = load64(k.data() + 8);
                        addr_slot6* t = c.slots6_.data() + ad.slots;
                        uint32_t s = hash6(k0, k1) & ad.mask;
                        while (t[s].list != 0) s = (s + 1) & ad.mask;
                        t[s] = addr_slot6{k0, k1, off, 0};
                    }
                }
            }
        };
        build_addr(d_src, ls, ix.src, ix.n_src);
        build_addr(d_dst, ld, ix.dst, ix.n_dst);

        auto build_port = [&](dim_id d, port_dim& pd) {
            std::vector<uint32_t> starts{0};
            bool any = false;
            for (uint32_t i = 0; i < n; ++i) {
                if (chosen[i].dim != d) continue;
                any = true;
                starts.push_back(chosen[i].range.lo);
                if (chosen[i].range.hi < 0xffff) starts.push_back(uint32_t(chosen[i].range.hi) + 1);
            }
            if (!any) return;
            std::sort(starts.begin(), starts.end());
            starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
            pd.bounds = uint32_t(c.bounds_.size());
            pd.lists = uint32_t(c.tables_.size());
            pd.n = uint32_t(starts.size());
            std::vector<std::vector<uint32_t>> per(starts.size());
            for (uint32_t i = 0; i < n; ++i) {
                if (chosen[i].dim != d) continue;
                size_t k = size_t(std::lower_bound(starts.begin(), starts.end(),
                                                   uint32_t(chosen[i].range.lo)) - starts.begin());
                for (; k < starts.size() && starts[k] <= chosen[i].range.hi; ++k) per[k].push_back(i);
            }
            for (size_t k = 0; k < starts.size(); ++k) {
                c.bounds_.push_back(uint16_t(starts[k]));
                c.tables_.push_back(0);
            }
            for (size_t k = 0; k < starts.size(); ++k) c.tables_[pd.lists + k] = add_list(per[k]);
        };
        build_port(d_sport, ix.sport);
        build_port(d_dport, ix.dport);

        auto build_table = [&](dim_id d, uint32_t entries, uint32_t& tab) {
            std::vector<std::vector<uint32_t>> per(entries);
            bool any = false;
            for (uint32_t i = 0; i < n; ++i) {
                if (chosen[i].dim != d) continue;
                any = true;
                if (d == d_proto) {
                    per[chosen[i].proto].push_back(i);
                } else {
                    for (uint32_t b = 0; b < 64; ++b)
                        if ((chosen[i].ports >> b) & 1u) per[b].push_back(i);
                }
            }
            if (!any) return;
            tab = uint32_t(c.tables_.size());
            c.tables_.resize(c.tables_.size() + entries, 0);
            for (uint32_t e = 0; e < entries; ++e) c.tables_[tab + e] = add_list(per[e]);
        };
        build_table(d_proto, 256, ix.proto_tab);
        build_table(d_in, 64, ix.in_tab);
        build_table(d_out, 64, ix.out_tab);
    }

    // ---- established bypass ----

    enum class est_outcome { falls_through, accepts, unknown };

    static bool ct_excludes_established(const ctstate_match& m) {
        bool has = m.mask & ct_bit(ct_state::established);
        return m.negate ? has : !has;
    }

    // Also records in c.established_path_ the rules an ESTABLISHED packet matches on its
    // way (their counters are what the bypass must still count).
    est_outcome analyse(uint32_t ci, uint32_t budget) {
        if (budget == 0) return est_outcome::unknown;
        for (uint32_t ri = 0; ri < rs.chains[ci].rules.size(); ++ri) {
            const rule& r = rs.chains[ci].rules[ri];
            bool can_match = true, only_ct = !(r.src || r.dst || r.in || r.out || r.proto ||
                                               r.fragment);
            for (const match& m : r.matches) {
                if (const auto* ct = std::get_if<ctstate_match>(&m)) {
                    if (ct_excludes_established(*ct)) can_match = false;
                } else if (!std::holds_alternative<comment_match>(m)) {
                    only_ct = false;
                }
            }
            if (!can_match) continue;
            if (!only_ct) return est_outcome::unknown; // might match, with any effect
            c.established_path_.push_back(c.chain_first_[ci] + ri);
            switch (r.target.kind) {
            case target_kind::accept: return est_outcome::accepts;
            case target_kind::return_: return est_outcome::falls_through;
            case target_kind::jump: {
                est_outcome o = analyse(chain_of.at(r.target.chain), budget - 1);
                if (o != est_outcome::falls_through) return o;
                break;
            }
            case target_kind::go_to: return analyse(chain_of.at(r.target.chain), budget - 1);
            default: return est_outcome::unknown; // counts, logs, drops or rejects
            }
        }
        return est_outcome::falls_through;
    }

    bool run() {
        if (auto problem = check_ruleset(rs)) {
            std::string msg = "chain " + problem->chain;
            if (problem->rule >= 0) msg += " rule " + std::to_string(problem->rule + 1);
            return fail(msg + ": " + problem->reason);
        }
        uint32_t hi = uint32_t(h);
        if (rs.chains.size() < 3 || !rs.chains[hi].builtin ||
            rs.chains[hi].name != builtin_chain_names[hi])
            return fail("ruleset lacks built-in chain " + std::string(builtin_chain_names[hi]));
        if (!setup_ports()) return false;
        c.hook_ = h;
        c.hook_chain_ = hi;
        c.v4_ = rs.family == ip_family::ipv4;
        for (uint32_t ci = 0; ci < rs.chains.size(); ++ci) chain_of.emplace(rs.chains[ci].name, ci);
        uint32_t total = 0;
        for (uint32_t ci = 0; ci < rs.chains.size(); ++ci) {
            c.chain_first_.push_back(total);
            for (uint32_t ri = 0; ri < rs.chains[ci].rules.size(); ++ri)
                c.rule_at_.push_back(rule_ref{ci, ri});
            total += uint32_t(rs.chains[ci].rules.size());
        }
        std::vector<int> memo(rs.chains.size(), -1);
        if (depth_below(hi, memo) >= max_depth)
            return fail("chain " + rs.chains[hi].name + ": jumps nest deeper than " +
                        std::to_string(max_depth));

        c.lists_.push_back(list_end); // offset 0: the empty list
        c.rules_.resize(total);
        c.chains_.resize(rs.chains.size());
        for (uint32_t ci = 0; ci < rs.chains.size(); ++ci) {
            const chain& ch = rs.chains[ci];
            chain_index& ix = c.chains_[ci];
            ix.first = c.chain_first_[ci];
            ix.n_rules = uint32_t(ch.rules.size());
            ix.policy = uint8_t(ch.policy);
            for (uint32_t ri = 0; ri < ch.rules.size(); ++ri)
                if (!compile_rule(ci, ri, ch.rules[ri], c.rules_[ix.first + ri])) return false;
            build_index(ci);
        }
        est_outcome o = analyse(hi, uint32_t(rs.chains.size()) + 1);
        c.established_bypass_safe_ =
            o == est_outcome::accepts ||
            (o == est_outcome::falls_through && rs.chains[hi].policy == chain_policy::accept);
        return true;
    }
};

compile_result compile(const ruleset& rs, hook h, const set_table& sets,
                       std::span<const port_binding> ports) {
    compile_result res;
    std::unique_ptr<classifier> c = compiler::make();
    compiler comp{rs, h, sets, ports, *c, {}, {}, 0, 0};
    if (!comp.run()) {
        res.error = comp.error.empty() ? "compile failed" : comp.error;
        return res; // c's destructor drops the set references taken so far
    }
    res.cls = std::move(c);
    return res;
}

} // namespace sluice
