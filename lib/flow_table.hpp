// Flow table: one worker's preallocated store of tracked connections.
//
// Storage is two arrays allocated once at construction (control time) and never resized:
//   * entries: `capacity` flow_entry records (112 bytes: key, timers, conntrack state);
//     free entries are chained through their `expires` field;
//   * index: cache-line buckets of 8 (hash, entry index) slots. A key has two candidate
//     buckets (fastrange of the hash and of a remix of it); insertion makes room with a
//     bounded breadth-first cuckoo search, so the index fills to ~95% before refusing.
//     The 32-bit hash in the slot lets displacement find an item's other bucket without
//     touching its entry and makes false key compares rare.
// Bytes per flow = sizeof(flow_entry) + 64 * n_buckets / capacity (≈ 112 + 9 = 121).
//
// Lifecycle of an entry: `reserve` takes a free entry (the caller fills its key);
// `insert` links it into the index (the flow is then "confirmed" and visible to lookups);
// `erase` unlinks and frees it; `release` frees a reserved entry that was never inserted.
// Expiry is incremental: `expire(now, budget)` examines at most `budget` entries from a
// rotating cursor, so the worker pays a bounded cost per call (once per burst or when
// idle) and never scans the table at once. Lookups still return expired entries; the
// conntrack layer treats an expired entry as absent and erases it on the spot.
//
// When no entry is free, `early_drop` may recycle an entry from the new key's two buckets:
// an expired one, or an unassured one (not yet established) older than a threshold — the
// oldest such. Assured entries are never evicted, so a SYN flood cannot push out
// established connections (netfilter's early_drop has the same rule).
//
// Events: an owner may attach a flow_event_sink (set_event_sink); it is then called on the
// owner thread when an entry is confirmed (insert) and when a confirmed entry is removed
// (erase: expiry, early drop, kill, explicit delete). Without a sink the cost is one
// predictable branch per insert/erase. The sink must not call back into the table.
//
// Thread safety: a flow_table belongs to one worker, which alone calls every method; no
// locks, no atomics. Other threads ask the worker for deletes by message; a dump from
// another thread may copy entries (the arrays live as long as the table) and must treat
// what it reads as possibly torn or stale (fastpath/agent_codec.hpp, read_flow_entry).
#pragma once

#include "flow_key.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice {

// netfilter's TCP conntrack states (values as in enum tcp_conntrack).
enum class tcp_state : uint8_t {
    none = 0,
    syn_sent,
    syn_recv,
    established,
    fin_wait,
    close_wait,
    last_ack,
    time_wait,
    close,
    syn_sent2,
};
inline constexpr int tcp_state_count = 10;

// Per-connection TCP window tracking (netfilter's ip_ct_tcp), both directions indexed by
// connection direction (0 = ORIGINAL, 1 = REPLY). 56 bytes.
//  0 td_end[2]   8 td_maxend[2]  16 td_maxwin[2]  24 td_maxack[2]
// 32 last_seq   36 last_ack   40 last_end   44 last_win (2)  46 td_scale[2]  48 flags[2]
// 50 last_dir   51 last_index  52 last_wscale  53 last_flags  54 retrans  55 pad
struct tcp_track {
    uint32_t td_end[2];     // max of seq + len
    uint32_t td_maxend[2];  // max of ack + max(win, 1)
    uint32_t td_maxwin[2];  // max(win)
    uint32_t td_maxack[2];  // max of ack
    uint32_t last_seq;
    uint32_t last_ack;
    uint32_t last_end;
    uint16_t last_win;
    uint8_t td_scale[2];
    uint8_t flags[2];       // tcp_track_flag::*
    uint8_t last_dir;
    uint8_t last_index;
    uint8_t last_wscale;
    uint8_t last_flags;
    uint8_t retrans;
    uint8_t pad_;
};
static_assert(sizeof(tcp_track) == 56);

namespace flow_status {
inline constexpr uint8_t confirmed = 1;   // linked into the index (visible to lookups)
inline constexpr uint8_t reserved = 2;    // taken by reserve(), not yet inserted
inline constexpr uint8_t seen_reply = 4;  // IPS_SEEN_REPLY
inline constexpr uint8_t assured = 8;     // IPS_ASSURED: never early-dropped
inline constexpr uint8_t orig_hi = 16;    // the ORIGINAL direction was sent by the key's hi side
} // namespace flow_status

// Layout (byte offsets), 112 bytes:
//   0 key (40)          40 expires (4)      44 created (4)     48 generation (4)
//  52 l4_state (1)      53 status (1)       54 verdict (1)     55 l4_class (1)
//  56 tcp (56): window tracking (TCP only; unused otherwise)
struct flow_entry {
    flow_key key;
    uint32_t expires;      // seconds; entry is dead once now >= expires. Free: next free index
    uint32_t created;      // seconds, at confirmation
    uint32_t generation;   // policy generation that judged the flow (set by the pipeline)
    uint8_t l4_state;      // tcp_state for TCP; 0 = unreplied / 1 = replied for others
    uint8_t status;        // flow_status::*
    uint8_t verdict;       // cached verdict (set by the pipeline; opaque here)
    uint8_t l4_class;      // conntrack's l4 tracker kind (opaque here)
    tcp_track tcp;
};
static_assert(sizeof(flow_entry) == 112, "flow_entry layout changed: update the diagram");
static_assert(offsetof(flow_entry, expires) == 40 && offsetof(flow_entry, tcp) == 56);

enum class flow_event : uint8_t { confirmed = 1, destroyed = 2 };

// Observer of entries confirmed and removed; see "Events" above. `emit` runs on the owner
// thread and must not allocate, lock, throw or log (it runs inside a burst).
struct flow_event_sink {
    void (*emit)(void* ctx, flow_event ev, const flow_entry& e) noexcept = nullptr;
    void* ctx = nullptr;
};

struct flow_table_counters {
    uint64_t inserts = 0;
    uint64_t erases = 0;       // all removals, including expiry and early drop
    uint64_t expired = 0;      // removed by expire()
    uint64_t early_drops = 0;  // unassured/expired entries recycled to make room
    uint64_t index_full = 0;   // insert found no room in either bucket after cuckoo search
    uint64_t cuckoo_moves = 0;
};

class flow_table {
public:
    static constexpr uint32_t no_entry = 0xffffffffu;
    static constexpr unsigned bucket_slots = 8;

    struct alignas(64) bucket {
        uint32_t hash[bucket_slots];
        uint32_t idx[bucket_slots];  // no_entry when empty
    };
    static_assert(sizeof(bucket) == 64);

    // Allocates and zeroes all memory; capacity >= 1. Throws std::bad_alloc /
    // std::invalid_argument (control time only).
    explicit flow_table(uint32_t capacity);
    ~flow_table();
    flow_table(const flow_table&) = delete;
    flow_table& operator=(const flow_table&) = delete;

    uint32_t capacity() const noexcept { return capacity_; }
    uint32_t size() const noexcept { return size_; }   // confirmed entries
    uint32_t free_count() const noexcept { return free_count_; }
    uint32_t bucket_count() const noexcept { return n_buckets_; }
    std::size_t memory_bytes() const noexcept {
        return std::size_t(capacity_) * sizeof(flow_entry) + std::size_t(n_buckets_) * sizeof(bucket);
    }
    const flow_table_counters& counters() const noexcept { return counters_; }

    flow_entry& at(uint32_t idx) noexcept { return entries_[idx]; }
    const flow_entry& at(uint32_t idx) const noexcept { return entries_[idx]; }

    // ---- per packet / per burst (owner thread only) ----

    uint32_t primary_bucket(uint32_t h) const noexcept { return fastrange(h); }
    uint32_t secondary_bucket(uint32_t h) const noexcept {
        uint32_t b2 = fastrange(remix(h));
        uint32_t b1 = fastrange(h);
        if (b2 == b1) b2 = (b1 + 1 == n_buckets_) ? 0 : b1 + 1;
        return b2;
    }

    void prefetch_buckets(uint32_t h) const noexcept {
        __builtin_prefetch(&buckets_[primary_bucket(h)]);
        __builtin_prefetch(&buckets_[secondary_bucket(h)]);
    }

    // Single lookup: entry index of `k` (confirmed entries only) or no_entry.
    uint32_t lookup(const flow_key& k, uint32_t h) const noexcept {
        uint32_t idx = find_in(buckets_[primary_bucket(h)], k, h);
        if (idx != no_entry) return idx;
        if (n_buckets_ == 1) return no_entry;
        return find_in(buckets_[secondary_bucket(h)], k, h);
    }

    // Bulk lookup of n keys whose hashes are precomputed (prepare pass done by the caller).
    // Pass 1 prefetches both buckets of every key, pass 2 finds the first candidate slot
    // and prefetches its entry, pass 3 compares keys. Same answers as lookup().
    void lookup_bulk(const flow_key* keys, const uint32_t* hashes, uint32_t n,
                     uint32_t* out) const noexcept {
        constexpr uint32_t chunk = 64;
        uint32_t cand[chunk];
        for (uint32_t base = 0; base < n; base += chunk) {
            const uint32_t m = (n - base < chunk) ? n - base : chunk;
            for (uint32_t i = 0; i < m; ++i) prefetch_buckets(hashes[base + i]);
            for (uint32_t i = 0; i < m; ++i) {
                const uint32_t h = hashes[base + i];
                uint32_t c = first_candidate(buckets_[primary_bucket(h)], h);
                if (c == no_entry && n_buckets_ > 1)
                    c = first_candidate(buckets_[secondary_bucket(h)], h);
                cand[i] = c;
                if (c != no_entry) __builtin_prefetch(&entries_[c]);
            }
            for (uint32_t i = 0; i < m; ++i) {
                const uint32_t c = cand[i];
                if (c != no_entry && entries_[c].key == keys[base + i]) {
                    out[base + i] = c;
                } else if (c == no_entry) {
                    out[base + i] = no_entry;
                } else {
                    // Hash collision on the first candidate: fall back to a full search.
                    out[base + i] = lookup(keys[base + i], hashes[base + i]);
                }
            }
        }
    }

    // Take a free entry (status = reserved, everything else zeroed); no_entry when none.
    uint32_t reserve() noexcept {
        if (free_head_ == no_entry) return no_entry;
        const uint32_t idx = free_head_;
        flow_entry& e = entries_[idx];
        free_head_ = e.expires;
        --free_count_;
        std::memset(static_cast<void*>(&e), 0, sizeof e);
        e.status = flow_status::reserved;
        return idx;
    }

    // Give back a reserved entry that was never inserted.
    void release(uint32_t idx) noexcept { push_free(idx); }

    // Link reserved entry `idx` (whose key is filled in) with hash `h` into the index.
    // Returns false if both buckets are full and no cuckoo path was found; the entry stays
    // reserved. Inserting a key that is already present is the caller's bug.
    bool insert(uint32_t idx, uint32_t h) noexcept;

    // Unlink and free a confirmed entry.
    void erase(uint32_t idx) noexcept;

    // Make room for a new flow with hash `h`: erase the best victim among the confirmed
    // entries of its two buckets — an expired one first, else the oldest unassured one
    // created at or before `now - min_age`. Returns true if one was erased.
    bool early_drop(uint32_t h, uint32_t now, uint32_t min_age) noexcept;

    // Examine up to `budget` entries from the sweep cursor and erase the confirmed ones
    // with expires <= now. Returns the number erased.
    uint32_t expire(uint32_t now, uint32_t budget) noexcept;

    // ---- dumps and deletes (owner thread; not per packet) ----

    // Call fn(index, const flow_entry&) for every confirmed entry.
    template <class Fn> void for_each(Fn&& fn) const {
        for (uint32_t i = 0; i < capacity_; ++i)
            if (entries_[i].status & flow_status::confirmed) fn(i, entries_[i]);
    }

    // Erase every confirmed entry for which pred(const flow_entry&) is true; returns count.
    template <class Pred> uint32_t erase_if(Pred&& pred) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < capacity_; ++i) {
            if ((entries_[i].status & flow_status::confirmed) && pred(entries_[i])) {
                erase(i);
                ++n;
            }
        }
        return n;
    }

    // Erase everything (no events).
    void clear() noexcept;

    // Attach (or, with nullptr, detach) the event sink; the sink must outlive the attachment.
    void set_event_sink(const flow_event_sink* sink) noexcept { sink_ = sink; }

private:
    static uint32_t remix(uint32_t h) noexcept {
        h ^= h >> 16;
        h *= 0x7feb352du;
        h ^= h >> 15;
        h *= 0x846ca68bu;
        h ^= h >> 16;
        return h;
    }
    uint32_t fastrange(uint32_t h) const noexcept {
        return uint32_t((uint64_t(h) * n_buckets_) >> 32);
    }

    static uint32_t match_mask(const bucket& b, uint32_t h) noexcept {
        uint32_t m = 0;
        for (unsigned s = 0; s < bucket_slots; ++s) m |= uint32_t(b.hash[s] == h) << s;
        return m;
    }
    uint32_t first_candidate(const bucket& b, uint32_t h) const noexcept {
        uint32_t m = match_mask(b, h);
        while (m) {
            const unsigned s = unsigned(__builtin_ctz(m));
            if (b.idx[s] != no_entry) return b.idx[s];
            m &= m - 1;
        }
        return no_entry;
    }
    uint32_t find_in(const bucket& b, const flow_key& k, uint32_t h) const noexcept {
        uint32_t m = match_mask(b, h);
        while (m) {
            const unsigned s = unsigned(__builtin_ctz(m));
            const uint32_t idx = b.idx[s];
            if (idx != no_entry && entries_[idx].key == k) return idx;
            m &= m - 1;
        }
        return no_entry;
    }
    static int free_slot(const bucket& b) noexcept {
        for (unsigned s = 0; s < bucket_slots; ++s)
            if (b.idx[s] == no_entry) return int(s);
        return -1;
    }
    void push_free(uint32_t idx) noexcept {
        flow_entry& e = entries_[idx];
        e.status = 0;
        e.expires = free_head_;
        free_head_ = idx;
        ++free_count_;
    }
    bool unlink(uint32_t idx, uint32_t h) noexcept;

    flow_entry* entries_ = nullptr;
    bucket* buckets_ = nullptr;
    uint32_t capacity_ = 0;
    uint32_t n_buckets_ = 0;
    uint32_t size_ = 0;
    uint32_t free_head_ = no_entry;
    uint32_t free_count_ = 0;
    uint32_t sweep_cursor_ = 0;
    const flow_event_sink* sink_ = nullptr;
    flow_table_counters counters_;
};

} // namespace sluice
