// Fragment cache: gives the non-first fragments of an IP datagram the verdict that its
// first fragment received.
//
// Sluice does not reassemble. The first fragment (offset 0) carries the transport header,
// so it is classified and tracked like any packet; the pipeline then calls `remember`
// with (src, dst, proto, fragment id, zone) → (ports, verdict, ct state). Later fragments
// of the same datagram call `lookup` and receive that verdict.
//
// Non-first fragments that arrive before their first fragment (or after its record timed
// out or was evicted) are dropped and counted (drop_reason::frag_no_first). Why not hold
// them: holding means owning mbufs in a worker-local queue, re-injecting them into a later
// burst, and bounding that queue against fragment floods — machinery with its own failure
// modes, for a case that is rare on the paths Sluice serves (in-order delivery over one
// link; IPv6 and PMTUD make fragmentation uncommon). Dropping loses that one datagram; the
// sender's upper layer retransmits. netfilter, which reassembles, would deliver it; this
// is a documented difference.
//
// Storage: `capacity` records (rounded up to a power of two), 4-way set associative, 64
// bytes each, allocated once. A record lives `timeout` seconds (30, as netfilter's
// ipfrag_time) after the first fragment; when a set is full, an expired record or else the
// one closest to expiry is replaced (counted). Records are not removed on the last
// fragment, because fragments may be reordered.
//
// Thread safety: one cache per worker; all calls on that worker.
#pragma once

#include "packet.hpp"

#include <cstdint>

namespace sluice {

// Layout (byte offsets), 48 bytes: 0 src (16)  16 dst (16)  32 frag_id (4)  36 zone (2)
// 38 proto (1)  39 is_ipv6 (1)  40 pad (8)
struct frag_key {
    ip_addr src;
    ip_addr dst;
    uint32_t frag_id;
    uint16_t zone;
    uint8_t proto;
    uint8_t is_ipv6;
    uint8_t pad_[8];
};
static_assert(sizeof(frag_key) == 48);

// What a non-first fragment inherits from its datagram.
struct frag_info {
    uint16_t sport;
    uint16_t dport;
    uint8_t verdict;   // pipeline's verdict code (opaque here)
    uint8_t ct_state;  // ct_state bits of the first fragment (opaque here)
};

struct frag_cache_counters {
    uint64_t remembered = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;    // non-first fragment without a record: drop (frag_no_first)
    uint64_t replaced = 0;  // live record evicted to make room
};

class frag_cache {
public:
    static constexpr unsigned ways = 4;

    // Control time; may throw.
    explicit frag_cache(uint32_t capacity = 4096, uint32_t timeout_s = 30);
    ~frag_cache();
    frag_cache(const frag_cache&) = delete;
    frag_cache& operator=(const frag_cache&) = delete;

    static frag_key key_of(const packet_meta& m, uint16_t zone) noexcept;

    // Record the verdict of a first fragment (m.frag_flags has frag::first and
    // frag::is_fragment). Per packet, worker thread.
    void remember(const packet_meta& m, uint16_t zone, uint8_t verdict, uint8_t ct_state,
                  uint32_t now) noexcept;

    // Info for a non-first fragment, or nullptr (drop it: frag_no_first).
    const frag_info* lookup(const packet_meta& m, uint16_t zone, uint32_t now) noexcept;

    uint32_t capacity() const noexcept { return n_sets_ * ways; }
    const frag_cache_counters& counters() const noexcept { return counters_; }

private:
    struct record {
        frag_key key;
        uint32_t expires;
        uint32_t used;   // 0 = empty
        frag_info info;
        uint8_t pad_[2];
    };
    static_assert(sizeof(record) == 64);

    uint32_t set_of(const frag_key& k) const noexcept;

    record* records_ = nullptr;
    uint32_t n_sets_ = 0;
    uint32_t timeout_ = 30;
    frag_cache_counters counters_;
};

} // namespace sluice
