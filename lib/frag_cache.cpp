// Fragment cache implementation; see frag_cache.hpp. Worker thread only, except
// construction/destruction (control time).
#include "frag_cache.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace sluice {

frag_cache::frag_cache(uint32_t capacity, uint32_t timeout_s) : timeout_(timeout_s) {
    uint32_t sets = 1;
    while (uint64_t(sets) * ways < capacity && sets < (1u << 28)) sets <<= 1;
    n_sets_ = sets;
    const std::size_t bytes = std::size_t(n_sets_) * ways * sizeof(record);
    records_ = static_cast<record*>(std::aligned_alloc(64, bytes));
    if (!records_) throw std::bad_alloc();
    std::memset(static_cast<void*>(records_), 0, bytes);
}

frag_cache::~frag_cache() { std::free(records_); }

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

uint32_t frag_cache::set_of(const frag_key& k) const noexcept {
    uint64_t w[6];
    std::memcpy(w, &k, sizeof w);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint64_t x : w) {
        h ^= x;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return uint32_t(h >> 32) & (n_sets_ - 1);
}

void frag_cache::remember(const packet_meta& m, uint16_t zone, uint8_t verdict,
                          uint8_t ct_state, uint32_t now) noexcept {
    const frag_key k = key_of(m, zone);
    record* set = records_ + std::size_t(set_of(k)) * ways;
    record* victim = nullptr;
    for (unsigned w = 0; w < ways && !victim; ++w)  // same datagram again (retransmission)
        if (set[w].used && std::memcmp(&set[w].key, &k, sizeof k) == 0) victim = &set[w];
    for (unsigned w = 0; w < ways && !victim; ++w)  // an empty or expired record
        if (!set[w].used || int32_t(now - set[w].expires) >= 0) victim = &set[w];
    if (!victim) {  // all live: replace the one closest to expiry
        victim = &set[0];
        for (unsigned w = 1; w < ways; ++w)
            if (int32_t(set[w].expires - victim->expires) < 0) victim = &set[w];
        ++counters_.replaced;
    }
    victim->key = k;
    victim->expires = now + timeout_;
    victim->used = 1;
    victim->info = frag_info{m.sport, m.dport, verdict, ct_state};
    ++counters_.remembered;
}

const frag_info* frag_cache::lookup(const packet_meta& m, uint16_t zone, uint32_t now) noexcept {
    const frag_key k = key_of(m, zone);
    record* set = records_ + std::size_t(set_of(k)) * ways;
    for (unsigned w = 0; w < ways; ++w) {
        record& r = set[w];
        if (r.used && std::memcmp(&r.key, &k, sizeof k) == 0) {
            if (int32_t(now - r.expires) >= 0) {
                r.used = 0;
                break;
            }
            ++counters_.hits;
            return &r.info;
        }
    }
    ++counters_.misses;
    return nullptr;
}

} // namespace sluice
