// Fragment cache: holds the fragments of an IP datagram until the datagram is complete,
// so that the whole datagram gets one verdict — the one its first fragment (which carries
// the transport header) receives — and nothing of it leaves before that, as with
// netfilter, whose conntrack reassembles (nf_defrag_ipv4/ipv6) before the ruleset runs.
//
// Sluice does not rebuild the datagram: the caller hands each fragment over with an
// opaque cookie (the worker's mbuf) and gets it back, with its siblings, once the set is
// complete (offset 0 present, the last fragment present, no holes), or when it must be
// dropped. Then the caller judges the first fragment (`first_meta`) and applies the
// verdict to every cookie, first fragment first, then the others in arrival order. The
// fragments leave as they came (the kernel re-fragments to the same sizes on a link of
// the same MTU).
//
// Like the kernel (inet_frag_queue_insert): an exact duplicate of a held fragment is
// dropped alone; a fragment that overlaps another drops the whole datagram; a datagram
// not complete after `timeout` seconds (30, ipfrag_time) is dropped, silently (the
// conntrack defrag user sends no ICMP time-exceeded). Bounds instead of the kernel's
// memory thresholds: at most `max_datagrams` datagrams and `max_fragments` fragments held
// per worker and 64 fragments per datagram; what does not fit is refused (dropped and
// counted by the caller).
//
// Storage: fixed arrays allocated at construction: datagram records in an open-addressing
// index (linear probing, at most half full), fragment nodes on a free list. Expiry is
// incremental (`expire` looks at a bounded number of records from a rotating cursor).
//
// Thread safety: one cache per worker; every call on that worker; no allocation after
// construction, no locks, no exceptions.
#pragma once

#include "packet.hpp"

#include <cstdint>
#include <memory>
#include <span>

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

struct frag_cache_counters {
    uint64_t held = 0;        // fragments taken
    uint64_t completed = 0;   // datagrams completed
    uint64_t duplicates = 0;  // exact duplicates dropped
    uint64_t overlaps = 0;    // datagrams dropped for overlapping fragments
    uint64_t timeouts = 0;    // datagrams dropped incomplete after the timeout
    uint64_t refused = 0;     // fragments refused: no room
};

class frag_cache {
public:
    static constexpr uint32_t max_per_datagram = 64;
    static constexpr uint32_t no_datagram = 0xffffffffu;

    enum class outcome : uint8_t {
        held,      // kept; the datagram is not complete yet
        complete,  // kept, and it completed datagram `datagram`: judge and release it
        duplicate, // not kept: same offset and length as a held fragment (drop it)
        overlap,   // not kept, and datagram `datagram` must be dropped whole (release it)
        refused,   // not kept: no room (drop it)
    };
    struct add_result {
        outcome what;
        uint32_t datagram;
    };

    // Control time; may throw.
    frag_cache(uint32_t max_datagrams, uint32_t max_fragments, uint32_t timeout_s = 30);
    ~frag_cache();
    frag_cache(const frag_cache&) = delete;
    frag_cache& operator=(const frag_cache&) = delete;

    static frag_key key_of(const packet_meta& m, uint16_t zone) noexcept;

    // Take fragment `m` (m.frag_flags & frag::is_fragment) with the caller's cookie.
    // `src_mac` (6 bytes or null) and the ports are kept with the first fragment, for the
    // classifier. Worker thread.
    add_result add(const packet_meta& m, uint16_t zone, void* cookie, const uint8_t* src_mac,
                   uint8_t in_port, uint8_t out_port, uint32_t now) noexcept;

    // A complete (or to-be-dropped) datagram: its first fragment's parse, the cookies
    // (first fragment's first when present), then release() frees the record.
    const packet_meta& first_meta(uint32_t d) const noexcept;
    const uint8_t* first_src_mac(uint32_t d) const noexcept; // null if none was given
    uint8_t in_port(uint32_t d) const noexcept;
    uint8_t out_port(uint32_t d) const noexcept;
    bool has_first(uint32_t d) const noexcept;
    // Writes the cookies into out (capacity >= max_per_datagram); returns how many.
    uint32_t cookies(uint32_t d, void** out) const noexcept;
    void release(uint32_t d) noexcept;

    // Looks at up to `budget` records; returns a timed-out datagram (caller drops its
    // cookies and releases it) or no_datagram. Worker thread.
    uint32_t expire_one(uint32_t now, uint32_t budget) noexcept;
    // Any held datagram (for draining at shutdown), or no_datagram.
    uint32_t any() const noexcept;

    uint32_t held_fragments() const noexcept { return max_fragments_ - free_count_; }
    const frag_cache_counters& counters() const noexcept { return counters_; }

private:
    struct node {
        void* cookie;
        uint32_t offset, end; // bytes of the fragmentable part
        uint32_t next;
    };
    struct datagram;

    uint32_t slot_of(const frag_key& k) const noexcept;
    uint32_t find(const frag_key& k) const noexcept;
    void erase(uint32_t d) noexcept;

    std::unique_ptr<datagram[]> datagrams_;
    std::unique_ptr<uint32_t[]> index_; // open addressing: datagram index or no_datagram
    std::unique_ptr<node[]> nodes_;
    uint32_t n_datagrams_max_, index_mask_, max_fragments_;
    uint32_t free_nodes_ = 0, free_count_ = 0, free_datagrams_ = 0, live_ = 0;
    uint32_t timeout_;
    uint32_t cursor_ = 0;
    frag_cache_counters counters_;
};

} // namespace sluice
