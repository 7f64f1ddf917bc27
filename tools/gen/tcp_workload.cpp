// See tcp_workload.hpp.
#include "tcp_workload.hpp"

namespace sluice::gen {

namespace {

constexpr uint8_t fin = tcp_flag::fin, syn = tcp_flag::syn, ack = tcp_flag::ack, psh = tcp_flag::psh;

// Initial sequence numbers: a fixed mix of the connection number (deterministic runs).
uint32_t mix(uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return uint32_t(x);
}

} // namespace

const char* tcp_stage_name(tcp_stage s) {
    static const char* const names[tcp_stage_count] = {"idle",          "syn_sent", "synack_sent", "request_sent",
                                                        "response_sent", "fin_sent", "finack_sent", "last_ack_sent"};
    return names[unsigned(s)];
}

tcp_workload::tcp_workload(const tcp_spec& spec, uint64_t tsc_hz)
    : spec_(spec), tsc_hz_(tsc_hz), timeout_tsc_(tsc_hz / 1000 * spec.timeout_ms), flows_(spec.flows()),
      slots_(flows_, slot{0, 0, 0, none, none, tcp_stage::idle}) {}

void tcp_workload::unlink(uint32_t i) noexcept {
    slot& s = slots_[i];
    if (s.prev != none) slots_[s.prev].next = s.next;
    else head_ = s.next;
    if (s.next != none) slots_[s.next].prev = s.prev;
    else tail_ = s.prev;
    s.prev = s.next = none;
    s.stage = tcp_stage::idle;
    --active_;
}

unsigned tcp_workload::open(uint64_t now, tcp_segment* out, unsigned max) noexcept {
    if (all_opened()) return 0;
    uint64_t due = due_by(now, start_, spec_.cps, tsc_hz_);
    if (spec_.conns && due > spec_.conns) due = spec_.conns;
    unsigned n = 0;
    while (c_.opened < due && n < max) {
        uint64_t k = c_.opened;
        uint32_t i = uint32_t(k % flows_);
        slot& s = slots_[i];
        if (s.stage != tcp_stage::idle) {
            ++c_.postponed; // the previous connection on this flow has not finished yet
            break;
        }
        s.opened_tsc = now;
        s.isn_c = mix(k);
        s.isn_s = mix(k ^ 0x5bd1e9955bd1e995ull);
        s.stage = tcp_stage::syn_sent;
        s.prev = tail_;
        s.next = none;
        if (tail_ != none) slots_[tail_].next = i;
        else head_ = i;
        tail_ = i;
        ++active_;
        ++c_.opened;
        out[n++] = {i, s.isn_c, 0, 0, syn, true};
    }
    return n;
}

unsigned tcp_workload::receive(uint64_t flow, const packet_meta& m, bool at_client, uint64_t now,
                               tcp_segment* out) noexcept {
    ++c_.segments_received;
    slot& s = slots_[flow];
    const uint32_t req = spec_.request, resp = spec_.response;
    const uint32_t c1 = s.isn_c + 1, s1 = s.isn_s + 1;
    auto is = [&](uint8_t flags, uint32_t seq, uint32_t ackn, uint32_t len) {
        return m.tcp_flags == flags && m.tcp_seq == seq && (!(flags & ack) || m.tcp_ack == ackn) &&
               m.payload_len == len;
    };
    unsigned n = 0;
    switch (s.stage) {
    case tcp_stage::syn_sent:
        if (at_client || !is(syn, s.isn_c, 0, 0)) break;
        s.stage = tcp_stage::synack_sent;
        out[n++] = {flow, s.isn_s, c1, 0, syn | ack, false};
        return n;
    case tcp_stage::synack_sent:
        if (!at_client || !is(syn | ack, s.isn_s, c1, 0)) break;
        c_.connect.record(now - s.opened_tsc);
        s.stage = tcp_stage::request_sent;
        out[n++] = {flow, c1, s1, 0, ack, true};
        out[n++] = {flow, c1, s1, uint16_t(req), psh | ack, true};
        return n;
    case tcp_stage::request_sent:
        if (at_client) break;
        if (is(ack, c1, s1, 0)) return 0; // the handshake's last ACK, ahead of the request
        if (!is(psh | ack, c1, s1, req)) break;
        s.stage = tcp_stage::response_sent;
        out[n++] = {flow, s1, c1 + req, uint16_t(resp), uint8_t(resp ? psh | ack : ack), false};
        return n;
    case tcp_stage::response_sent:
        if (!at_client || !is(uint8_t(resp ? psh | ack : ack), s1, c1 + req, resp)) break;
        s.stage = tcp_stage::fin_sent;
        out[n++] = {flow, c1 + req, s1 + resp, 0, fin | ack, true};
        return n;
    case tcp_stage::fin_sent:
        if (at_client || !is(fin | ack, c1 + req, s1 + resp, 0)) break;
        s.stage = tcp_stage::finack_sent;
        out[n++] = {flow, s1 + resp, c1 + req + 1, 0, fin | ack, false};
        return n;
    case tcp_stage::finack_sent:
        if (!at_client || !is(fin | ack, s1 + resp, c1 + req + 1, 0)) break;
        s.stage = tcp_stage::last_ack_sent;
        out[n++] = {flow, c1 + req + 1, s1 + resp + 1, 0, ack, true};
        return n;
    case tcp_stage::last_ack_sent:
        if (at_client || !is(ack, c1 + req + 1, s1 + resp + 1, 0)) break;
        c_.complete.record(now - s.opened_tsc);
        ++c_.completed;
        unlink(uint32_t(flow));
        return 0;
    case tcp_stage::idle:
        break;
    }
    ++c_.unexpected;
    return 0;
}

void tcp_workload::expire(uint64_t now) noexcept {
    while (head_ != none && now - slots_[head_].opened_tsc >= timeout_tsc_) {
        ++c_.lost;
        ++c_.lost_in[unsigned(slots_[head_].stage)];
        unlink(head_);
    }
}

} // namespace sluice::gen
