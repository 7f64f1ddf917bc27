// Flow table: allocation, index insertion with a bounded cuckoo search, erase, early
// drop and the incremental expiry sweep. See flow_table.hpp for the model; everything
// here runs on the owning worker (construction and destruction on the control thread
// before/after the worker runs).
#include "flow_table.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace sluice {

namespace {

// Large tables are 2 MiB aligned and asked to be backed by transparent huge pages: a
// lookup in a table of a million flows otherwise pays a TLB miss (a page walk, expensive
// under nested paging in a VM) for its bucket and again for its entry. Where THP is off
// the advice is ignored and 4 KiB pages are used.
void* alloc_zeroed(std::size_t bytes) {
    constexpr std::size_t huge = std::size_t(2) << 20;
    const std::size_t align = bytes >= huge ? huge : 64;
    const std::size_t rounded = (bytes + align - 1) & ~(align - 1);
    void* p = std::aligned_alloc(align, rounded);
    if (!p) throw std::bad_alloc();
    if (align == huge) madvise(p, rounded, MADV_HUGEPAGE);
    std::memset(p, 0, rounded);
    return p;
}

} // namespace

flow_table::flow_table(uint32_t capacity) {
    if (capacity == 0 || capacity >= no_entry)
        throw std::invalid_argument("flow_table: capacity must be in [1, 2^32-2]");
    capacity_ = capacity;
    // ~1.1 buckets' worth of slots per entry: the index fills to ~91% when the entry pool
    // is exhausted, which the two-choice cuckoo search handles comfortably.
    const uint64_t want = (uint64_t(capacity) * 11 + 79) / 80;
    n_buckets_ = uint32_t(want < 1 ? 1 : want);
    entries_ = static_cast<flow_entry*>(alloc_zeroed(std::size_t(capacity_) * sizeof(flow_entry)));
    try {
        buckets_ = static_cast<bucket*>(alloc_zeroed(std::size_t(n_buckets_) * sizeof(bucket)));
    } catch (...) {
        std::free(entries_);
        throw;
    }
    clear();
}

flow_table::~flow_table() {
    std::free(buckets_);
    std::free(entries_);
}

void flow_table::clear() noexcept {
    for (uint32_t b = 0; b < n_buckets_; ++b)
        for (unsigned s = 0; s < bucket_slots; ++s) {
            buckets_[b].idx[s] = no_entry;
            buckets_[b].hash[s] = 0;
        }
    // Free list in index order, so fresh tables fill entries front to back.
    for (uint32_t i = 0; i < capacity_; ++i) {
        entries_[i].status = 0;
        entries_[i].expires = (i + 1 < capacity_) ? i + 1 : no_entry;
    }
    free_head_ = 0;
    free_count_ = capacity_;
    size_ = 0;
    sweep_cursor_ = 0;
}

bool flow_table::insert(uint32_t idx, uint32_t h) noexcept {
    const uint32_t b1 = primary_bucket(h);
    const uint32_t b2 = secondary_bucket(h);
    auto place = [&](uint32_t b, int s) {
        buckets_[b].hash[s] = h;
        buckets_[b].idx[s] = idx;
        entries_[idx].status = uint8_t((entries_[idx].status & ~flow_status::reserved) |
                                       flow_status::confirmed);
        ++size_;
        ++counters_.inserts;
        if (sink_) sink_->emit(sink_->ctx, flow_event::confirmed, entries_[idx]);
        return true;
    };
    int s = free_slot(buckets_[b1]);
    if (s >= 0) return place(b1, s);
    s = free_slot(buckets_[b2]);
    if (s >= 0) return place(b2, s);

    // Breadth-first search for a chain of moves ending in a bucket with a free slot.
    // Node i: a bucket reached by moving the item in slot `slot` of node `parent`'s
    // bucket to its other bucket. Bounded: ~2 levels of 8-way fan-out.
    struct node {
        uint32_t bucket;
        int16_t parent;
        uint8_t slot;
    };
    constexpr int max_nodes = 160;
    node q[max_nodes];
    int n = 0;
    q[n++] = {b1, -1, 0};
    q[n++] = {b2, -1, 0};
    for (int head = 0; head < n; ++head) {
        const bucket& b = buckets_[q[head].bucket];
        for (unsigned k = 0; k < bucket_slots; ++k) {
            const uint32_t ih = b.hash[k];
            const uint32_t p1 = primary_bucket(ih);
            const uint32_t alt = (p1 == q[head].bucket) ? secondary_bucket(ih) : p1;
            const int fs = free_slot(buckets_[alt]);
            if (fs >= 0) {
                // Execute: move slot k of q[head] to alt/fs, then walk up the parents.
                uint32_t to_b = alt;
                int to_s = fs;
                int cur = head;
                unsigned from_s = k;
                for (;;) {
                    bucket& from = buckets_[q[cur].bucket];
                    buckets_[to_b].hash[to_s] = from.hash[from_s];
                    buckets_[to_b].idx[to_s] = from.idx[from_s];
                    from.idx[from_s] = no_entry;
                    ++counters_.cuckoo_moves;
                    to_b = q[cur].bucket;
                    to_s = int(from_s);
                    if (q[cur].parent < 0) break;
                    from_s = q[cur].slot;
                    cur = q[cur].parent;
                }
                return place(to_b, to_s);
            }
            // Never revisit a bucket already on this path: moves along the chain would
            // then read slots rewritten by earlier moves.
            bool on_path = false;
            for (int a = head; a >= 0; a = q[a].parent) on_path |= (q[a].bucket == alt);
            if (!on_path && n < max_nodes) q[n++] = {alt, int16_t(head), uint8_t(k)};
        }
    }
    ++counters_.index_full;
    return false;
}

bool flow_table::unlink(uint32_t idx, uint32_t h) noexcept {
    for (uint32_t b : {primary_bucket(h), secondary_bucket(h)}) {
        for (unsigned s = 0; s < bucket_slots; ++s) {
            if (buckets_[b].idx[s] == idx) {
                buckets_[b].idx[s] = no_entry;
                return true;
            }
        }
    }
    return false;
}

void flow_table::erase(uint32_t idx) noexcept {
    flow_entry& e = entries_[idx];
    if (!(e.status & flow_status::confirmed)) return;
    unlink(idx, flow_hash(e.key));
    if (sink_) sink_->emit(sink_->ctx, flow_event::destroyed, e);
    --size_;
    ++counters_.erases;
    push_free(idx);
}

bool flow_table::early_drop(uint32_t h, uint32_t now, uint32_t min_age) noexcept {
    uint32_t victim = no_entry;
    bool victim_expired = false;
    uint32_t victim_created = 0;
    for (uint32_t b : {primary_bucket(h), secondary_bucket(h)}) {
        for (unsigned s = 0; s < bucket_slots; ++s) {
            const uint32_t idx = buckets_[b].idx[s];
            if (idx == no_entry) continue;
            const flow_entry& e = entries_[idx];
            if (int32_t(now - e.expires) >= 0) {
                if (!victim_expired) {
                    victim = idx;
                    victim_expired = true;
                }
                continue;
            }
            if (victim_expired || (e.status & flow_status::assured)) continue;
            if (int32_t(now - e.created) < int32_t(min_age)) continue;
            if (victim == no_entry || int32_t(victim_created - e.created) > 0) {
                victim = idx;
                victim_created = e.created;
            }
        }
    }
    if (victim == no_entry) return false;
    erase(victim);
    ++counters_.early_drops;
    return true;
}

uint32_t flow_table::expire(uint32_t now, uint32_t budget) noexcept {
    uint32_t erased = 0;
    if (budget > capacity_) budget = capacity_;
    uint32_t cur = sweep_cursor_;
    for (uint32_t i = 0; i < budget; ++i) {
        flow_entry& e = entries_[cur];
        if ((e.status & flow_status::confirmed) && int32_t(now - e.expires) >= 0) {
            erase(cur);
            ++counters_.expired;
            ++erased;
        }
        if (++cur == capacity_) cur = 0;
    }
    sweep_cursor_ = cur;
    return erased;
}

} // namespace sluice
