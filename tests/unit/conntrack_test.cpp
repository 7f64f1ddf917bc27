// Conntrack tests: TCP conversations as row tables (segment → expected --ctstate and TCP
// state), plus UDP, ICMP, ICMP errors, IPv6, zones, timeouts, table-full behaviour and the
// two-step classify/commit contract. Expected values follow Linux nf_conntrack.
#include "conntrack.hpp"
#include "packet.hpp"
#include "packet_builder.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace sluice;

namespace {

struct endpoint {
    const char* ip;
    uint16_t port;
};

packet_meta base_meta(endpoint from, endpoint to, uint8_t proto) {
    packet_meta m{};
    m.src = test::make_addr(from.ip);
    m.dst = test::make_addr(to.ip);
    m.sport = from.port;
    m.dport = to.port;
    m.l3 = std::strchr(from.ip, ':') ? l3_kind::ipv6 : l3_kind::ipv4;
    m.ethertype = m.l3 == l3_kind::ipv6 ? 0x86dd : 0x0800;
    m.l4_proto = proto;
    m.tcp_wscale = 0xff;
    m.ttl = 64;
    return m;
}

packet_meta tcp(endpoint from, endpoint to, uint8_t flags, uint32_t seq, uint32_t ack,
                uint16_t win = 65535, uint32_t len = 0) {
    packet_meta m = base_meta(from, to, ipproto_tcp);
    m.tcp_flags = flags;
    m.tcp_seq = seq;
    m.tcp_ack = ack;
    m.tcp_window = win;
    m.payload_len = len;
    m.l4_len = 20;
    return m;
}

packet_meta udp(endpoint from, endpoint to, uint32_t len = 10) {
    packet_meta m = base_meta(from, to, ipproto_udp);
    m.payload_len = len;
    m.l4_len = 8;
    return m;
}

packet_meta icmp(const char* from, const char* to, uint8_t type, uint16_t id) {
    const bool v6 = std::strchr(from, ':') != nullptr;
    packet_meta m = base_meta({from, 0}, {to, 0}, v6 ? ipproto_icmpv6 : ipproto_icmp);
    m.icmp_type = type;
    const bool echo = type == 8 || type == 0 || type == 128 || type == 129;
    m.sport = echo ? id : 0;
    m.dport = uint16_t(type << 8);
    return m;
}

constexpr uint8_t S = tcp_flag::syn, A = tcp_flag::ack, F = tcp_flag::fin, R = tcp_flag::rst,
                  P = tcp_flag::psh;

constexpr ct_state NEW = ct_state::new_, EST = ct_state::established, INV = ct_state::invalid,
                   REL = ct_state::related, UNT = ct_state::untracked;

// A one-worker conntrack with a helper that runs one packet through both steps.
struct harness {
    conntrack ct;
    explicit harness(conntrack_config cfg = {}, uint32_t cap = 1024) : ct(cfg, cap) {}

    ct_result step(const packet_meta& m, uint32_t now, bool accept = true,
                   const packet_meta* quoted = nullptr) {
        ct_result r{};
        const packet_meta* q[1] = {quoted};
        EXPECT_EQ(ct.classify({&m, 1}, q, {&r, 1}, now), 0u);
        uint8_t acc = accept;
        ct.commit({&m, 1}, {&r, 1}, &acc, now);
        return r;
    }

    const flow_entry* entry_of(const packet_meta& m) {
        flow_key k;
        make_flow_key(m, ct.zone_of(m), k);
        const uint32_t idx = ct.table().lookup(k, flow_hash(k));
        return idx == flow_table::no_entry ? nullptr : &ct.table().at(idx);
    }
};

// ---- TCP conversations as row tables ----

enum class from : uint8_t { client, server };
constexpr int gone = -1;  // expected: no entry for the flow

struct seg {
    from who;
    uint8_t flags;
    uint32_t seq, ack;
    uint16_t win;
    uint32_t len;
    ct_state want;
    int want_tcp;  // tcp_state value, or `gone`
    uint32_t at = 0;  // seconds since the conversation started
};

constexpr int NO = 0, SS = 1, SR = 2, ES = 3, FW = 4, CW = 5, LA = 6, TW = 7, CL = 8, S2 = 9;

const endpoint client4{"192.0.2.1", 40000}, server4{"198.51.100.2", 80};
const endpoint client6{"2001:db8::1", 40000}, server6{"2001:db8:1::2", 443};

std::string describe(const seg& s, size_t i) {
    std::string f;
    if (s.flags & S) f += 'S';
    if (s.flags & F) f += 'F';
    if (s.flags & R) f += 'R';
    if (s.flags & P) f += 'P';
    if (s.flags & A) f += '.';
    return "row " + std::to_string(i) + ": " + (s.who == from::client ? "C>S " : "S>C ") + f +
           " seq=" + std::to_string(s.seq) + " ack=" + std::to_string(s.ack) +
           " win=" + std::to_string(s.win) + " len=" + std::to_string(s.len);
}

void run(harness& h, const std::vector<seg>& rows, endpoint c = client4, endpoint sv = server4,
         uint32_t t0 = 1000) {
    for (size_t i = 0; i < rows.size(); ++i) {
        const seg& s = rows[i];
        SCOPED_TRACE(describe(s, i));
        const packet_meta m = s.who == from::client ? tcp(c, sv, s.flags, s.seq, s.ack, s.win, s.len)
                                                    : tcp(sv, c, s.flags, s.seq, s.ack, s.win, s.len);
        const ct_result r = h.step(m, t0 + s.at);
        EXPECT_EQ(r.fate, ct_fate::tracked);
        EXPECT_EQ(name_of(r.state), name_of(s.want));
        const flow_entry* e = h.entry_of(m);
        if (s.want_tcp == gone) {
            EXPECT_EQ(e, nullptr);
        } else {
            ASSERT_NE(e, nullptr);
            EXPECT_EQ(name_of(tcp_state(e->l4_state)), name_of(tcp_state(s.want_tcp)));
        }
    }
}

const std::vector<seg> handshake = {
    {from::client, S, 1000, 0, 64240, 0, NEW, SS},
    {from::server, S | A, 5000, 1001, 65160, 0, EST, SR},
    {from::client, A, 1001, 5001, 502, 0, EST, ES},
};

std::vector<seg> operator+(std::vector<seg> a, const std::vector<seg>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

TEST(ConntrackTcp, HandshakeDataAndClientClose) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, P | A, 1001, 5001, 502, 100, EST, ES},
                           {from::server, A, 5001, 1101, 509, 0, EST, ES},
                           {from::server, P | A, 5001, 1101, 509, 1000, EST, ES},
                           {from::client, A, 1101, 6001, 501, 0, EST, ES},
                           {from::client, F | A, 1101, 6001, 501, 0, EST, FW},
                           {from::server, A, 6001, 1102, 509, 0, EST, CW},
                           {from::server, F | A, 6001, 1102, 509, 0, EST, LA},
                           {from::client, A, 1102, 6002, 501, 0, EST, TW},
                       });
    const flow_entry* e = h.entry_of(tcp(client4, server4, A, 0, 0));
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->status & flow_status::assured);
    EXPECT_EQ(e->expires, 1000u + 120u);  // time_wait
}

TEST(ConntrackTcp, ServerClosesFirst) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::server, F | A, 5001, 1001, 509, 0, EST, FW},
                           {from::client, A, 1001, 5002, 502, 0, EST, CW},
                           {from::client, F | A, 1001, 5002, 502, 0, EST, LA},
                           {from::server, A, 5002, 1002, 509, 0, EST, TW},
                       });
}

TEST(ConntrackTcp, SimultaneousClose) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, F | A, 1001, 5001, 502, 0, EST, FW},
                           {from::server, F | A, 5001, 1001, 509, 0, EST, LA},
                           {from::client, A, 1002, 5002, 502, 0, EST, TW},
                           {from::server, A, 5002, 1002, 509, 0, EST, TW},
                       });
}

TEST(ConntrackTcp, EstablishedTimeoutAndUnackedData) {
    harness h;
    run(h, handshake);
    const flow_entry* e = h.entry_of(tcp(client4, server4, A, 0, 0));
    EXPECT_EQ(e->expires, 1000u + 432000u);
    // Data in flight, not yet acknowledged: the unacknowledged timeout (300 s) applies.
    run(h, {{from::client, P | A, 1001, 5001, 502, 100, EST, ES}});
    EXPECT_EQ(e->expires, 1000u + 300u);
    run(h, {{from::server, A, 5001, 1101, 509, 0, EST, ES}});
    EXPECT_EQ(e->expires, 1000u + 432000u);
}

TEST(ConntrackTcp, RstExactSequenceCloses) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, P | A, 1001, 5001, 502, 100, EST, ES},
                           {from::server, A, 5001, 1101, 509, 0, EST, ES},
                           // Server's td_maxack is 1101: an RST below it is invalid...
                           {from::client, R, 1050, 0, 0, 0, INV, ES},
                           // ...one above but not exact keeps ESTABLISHED (challenge ACK)...
                           {from::client, R, 1200, 0, 0, 0, EST, ES},
                           // ...the exact one closes.
                           {from::client, R, 1101, 0, 0, 0, EST, CL},
                       });
    const flow_entry* e = h.entry_of(tcp(client4, server4, A, 0, 0));
    EXPECT_EQ(e->expires, 1000u + 10u);  // close
}

TEST(ConntrackTcp, IgnoreInvalidRstSetting) {
    conntrack_config cfg;
    cfg.tcp_ignore_invalid_rst = true;
    harness h(cfg);
    run(h, handshake + std::vector<seg>{
                           {from::server, A, 5001, 1001, 509, 0, EST, ES},
                           {from::client, R, 900, 0, 0, 0, EST, ES},
                       });
}

TEST(ConntrackTcp, RstAnsweringSynKillsUnrepliedEntry) {
    harness h;
    run(h, {
               {from::client, S, 1000, 0, 64240, 0, NEW, SS},
               {from::server, R | A, 0, 1001, 0, 0, EST, gone},
               {from::client, S, 1000, 0, 64240, 0, NEW, SS},
           });
    EXPECT_EQ(h.ct.counters().killed, 1u);
}

TEST(ConntrackTcp, OutOfWindowSegmentsAreInvalidAndDoNotAdvanceState) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           // Sequence far beyond the receiver's window.
                           {from::client, P | A, 1001 + 10'000'000, 5001, 502, 100, INV, ES},
                           // Acknowledges data never sent.
                           {from::client, A, 1001, 5001 + 1'000'000, 502, 0, INV, ES},
                           // A FIN out of window does not start the close.
                           {from::client, F | A, 1001 + 10'000'000, 5001, 502, 0, INV, ES},
                           // Old data retransmitted (below the window): ignored, not invalid.
                           {from::client, P | A, 1001u - 200'000u, 5001, 502, 100, EST, ES},
                           {from::client, F | A, 1001, 5001, 502, 0, EST, FW},
                       });
}

TEST(ConntrackTcp, BeLiberalAcceptsOutOfWindow) {
    conntrack_config cfg;
    cfg.tcp_be_liberal = true;
    harness h(cfg);
    run(h, handshake + std::vector<seg>{
                           {from::client, P | A, 1001 + 10'000'000, 5001, 502, 100, EST, ES},
                       });
}

TEST(ConntrackTcp, WindowScalingFromSynOptions) {
    harness h;
    packet_meta syn = tcp(client4, server4, S, 1000, 0, 64240);
    syn.tcp_wscale = 7;
    packet_meta synack = tcp(server4, client4, S | A, 5000, 1001, 65160);
    synack.tcp_wscale = 7;
    EXPECT_EQ(h.step(syn, 0).state, NEW);
    EXPECT_EQ(h.step(synack, 0).state, EST);
    EXPECT_EQ(h.step(tcp(client4, server4, A, 1001, 5001, 502), 0).state, EST);
    // Server advertises 509 << 7 = 65152 bytes; client may send 60000 bytes ahead.
    EXPECT_EQ(h.step(tcp(server4, client4, A, 5001, 1001, 509), 0).state, EST);
    EXPECT_EQ(h.step(tcp(client4, server4, A, 1001 + 60000, 5001, 502, 1000), 0).state, EST);
    // Without scaling the same would be beyond the window (checked in the next test).
    const flow_entry* e = h.entry_of(syn);
    EXPECT_EQ(e->tcp.td_scale[0], 7);
    EXPECT_EQ(e->tcp.td_scale[1], 7);
}

TEST(ConntrackTcp, ScaleIgnoredUnlessBothSidesSendIt) {
    harness h;
    packet_meta syn = tcp(client4, server4, S, 1000, 0, 64240);
    syn.tcp_wscale = 7;  // only the client offers scaling
    h.step(syn, 0);
    h.step(tcp(server4, client4, S | A, 5000, 1001, 5000), 0);
    h.step(tcp(client4, server4, A, 1001, 5001, 502), 0);
    h.step(tcp(server4, client4, A, 5001, 1001, 5000), 0);
    // 5000-byte receive window, unscaled: 200 000 bytes ahead is out of window.
    EXPECT_EQ(h.step(tcp(client4, server4, A, 1001 + 200000, 5001, 502, 1000), 0).state, INV);
}

TEST(ConntrackTcp, RetransmittedSynAndSynAck) {
    harness h;
    run(h, {
               {from::client, S, 1000, 0, 64240, 0, NEW, SS, 0},
               {from::client, S, 1000, 0, 64240, 0, NEW, SS, 3},   // retransmitted SYN
               {from::server, S | A, 5000, 1001, 65160, 0, EST, SR, 4},
               {from::server, S | A, 5000, 1001, 65160, 0, EST, SR, 5},  // ignored
               {from::client, A, 1001, 5001, 502, 0, EST, ES, 5},
           });
    // A retransmitted SYN does not renew the SYN_SENT timeout (checked separately).
    harness h2;
    h2.step(tcp(client4, server4, S, 1000, 0), 100);
    h2.step(tcp(client4, server4, S, 1000, 0), 150);
    EXPECT_EQ(h2.entry_of(tcp(client4, server4, S, 0, 0))->expires, 100u + 120u);
}

TEST(ConntrackTcp, RetransmissionsShortenTimeout) {
    harness h;
    run(h, handshake);
    const flow_entry* e = h.entry_of(tcp(client4, server4, A, 0, 0));
    for (int i = 0; i < 4; ++i) h.step(tcp(client4, server4, P | A, 1001, 5001, 502, 0), 1000);
    EXPECT_GE(e->tcp.retrans, 3);
    EXPECT_EQ(e->expires, 1000u + 300u);
}

TEST(ConntrackTcp, SimultaneousOpen) {
    harness h;
    run(h, {
               {from::client, S, 1000, 0, 64240, 0, NEW, SS},
               {from::server, S, 5000, 0, 65160, 0, EST, S2},
               {from::client, S | A, 1000, 5001, 64240, 0, EST, SR},
               {from::server, A, 5001, 1001, 65160, 0, EST, ES},
           });
    EXPECT_TRUE(h.entry_of(tcp(client4, server4, A, 0, 0))->status & flow_status::assured);
}

TEST(ConntrackTcp, MidStreamPickupLoose) {
    harness h;  // tcp_loose defaults to on
    run(h, {
               {from::client, P | A, 1000, 5000, 502, 100, NEW, ES},
               {from::server, A, 5000, 1100, 509, 0, EST, ES},
               {from::client, A, 1100, 5000, 502, 0, EST, ES},
           });
    const flow_entry* e = h.entry_of(tcp(client4, server4, A, 0, 0));
    EXPECT_TRUE(e->status & flow_status::assured);
    // Picked-up connections are tracked liberally (window history unknown).
    EXPECT_EQ(h.step(tcp(client4, server4, A, 1100 + 50'000'000, 5000, 502), 1000).state, EST);
}

TEST(ConntrackTcp, MidStreamPickupCappedTimeoutUntilReply) {
    harness h;
    h.step(tcp(client4, server4, A, 1000, 5000, 502, 10), 50);
    EXPECT_EQ(h.entry_of(tcp(client4, server4, A, 0, 0))->expires, 50u + 300u);
}

TEST(ConntrackTcp, MidStreamPickupOff) {
    conntrack_config cfg;
    cfg.tcp_loose = false;
    harness h(cfg);
    run(h, {
               {from::client, P | A, 1000, 5000, 502, 100, INV, gone},
               {from::server, A, 5000, 1100, 509, 0, INV, gone},
               {from::client, S, 1000, 0, 64240, 0, NEW, SS},
           });
}

TEST(ConntrackTcp, InvalidFlagCombinations) {
    harness h;
    for (uint8_t f : {uint8_t(S | F), uint8_t(0), uint8_t(F), uint8_t(S | R), uint8_t(F | P | 0x20),
                      uint8_t(S | F | R | P | A | 0x20)}) {
        SCOPED_TRACE(int(f));
        EXPECT_EQ(h.step(tcp(client4, server4, f, 1, 0), 0).state, INV);
    }
    EXPECT_EQ(h.ct.table().size(), 0u);
    // On an established flow, a bad combination is INVALID and changes nothing.
    run(h, handshake + std::vector<seg>{{from::client, S | F, 1001, 5001, 502, 0, INV, ES}});
    // FIN alone, RST alone (no ACK), FIN without ACK on a new flow: not creating.
    EXPECT_EQ(h.step(tcp({"192.0.2.9", 1}, server4, R, 1, 0), 0).state, INV);
    EXPECT_EQ(h.step(tcp({"192.0.2.9", 1}, server4, S | A, 1, 1), 0).state, INV);
}

TEST(ConntrackTcp, ReopenFromTimeWaitWithNewSyn) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, F | A, 1001, 5001, 502, 0, EST, FW},
                           {from::server, F | A, 5001, 1002, 509, 0, EST, LA},
                           {from::client, A, 1002, 5002, 502, 0, EST, TW},
                           {from::client, S, 90000, 0, 64240, 0, NEW, SS, 5},
                           {from::server, S | A, 70000, 90001, 65160, 0, EST, SR, 5},
                           {from::client, A, 90001, 70001, 502, 0, EST, ES, 5},
                       });
    EXPECT_EQ(h.ct.counters().reopened, 1u);
}

TEST(ConntrackTcp, SynInEstablishedIsIgnoredButKeepsState) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, S, 777777, 0, 64240, 0, EST, ES},
                           {from::client, A, 1001, 5001, 502, 0, EST, ES},
                       });
    EXPECT_GE(h.ct.counters().ignored, 1u);
}

TEST(ConntrackTcp, SynSentTimesOut) {
    harness h;
    run(h, {
               {from::client, S, 1000, 0, 64240, 0, NEW, SS, 0},
               {from::server, S | A, 5000, 1001, 65160, 0, INV, gone, 121},
           });
}

TEST(ConntrackTcp, EstablishedTimesOutAfterFiveDays) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, A, 1001, 5001, 502, 0, EST, ES, 431999},
                           // 5 days after the last packet: expired, picked up again as NEW.
                           {from::client, A, 1001, 5001, 502, 0, NEW, ES, 431999 + 432000},
                       });
}

TEST(ConntrackTcp, Ipv6Conversation) {
    harness h;
    run(h, handshake + std::vector<seg>{
                           {from::client, F | A, 1001, 5001, 502, 0, EST, FW},
                           {from::server, F | A, 5001, 1002, 509, 0, EST, LA},
                           {from::client, A, 1002, 5002, 502, 0, EST, TW},
                       },
        client6, server6);
}

// ---- UDP, ICMP, generic ----

TEST(ConntrackUdp, NewReplyStreamAndTimeouts) {
    harness h;
    const endpoint c{"192.0.2.1", 5353}, s{"198.51.100.2", 53};
    ct_result r = h.step(udp(c, s), 100);
    EXPECT_EQ(r.state, NEW);
    EXPECT_EQ(r.dir, ct_dir::original);
    EXPECT_EQ(h.step(udp(c, s), 100).state, NEW);  // still unreplied
    const flow_entry* e = h.entry_of(udp(c, s));
    EXPECT_EQ(e->expires, 130u);
    r = h.step(udp(s, c), 101);
    EXPECT_EQ(r.state, EST);
    EXPECT_EQ(r.dir, ct_dir::reply);
    EXPECT_EQ(e->expires, 131u);                   // replied, but not yet a stream
    EXPECT_FALSE(e->status & flow_status::assured);
    EXPECT_EQ(h.step(udp(c, s), 105).state, EST);  // active after 2 s: stream
    EXPECT_EQ(e->expires, 105u + 120u);
    EXPECT_TRUE(e->status & flow_status::assured);
    // Expiry: no traffic for 120 s → gone; the next packet is NEW again.
    EXPECT_EQ(h.step(udp(s, c), 225).state, NEW);
}

TEST(ConntrackUdp, UnrepliedExpiresAfter30s) {
    harness h;
    const endpoint c{"192.0.2.1", 1000}, s{"198.51.100.2", 2000};
    h.step(udp(c, s), 0);
    EXPECT_EQ(h.step(udp(s, c), 29).state, EST);
    harness h2;
    h2.step(udp(c, s), 0);
    const ct_result r = h2.step(udp(s, c), 30);  // expired: the "reply" starts a flow
    EXPECT_EQ(r.state, NEW);
    EXPECT_EQ(r.dir, ct_dir::original);
    EXPECT_EQ(h2.step(udp(c, s), 31).dir, ct_dir::reply);
}

TEST(ConntrackIcmp, EchoRequestReply) {
    harness h;
    EXPECT_EQ(h.step(icmp("192.0.2.1", "198.51.100.2", 0, 7), 0).state, INV);  // reply first
    EXPECT_EQ(h.step(icmp("192.0.2.1", "198.51.100.2", 8, 7), 0).state, NEW);
    const ct_result r = h.step(icmp("198.51.100.2", "192.0.2.1", 0, 7), 0);
    EXPECT_EQ(r.state, EST);
    EXPECT_EQ(r.dir, ct_dir::reply);
    EXPECT_EQ(h.step(icmp("192.0.2.1", "198.51.100.2", 8, 7), 1).state, EST);
    // Another identifier is another conversation.
    EXPECT_EQ(h.step(icmp("192.0.2.1", "198.51.100.2", 8, 8), 1).state, NEW);
    // A request the other way with the same identifier is another conversation too.
    EXPECT_EQ(h.step(icmp("198.51.100.2", "192.0.2.1", 8, 7), 1).state, NEW);
    // Timeout 30 s.
    EXPECT_EQ(h.step(icmp("198.51.100.2", "192.0.2.1", 0, 8), 31).state, INV);
    // Non-query, non-error types cannot be tracked.
    EXPECT_EQ(h.step(icmp("192.0.2.1", "198.51.100.2", 9, 0), 40).state, INV);
}

TEST(ConntrackIcmp, PingToSelf) {
    harness h;
    EXPECT_EQ(h.step(icmp("192.0.2.1", "192.0.2.1", 8, 3), 0).state, NEW);
    const ct_result r = h.step(icmp("192.0.2.1", "192.0.2.1", 0, 3), 0);
    EXPECT_EQ(r.state, EST);
    EXPECT_EQ(r.dir, ct_dir::reply);
}

TEST(ConntrackIcmp, Icmpv6EchoNdAndMld) {
    harness h;
    EXPECT_EQ(h.step(icmp("2001:db8::1", "2001:db8:1::2", 128, 1), 0).state, NEW);
    EXPECT_EQ(h.step(icmp("2001:db8:1::2", "2001:db8::1", 129, 1), 0).state, EST);
    EXPECT_EQ(h.step(icmp("2001:db8::1", "2001:db8:1::2", 135, 0), 0).state, INV);  // NS
    EXPECT_EQ(h.step(icmp("2001:db8::1", "2001:db8:1::2", 143, 0), 0).state, UNT);  // MLDv2
}

// ICMP errors, built with the packet builder and run through the real parser.
struct parsed {
    test::frame bytes;
    packet_meta meta{};
    packet_meta quoted{};
    bool has_quoted = false;
};

parsed parse(const test::packet& p) {
    parsed out;
    out.bytes = p.bytes();
    const parse_result pr =
        parse_packet(out.bytes.data(), uint32_t(out.bytes.size()), uint32_t(out.bytes.size()), out.meta);
    EXPECT_TRUE(pr.ok) << p.describe();
    if (out.meta.quoted_off) {
        const parse_result q = parse_quoted(out.bytes.data() + out.meta.quoted_off,
                                            uint32_t(out.bytes.size() - out.meta.quoted_off),
                                            out.meta.l3, out.quoted);
        out.has_quoted = q.ok;
    }
    return out;
}

TEST(ConntrackIcmp, ErrorsQuotingKnownFlowAreRelated) {
    harness h;
    auto fwd = test::packet().eth().ipv4("192.0.2.1", "198.51.100.2").udp(4000, 53).payload(20);
    parsed f = parse(fwd);
    EXPECT_EQ(h.step(f.meta, 0).state, NEW);

    // Port unreachable from the server back to the client, quoting the datagram.
    parsed err = parse(test::packet().eth().ipv4("198.51.100.2", "192.0.2.1").icmp_error(3, 3, fwd));
    ASSERT_TRUE(err.has_quoted);
    ct_result r = h.step(err.meta, 1, true, &err.quoted);
    EXPECT_EQ(name_of(r.state), "RELATED");
    EXPECT_EQ(r.dir, ct_dir::reply);
    EXPECT_NE(r.entry, flow_table::no_entry);

    // From a router on the path: RELATED as well.
    parsed ttl = parse(test::packet().eth().ipv4("203.0.113.3", "192.0.2.1").icmp_error(11, 0, fwd));
    EXPECT_EQ(h.step(ttl.meta, 1, true, &ttl.quoted).state, REL);

    // Quoting a flow nobody knows: INVALID.
    auto other = test::packet().eth().ipv4("192.0.2.1", "198.51.100.2").udp(4001, 53).payload(20);
    parsed unk = parse(test::packet().eth().ipv4("198.51.100.2", "192.0.2.1").icmp_error(3, 3, other));
    EXPECT_EQ(h.step(unk.meta, 1, true, &unk.quoted).state, INV);

    // An error not addressed to the sender of the quoted packet: INVALID.
    parsed wrong = parse(test::packet().eth().ipv4("198.51.100.2", "203.0.113.3").icmp_error(3, 3, fwd));
    EXPECT_EQ(h.step(wrong.meta, 1, true, &wrong.quoted).state, INV);

    // Without the quoted packet: INVALID.
    EXPECT_EQ(h.step(err.meta, 1, true, nullptr).state, INV);
}

TEST(ConntrackIcmp, Icmpv6ErrorRelatedToTcp) {
    harness h;
    auto syn = test::packet().eth().ipv6("2001:db8::1", "2001:db8:1::2").tcp(40000, 443, S).seq(1000);
    parsed s = parse(syn);
    EXPECT_EQ(h.step(s.meta, 0).state, NEW);
    parsed ptb = parse(test::packet().eth().ipv6("2001:db8:2::3", "2001:db8::1").icmpv6_error(2, 0, syn, 1280));
    ASSERT_TRUE(ptb.has_quoted);
    EXPECT_EQ(h.step(ptb.meta, 0, true, &ptb.quoted).state, REL);
}

TEST(ConntrackGeneric, GreAndUnknownProtocols) {
    harness h;
    packet_meta gre = base_meta({"192.0.2.1", 0}, {"198.51.100.2", 0}, 47);
    packet_meta gre_back = base_meta({"198.51.100.2", 0}, {"192.0.2.1", 0}, 47);
    EXPECT_EQ(h.step(gre, 0).state, NEW);
    EXPECT_EQ(h.entry_of(gre)->expires, 30u);
    EXPECT_EQ(h.step(gre_back, 1).state, EST);
    EXPECT_EQ(h.step(gre, 2).state, EST);
    EXPECT_EQ(h.entry_of(gre)->expires, 2u + 180u);
    packet_meta esp = base_meta({"192.0.2.1", 0}, {"198.51.100.2", 0}, 50);
    EXPECT_EQ(h.step(esp, 0).state, NEW);
    EXPECT_EQ(h.entry_of(esp)->expires, 600u);
}

TEST(ConntrackMisc, NonIpUntrackedAndFragments) {
    harness h;
    packet_meta arp{};
    arp.l3 = l3_kind::arp;
    EXPECT_EQ(h.step(arp, 0).state, UNT);
    packet_meta frag = udp({"192.0.2.1", 0}, {"198.51.100.2", 0});
    frag.frag_flags = frag::is_fragment;  // non-first
    EXPECT_EQ(h.step(frag, 0).fate, ct_fate::fragment);
    packet_meta first = udp({"192.0.2.1", 1}, {"198.51.100.2", 2});
    first.frag_flags = frag::is_fragment | frag::first | frag::more;
    EXPECT_EQ(h.step(first, 0).state, NEW);
}

TEST(ConntrackMisc, VlanZonesSeparateFlows) {
    conntrack_config cfg;
    cfg.zone = ct_zone_mode::outer_vlan;
    harness h(cfg);
    const endpoint c{"192.0.2.1", 1000}, s{"198.51.100.2", 2000};
    packet_meta a = udp(c, s);
    a.vlan_outer = 10;
    a.n_vlans = 1;
    packet_meta back10 = udp(s, c);
    back10.vlan_outer = 10;
    back10.n_vlans = 1;
    packet_meta back20 = back10;
    back20.vlan_outer = 20;
    EXPECT_EQ(h.step(a, 0).state, NEW);
    EXPECT_EQ(h.step(back20, 0).state, NEW);  // other zone: not the same connection
    EXPECT_EQ(h.step(back10, 0).state, EST);
    EXPECT_EQ(h.ct.table().size(), 2u);
    // Without zones, the VLAN id is ignored.
    harness h2;
    h2.step(a, 0);
    EXPECT_EQ(h2.step(back20, 0).state, EST);
}

// ---- The two-step contract ----

TEST(ConntrackCommit, DroppedNewPacketLeavesNoEntry) {
    harness h;
    const packet_meta syn = tcp(client4, server4, S, 1000, 0);
    EXPECT_EQ(h.step(syn, 0, /*accept=*/false).state, NEW);
    EXPECT_EQ(h.ct.table().size(), 0u);
    EXPECT_EQ(h.ct.table().free_count(), h.ct.table().capacity());
    EXPECT_EQ(h.step(syn, 0, true).state, NEW);
    EXPECT_EQ(h.ct.table().size(), 1u);
    // Existing entries are updated before the verdict, even when the packet is dropped.
    h.step(tcp(server4, client4, S | A, 5000, 1001), 0, /*accept=*/false);
    EXPECT_EQ(h.entry_of(syn)->l4_state, uint8_t(tcp_state::syn_recv));
}

TEST(ConntrackCommit, SameBurstPacketsOfANewFlowAreDeferred) {
    harness h;
    const packet_meta burst[4] = {
        tcp(client4, server4, S, 1000, 0, 64240),
        tcp(server4, client4, S | A, 5000, 1001, 65160),
        udp({"192.0.2.7", 1}, {"198.51.100.2", 2}),
        tcp(client4, server4, A, 1001, 5001, 502),
    };
    ct_result r[4];
    EXPECT_EQ(h.ct.classify(burst, nullptr, r, 0), 2u);
    EXPECT_EQ(r[0].state, NEW);
    EXPECT_EQ(r[1].fate, ct_fate::deferred);
    EXPECT_EQ(r[2].state, NEW);
    EXPECT_EQ(r[3].fate, ct_fate::deferred);
    const uint8_t acc[4] = {1, 1, 1, 1};
    h.ct.commit(burst, r, acc, 0);
    // The pipeline re-runs the deferred packets, in order.
    const packet_meta again[2] = {burst[1], burst[3]};
    ct_result r2[2];
    EXPECT_EQ(h.ct.classify(again, nullptr, r2, 0), 0u);
    EXPECT_EQ(r2[0].state, EST);
    EXPECT_EQ(r2[1].state, EST);
    h.ct.commit(again, r2, acc, 0);
    EXPECT_EQ(h.entry_of(burst[0])->l4_state, uint8_t(tcp_state::established));
}

TEST(ConntrackCommit, BurstEqualsOnePacketAtATime) {
    // A conversation fed as one burst (with the deferral loop) ends in the same state as
    // fed packet by packet.
    std::vector<packet_meta> conv;
    for (int f = 0; f < 8; ++f) {
        const endpoint c{"192.0.2.1", uint16_t(1000 + f)};
        conv.push_back(tcp(c, server4, S, 100, 0));
        conv.push_back(tcp(server4, c, S | A, 900, 101));
        conv.push_back(tcp(c, server4, A, 101, 901));
        conv.push_back(udp(c, {"198.51.100.2", 53}));
        conv.push_back(udp({"198.51.100.2", 53}, c));
    }
    harness one, many;
    std::vector<ct_state> want;
    for (const auto& m : conv) want.push_back(one.step(m, 0).state);

    std::vector<ct_state> got(conv.size(), ct_state::none);
    std::vector<uint32_t> todo(conv.size());
    for (uint32_t i = 0; i < todo.size(); ++i) todo[i] = i;
    int rounds = 0;
    while (!todo.empty()) {
        ++rounds;
        std::vector<packet_meta> b;
        for (uint32_t i : todo) b.push_back(conv[i]);
        std::vector<ct_result> r(b.size());
        many.ct.classify(b, nullptr, r, 0);
        std::vector<uint8_t> acc(b.size(), 1);
        many.ct.commit(b, r, acc.data(), 0);
        std::vector<uint32_t> next;
        for (size_t k = 0; k < b.size(); ++k) {
            if (r[k].fate == ct_fate::deferred) next.push_back(todo[k]);
            else got[todo[k]] = r[k].state;
        }
        todo = next;
    }
    EXPECT_GT(rounds, 1);
    for (size_t i = 0; i < conv.size(); ++i) EXPECT_EQ(got[i], want[i]) << "packet " << i;
}

// ---- Capacity ----

TEST(ConntrackCapacity, TableFullRefusesNewFlows) {
    harness h({}, 4);
    for (uint16_t p = 1; p <= 4; ++p) EXPECT_EQ(h.step(udp({"192.0.2.1", p}, {"198.51.100.2", 9}), 0).state, NEW);
    const ct_result r = h.step(udp({"192.0.2.1", 5}, {"198.51.100.2", 9}), 0);
    EXPECT_EQ(r.fate, ct_fate::table_full);
    EXPECT_EQ(h.ct.counters().table_full, 1u);
    // Known flows still work.
    EXPECT_EQ(h.step(udp({"198.51.100.2", 9}, {"192.0.2.1", 1}), 0).state, EST);
}

TEST(ConntrackCapacity, SynFloodDoesNotEvictEstablished) {
    constexpr uint32_t cap = 256;
    harness h({}, cap);
    // 64 established, assured connections.
    for (uint16_t i = 0; i < 64; ++i) {
        const endpoint c{"192.0.2.1", uint16_t(10000 + i)};
        h.step(tcp(c, server4, S, 1000, 0), 0);
        h.step(tcp(server4, c, S | A, 5000, 1001), 0);
        ASSERT_EQ(h.step(tcp(c, server4, A, 1001, 5001), 0).state, EST);
    }
    // A flood of SYNs from spoofed sources, over several seconds (early drop may recycle
    // half-open entries older than 1 s, never assured ones).
    uint32_t refused = 0;
    for (uint32_t i = 0; i < 20000; ++i) {
        char src[32];
        std::snprintf(src, sizeof src, "203.0.113.%u", i % 250);
        const ct_result r = h.step(tcp({src, uint16_t(i)}, server4, S, i, 0), i / 2000);
        refused += r.fate == ct_fate::table_full;
    }
    EXPECT_GT(refused, 0u);
    EXPECT_GT(h.ct.counters().early_drop, 0u);
    for (uint16_t i = 0; i < 64; ++i) {
        const endpoint c{"192.0.2.1", uint16_t(10000 + i)};
        EXPECT_EQ(h.step(tcp(c, server4, A, 1001, 5001), 10).state, EST) << i;
        EXPECT_EQ(h.step(tcp(server4, c, A, 5001, 1001), 10).state, EST) << i;
    }
}

TEST(ConntrackExpiry, IncrementalSweepRemovesExpired) {
    harness h({}, 1024);
    for (uint16_t p = 1; p <= 100; ++p) h.step(udp({"192.0.2.1", p}, {"198.51.100.2", 9}), 0);
    EXPECT_EQ(h.ct.table().size(), 100u);
    EXPECT_EQ(h.ct.expire(10, 1024), 0u);
    uint32_t removed = 0, calls = 0;
    while (h.ct.table().size() > 0 && calls < 100) {
        removed += h.ct.expire(30, 64);  // bounded work per call
        ++calls;
    }
    EXPECT_EQ(removed, 100u);
    EXPECT_GE(calls, 2u);
}

TEST(FlowKey, SymmetricHashAndKeys) {
    const packet_meta a = tcp(client4, server4, S, 1, 0);
    const packet_meta b = tcp(server4, client4, S | A, 1, 2);
    EXPECT_EQ(symmetric_hash(a), symmetric_hash(b));
    flow_key ka, kb;
    EXPECT_NE(make_flow_key(a, 0, ka), make_flow_key(b, 0, kb));
    EXPECT_TRUE(ka == kb);
    const packet_meta c = tcp(client6, server6, S, 1, 0);
    const packet_meta d = tcp(server6, client6, A, 1, 0);
    EXPECT_EQ(symmetric_hash(c), symmetric_hash(d));
    EXPECT_NE(symmetric_hash(a), symmetric_hash(tcp({"192.0.2.1", 40001}, server4, S, 1, 0)));
    const packet_meta e = icmp("192.0.2.1", "198.51.100.2", 8, 5);
    const packet_meta f = icmp("198.51.100.2", "192.0.2.1", 0, 5);
    EXPECT_EQ(symmetric_hash(e), symmetric_hash(f));
}

} // namespace
