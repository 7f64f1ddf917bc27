// See frag_cache.hpp.
#include "frag_cache.hpp"

#include <cstring>

namespace sluice {

struct frag_cache::datagram {
    frag_key key;
    packet_meta first;      // valid when has_first
    uint8_t src_mac[6];
    uint8_t has_mac = 0, has_first = 0, used = 0, in_port = 0, out_port = 0;
    uint32_t total = 0;     // length of the fragmentable part, 0 until the last fragment
    uint32_t received = 0;  // bytes held
    uint32_t expires = 0;
    uint32_t head = 0, tail = 0, count = 0;
    uint32_t next_free = 0;
};

namespace {
constexpr uint32_t none = 0xffffffffu;
uint32_t pow2_at_least(uint32_t v) {
    uint32_t p = 1;
    while (p < v) p <<= 1;
    return p;
}
} // namespace

frag_cache::frag_cache(uint32_t max_datagrams, uint32_t max_fragments, uint32_t timeout_s)
    : n_datagrams_max_(max_datagrams ? max_datagrams : 1),
      max_fragments_(max_fragments ? max_fragments : 1), timeout_(timeout_s) {
    datagrams_ = std::make_unique<datagram[]>(n_datagrams_max_);
    const uint32_t index_size = pow2_at_least(2 * n_datagrams_max_);
    index_mask_ = index_size - 1;
    index_ = std::make_unique<uint32_t[]>(index_size);
    for (uint32_t i = 0; i < index_size; ++i) index_[i] = none;
    nodes_ = std::make_unique<node[]>(max_fragments_);
    for (uint32_t i = 0; i < max_fragments_; ++i) nodes_[i].next = i + 1 < max_fragments_ ? i + 1 : none;
    free_nodes_ = 0;
    free_count_ = max_fragments_;
    for (uint32_t i = 0; i < n_datagrams_max_; ++i)
        datagrams_[i].next_free = i + 1 < n_datagrams_max_ ? i + 1 : none;
    free_datagrams_ = 0;
}

frag_cache::~frag_cache() = default;

frag_key frag_cache::key_of(const packet_meta& m, uint16_t zone) noexcept {
    frag_key k;
    std::memset(&k, 0, sizeof k);
    k.src = m.src;
    k.dst = m.dst;
    k.frag_id = m.frag_id;
    k.zone = zone;
    k.proto = m.l4_proto;
    k.is_ipv6 = m.l3 == l3_kind::ipv6;
    return k;
}

uint32_t frag_cache::slot_of(const frag_key& k) const noexcept {
    uint64_t w[6];
    std::memcpy(w, &k, sizeof w);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint64_t x : w) {
        h ^= x;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return uint32_t(h >> 32) & index_mask_;
}

uint32_t frag_cache::find(const frag_key& k) const noexcept {
    for (uint32_t s = slot_of(k);; s = (s + 1) & index_mask_) {
        const uint32_t d = index_[s];
        if (d == none) return none;
        if (std::memcmp(&datagrams_[d].key, &k, sizeof k) == 0) return d;
    }
}

void frag_cache::erase(uint32_t d) noexcept {
    datagram& g = datagrams_[d];
    // Unlink from the index with backward-shift deletion (linear probing stays valid).
    uint32_t s = slot_of(g.key);
    while (index_[s] != d) s = (s + 1) & index_mask_;
    for (uint32_t j = (s + 1) & index_mask_; index_[j] != none; j = (j + 1) & index_mask_) {
        const uint32_t home = slot_of(datagrams_[index_[j]].key);
        // Move j back into the hole at s unless its home lies cyclically in (s, j].
        const bool home_in_range = s <= j ? (home > s && home <= j) : (home > s || home <= j);
        if (!home_in_range) {
            index_[s] = index_[j];
            s = j;
        }
    }
    index_[s] = none;
    for (uint32_t n = g.head; n != none;) {
        const uint32_t next = nodes_[n].next;
        nodes_[n].next = free_nodes_;
        free_nodes_ = n;
        ++free_count_;
        n = next;
    }
    g.used = 0;
    g.next_free = free_datagrams_;
    free_datagrams_ = d;
    --live_;
}

frag_cache::add_result frag_cache::add(const packet_meta& m, uint16_t zone, void* cookie,
                                       const uint8_t* src_mac, uint8_t in_port, uint8_t out_port,
                                       uint32_t now) noexcept {
    const frag_key k = key_of(m, zone);
    const uint32_t offset = m.frag_offset;
    const uint32_t len = m.ip_total_len > m.l3_len ? m.ip_total_len - m.l3_len : 0;
    const uint32_t end = offset + len;
    const bool last = !(m.frag_flags & frag::more);
    uint32_t d = find(k);
    if (d == none) {
        if (free_datagrams_ == none || free_count_ == 0) {
            ++counters_.refused;
            return {outcome::refused, none};
        }
        d = free_datagrams_;
        datagram& g = datagrams_[d];
        free_datagrams_ = g.next_free;
        g.key = k;
        g.has_mac = g.has_first = 0;
        g.used = 1;
        g.total = g.received = g.count = 0;
        g.head = g.tail = none;
        g.expires = now + timeout_;
        uint32_t s = slot_of(k);
        while (index_[s] != none) s = (s + 1) & index_mask_;
        index_[s] = d;
        ++live_;
    }
    datagram& g = datagrams_[d];
    for (uint32_t n = g.head; n != none; n = nodes_[n].next) {
        if (nodes_[n].offset == offset && nodes_[n].end == end) {
            ++counters_.duplicates;
            return {outcome::duplicate, d};
        }
        if (offset < nodes_[n].end && nodes_[n].offset < end) {
            ++counters_.overlaps;
            return {outcome::overlap, d};
        }
    }
    // A datagram whose end moves or lies beyond its last fragment is malformed: drop it.
    if ((g.total && (end > g.total || (last && end != g.total))) || (last && end < g.received)) {
        ++counters_.overlaps;
        return {outcome::overlap, d};
    }
    if (g.count == max_per_datagram || free_count_ == 0) {
        ++counters_.refused;
        if (g.count == 0) erase(d);
        return {outcome::refused, none};
    }
    const uint32_t n = free_nodes_;
    free_nodes_ = nodes_[n].next;
    --free_count_;
    nodes_[n] = node{cookie, offset, end, none};
    if (g.tail == none) g.head = n;
    else nodes_[g.tail].next = n;
    g.tail = n;
    ++g.count;
    g.received += len;
    if (last) g.total = end;
    if (offset == 0) {
        g.first = m;
        g.has_first = 1;
        g.in_port = in_port;
        g.out_port = out_port;
        g.has_mac = src_mac != nullptr;
        if (src_mac) std::memcpy(g.src_mac, src_mac, 6);
    }
    ++counters_.held;
    if (g.has_first && g.total && g.received == g.total) {
        ++counters_.completed;
        return {outcome::complete, d};
    }
    return {outcome::held, d};
}

const packet_meta& frag_cache::first_meta(uint32_t d) const noexcept { return datagrams_[d].first; }
const uint8_t* frag_cache::first_src_mac(uint32_t d) const noexcept {
    return datagrams_[d].has_mac ? datagrams_[d].src_mac : nullptr;
}
uint8_t frag_cache::in_port(uint32_t d) const noexcept { return datagrams_[d].in_port; }
uint8_t frag_cache::out_port(uint32_t d) const noexcept { return datagrams_[d].out_port; }
bool frag_cache::has_first(uint32_t d) const noexcept { return datagrams_[d].has_first; }

uint32_t frag_cache::cookies(uint32_t d, void** out) const noexcept {
    const datagram& g = datagrams_[d];
    uint32_t k = 0;
    for (uint32_t n = g.head; n != none; n = nodes_[n].next)
        if (nodes_[n].offset == 0) out[k++] = nodes_[n].cookie;
    for (uint32_t n = g.head; n != none; n = nodes_[n].next)
        if (nodes_[n].offset != 0) out[k++] = nodes_[n].cookie;
    return k;
}

void frag_cache::release(uint32_t d) noexcept {
    if (d < n_datagrams_max_ && datagrams_[d].used) erase(d);
}

uint32_t frag_cache::expire_one(uint32_t now, uint32_t budget) noexcept {
    if (!live_) return none;
    for (uint32_t i = 0; i < budget && i < n_datagrams_max_; ++i) {
        const uint32_t d = cursor_;
        cursor_ = cursor_ + 1 == n_datagrams_max_ ? 0 : cursor_ + 1;
        if (datagrams_[d].used && int32_t(now - datagrams_[d].expires) >= 0) {
            ++counters_.timeouts;
            return d;
        }
    }
    return none;
}

uint32_t frag_cache::any() const noexcept {
    if (!live_) return none;
    for (uint32_t d = 0; d < n_datagrams_max_; ++d)
        if (datagrams_[d].used) return d;
    return none;
}

} // namespace sluice
