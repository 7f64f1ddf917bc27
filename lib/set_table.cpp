// Implementation of the lock-free ipset-style sets; the contract is in set_table.hpp.
//
// Layout of a hash body: one `lf_table<K>` per body (K depends on type and family, below),
// an array of `slot<K>` {key, atomic state} of power-of-two length, linear probing, and an
// optional parallel array of expiry times (sets created with `timeout`). State words:
// empty -> live|live_nomatch <-> tomb; only the writer stores them (release), readers load
// them (acquire) before touching the key. Keys are written only while the slot is empty
// and is not yet visible, so no reader ever reads a key that is being written.
#include "set_table.hpp"

#include "ipset_parser.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>

namespace sluice {

// ---------------------------------------------------------------------------------------
// Names and small helpers

namespace {

struct type_name_entry {
    set_type t;
    std::string_view name;
};
constexpr type_name_entry type_names[] = {
    {set_type::hash_ip, "hash:ip"},
    {set_type::hash_net, "hash:net"},
    {set_type::hash_ip_port, "hash:ip,port"},
    {set_type::hash_net_port, "hash:net,port"},
    {set_type::hash_net_iface, "hash:net,iface"},
    {set_type::bitmap_port, "bitmap:port"},
    {set_type::list_set, "list:set"},
};

constexpr uint8_t proto_icmp = 1, proto_tcp = 6, proto_udp = 17, proto_icmpv6 = 58,
                  proto_sctp = 132, proto_udplite = 136;

} // namespace

std::string_view set_type_name(set_type t) noexcept {
    for (const auto& e : type_names)
        if (e.t == t) return e.name;
    return "?";
}

std::optional<set_type> set_type_from_name(std::string_view name) noexcept {
    for (const auto& e : type_names)
        if (e.name == name) return e.t;
    return std::nullopt;
}

int set_dimension(set_type t) noexcept {
    switch (t) {
    case set_type::hash_ip:
    case set_type::hash_net:
    case set_type::bitmap_port:
        return 1;
    case set_type::hash_ip_port:
    case set_type::hash_net_port:
    case set_type::hash_net_iface:
        return 2;
    case set_type::list_set:
        return 0;
    }
    return 0;
}

bool set_type_has_family(set_type t) noexcept {
    return t != set_type::bitmap_port && t != set_type::list_set;
}

bool set_type_supports_nomatch(set_type t) noexcept {
    return t == set_type::hash_net || t == set_type::hash_net_port || t == set_type::hash_net_iface;
}

std::optional<dim_flags> parse_dim_flags(std::string_view text) noexcept {
    dim_flags d;
    while (true) {
        size_t comma = text.find(',');
        std::string_view tok = text.substr(0, comma);
        if (d.count == 6) return std::nullopt;
        if (tok == "src")
            d.src_mask |= uint8_t(1u << d.count);
        else if (tok != "dst")
            return std::nullopt;
        ++d.count;
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return d;
}

// ---------------------------------------------------------------------------------------
// Keys. Every key is a multiple of 4 bytes with explicit padding kept zero, so equality is
// memcmp and the hash reads 32-bit words. IPv4 addresses are host-order uint32.

namespace {

struct key_ip4 { // hash:ip inet
    uint32_t a;
};
struct key_ip6 { // hash:ip inet6
    uint8_t a[16];
};
struct key_t4 { // hash:net, hash:ip,port, hash:net,port inet
    uint32_t a;
    uint16_t port;
    uint8_t proto;
    uint8_t cidr;
};
struct key_t6 {
    uint8_t a[16];
    uint16_t port;
    uint8_t proto;
    uint8_t cidr;
};
struct key_if4 { // hash:net,iface inet
    uint32_t a;
    uint8_t cidr, pad[3];
    char ifname[iface_name_size];
};
struct key_if6 {
    uint8_t a[16];
    uint8_t cidr, pad[3];
    char ifname[iface_name_size];
};
static_assert(sizeof(key_ip4) == 4 && sizeof(key_ip6) == 16);
static_assert(sizeof(key_t4) == 8 && sizeof(key_t6) == 20);
static_assert(sizeof(key_if4) == 24 && sizeof(key_if6) == 36);

// The family-neutral form every key converts from and to.
struct flat_key {
    ip_addr a{};
    uint8_t cidr = 0;
    uint8_t proto = 0;
    uint16_t port = 0;
    char ifname[iface_name_size] = {};
};

inline uint32_t v4_of(const ip_addr& a) noexcept {
    return a.v4();
}
inline ip_addr mapped(uint32_t v4) noexcept {
    ip_addr r{};
    r.b[10] = r.b[11] = 0xff;
    r.b[12] = uint8_t(v4 >> 24);
    r.b[13] = uint8_t(v4 >> 16);
    r.b[14] = uint8_t(v4 >> 8);
    r.b[15] = uint8_t(v4);
    return r;
}

template <class K> K to_key(const flat_key& f) noexcept {
    K k;
    std::memset(&k, 0, sizeof k);
    if constexpr (std::is_same_v<K, key_ip4>) {
        k.a = v4_of(f.a);
    } else if constexpr (std::is_same_v<K, key_ip6>) {
        std::memcpy(k.a, f.a.b, 16);
    } else if constexpr (std::is_same_v<K, key_t4>) {
        k.a = v4_of(f.a), k.port = f.port, k.proto = f.proto, k.cidr = f.cidr;
    } else if constexpr (std::is_same_v<K, key_t6>) {
        std::memcpy(k.a, f.a.b, 16);
        k.port = f.port, k.proto = f.proto, k.cidr = f.cidr;
    } else if constexpr (std::is_same_v<K, key_if4>) {
        k.a = v4_of(f.a), k.cidr = f.cidr;
        std::memcpy(k.ifname, f.ifname, iface_name_size);
    } else {
        std::memcpy(k.a, f.a.b, 16);
        k.cidr = f.cidr;
        std::memcpy(k.ifname, f.ifname, iface_name_size);
    }
    return k;
}

template <class K> flat_key from_key(const K& k) noexcept {
    flat_key f;
    if constexpr (std::is_same_v<K, key_ip4>) {
        f.a = mapped(k.a);
        f.cidr = 32;
    } else if constexpr (std::is_same_v<K, key_ip6>) {
        std::memcpy(f.a.b, k.a, 16);
        f.cidr = 128;
    } else if constexpr (std::is_same_v<K, key_t4>) {
        f.a = mapped(k.a), f.port = k.port, f.proto = k.proto, f.cidr = k.cidr;
    } else if constexpr (std::is_same_v<K, key_t6>) {
        std::memcpy(f.a.b, k.a, 16);
        f.port = k.port, f.proto = k.proto, f.cidr = k.cidr;
    } else if constexpr (std::is_same_v<K, key_if4>) {
        f.a = mapped(k.a), f.cidr = k.cidr;
        std::memcpy(f.ifname, k.ifname, iface_name_size);
    } else {
        std::memcpy(f.a.b, k.a, 16);
        f.cidr = k.cidr;
        std::memcpy(f.ifname, k.ifname, iface_name_size);
    }
    return f;
}

template <class K> inline bool key_eq(const K& x, const K& y) noexcept {
    return std::memcmp(&x, &y, sizeof(K)) == 0;
}

template <class K> inline uint64_t key_hash(const K& k, uint64_t seed) noexcept {
    static_assert(sizeof(K) % 4 == 0);
    uint64_t h = seed ^ (sizeof(K) * 0x9e3779b97f4a7c15ull);
    const auto* p = reinterpret_cast<const unsigned char*>(&k);
    for (size_t i = 0; i < sizeof(K); i += 4) {
        uint32_t w;
        std::memcpy(&w, p + i, 4);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

// Clear all address bits after the first `bits` (of 128).
inline void mask_addr(ip_addr& a, unsigned bits) noexcept {
    for (unsigned i = 0; i < 16; ++i) {
        unsigned lo = i * 8;
        if (bits >= lo + 8) continue;
        if (bits <= lo)
            a.b[i] = 0;
        else
            a.b[i] &= uint8_t(0xff00u >> (bits - lo));
    }
}

inline unsigned host_len(set_family f) noexcept {
    return f == set_family::inet ? 32 : 128;
}
inline unsigned addr_bits(set_family f, unsigned cidr) noexcept {
    return f == set_family::inet ? 96 + cidr : cidr;
}

// ---------------------------------------------------------------------------------------
// The lock-free table

enum : uint32_t { st_empty = 0, st_tomb = 1, st_live = 2, st_live_nomatch = 3 };

template <class K> struct slot {
    K key;
    std::atomic<uint32_t> state;
};
static_assert(sizeof(slot<key_ip4>) == 8, "hash:ip inet slot should stay 8 bytes");
static_assert(sizeof(slot<key_t4>) == 12);

template <class K> struct lf_table {
    uint32_t mask = 0;
    uint32_t used = 0; // writer: live + tombstoned slots
    uint32_t live = 0; // writer: live slots (expired ones included)
    uint64_t seed = 0;
    slot<K>* slots = nullptr;
    std::atomic<uint32_t>* expiry = nullptr; // nullptr unless the set has timeouts

    static lf_table* make(uint32_t cap, uint64_t seed, bool with_expiry) {
        auto* t = new lf_table;
        t->mask = cap - 1;
        t->seed = seed;
        t->slots = new slot<K>[cap]();
        if (with_expiry) t->expiry = new std::atomic<uint32_t>[cap]();
        return t;
    }
    ~lf_table() {
        delete[] slots;
        delete[] expiry;
    }
    size_t bytes() const noexcept {
        size_t cap = size_t(mask) + 1;
        return sizeof(*this) + cap * sizeof(slot<K>) + (expiry ? cap * 4 : 0);
    }
    bool expired(uint32_t i, uint32_t now) const noexcept {
        if (!expiry) return false;
        uint32_t e = expiry[i].load(std::memory_order_relaxed);
        return e != 0 && e <= now;
    }
};

// Reader: the live state of `k` (st_live / st_live_nomatch) or 0 when absent/expired.
template <class K>
inline uint32_t tbl_find(const lf_table<K>* t, const K& k, uint32_t now) noexcept {
    uint32_t i = uint32_t(key_hash(k, t->seed)) & t->mask;
    for (uint32_t n = 0; n <= t->mask; ++n, i = (i + 1) & t->mask) {
        uint32_t st = t->slots[i].state.load(std::memory_order_acquire);
        if (st == st_empty) return 0;
        if (st != st_tomb && key_eq(t->slots[i].key, k)) return t->expired(i, now) ? 0 : st;
    }
    return 0;
}

// Writer: index of the slot holding `k` (any state but empty), or of the empty slot where
// it would go. The load factor rule guarantees an empty slot exists.
template <class K> inline uint32_t tbl_probe(const lf_table<K>* t, const K& k) noexcept {
    uint32_t i = uint32_t(key_hash(k, t->seed)) & t->mask;
    while (true) {
        uint32_t st = t->slots[i].state.load(std::memory_order_relaxed);
        if (st == st_empty || key_eq(t->slots[i].key, k)) return i;
        i = (i + 1) & t->mask;
    }
}

uint64_t fresh_seed() {
    static std::mt19937_64 rng{std::random_device{}()};
    return rng();
}

uint32_t capacity_for(uint64_t n) {
    uint64_t c = std::bit_ceil(std::max<uint64_t>(16, n * 2));
    return uint32_t(std::min<uint64_t>(c, uint64_t(1) << 31));
}

} // namespace

// ---------------------------------------------------------------------------------------
// Bodies

struct set_body {
    set_type type;
    set_options opt;
    const std::atomic<uint32_t>* clock = nullptr;

    // hash types
    std::atomic<void*> table{nullptr};
    std::atomic<uint64_t> cidr_bits[3] = {}; // bit c: prefix length c present (net types)
    uint32_t cidr_count[129] = {};           // writer
    uint32_t min_cap = 16;

    // bitmap:port
    std::unique_ptr<std::atomic<uint64_t>[]> bits;
    std::unique_ptr<std::atomic<uint32_t>[]> bit_expiry;
    size_t bit_count = 0; // writer: elements set

    // list:set
    std::atomic<const std::vector<ip_set*>*> members{nullptr};

    uint32_t now() const noexcept { return clock->load(std::memory_order_relaxed); }
    bool with_timeout() const noexcept { return opt.timeout.has_value(); }
    bool is_net() const noexcept {
        return type == set_type::hash_net || type == set_type::hash_net_port ||
               type == set_type::hash_net_iface;
    }
};

namespace {

template <class K> struct tag { using type = K; };

template <class F> decltype(auto) with_key(set_type t, set_family f, F&& fn) {
    bool v6 = f == set_family::inet6;
    switch (t) {
    case set_type::hash_ip:
        return v6 ? fn(tag<key_ip6>{}) : fn(tag<key_ip4>{});
    case set_type::hash_net_iface:
        return v6 ? fn(tag<key_if6>{}) : fn(tag<key_if4>{});
    default:
        return v6 ? fn(tag<key_t6>{}) : fn(tag<key_t4>{});
    }
}

bool is_hash(set_type t) {
    return t != set_type::bitmap_port && t != set_type::list_set;
}

// Reader: hash lookup of `base` with ipset's per-prefix semantics for the net types.
template <class K>
bool hash_lookup(const set_body& b, flat_key base, set_family fam, bool by_prefix) noexcept {
    const auto* t = static_cast<const lf_table<K>*>(b.table.load(std::memory_order_acquire));
    uint32_t now = b.now();
    if (!by_prefix) {
        base.cidr = uint8_t(host_len(fam));
        return tbl_find(t, to_key<K>(base), now) == st_live;
    }
    for (int w = 2; w >= 0; --w) {
        uint64_t bits = b.cidr_bits[w].load(std::memory_order_acquire);
        while (bits) {
            int hi = 63 - std::countl_zero(bits);
            bits &= ~(uint64_t(1) << hi);
            unsigned c = unsigned(w * 64 + hi);
            flat_key f = base;
            mask_addr(f.a, addr_bits(fam, c));
            f.cidr = uint8_t(c);
            if (uint32_t st = tbl_find(t, to_key<K>(f), now)) return st == st_live;
        }
    }
    return false;
}

bool hash_lookup_any(const set_body& b, const flat_key& base, set_family fam,
                     bool by_prefix) noexcept {
    bool v6 = fam == set_family::inet6;
    switch (b.type) {
    case set_type::hash_ip:
        return v6 ? hash_lookup<key_ip6>(b, base, fam, false)
                  : hash_lookup<key_ip4>(b, base, fam, false);
    case set_type::hash_net_iface:
        return v6 ? hash_lookup<key_if6>(b, base, fam, by_prefix)
                  : hash_lookup<key_if4>(b, base, fam, by_prefix);
    default:
        return v6 ? hash_lookup<key_t6>(b, base, fam, by_prefix)
                  : hash_lookup<key_t4>(b, base, fam, by_prefix);
    }
}

// ipset's ip_set_get_ip_port: the port dimension of a packet. Non-first fragments have
// none; ICMP carries (type << 8) | code whatever the direction; other protocols port 0.
inline bool packet_port(const packet_meta& p, bool src, uint8_t& proto, uint16_t& port) noexcept {
    if ((p.frag_flags & frag::is_fragment) && !(p.frag_flags & frag::first)) return false;
    proto = p.l4_proto;
    switch (proto) {
    case proto_tcp:
    case proto_udp:
    case proto_sctp:
    case proto_udplite:
        port = src ? p.sport : p.dport;
        return true;
    case proto_icmp:
        port = p.l3 == l3_kind::ipv4 ? uint16_t((p.icmp_type << 8) | p.icmp_code) : 0;
        return true;
    case proto_icmpv6:
        port = p.l3 == l3_kind::ipv6 ? uint16_t((p.icmp_type << 8) | p.icmp_code) : 0;
        return true;
    default:
        port = 0;
        return true;
    }
}

inline bool bitmap_test(const set_body& b, uint16_t port) noexcept {
    if (port < b.opt.range_from || port > b.opt.range_to) return false;
    uint32_t i = uint32_t(port - b.opt.range_from);
    if (!((b.bits[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1u)) return false;
    if (b.bit_expiry) {
        uint32_t e = b.bit_expiry[i].load(std::memory_order_relaxed);
        if (e != 0 && e <= b.now()) return false;
    }
    return true;
}

} // namespace

// ---------------------------------------------------------------------------------------
// ip_set: the reader side

ip_set::~ip_set() = default;

bool ip_set::match(const packet_meta& pkt, dim_flags dims, std::string_view in_iface,
                   std::string_view out_iface) const noexcept {
    const set_body* b = body_.load(std::memory_order_acquire);
    if (dims.count < set_dimension(type_)) return false;
    switch (type_) {
    case set_type::list_set: {
        const auto* m = b->members.load(std::memory_order_acquire);
        if (m)
            for (const ip_set* s : *m)
                if (s->match(pkt, dims, in_iface, out_iface)) return true;
        return false;
    }
    case set_type::bitmap_port: {
        if (pkt.l3 != l3_kind::ipv4 && pkt.l3 != l3_kind::ipv6) return false;
        uint8_t proto;
        uint16_t port;
        if (!packet_port(pkt, dims.src(0), proto, port)) return false;
        if (proto != proto_tcp && proto != proto_udp) return false;
        return bitmap_test(*b, port);
    }
    default:
        break;
    }
    if (pkt.l3 != (family_ == set_family::inet ? l3_kind::ipv4 : l3_kind::ipv6)) return false;
    flat_key k;
    k.a = dims.src(0) ? pkt.src : pkt.dst;
    if (type_ == set_type::hash_ip_port || type_ == set_type::hash_net_port) {
        if (!packet_port(pkt, dims.src(1), k.proto, k.port)) return false;
    } else if (type_ == set_type::hash_net_iface) {
        std::string_view ifn = dims.src(1) ? in_iface : out_iface;
        if (ifn.empty() || ifn.size() >= iface_name_size) return false;
        std::memcpy(k.ifname, ifn.data(), ifn.size());
    }
    return hash_lookup_any(*b, k, family_, b->is_net());
}

void ip_set::match_burst(std::span<const packet_meta* const> pkts, dim_flags dims,
                         std::span<uint8_t> out, std::string_view in_iface,
                         std::string_view out_iface) const noexcept {
    size_t n = std::min(pkts.size(), out.size());
    for (size_t i = 0; i < n; ++i)
        out[i] = match(*pkts[i], dims, in_iface, out_iface);
}

namespace {

flat_key flat_of(const set_element& e, set_family fam) {
    flat_key k;
    k.a = e.addr;
    k.cidr = e.cidr;
    if (k.cidr > host_len(fam)) k.cidr = uint8_t(host_len(fam));
    mask_addr(k.a, addr_bits(fam, k.cidr));
    k.proto = e.proto;
    k.port = e.port;
    std::memcpy(k.ifname, e.iface, iface_name_size);
    k.ifname[iface_name_size - 1] = 0;
    return k;
}

} // namespace

bool ip_set::test(const set_element& e) const noexcept {
    const set_body* b = body_.load(std::memory_order_acquire);
    switch (type_) {
    case set_type::list_set: {
        const auto* m = b->members.load(std::memory_order_acquire);
        if (m)
            for (const ip_set* s : *m)
                if (s->name_ == e.member) return true;
        return false;
    }
    case set_type::bitmap_port:
        return bitmap_test(*b, e.port);
    default:
        break;
    }
    flat_key k = flat_of(e, family_);
    if (type_ == set_type::hash_ip || type_ == set_type::hash_ip_port)
        return hash_lookup_any(*b, k, family_, false);
    if (e.cidr >= host_len(family_)) return hash_lookup_any(*b, k, family_, true);
    // An explicit prefix tests that very entry.
    return with_key(type_, family_, [&](auto tg) {
        using K = typename decltype(tg)::type;
        const auto* t = static_cast<const lf_table<K>*>(b->table.load(std::memory_order_acquire));
        return tbl_find(t, to_key<K>(k), b->now()) == st_live;
    });
}

size_t ip_set::size() const noexcept {
    const set_body* b = body_.load(std::memory_order_relaxed);
    if (type_ == set_type::list_set) {
        const auto* m = b->members.load(std::memory_order_relaxed);
        return m ? m->size() : 0;
    }
    if (type_ == set_type::bitmap_port) return b->bit_count;
    return with_key(type_, family_, [&](auto tg) -> size_t {
        using K = typename decltype(tg)::type;
        return static_cast<const lf_table<K>*>(b->table.load(std::memory_order_relaxed))->live;
    });
}

size_t ip_set::memory_bytes() const noexcept {
    const set_body* b = body_.load(std::memory_order_relaxed);
    if (type_ == set_type::list_set) {
        const auto* m = b->members.load(std::memory_order_relaxed);
        return m ? m->capacity() * sizeof(ip_set*) : 0;
    }
    if (type_ == set_type::bitmap_port) {
        size_t n = size_t(b->opt.range_to - b->opt.range_from) + 1;
        return (n + 63) / 64 * 8 + (b->bit_expiry ? n * 4 : 0);
    }
    return with_key(type_, family_, [&](auto tg) -> size_t {
        using K = typename decltype(tg)::type;
        return static_cast<const lf_table<K>*>(b->table.load(std::memory_order_relaxed))->bytes();
    });
}

const set_options& ip_set::options() const noexcept {
    return body_.load(std::memory_order_relaxed)->opt;
}

// ---------------------------------------------------------------------------------------
// Writer side: bodies

namespace {

struct body_ops {
    set_type type;
    set_family fam;
    set_body& b;
    retire_fn retire;

    uint32_t expiry_for(std::optional<uint32_t> t) const {
        uint32_t secs = t ? *t : (b.opt.timeout ? *b.opt.timeout : 0);
        if (secs == 0) return 0;
        uint64_t e = uint64_t(b.now()) + secs;
        return e > 0xffffffffu ? 0xffffffffu : uint32_t(e);
    }

    template <class K> lf_table<K>* table() const {
        return static_cast<lf_table<K>*>(b.table.load(std::memory_order_relaxed));
    }

    void cidr_inc(unsigned c) {
        if (b.cidr_count[c]++ == 0)
            b.cidr_bits[c / 64].fetch_or(uint64_t(1) << (c % 64), std::memory_order_release);
    }
    void cidr_dec(unsigned c) {
        if (--b.cidr_count[c] == 0)
            b.cidr_bits[c / 64].fetch_and(~(uint64_t(1) << (c % 64)), std::memory_order_release);
    }

    // Build a table of `cap` slots holding the live, unexpired elements of the current one,
    // publish it and retire the old one. Recounts the prefix lengths.
    template <class K> void rebuild(uint32_t cap) {
        lf_table<K>* old = table<K>();
        auto* nt = lf_table<K>::make(cap, fresh_seed(), b.with_timeout());
        uint32_t now = b.now();
        uint32_t counts[129] = {};
        if (old) {
            for (uint32_t i = 0; i <= old->mask; ++i) {
                uint32_t st = old->slots[i].state.load(std::memory_order_relaxed);
                if (st < st_live || old->expired(i, now)) continue;
                uint32_t j = tbl_probe(nt, old->slots[i].key);
                nt->slots[j].key = old->slots[i].key;
                if (nt->expiry)
                    nt->expiry[j].store(old->expiry ? old->expiry[i].load(std::memory_order_relaxed)
                                                    : 0,
                                        std::memory_order_relaxed);
                nt->slots[j].state.store(st, std::memory_order_relaxed);
                ++nt->used;
                ++nt->live;
                if (b.is_net()) ++counts[from_key(old->slots[i].key).cidr];
            }
        }
        b.table.store(nt, std::memory_order_release);
        if (b.is_net()) {
            // Set bits for lengths now present before clearing those that vanished.
            for (unsigned c = 0; c <= 128; ++c)
                if (counts[c] && !b.cidr_count[c]) cidr_inc_raw(c);
            for (unsigned c = 0; c <= 128; ++c) {
                if (!counts[c] && b.cidr_count[c])
                    b.cidr_bits[c / 64].fetch_and(~(uint64_t(1) << (c % 64)),
                                                  std::memory_order_release);
                b.cidr_count[c] = counts[c];
            }
        }
        if (old) retire([old] { delete old; });
    }
    void cidr_inc_raw(unsigned c) {
        b.cidr_bits[c / 64].fetch_or(uint64_t(1) << (c % 64), std::memory_order_release);
    }

    // Insert one key. Returns "" or ipset's error text.
    template <class K>
    std::string insert(const flat_key& f, bool nomatch, std::optional<uint32_t> tmo, bool exist) {
        K k = to_key<K>(f);
        lf_table<K>* t = table<K>();
        uint32_t want = nomatch ? st_live_nomatch : st_live;
        uint32_t i = tbl_probe(t, k);
        uint32_t st = t->slots[i].state.load(std::memory_order_relaxed);
        uint32_t now = b.now();
        if (st >= st_live && !t->expired(i, now)) {
            if (!exist) return "Element cannot be added to the set: it's already added";
            if (t->expiry) t->expiry[i].store(expiry_for(tmo), std::memory_order_relaxed);
            t->slots[i].state.store(want, std::memory_order_release);
            return {};
        }
        if (st >= st_live) { // expired: overwrite in place
            if (t->expiry) t->expiry[i].store(expiry_for(tmo), std::memory_order_relaxed);
            t->slots[i].state.store(want, std::memory_order_release);
            return {};
        }
        if (t->live >= b.opt.maxelem) {
            rebuild<K>(capacity_for(std::max<uint64_t>(t->live, b.min_cap))); // drop expired
            t = table<K>();
            if (t->live >= b.opt.maxelem) return "Hash is full, cannot add more elements";
        }
        if (st == st_empty && uint64_t(t->used + 1) * 4 > uint64_t(t->mask + 1) * 3) {
            rebuild<K>(capacity_for(std::max<uint64_t>(uint64_t(t->live) + 1, b.min_cap)));
            t = table<K>();
            i = tbl_probe(t, k);
            st = t->slots[i].state.load(std::memory_order_relaxed);
        }
        if (st == st_empty) {
            t->slots[i].key = k;
            ++t->used;
        }
        if (t->expiry) t->expiry[i].store(expiry_for(tmo), std::memory_order_relaxed);
        t->slots[i].state.store(want, std::memory_order_release);
        ++t->live;
        if (b.is_net()) cidr_inc(f.cidr);
        return {};
    }

    template <class K> std::string erase(const flat_key& f, bool exist) {
        K k = to_key<K>(f);
        lf_table<K>* t = table<K>();
        uint32_t i = tbl_probe(t, k);
        uint32_t st = t->slots[i].state.load(std::memory_order_relaxed);
        if (st < st_live || t->expired(i, b.now()))
            return exist ? std::string{} : "Element cannot be deleted from the set: it's not added";
        t->slots[i].state.store(st_tomb, std::memory_order_release);
        --t->live;
        if (b.is_net()) cidr_dec(f.cidr);
        return {};
    }
};

} // namespace

// ---------------------------------------------------------------------------------------
// set_table

set_table::set_table(retire_fn retire) : retire_(std::move(retire)) {}

set_table::~set_table() {
    for (ip_set* s : sets_) {
        set_body* b = s->body_.load(std::memory_order_relaxed);
        if (s->type_ == set_type::list_set) {
            delete b->members.load(std::memory_order_relaxed);
        } else if (is_hash(s->type_)) {
            with_key(s->type_, s->family_, [&](auto tg) {
                using K = typename decltype(tg)::type;
                delete static_cast<lf_table<K>*>(b->table.load(std::memory_order_relaxed));
            });
        }
        delete b;
        delete s;
    }
    collect_garbage();
}

void set_table::retire(std::function<void()> free_it) {
    if (retire_)
        retire_(std::move(free_it));
    else
        graveyard_.push_back(std::move(free_it));
}

retire_fn set_table::retirer() {
    return [this](std::function<void()> f) { retire(std::move(f)); };
}

void set_table::collect_garbage() {
    auto g = std::move(graveyard_);
    graveyard_.clear();
    for (auto& f : g)
        f();
}

void set_table::tick(uint32_t now_seconds) noexcept {
    clock_.store(now_seconds, std::memory_order_relaxed);
}

ip_set* set_table::find_mut(std::string_view name) const noexcept {
    for (ip_set* s : sets_)
        if (s->name_ == name) return s;
    return nullptr;
}
ip_set* set_table::find(std::string_view name) noexcept {
    return find_mut(name);
}
const ip_set* set_table::find(std::string_view name) const noexcept {
    return find_mut(name);
}

std::vector<const ip_set*> set_table::list() const {
    return {sets_.begin(), sets_.end()};
}

namespace {

bool same_options(set_type t, const set_options& a, const set_options& b) {
    if (set_type_has_family(t) && a.family != b.family) return false;
    if (a.timeout.has_value() != b.timeout.has_value()) return false;
    if (t == set_type::bitmap_port && (a.range_from != b.range_from || a.range_to != b.range_to))
        return false;
    return a.maxelem == b.maxelem && a.hashsize == b.hashsize;
}

set_body* make_body(set_type t, const set_options& opt, const std::atomic<uint32_t>* clock) {
    auto* b = new set_body;
    b->type = t;
    b->opt = opt;
    b->clock = clock;
    if (t == set_type::bitmap_port) {
        size_t n = size_t(opt.range_to - opt.range_from) + 1;
        b->bits.reset(new std::atomic<uint64_t>[(n + 63) / 64]());
        if (opt.timeout) b->bit_expiry.reset(new std::atomic<uint32_t>[n]());
    } else if (t == set_type::list_set) {
        b->members.store(new std::vector<ip_set*>, std::memory_order_relaxed);
    } else {
        // hashsize sizes the first array, but never beyond what maxelem can fill.
        uint32_t hs = std::clamp<uint32_t>(std::min(opt.hashsize, opt.maxelem), 16, 1u << 30);
        b->min_cap = uint32_t(std::bit_ceil(hs));
        with_key(t, opt.family, [&](auto tg) {
            using K = typename decltype(tg)::type;
            b->table.store(lf_table<K>::make(b->min_cap, fresh_seed(), opt.timeout.has_value()),
                           std::memory_order_relaxed);
        });
    }
    return b;
}

} // namespace

set_status set_table::create(std::string_view name, set_type type, const set_options& opt,
                             bool exist) {
    if (name.empty() || name.size() >= 32)
        return {"Syntax error: setname '" + std::string(name) + "' is longer than 31 characters"};
    if (const ip_set* s = find_mut(name)) {
        if (exist && s->type_ == type && same_options(type, s->options(), opt)) return {};
        return {"Set cannot be created: set with the same name already exists"};
    }
    if (type == set_type::bitmap_port && opt.range_from > opt.range_to)
        return {"Syntax error: bitmap:port range is invalid"};
    set_family fam = set_type_has_family(type) ? opt.family : set_family::inet;
    auto* s = new ip_set(std::string(name), type, fam);
    s->body_.store(make_body(type, opt, &clock_), std::memory_order_release);
    sets_.push_back(s);
    return {};
}

namespace {

// Free a body (and its current arrays) immediately; writer side, body unreachable.
void free_body(set_type t, set_family f, set_body* b) {
    if (t == set_type::list_set) {
        const auto* m = b->members.load(std::memory_order_relaxed);
        if (m)
            for (ip_set* s : *m)
                s->unref();
        delete m;
    } else if (is_hash(t)) {
        with_key(t, f, [&](auto tg) {
            using K = typename decltype(tg)::type;
            delete static_cast<lf_table<K>*>(b->table.load(std::memory_order_relaxed));
        });
    }
    delete b;
}

} // namespace

set_status set_table::destroy(std::string_view name) {
    auto it = std::find_if(sets_.begin(), sets_.end(), [&](ip_set* s) { return s->name_ == name; });
    if (it == sets_.end()) return {"The set with the given name does not exist"};
    ip_set* s = *it;
    if (s->references() != 0)
        return {"Set cannot be destroyed: it is in use by a kernel component"};
    sets_.erase(it);
    set_body* b = s->body_.load(std::memory_order_relaxed);
    if (s->type_ == set_type::list_set) { // members are released now, not after grace
        const auto* m = b->members.exchange(nullptr, std::memory_order_acq_rel);
        if (m) {
            for (ip_set* x : *m)
                x->unref();
            retire([m] { delete m; });
        }
    }
    set_type t = s->type_;
    set_family f = s->family_;
    retire([s, b, t, f] {
        free_body(t, f, b);
        delete s;
    });
    return {};
}

set_status set_table::destroy_all() {
    for (ip_set* s : sets_) {
        uint32_t from_lists = 0;
        for (ip_set* l : sets_)
            if (l->type_ == set_type::list_set)
                for (ip_set* m : *l->body_.load(std::memory_order_relaxed)
                                      ->members.load(std::memory_order_relaxed))
                    from_lists += m == s;
        if (s->references() != from_lists)
            return {"Set cannot be destroyed: it is in use by a kernel component"};
    }
    // Lists first, so their members' references drop.
    std::vector<std::string> names;
    for (ip_set* s : sets_)
        if (s->type_ == set_type::list_set) names.push_back(s->name_);
    for (ip_set* s : sets_)
        if (s->type_ != set_type::list_set) names.push_back(s->name_);
    for (const auto& n : names) {
        set_status st = destroy(n);
        if (!st.ok()) return st;
    }
    return {};
}

set_status set_table::flush(std::string_view name) {
    ip_set* s = find_mut(name);
    if (!s) return {"The set with the given name does not exist"};
    set_body* b = s->body_.load(std::memory_order_relaxed);
    if (s->type_ == set_type::list_set) {
        const auto* old = b->members.exchange(new std::vector<ip_set*>, std::memory_order_acq_rel);
        for (ip_set* m : *old)
            m->unref();
        retire([old] { delete old; });
    } else if (s->type_ == set_type::bitmap_port) {
        size_t n = size_t(b->opt.range_to - b->opt.range_from) + 1;
        for (size_t i = 0; i < (n + 63) / 64; ++i)
            b->bits[i].store(0, std::memory_order_release);
        b->bit_count = 0;
    } else {
        body_ops ops{s->type_, s->family_, *b, retirer()};
        with_key(s->type_, s->family_, [&](auto tg) {
            using K = typename decltype(tg)::type;
            auto* old = ops.table<K>();
            auto* nt = lf_table<K>::make(b->min_cap, fresh_seed(), b->with_timeout());
            b->table.store(nt, std::memory_order_release);
            for (auto& w : b->cidr_bits)
                w.store(0, std::memory_order_release);
            std::fill(std::begin(b->cidr_count), std::end(b->cidr_count), 0u);
            retire([old] { delete old; });
        });
    }
    return {};
}

set_status set_table::flush_all() {
    for (ip_set* s : sets_) {
        set_status st = flush(s->name_);
        if (!st.ok()) return st;
    }
    return {};
}

set_status set_table::swap(std::string_view a, std::string_view b) {
    ip_set* x = find_mut(a);
    ip_set* y = find_mut(b);
    if (!x || !y) return {"The set with the given name does not exist"};
    if (x->type_ != y->type_ || x->family_ != y->family_)
        return {"The sets cannot be swapped: their type does not match"};
    // Readers of either set see old or new contents, each whole; both stay allocated.
    set_body* bx = x->body_.load(std::memory_order_relaxed);
    set_body* by = y->body_.load(std::memory_order_relaxed);
    x->body_.store(by, std::memory_order_release);
    y->body_.store(bx, std::memory_order_release);
    return {};
}

set_status set_table::rename(std::string_view from, std::string_view to) {
    ip_set* s = find_mut(from);
    if (!s) return {"The set with the given name does not exist"};
    if (find_mut(to)) return {"Set cannot be renamed: a set with the new name already exists"};
    if (to.empty() || to.size() >= 32)
        return {"Syntax error: setname '" + std::string(to) + "' is longer than 31 characters"};
    if (s->references() != 0) return {"Set cannot be renamed: it is in use by another system"};
    s->name_ = std::string(to);
    return {};
}

namespace {

// Split [lo, hi] (host-order IPv4) into the fewest CIDR blocks, as ipset does for hash:net.
template <class F> void v4_range_to_cidrs(uint32_t lo, uint32_t hi, F&& fn) {
    uint64_t cur = lo;
    while (cur <= hi) {
        unsigned len = 32;
        while (len > 0) {
            uint64_t size = uint64_t(1) << (32 - (len - 1));
            if ((cur & (size - 1)) != 0 || cur + size - 1 > hi) break;
            --len;
        }
        fn(uint32_t(cur), len);
        cur += uint64_t(1) << (32 - len);
    }
}

constexpr uint64_t max_expansion = uint64_t(1) << 20; // ipset's IPSET_MAX_RANGE

} // namespace

set_status set_table::add(std::string_view name, const set_element& e, bool exist) {
    ip_set* s = find_mut(name);
    if (!s) return {"The set with the given name does not exist"};
    set_body* b = s->body_.load(std::memory_order_relaxed);
    if (e.timeout && !b->with_timeout())
        return {"Timeout cannot be used: set was created without timeout support"};
    if (e.nomatch && !set_type_supports_nomatch(s->type_))
        return {"Syntax error: nomatch is not supported by " +
                std::string(set_type_name(s->type_))};

    if (s->type_ == set_type::list_set) {
        ip_set* m = find_mut(e.member);
        if (!m) return {"Set to be added/deleted/tested as element does not exist."};
        if (m->type_ == set_type::list_set)
            return {"Sets with list:set type cannot be added to the set."};
        const auto* old = b->members.load(std::memory_order_relaxed);
        if (std::find(old->begin(), old->end(), m) != old->end())
            return exist ? set_status{}
                         : set_status{"Element cannot be added to the set: it's already added"};
        if (old->size() >= b->opt.size) return {"List set is full, cannot add more elements"};
        auto pos = old->end();
        if (e.where != set_element::position::end) {
            pos = std::find_if(old->begin(), old->end(),
                               [&](ip_set* x) { return x->name_ == e.where_ref; });
            if (pos == old->end())
                return {"The set to which you referred with 'before' or 'after' is not added to "
                        "the set."};
            if (e.where == set_element::position::after) ++pos;
        }
        auto* nv = new std::vector<ip_set*>(old->begin(), pos);
        nv->push_back(m);
        nv->insert(nv->end(), pos, old->end());
        m->ref();
        b->members.store(nv, std::memory_order_release);
        retire([old] { delete old; });
        return {};
    }

    if (s->type_ == set_type::bitmap_port) {
        if (e.port < b->opt.range_from || e.port_to > b->opt.range_to || e.port > e.port_to)
            return {"Element is out of the range of the set"};
        uint32_t exp = body_ops{s->type_, s->family_, *b, retirer()}.expiry_for(e.timeout);
        for (uint32_t p = e.port; p <= e.port_to; ++p) {
            uint32_t i = p - b->opt.range_from;
            bool present = bitmap_test(*b, uint16_t(p));
            if (present && !exist)
                return {"Element cannot be added to the set: it's already added"};
            if (b->bit_expiry) b->bit_expiry[i].store(exp, std::memory_order_relaxed);
            uint64_t old =
                b->bits[i / 64].fetch_or(uint64_t(1) << (i % 64), std::memory_order_release);
            if (!((old >> (i % 64)) & 1u)) ++b->bit_count;
        }
        return {};
    }

    // Hash types: expand address ranges and port ranges into keys.
    const set_family fam = s->family_;
    const unsigned hl = host_len(fam);
    std::vector<std::pair<ip_addr, uint8_t>> addrs; // (address, cidr)
    const bool net = b->is_net();
    if (e.cidr == 0 && !e.addr_range && net)
        return {"The value of the CIDR parameter of the IP address is invalid"};
    if (e.addr_range || (!net && e.cidr < hl)) {
        if (fam == set_family::inet6) return {"Syntax error: plain IP address must be supplied"};
        uint32_t lo, hi;
        if (e.addr_range) {
            lo = e.addr.v4(), hi = e.addr_to.v4();
            if (lo > hi) std::swap(lo, hi);
        } else {
            uint32_t m = e.cidr == 0 ? 0 : ~uint32_t(0) << (32 - e.cidr);
            lo = e.addr.v4() & m, hi = lo | ~m;
        }
        if (net) {
            v4_range_to_cidrs(lo, hi, [&](uint32_t a, unsigned len) {
                addrs.emplace_back(mapped(a), uint8_t(len));
            });
        } else {
            if (uint64_t(hi) - lo >= max_expansion) return {"Range is too large to expand"};
            for (uint64_t a = lo; a <= hi; ++a)
                addrs.emplace_back(mapped(uint32_t(a)), uint8_t(32));
        }
    } else {
        addrs.emplace_back(e.addr, uint8_t(std::min<unsigned>(e.cidr, hl)));
    }
    uint32_t port_lo = e.port, port_hi = std::max(e.port, e.port_to);
    bool has_port = s->type_ == set_type::hash_ip_port || s->type_ == set_type::hash_net_port;
    if (!has_port) port_lo = port_hi = 0;
    if (uint64_t(addrs.size()) * (port_hi - port_lo + 1) > max_expansion)
        return {"Range is too large to expand"};

    body_ops ops{s->type_, fam, *b, retirer()};
    return with_key(s->type_, fam, [&](auto tg) -> set_status {
        using K = typename decltype(tg)::type;
        for (const auto& [a, c] : addrs) {
            for (uint32_t p = port_lo; p <= port_hi; ++p) {
                set_element one = e;
                one.addr = a;
                one.cidr = c;
                flat_key f = flat_of(one, fam);
                if (!has_port) f.proto = 0;
                f.port = uint16_t(p);
                // As ipset: an element of a range already present is an error without -exist.
                std::string err = ops.template insert<K>(f, e.nomatch, e.timeout, exist);
                if (!err.empty()) return {err};
            }
        }
        return {};
    });
}

set_status set_table::del(std::string_view name, const set_element& e, bool exist) {
    ip_set* s = find_mut(name);
    if (!s) return {"The set with the given name does not exist"};
    set_body* b = s->body_.load(std::memory_order_relaxed);
    if (s->type_ == set_type::list_set) {
        const auto* old = b->members.load(std::memory_order_relaxed);
        auto it =
            std::find_if(old->begin(), old->end(), [&](ip_set* x) { return x->name_ == e.member; });
        if (it == old->end()) {
            if (!find_mut(e.member))
                return {"Set to be added/deleted/tested as element does not exist."};
            return exist ? set_status{}
                         : set_status{"Element cannot be deleted from the set: it's not added"};
        }
        auto* nv = new std::vector<ip_set*>(*old);
        nv->erase(nv->begin() + (it - old->begin()));
        (*it)->unref();
        b->members.store(nv, std::memory_order_release);
        retire([old] { delete old; });
        return {};
    }
    if (s->type_ == set_type::bitmap_port) {
        if (e.port < b->opt.range_from || e.port_to > b->opt.range_to || e.port > e.port_to)
            return {"Element is out of the range of the set"};
        for (uint32_t p = e.port; p <= e.port_to; ++p) {
            uint32_t i = p - b->opt.range_from;
            if (!bitmap_test(*b, uint16_t(p))) {
                if (!exist) return {"Element cannot be deleted from the set: it's not added"};
                if (!((b->bits[i / 64].load(std::memory_order_relaxed) >> (i % 64)) & 1u)) continue;
            }
            b->bits[i / 64].fetch_and(~(uint64_t(1) << (i % 64)), std::memory_order_release);
            --b->bit_count;
        }
        return {};
    }
    const set_family fam = s->family_;
    const unsigned hl = host_len(fam);
    const bool net = b->is_net();
    std::vector<std::pair<ip_addr, uint8_t>> addrs;
    if (e.addr_range || (!net && e.cidr < hl)) {
        if (fam == set_family::inet6) return {"Syntax error: plain IP address must be supplied"};
        uint32_t lo, hi;
        if (e.addr_range) {
            lo = e.addr.v4(), hi = e.addr_to.v4();
            if (lo > hi) std::swap(lo, hi);
        } else {
            uint32_t m = e.cidr == 0 ? 0 : ~uint32_t(0) << (32 - e.cidr);
            lo = e.addr.v4() & m, hi = lo | ~m;
        }
        if (net) {
            v4_range_to_cidrs(lo, hi, [&](uint32_t a, unsigned len) {
                addrs.emplace_back(mapped(a), uint8_t(len));
            });
        } else {
            if (uint64_t(hi) - lo >= max_expansion) return {"Range is too large to expand"};
            for (uint64_t a = lo; a <= hi; ++a)
                addrs.emplace_back(mapped(uint32_t(a)), uint8_t(32));
        }
    } else {
        if (net && e.cidr == 0)
            return {"The value of the CIDR parameter of the IP address is invalid"};
        addrs.emplace_back(e.addr, uint8_t(std::min<unsigned>(e.cidr, hl)));
    }
    bool has_port = s->type_ == set_type::hash_ip_port || s->type_ == set_type::hash_net_port;
    uint32_t port_lo = has_port ? e.port : 0, port_hi = has_port ? std::max(e.port, e.port_to) : 0;
    if (uint64_t(addrs.size()) * (port_hi - port_lo + 1) > max_expansion)
        return {"Range is too large to expand"};
    body_ops ops{s->type_, fam, *b, retirer()};
    return with_key(s->type_, fam, [&](auto tg) -> set_status {
        using K = typename decltype(tg)::type;
        for (const auto& [a, c] : addrs) {
            for (uint32_t p = port_lo; p <= port_hi; ++p) {
                set_element one = e;
                one.addr = a;
                one.cidr = c;
                flat_key f = flat_of(one, fam);
                if (!has_port) f.proto = 0;
                f.port = uint16_t(p);
                std::string err = ops.template erase<K>(f, exist);
                if (!err.empty()) return {err};
            }
        }
        return {};
    });
}

set_status set_table::test(std::string_view name, const set_element& e, bool& in_set) const {
    const ip_set* s = find_mut(name);
    in_set = false;
    if (!s) return {"The set with the given name does not exist"};
    if (e.addr_range || e.port != e.port_to)
        return {"Syntax error: a range cannot be tested, give a single element"};
    if (s->type_ == set_type::list_set && !find_mut(e.member))
        return {"Set to be added/deleted/tested as element does not exist."};
    in_set = s->test(e);
    return {};
}

// ---------------------------------------------------------------------------------------
// Save and clone

namespace {

// Calls fn(element) for every live, unexpired element of a set (writer side).
template <class F> void for_each_element(const ip_set& s, const set_body& b, uint32_t now, F&& fn) {
    if (s.type() == set_type::list_set) {
        for (const ip_set* m : *b.members.load(std::memory_order_relaxed)) {
            set_element e;
            e.member = m->name();
            fn(e);
        }
        return;
    }
    if (s.type() == set_type::bitmap_port) {
        for (uint32_t p = b.opt.range_from; p <= b.opt.range_to; ++p) {
            if (!bitmap_test(b, uint16_t(p))) continue;
            set_element e;
            e.port = e.port_to = uint16_t(p);
            if (b.bit_expiry) {
                uint32_t x = b.bit_expiry[p - b.opt.range_from].load(std::memory_order_relaxed);
                e.timeout = x ? x - now : 0;
            }
            fn(e);
        }
        return;
    }
    with_key(s.type(), s.family(), [&](auto tg) {
        using K = typename decltype(tg)::type;
        const auto* t = static_cast<const lf_table<K>*>(b.table.load(std::memory_order_relaxed));
        for (uint32_t i = 0; i <= t->mask; ++i) {
            uint32_t st = t->slots[i].state.load(std::memory_order_relaxed);
            if (st < st_live || t->expired(i, now)) continue;
            flat_key f = from_key(t->slots[i].key);
            set_element e;
            e.addr = f.a;
            e.cidr = f.cidr;
            e.proto = f.proto;
            e.port = e.port_to = f.port;
            std::memcpy(e.iface, f.ifname, iface_name_size);
            e.nomatch = st == st_live_nomatch;
            if (t->expiry) {
                uint32_t x = t->expiry[i].load(std::memory_order_relaxed);
                e.timeout = x ? x - now : 0;
            }
            fn(e);
        }
    });
}

} // namespace

void set_table::save_set(std::string& out, const ip_set& s) const {
    const set_body& b = *s.body_.load(std::memory_order_relaxed);
    out += format_create(s.name(), s.type(), b.opt);
    out += '\n';
    uint32_t now = clock_.load(std::memory_order_relaxed);
    for_each_element(s, b, now, [&](const set_element& e) {
        out += "add ";
        out += s.name();
        out += ' ';
        out += format_element(s.type(), s.family(), e);
        if (e.timeout) out += " timeout " + std::to_string(*e.timeout);
        if (e.nomatch) out += " nomatch";
        out += '\n';
    });
}

std::string set_table::save() const {
    std::string out;
    for (const ip_set* s : sets_)
        if (s->type_ != set_type::list_set) save_set(out, *s);
    for (const ip_set* s : sets_)
        if (s->type_ == set_type::list_set) save_set(out, *s);
    return out;
}

std::string set_table::save(std::string_view name) const {
    std::string out;
    if (const ip_set* s = find_mut(name)) save_set(out, *s);
    return out;
}

void set_table::clone_into(set_table& into, const std::vector<std::string>& names) const {
    std::vector<const ip_set*> pick;
    auto want = [&](const ip_set* s) {
        if (std::find(pick.begin(), pick.end(), s) == pick.end()) pick.push_back(s);
    };
    for (const auto& n : names)
        if (const ip_set* s = find_mut(n)) want(s);
    for (size_t i = 0; i < pick.size(); ++i)
        if (pick[i]->type_ == set_type::list_set)
            for (const ip_set* m : *pick[i]
                                        ->body_.load(std::memory_order_relaxed)
                                        ->members.load(std::memory_order_relaxed))
                want(m);
    // Keep creation order so saves compare equal.
    std::stable_sort(pick.begin(), pick.end(), [&](const ip_set* a, const ip_set* b) {
        return std::find(sets_.begin(), sets_.end(), a) < std::find(sets_.begin(), sets_.end(), b);
    });
    const uint32_t t_now = now();
    into.tick(t_now);
    for (int pass = 0; pass < 2; ++pass) {
        for (const ip_set* s : pick) {
            if ((s->type_ == set_type::list_set) != (pass == 1)) continue;
            const set_body& b = *s->body_.load(std::memory_order_relaxed);
            into.create(s->name_, s->type_, b.opt);
            for_each_element(*s, b, t_now,
                             [&](const set_element& e) { into.add(s->name_, e, true); });
        }
    }
    // References: the original count, minus those from list sets that were cloned (their
    // clones hold their own).
    for (const ip_set* s : pick) {
        uint32_t from_cloned_lists = 0;
        for (const ip_set* l : pick)
            if (l->type_ == set_type::list_set)
                for (const ip_set* m : *l->body_.load(std::memory_order_relaxed)
                                            ->members.load(std::memory_order_relaxed))
                    from_cloned_lists += m == s;
        ip_set* c = into.find_mut(s->name_);
        c->refs_.fetch_add(s->references() - from_cloned_lists, std::memory_order_relaxed);
    }
}

} // namespace sluice
