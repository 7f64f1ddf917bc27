// The stateful TCP workload: complete connections played from both ends, so that an
// appliance between the client-side port and the server-side port sees real handshakes.
// Connection k uses flow k mod flows (stream_spec.hpp) and exchanges eight segments, each
// sent only once the previous one has come through:
//     client                      server
//     SYN (isn_c)            ->                      stage syn_sent
//                            <-   SYN|ACK (isn_s)    stage synack_sent
//     ACK, then PSH|ACK with `request` bytes  ->     stage request_sent
//                            <-   ACK [+ PSH, `response` bytes]   stage response_sent
//     FIN|ACK                ->                      stage fin_sent
//                            <-   FIN|ACK            stage finack_sent
//     ACK                    ->                      stage last_ack_sent; complete on arrival
// with exact sequence and acknowledgement numbers. A connection that has not completed
// `timeout` ms after its SYN is lost (counted by the stage it was waiting in); there are no
// retransmissions. Segments that match no connection, or not the one expected, are counted
// as unexpected and ignored.
//
// The workload is pure logic: it consumes parsed frames and produces segment descriptions
// (tcp_segment) that the caller turns into frames with tcp_frames::build. Its connection
// table (one slot per flow) and the open-order list used for time-outs are allocated once
// at construction; nothing is allocated per packet.
//
// Thread safety: one thread (the generator's lcore) drives it; counters are read after.
#pragma once

#include "latency_histogram.hpp"
#include "stream_spec.hpp"

#include "packet.hpp"

#include <array>
#include <cstdint>
#include <vector>

namespace sluice::gen {

struct tcp_segment {
    uint64_t flow;
    uint32_t seq, ack;
    uint16_t payload;
    uint8_t flags;
    bool from_client; // sent on the client-side port (else the server-side port)
};

enum class tcp_stage : uint8_t {
    idle, syn_sent, synack_sent, request_sent, response_sent, fin_sent, finack_sent, last_ack_sent
};
inline constexpr unsigned tcp_stage_count = 8;
const char* tcp_stage_name(tcp_stage s);

struct tcp_counters {
    uint64_t opened = 0, completed = 0, lost = 0;
    uint64_t postponed = 0;          // an open found its flow still busy and waited
    uint64_t segments_sent = 0, segments_received = 0, unexpected = 0;
    std::array<uint64_t, tcp_stage_count> lost_in{}; // by the stage the connection waited in
    latency_histogram connect;       // SYN sent -> SYN|ACK back at the client (TSC cycles)
    latency_histogram complete;      // SYN sent -> last ACK at the server
};

class tcp_workload {
public:
    // At most this many segments are produced by one receive() call.
    static constexpr unsigned max_replies = 2;

    tcp_workload(const tcp_spec& spec, uint64_t tsc_hz);

    void start(uint64_t now) noexcept { start_ = now; }
    // Open the connections due by `now` (cps since start), at most `max`: one SYN each in out.
    unsigned open(uint64_t now, tcp_segment* out, unsigned max) noexcept;
    // A segment of the workload's flow `flow` arrived at the client-side port (at_client) or
    // the server-side one; the replies go to out (at most max_replies).
    unsigned receive(uint64_t flow, const packet_meta& m, bool at_client, uint64_t now, tcp_segment* out) noexcept;
    // Count as lost every connection whose time is up at `now`.
    void expire(uint64_t now) noexcept;
    // A rejected segment (not the workload's flow at all) still counts as unexpected.
    void count_unexpected() noexcept { ++c_.unexpected; }
    void count_sent(uint64_t n) noexcept { c_.segments_sent += n; }
    // Open no more connections (the run is ending).
    void stop_opening() noexcept { stop_opening_ = true; }

    bool all_opened() const noexcept { return stop_opening_ || (spec_.conns && c_.opened >= spec_.conns); }
    uint64_t active() const noexcept { return active_; }
    const tcp_counters& counters() const noexcept { return c_; }
    const tcp_spec& spec() const noexcept { return spec_; }

private:
    struct slot {
        uint64_t opened_tsc;
        uint32_t isn_c, isn_s;
        uint32_t prev, next; // open-order list of active connections
        tcp_stage stage;
    };
    static constexpr uint32_t none = UINT32_MAX;

    void unlink(uint32_t i) noexcept; // off the list, slot idle

    tcp_spec spec_;
    uint64_t tsc_hz_, timeout_tsc_, start_ = 0;
    uint64_t flows_;
    std::vector<slot> slots_;
    uint32_t head_ = none, tail_ = none;
    uint64_t active_ = 0;
    bool stop_opening_ = false;
    tcp_counters c_;
};

// Packets due at `now` for something paced at `rate` per second since `start`, of which
// `done` have been sent (no overflow for runs of any length).
inline uint64_t due_by(uint64_t now, uint64_t start, uint64_t rate, uint64_t tsc_hz) noexcept {
    uint64_t t = now - start;
    return t / tsc_hz * rate + (t % tsc_hz) * rate / tsc_hz;
}

} // namespace sluice::gen
