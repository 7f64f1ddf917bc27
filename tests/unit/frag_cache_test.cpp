// frag_cache tests: datagrams are held until complete (in any arrival order), duplicates
// and overlaps are handled as the kernel's inet_frag_queue_insert does, bounds refuse, and
// incomplete datagrams time out.
#include "frag_cache.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace sluice;

namespace {

// A fragment of datagram `id`: bytes [off, off+len) of the fragmentable part.
packet_meta frag(uint32_t id, uint16_t off, uint16_t len, bool more) {
    packet_meta m{};
    m.l3 = l3_kind::ipv4;
    m.src.b[10] = m.src.b[11] = m.dst.b[10] = m.dst.b[11] = 0xff;
    m.src.b[12] = 192;
    m.dst.b[12] = 198;
    m.l4_proto = 17;
    m.frag_id = id;
    m.l3_len = 20;
    m.ip_total_len = uint16_t(20 + len);
    m.frag_offset = off;
    m.frag_flags = frag::is_fragment | (off == 0 ? frag::first : 0) | (more ? frag::more : 0);
    m.sport = off == 0 ? 1234 : 0;
    return m;
}

void* cookie(uintptr_t v) { return reinterpret_cast<void*>(v); }

using O = frag_cache::outcome;

TEST(frag_cache, holds_until_complete_in_order) {
    frag_cache fc(16, 64);
    EXPECT_EQ(fc.add(frag(1, 0, 1000, true), 0, cookie(1), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.add(frag(1, 1000, 1000, true), 0, cookie(2), nullptr, 0, 1, 10).what, O::held);
    auto r = fc.add(frag(1, 2000, 400, false), 0, cookie(3), nullptr, 0, 1, 10);
    ASSERT_EQ(r.what, O::complete);
    EXPECT_EQ(fc.first_meta(r.datagram).sport, 1234);
    void* c[frag_cache::max_per_datagram];
    ASSERT_EQ(fc.cookies(r.datagram, c), 3u);
    EXPECT_EQ(c[0], cookie(1));
    fc.release(r.datagram);
    EXPECT_EQ(fc.held_fragments(), 0u);
}

TEST(frag_cache, out_of_order_completes_with_the_first_fragment_first) {
    frag_cache fc(16, 64);
    EXPECT_EQ(fc.add(frag(2, 2000, 400, false), 0, cookie(3), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.add(frag(2, 1000, 1000, true), 0, cookie(2), nullptr, 0, 1, 10).what, O::held);
    auto r = fc.add(frag(2, 0, 1000, true), 0, cookie(1), nullptr, 0, 1, 10);
    ASSERT_EQ(r.what, O::complete);
    void* c[frag_cache::max_per_datagram];
    ASSERT_EQ(fc.cookies(r.datagram, c), 3u);
    EXPECT_EQ(c[0], cookie(1));
    EXPECT_EQ(c[1], cookie(3)); // then arrival order
    EXPECT_EQ(c[2], cookie(2));
}

TEST(frag_cache, a_first_fragment_alone_never_completes_and_times_out) {
    frag_cache fc(16, 64, 30);
    EXPECT_EQ(fc.add(frag(3, 0, 1000, true), 0, cookie(1), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.expire_one(20, 100), frag_cache::no_datagram);
    const uint32_t d = fc.expire_one(40, 100);
    ASSERT_NE(d, frag_cache::no_datagram);
    EXPECT_EQ(fc.counters().timeouts, 1u);
    fc.release(d);
    EXPECT_EQ(fc.held_fragments(), 0u);
}

TEST(frag_cache, duplicates_are_dropped_alone_overlaps_drop_the_datagram) {
    frag_cache fc(16, 64);
    fc.add(frag(4, 0, 1000, true), 0, cookie(1), nullptr, 0, 1, 10);
    EXPECT_EQ(fc.add(frag(4, 0, 1000, true), 0, cookie(9), nullptr, 0, 1, 10).what, O::duplicate);
    auto r = fc.add(frag(4, 500, 1000, true), 0, cookie(2), nullptr, 0, 1, 10);
    EXPECT_EQ(r.what, O::overlap);
    fc.release(r.datagram);
    EXPECT_EQ(fc.held_fragments(), 0u);
}

TEST(frag_cache, zones_and_ids_separate_datagrams) {
    frag_cache fc(16, 64);
    fc.add(frag(5, 0, 1000, true), 0, cookie(1), nullptr, 0, 1, 10);
    EXPECT_EQ(fc.add(frag(5, 1000, 10, false), 7, cookie(2), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.add(frag(6, 1000, 10, false), 0, cookie(3), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.add(frag(5, 1000, 10, false), 0, cookie(4), nullptr, 0, 1, 10).what, O::complete);
}

TEST(frag_cache, bounds_refuse_instead_of_growing) {
    frag_cache fc(4, 8);
    int refused = 0;
    for (uint32_t id = 0; id < 100; ++id)
        refused += fc.add(frag(100 + id, 0, 100, true), 0, cookie(id + 1), nullptr, 0, 1, 10).what == O::refused;
    EXPECT_EQ(refused, 96);
    EXPECT_LE(fc.held_fragments(), 8u);
    // Releasing everything makes room again, and the index still finds what is left.
    uint32_t d;
    while ((d = fc.any()) != frag_cache::no_datagram) fc.release(d);
    EXPECT_EQ(fc.add(frag(1, 0, 100, true), 0, cookie(1), nullptr, 0, 1, 10).what, O::held);
    EXPECT_EQ(fc.add(frag(1, 100, 100, false), 0, cookie(2), nullptr, 0, 1, 10).what, O::complete);
}

} // namespace
