// Flow table tests: insert/lookup/erase, bulk lookup agrees with single lookup, bounded
// expiry, capacity behaviour (index fill, early drop rules), and the bytes-per-flow figure.
// Also the fragment cache, which shares the "fixed-size per-worker table" shape.
#include "flow_table.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <vector>

using namespace sluice;

namespace {

flow_key key_n(uint32_t n) {
    flow_key k{};
    k.lo.b[10] = k.lo.b[11] = 0xff;
    k.lo.b[12] = 192;
    k.lo.b[13] = 0;
    k.lo.b[14] = 2;
    k.lo.b[15] = uint8_t(n);
    k.hi.b[10] = k.hi.b[11] = 0xff;
    k.hi.b[12] = 198;
    k.hi.b[13] = 51;
    k.hi.b[14] = uint8_t(n >> 16);
    k.hi.b[15] = uint8_t(n >> 24);
    k.port_lo = uint16_t(n >> 8);
    k.port_hi = 80;
    k.proto = 6;
    return k;
}

// Insert key_n(n) with the given timers; returns the entry index or no_entry.
uint32_t add(flow_table& t, uint32_t n, uint32_t now = 0, uint32_t timeout = 100,
             bool assured = false) {
    const uint32_t idx = t.reserve();
    if (idx == flow_table::no_entry) return idx;
    flow_entry& e = t.at(idx);
    e.key = key_n(n);
    e.created = now;
    e.expires = now + timeout;
    if (assured) e.status |= flow_status::assured;
    if (!t.insert(idx, flow_hash(e.key))) {
        t.release(idx);
        return flow_table::no_entry;
    }
    return idx;
}

uint32_t find(const flow_table& t, uint32_t n) {
    const flow_key k = key_n(n);
    return t.lookup(k, flow_hash(k));
}

TEST(FlowTable, InsertLookupErase) {
    flow_table t(1000);
    std::vector<uint32_t> idx;
    for (uint32_t n = 0; n < 1000; ++n) {
        idx.push_back(add(t, n));
        ASSERT_NE(idx.back(), flow_table::no_entry) << n;
    }
    EXPECT_EQ(t.size(), 1000u);
    EXPECT_EQ(t.free_count(), 0u);
    for (uint32_t n = 0; n < 1000; ++n) EXPECT_EQ(find(t, n), idx[n]);
    EXPECT_EQ(find(t, 5000), flow_table::no_entry);
    for (uint32_t n = 0; n < 1000; n += 2) t.erase(idx[n]);
    EXPECT_EQ(t.size(), 500u);
    for (uint32_t n = 0; n < 1000; ++n)
        EXPECT_EQ(find(t, n), (n % 2) ? idx[n] : flow_table::no_entry) << n;
    // Freed entries are reusable.
    for (uint32_t n = 2000; n < 2500; ++n) ASSERT_NE(add(t, n), flow_table::no_entry);
    EXPECT_EQ(t.size(), 1000u);
    t.clear();
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(find(t, 1), flow_table::no_entry);
}

TEST(FlowTable, ReservedEntriesAreInvisibleUntilInserted) {
    flow_table t(8);
    const uint32_t idx = t.reserve();
    t.at(idx).key = key_n(1);
    EXPECT_EQ(find(t, 1), flow_table::no_entry);
    ASSERT_TRUE(t.insert(idx, flow_hash(key_n(1))));
    EXPECT_EQ(find(t, 1), idx);
    const uint32_t r2 = t.reserve();
    t.release(r2);
    EXPECT_EQ(t.free_count(), 7u);
}

TEST(FlowTable, BulkLookupEqualsSingleLookup) {
    flow_table t(50000);
    for (uint32_t n = 0; n < 40000; ++n) ASSERT_NE(add(t, n * 3), flow_table::no_entry);
    std::mt19937 rng(42);
    for (int round = 0; round < 200; ++round) {
        flow_key keys[100];
        uint32_t hashes[100], out[100];
        const uint32_t n = 1 + rng() % 100;
        for (uint32_t i = 0; i < n; ++i) {
            keys[i] = key_n(rng() % 150000);
            hashes[i] = flow_hash(keys[i]);
        }
        t.lookup_bulk(keys, hashes, n, out);
        for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(out[i], t.lookup(keys[i], hashes[i]));
    }
}

TEST(FlowTable, ExpiryWithBoundedBudget) {
    flow_table t(4096);
    for (uint32_t n = 0; n < 4096; ++n) add(t, n, 0, n < 1000 ? 10 : 1000);
    EXPECT_EQ(t.expire(5, 4096), 0u);
    // Each call examines at most 256 entries.
    uint32_t total = 0;
    for (int call = 0; call < 16; ++call) {
        const uint32_t got = t.expire(10, 256);
        EXPECT_LE(got, 256u);
        total += got;
    }
    EXPECT_EQ(total, 1000u);
    EXPECT_EQ(t.size(), 3096u);
    EXPECT_EQ(t.counters().expired, 1000u);
}

TEST(FlowTable, FillsToCapacityWithCuckooMoves) {
    for (uint32_t cap : {1u, 7u, 64u, 1000u, 100000u}) {
        flow_table t(cap);
        uint32_t ok = 0;
        for (uint32_t n = 0; n < cap; ++n) ok += add(t, n) != flow_table::no_entry;
        EXPECT_EQ(ok, cap) << "capacity " << cap;
        EXPECT_EQ(add(t, cap + 1), flow_table::no_entry);  // pool exhausted
        for (uint32_t n = 0; n < cap; ++n) ASSERT_NE(find(t, n), flow_table::no_entry);
    }
}

TEST(FlowTable, EarlyDropNeverEvictsAssured) {
    flow_table t(64);
    for (uint32_t n = 0; n < 64; ++n) add(t, n, 0, 1000, /*assured=*/true);
    for (uint32_t n = 100; n < 200; ++n) EXPECT_FALSE(t.early_drop(flow_hash(key_n(n)), 50, 1));
    EXPECT_EQ(t.size(), 64u);
}

TEST(FlowTable, EarlyDropPrefersExpiredThenOldestUnassured) {
    flow_table t(16);  // 16 entries → 3 buckets: every key's buckets see most entries
    for (uint32_t n = 0; n < 16; ++n) add(t, n, n, 1000, n < 8);
    const uint32_t h = flow_hash(key_n(99));
    // Young entries (created within min_age) are protected.
    EXPECT_FALSE(t.early_drop(h, 9, 100));
    // Otherwise, the oldest unassured in the two buckets goes first.
    ASSERT_TRUE(t.early_drop(h, 100, 1));
    EXPECT_EQ(t.size(), 15u);
    uint32_t unassured_left = 0;
    uint32_t assured_left = 0;
    t.for_each([&](uint32_t, const flow_entry& e) {
        unassured_left += !(e.status & flow_status::assured);
        assured_left += (e.status & flow_status::assured) != 0;
    });
    EXPECT_EQ(unassured_left, 7u);
    EXPECT_EQ(assured_left, 8u);
    // An expired entry is taken before any live one, assured or not.
    flow_table t2(16);
    for (uint32_t n = 0; n < 16; ++n) add(t2, n, 0, n == 3 ? 5 : 1000, true);
    uint32_t h3 = flow_hash(key_n(3));
    ASSERT_TRUE(t2.early_drop(h3, 10, 1));
    EXPECT_EQ(find(t2, 3), flow_table::no_entry);
}

TEST(FlowTable, ForEachAndEraseIf) {
    flow_table t(100);
    for (uint32_t n = 0; n < 100; ++n) add(t, n);
    uint32_t seen = 0;
    t.for_each([&](uint32_t, const flow_entry&) { ++seen; });
    EXPECT_EQ(seen, 100u);
    const uint32_t erased = t.erase_if([](const flow_entry& e) { return e.key.lo.b[15] % 4 == 0; });
    EXPECT_EQ(erased, 25u);
    EXPECT_EQ(t.size(), 75u);
    EXPECT_EQ(find(t, 4), flow_table::no_entry);
    EXPECT_NE(find(t, 5), flow_table::no_entry);
}

TEST(FlowTable, BytesPerFlow) {
    constexpr uint32_t cap = 1'000'000;
    flow_table t(cap);
    const double per_flow = double(t.memory_bytes()) / cap;
    std::printf("flow_table: sizeof(flow_entry)=%zu, buckets=%u (64 B), %.1f bytes per flow "
                "at capacity %u\n",
                sizeof(flow_entry), t.bucket_count(), per_flow, cap);
    EXPECT_LE(per_flow, 128.0);
    uint32_t ok = 0;
    for (uint32_t n = 0; n < cap; ++n) ok += add(t, n) != flow_table::no_entry;
    EXPECT_EQ(ok, cap);
    std::printf("flow_table: filled to %u/%u, %llu cuckoo moves, %llu index-full refusals\n",
                t.size(), cap, (unsigned long long)t.counters().cuckoo_moves,
                (unsigned long long)t.counters().index_full);
}

} // namespace
