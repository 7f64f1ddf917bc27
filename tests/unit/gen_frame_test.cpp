// sluice-gen frame building and TCP workload: every frame a stream builds equals, byte for
// byte, the one the independent test packet builder makes from the same description (so
// lengths and checksums are right); flows are iterated as documented; the signature reads
// back; the TCP workload carries a connection through all eight segments with exact
// sequence numbers, and loses (by stage) what does not come back; the latency histogram's
// quantiles stay within its stated precision.
#include "frame_builder.hpp"
#include "latency_histogram.hpp"
#include "packet_builder.hpp"
#include "tcp_workload.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <tuple>
#include <vector>

namespace {

using namespace sluice::gen;
using sluice::test::packet;

const mac_addr smac{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}, dmac{0x00, 0x00, 0x5e, 0x00, 0x53, 0x02};

stream_spec spec(const std::string& text) {
    stream_spec s;
    auto e = parse_stream_spec(text, s);
    EXPECT_EQ(e, "") << text;
    return s;
}

// One buffer for every frame, filled once, as an mbuf of the TX pool is: frames of other
// streams (longer headers) have been built into it before.
std::vector<uint8_t> build(const stream_frames& f, uint64_t k, uint64_t tsc) {
    static std::vector<uint8_t> mbuf = [] {
        std::vector<uint8_t> b(max_frame);
        write_fill(b.data(), 0, max_frame);
        return b;
    }();
    const auto& s = f.spec();
    auto fl = split_flow(k % s.flows(), s.src.count, s.dst.count, s.sport.count, s.dport.count);
    uint16_t len = f.build(k, fl, tsc, mbuf.data());
    return {mbuf.begin(), mbuf.begin() + len};
}

// The reference: the test builder with the same fields, the payload taken from our frame.
packet reference(const stream_spec& s, uint64_t k, const std::vector<uint8_t>& ours) {
    auto fl = split_flow(k % s.flows(), s.src.count, s.dst.count, s.sport.count, s.dport.count);
    packet p;
    p.eth("00:00:5e:00:53:01", "00:00:5e:00:53:02");
    if (s.vlan >= 0) p.vlan(uint16_t(s.vlan));
    std::string src = format_addr(s.src, fl.src), dst = format_addr(s.dst, fl.dst);
    if (s.ip == 4) p.ipv4(src, dst, s.ttl).ipv4_id(uint16_t(k));
    else p.ipv6(src, dst, s.ttl);
    uint16_t sport = uint16_t(s.sport.first + fl.sport), dport = uint16_t(s.dport.first + fl.dport);
    if (s.proto == l4_kind::udp) p.udp(sport, dport);
    else if (s.proto == l4_kind::tcp) p.tcp(sport, dport, s.tcp_flags).seq(uint32_t(k)).window(65535);
    else if (s.ip == 4) p.icmp(8, 0, sport, uint16_t(k));
    else p.icmpv6(128, 0, sport, uint16_t(k));
    p.payload(std::vector<uint8_t>(ours.begin() + s.header_len(), ours.end()));
    return p;
}

TEST(gen_frame, streams_match_the_reference_builder) {
    stream_frames longest_headers(spec("tx=a,ip=6,proto=tcp,vlan=1,size=1518"), 9, smac, dmac);
    for (const char* text : {
             "tx=a,proto=udp,size=64,src=192.0.2.1-192.0.2.3,dport=9-10",
             "tx=a,proto=udp,size=67,vlan=7",
             "tx=a,proto=tcp,size=1518,flags=S,sport=1000-1002",
             "tx=a,proto=icmp,size=100,sport=7-8",
             "tx=a,ip=6,proto=udp,size=imix,src=2001:db8::fffe-2001:db8::1:1",
             "tx=a,ip=6,proto=tcp,size=imix,vlan=4095,flags=SA",
             "tx=a,ip=6,proto=icmp,size=9000",
         }) {
        auto s = spec(text);
        stream_frames f(s, 3, smac, dmac);
        for (uint64_t k = 0; k < 30; ++k) {
            build(longest_headers, k, 0);
            auto ours = build(f, k, 1000 + k);
            ASSERT_EQ(ours.size() + 4, s.size_of(k)) << text << " packet " << k;
            auto ref = reference(s, k, ours);
            ASSERT_EQ(ours, ref.bytes()) << text << " packet " << k << "\nexpected " << ref.describe();
            sluice::packet_meta m;
            ASSERT_TRUE(sluice::parse_packet(ours.data(), uint32_t(ours.size()), uint32_t(ours.size()), m).ok);
            auto sig = read_signature(ours.data() + m.l4_off + m.l4_len, m.payload_len);
            ASSERT_TRUE(sig);
            EXPECT_EQ(sig->stream, 3);
            EXPECT_EQ(sig->seq, uint32_t(k));
            EXPECT_EQ(sig->tsc, 1000 + k);
            auto fast = frame_signature(ours.data(), uint32_t(ours.size()));
            ASSERT_TRUE(fast) << text << " packet " << k;
            EXPECT_EQ(fast->stream, sig->stream);
            EXPECT_EQ(fast->seq, sig->seq);
            EXPECT_EQ(fast->tsc, sig->tsc);
            for (uint32_t cut : {12u, 20u, uint32_t(s.header_len()), uint32_t(s.header_len() + signature_len - 1)})
                EXPECT_FALSE(frame_signature(ours.data(), cut)) << text << " cut at " << cut;
        }
    }
}

TEST(gen_frame, flows_iterate_in_mixed_radix_and_wrap) {
    auto s = spec("tx=a,src=192.0.2.1-192.0.2.2,dst=198.51.100.1-198.51.100.3,sport=1-2,dport=5-6");
    ASSERT_EQ(s.flows(), 24u);
    stream_frames f(s, 0, smac, dmac);
    std::set<std::vector<uint8_t>> tuples;
    std::vector<uint8_t> first;
    for (uint64_t k = 0; k < 48; ++k) {
        auto b = build(f, k, 0);
        std::vector<uint8_t> tuple(b.begin() + 26, b.begin() + 38); // src, dst, sport, dport
        if (k < 24) {
            EXPECT_TRUE(tuples.insert(tuple).second) << "flow repeated at packet " << k;
        } else {
            EXPECT_TRUE(tuples.count(tuple));
        }
        if (k == 0) first = tuple;
        if (k == 24) {
            EXPECT_EQ(tuple, first);
        }
        if (k == 1) {
            EXPECT_EQ(b[37], 6) << "dport varies fastest";
        }
    }
    EXPECT_EQ(tuples.size(), 24u);
    auto last = split_flow(23, 2, 3, 2, 2);
    EXPECT_EQ(last.src, 1u);
    EXPECT_EQ(last.dst, 2u);
    EXPECT_EQ(last.sport, 1u);
    EXPECT_EQ(last.dport, 1u);
}

TEST(gen_frame, flow_cursor_walks_the_flows_as_split_flow_numbers_them) {
    auto s = spec("tx=a,src=192.0.2.1-192.0.2.2,dst=198.51.100.1-198.51.100.3,sport=1-5,dport=5-6");
    flow_cursor c(s);
    for (uint64_t k = 0; k < 3 * s.flows() + 7; ++k, c.advance()) {
        auto want = split_flow(k % s.flows(), s.src.count, s.dst.count, s.sport.count, s.dport.count);
        ASSERT_EQ(std::tie((*c).src, (*c).dst, (*c).sport, (*c).dport),
                  std::tie(want.src, want.dst, want.sport, want.dport))
            << "packet " << k;
    }
}

TEST(gen_frame, frame_signature_only_where_a_stream_puts_it) {
    auto s = spec("tx=a,proto=udp,size=64");
    stream_frames f(s, 1, smac, dmac);
    auto frame = build(f, 5, 77);
    ASSERT_TRUE(frame_signature(frame.data(), uint32_t(frame.size())));
    auto with_options = frame;
    with_options[14] = 0x46; // IHL 6: the signature is not where a stream puts it
    EXPECT_FALSE(frame_signature(with_options.data(), uint32_t(frame.size())));
    auto fragment = frame;
    fragment[20] = 0x20; // more fragments
    EXPECT_FALSE(frame_signature(fragment.data(), uint32_t(frame.size())));
    auto arp = frame;
    arp[12] = 0x08;
    arp[13] = 0x06;
    EXPECT_FALSE(frame_signature(arp.data(), uint32_t(frame.size())));
    auto gre = frame;
    gre[23] = 47;
    EXPECT_FALSE(frame_signature(gre.data(), uint32_t(frame.size())));
    auto no_magic = frame;
    no_magic[42] ^= 1;
    EXPECT_FALSE(frame_signature(no_magic.data(), uint32_t(frame.size())));
}

TEST(gen_frame, imix_sequence_and_min_size) {
    auto s = spec("tx=a,size=imix");
    std::vector<unsigned> n(3);
    for (uint64_t k = 0; k < 12; ++k) n[s.size_of(k) == 64 ? 0 : s.size_of(k) == 594 ? 1 : 2]++;
    EXPECT_EQ(n, (std::vector<unsigned>{7, 4, 1}));
    auto v6 = spec("tx=a,ip=6,proto=tcp,vlan=1,size=imix");
    EXPECT_EQ(v6.size_of(0), 18 + 40 + 20 + 16 + 4) << "64 B slots are raised to the minimum";
}

// The TCP workload against itself: both ends' segments are built, parsed and fed back.
struct tcp_pair {
    tcp_spec spec;
    tcp_frames frames;
    tcp_workload w;
    std::vector<tcp_segment> in_flight;
    uint64_t now = 0;
    tcp_pair(const tcp_spec& s) : spec(s), frames(s, smac, dmac), w(s, 1000000) { w.start(0); }

    // Deliver every in-flight segment (dropping those `drop` says), collect the replies.
    template <typename Drop> unsigned step(Drop drop) {
        std::vector<tcp_segment> next;
        unsigned delivered = 0;
        for (auto& seg : in_flight) {
            std::vector<uint8_t> buf(max_frame);
            buf.resize(frames.build(seg.from_client, seg.flow, seg.seq, seg.ack, seg.flags, seg.payload, buf.data()));
            sluice::packet_meta m;
            EXPECT_TRUE(sluice::parse_packet(buf.data(), uint32_t(buf.size()), uint32_t(buf.size()), m).ok);
            auto flow = frames.flow_of(m, seg.from_client);
            EXPECT_TRUE(flow);
            EXPECT_EQ(*flow, seg.flow);
            if (drop(seg)) continue;
            ++delivered;
            tcp_segment out[tcp_workload::max_replies];
            unsigned n = w.receive(*flow, m, !seg.from_client, now, out);
            next.insert(next.end(), out, out + n);
        }
        in_flight = next;
        return delivered;
    }
};

tcp_spec tspec(const std::string& text) {
    tcp_spec t;
    EXPECT_EQ(parse_tcp_spec(text, t), "");
    return t;
}

TEST(gen_tcp, connections_complete_with_exact_sequence_numbers) {
    tcp_pair p(tspec("client=c,server=s,src=192.0.2.1-192.0.2.4,sport=1000-1001,cps=1000,conns=20,request=10,response=30"));
    std::vector<std::vector<uint8_t>> flags_seen;
    p.now = 20000; // 20 ms at 1 MHz: all 20 due
    tcp_segment syn[64];
    unsigned n = p.w.open(p.now, syn, 64);
    ASSERT_EQ(n, 8u) << "8 flows: the other 12 wait for their flow to be free";
    p.in_flight.assign(syn, syn + n);
    std::vector<uint8_t> sequence;
    for (int round = 0; round < 7; ++round) {
        for (auto& s : p.in_flight)
            if (s.flow == 0) sequence.push_back(s.flags);
        p.step([](const tcp_segment&) { return false; });
    }
    EXPECT_EQ(sequence, (std::vector<uint8_t>{0x02, 0x12, 0x10, 0x18, 0x18, 0x11, 0x11, 0x10}))
        << "SYN, SYN|ACK, ACK, PSH|ACK request, PSH|ACK response, FIN|ACK, FIN|ACK, ACK";
    EXPECT_TRUE(p.in_flight.empty());
    EXPECT_EQ(p.w.counters().completed, 8u);
    EXPECT_EQ(p.w.counters().unexpected, 0u);
    EXPECT_EQ(p.w.active(), 0u);
    n = p.w.open(p.now, syn, 64);
    EXPECT_EQ(n, 8u);
    EXPECT_EQ(p.w.counters().segments_received, 8u * 8);
}

TEST(gen_tcp, lost_segments_expire_by_stage_and_wrong_ones_are_unexpected) {
    tcp_pair p(tspec("client=c,server=s,sport=1000-1009,cps=1000,conns=10,timeout=5"));
    p.now = 10000;
    tcp_segment syn[16];
    unsigned n = p.w.open(p.now, syn, 16);
    ASSERT_EQ(n, 10u);
    p.in_flight.assign(syn, syn + n);
    p.step([](const tcp_segment& s) { return s.flow == 3; });           // SYN of flow 3 lost
    p.step([](const tcp_segment& s) { return s.flow == 5; });           // SYN|ACK of flow 5 lost
    // A duplicate of an already-answered segment is unexpected and changes nothing.
    auto dup = p.in_flight.front();
    p.in_flight.push_back(dup);
    p.step([](const tcp_segment&) { return false; });
    EXPECT_EQ(p.w.counters().unexpected, 1u);
    for (int i = 0; i < 5; ++i) p.step([](const tcp_segment&) { return false; });
    EXPECT_EQ(p.w.counters().completed, 8u);
    EXPECT_EQ(p.w.active(), 2u);
    p.now += 4000;
    p.w.expire(p.now);
    EXPECT_EQ(p.w.counters().lost, 0u) << "not yet timed out (5 ms)";
    p.now += 2000;
    p.w.expire(p.now);
    EXPECT_EQ(p.w.counters().lost, 2u);
    EXPECT_EQ(p.w.counters().lost_in[unsigned(tcp_stage::syn_sent)], 1u);
    EXPECT_EQ(p.w.counters().lost_in[unsigned(tcp_stage::synack_sent)], 1u);
    EXPECT_TRUE(p.w.all_opened());
    EXPECT_EQ(p.w.active(), 0u);
}

TEST(gen_tcp, opens_follow_the_rate) {
    tcp_pair p(tspec("client=c,server=s,cps=5000"));
    tcp_segment out[256];
    EXPECT_EQ(p.w.open(0, out, 256), 0u);
    EXPECT_EQ(p.w.open(10000, out, 256), 50u) << "10 ms at 5000/s";
    EXPECT_EQ(p.w.open(10000, out, 256), 0u);
    EXPECT_EQ(p.w.open(20000, out, 32), 32u) << "at most the burst";
    EXPECT_EQ(due_by(3'000'000'000'000ull, 0, 15000, 2'100'000'000ull), 3'000'000'000'000ull / 2'100'000'000ull * 15000 +
                                                                           (3'000'000'000'000ull % 2'100'000'000ull) *
                                                                               15000 / 2'100'000'000ull);
}

TEST(gen_latency, quantiles_within_precision) {
    latency_histogram h;
    EXPECT_EQ(h.quantile(0.5), 0u);
    std::vector<uint64_t> v;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 100000; ++i) v.push_back(rng() % 5000000 + 1);
    for (auto x : v) h.record(x);
    std::sort(v.begin(), v.end());
    EXPECT_EQ(h.min(), v.front());
    EXPECT_EQ(h.max(), v.back());
    for (double q : {0.5, 0.99, 0.999}) {
        double exact = double(v[std::size_t(q * double(v.size())) - 1]);
        EXPECT_NEAR(double(h.quantile(q)), exact, exact / 64 + 1) << "q=" << q;
    }
    for (unsigned b = 1; b < latency_histogram::n_buckets; ++b)
        ASSERT_EQ(latency_histogram::bucket_low(b), latency_histogram::bucket_high(b - 1) + 1) << b;
    EXPECT_EQ(latency_histogram::bucket_of(latency_histogram::bucket_high(latency_histogram::n_buckets - 1)),
              latency_histogram::n_buckets - 1);
}

} // namespace
