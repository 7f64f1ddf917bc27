// Connection tracking with Linux nf_conntrack's semantics, on one worker's flow table.
//
// What it decides, per packet: the conntrack state the ruleset sees (`-m conntrack
// --ctstate`: NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED), the packet's direction
// (ORIGINAL/REPLY), and the flow's protocol state (TCP: netfilter's state machine
// tcp_conntracks[2][6][10] with window tracking as in tcp_in_window; UDP, ICMP, GRE and
// generic protocols: unreplied/replied pseudo-state), with netfilter's per-state timeouts.
//
// Two steps per burst, because netfilter creates a conntrack entry only for a NEW packet
// that the ruleset ACCEPTS (the entry is "confirmed" after the last hook), while an
// existing entry is updated before the filter hook runs, even if the packet is then
// dropped:
//
//   1. classify(burst): look every packet up (prepare pass: keys and hashes with bucket
//      prefetch; bulk lookup; then one serial pass in packet order). Existing entries are
//      updated right away. A packet that would start a flow gets NEW and a *reserved*
//      entry (holding its key) that nobody can see yet; if no entry can be had even after
//      early drop, the packet's fate is `table_full` (drop it, counted; netfilter drops
//      such packets before the ruleset too).
//   2. commit(burst, accepted[]): after the ruleset, each reserved entry is initialised
//      from its packet and inserted if the packet was accepted, else released.
//
// A packet of a flow that an earlier packet of the *same* burst is about to create (e.g.
// two datagrams of a new UDP flow, or SYN and SYN/ACK in one burst) cannot be judged
// before that creation is committed: it gets fate `deferred` and no state. The pipeline
// runs classify → ruleset → commit again on the deferred packets (in order) after the
// commit; this repeats at most as often as such chains are long, and reproduces exactly
// netfilter's packet-at-a-time answers.
//
// Non-first fragments get fate `fragment`: the pipeline answers them from the fragment
// cache (frag_cache.hpp) with their datagram's verdict. ICMP errors are looked up by the
// packet they quote, which the caller parses (parse_quoted) and passes in `quoted`.
//
// Known differences from Linux: SACK blocks are not parsed (sack = ack; slightly stricter
// on peers' upper window bound in rare cases); no helpers/expectations (nothing else is
// RELATED), no NAT; SCTP and DCCP are tracked as "generic with ports" (NEW until the
// reply, then ESTABLISHED; generic timeout) instead of their state machines; ICMP timestamp
// /info/mask queries share the identifier field with echo (the parser fills it for echo).
//
// Time is in seconds (uint32, wrap-safe comparisons); the worker reads its clock once
// per burst. Entries are removed lazily (an expired entry found by a lookup is erased
// there) and by expire(now, budget), which the worker calls per burst or when idle.
//
// Thread safety: a conntrack and its flow table belong to one worker; every method runs
// on that worker. Other threads only read counters (torn reads acceptable) or send
// messages (dump/delete/config) that the worker executes between bursts.
#pragma once

#include "ct_state.hpp"
#include "flow_key.hpp"
#include "flow_table.hpp"
#include "packet.hpp"

#include <cstdint>
#include <span>
#include <string_view>

namespace sluice {

enum class ct_dir : uint8_t { original = 0, reply = 1 };

enum class ct_fate : uint8_t {
    tracked = 0,  // state/dir are valid: run the ruleset
    deferred,     // judge again after this burst's commit
    table_full,   // no entry for a new flow: drop with drop_reason::ct_table_full
    fragment,     // non-first fragment: answer from the fragment cache
};

// Kinds of l4 tracker, stored in flow_entry::l4_class.
enum class ct_l4 : uint8_t { none = 0, tcp, udp, icmp, gre, ports_generic, generic };

// Per-state timeouts in seconds, netfilter's defaults.
struct conntrack_timeouts {
    uint32_t tcp[tcp_state_count] = {
        /* none */ 120,        /* syn_sent */ 120,   /* syn_recv */ 60,
        /* established */ 432000, /* fin_wait */ 120, /* close_wait */ 60,
        /* last_ack */ 30,     /* time_wait */ 120,  /* close */ 10,
        /* syn_sent2 */ 120};
    uint32_t tcp_retrans = 300;   // after tcp_max_retrans retransmissions / zero window
    uint32_t tcp_unack = 300;     // unacknowledged data in flight; mid-stream pickups
    uint32_t udp = 30;            // unreplied
    uint32_t udp_stream = 120;    // replied and still active 2 s after creation
    uint32_t icmp = 30;
    uint32_t icmpv6 = 30;
    uint32_t gre = 30;
    uint32_t gre_stream = 180;
    uint32_t generic = 600;
};

enum class ct_zone_mode : uint8_t { none = 0, outer_vlan, inner_vlan };

struct conntrack_config {
    bool tcp_loose = true;               // nf_conntrack_tcp_loose: pick up mid-stream flows
    bool tcp_be_liberal = false;         // nf_conntrack_tcp_be_liberal: no out-of-window INVALID
    bool tcp_ignore_invalid_rst = false; // nf_conntrack_tcp_ignore_invalid_rst
    uint8_t tcp_max_retrans = 3;         // nf_conntrack_tcp_max_retrans
    ct_zone_mode zone = ct_zone_mode::none;
    uint32_t early_drop_min_age = 1;     // s; unassured entries younger than this are kept
    conntrack_timeouts timeouts;
};

// One packet's answer from classify(). 12 bytes.
struct ct_result {
    uint32_t entry;   // flow_table index: the flow's entry, or the reserved one for NEW;
                      // flow_table::no_entry if none (INVALID, UNTRACKED, RELATED has the
                      // related flow's entry)
    uint32_t hash;    // flow hash (0 if no key)
    ct_state state;
    ct_dir dir;
    ct_fate fate;
    uint8_t action;   // internal: what commit() does
};
static_assert(sizeof(ct_result) == 12);

struct ct_counters {
    uint64_t packets = 0;
    uint64_t new_reserved = 0;   // NEW answers (entries reserved)
    uint64_t created = 0;        // entries committed
    uint64_t not_accepted = 0;   // NEW packets the ruleset did not accept: no entry
    uint64_t invalid = 0;
    uint64_t related = 0;
    uint64_t untracked = 0;
    uint64_t ignored = 0;        // TCP packets netfilter "ignores" (state kept)
    uint64_t table_full = 0;     // new flows refused: no entry / no index room
    uint64_t early_drop = 0;
    uint64_t reopened = 0;       // TCP flows re-created from TIME_WAIT/CLOSE by a SYN
    uint64_t killed = 0;         // TCP flows removed by an unreplied RST
    uint64_t expired_lazy = 0;   // expired entries found by a lookup
    uint64_t deferred = 0;
    uint64_t fragments = 0;
};

std::string_view name_of(tcp_state s) noexcept;

namespace ct_detail {

inline constexpr uint8_t sNO = 0, sSS = 1, sSR = 2, sES = 3, sFW = 4, sCW = 5, sLA = 6,
                         sTW = 7, sCL = 8, sS2 = 9, sIV = 10, sIG = 11;

enum : uint8_t { syn_set = 0, synack_set, fin_set, ack_set, rst_set, none_set };

// netfilter's tcp_conntracks[dir][index][old_state].
inline constexpr uint8_t tcp_conntracks[2][6][10] = {
    {
        /* ORIGINAL   sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
        /* syn    */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
        /* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        /* REPLY      sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2 */
        /* syn    */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
        /* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

// IP_CT_TCP_FLAG_* (per direction, tcp_track::flags) and last_flags bits.
inline constexpr uint8_t f_window_scale = 0x01, f_sack_perm = 0x02, f_close_init = 0x04,
                         f_be_liberal = 0x08, f_data_unack = 0x10, f_maxack_set = 0x20,
                         f_exp_challenge_ack = 0x40, f_simultaneous_open = 0x80;

inline constexpr uint32_t max_ack_win_const = 66000;  // MAXACKWINCONST
inline constexpr uint8_t tcp_max_wscale = 14;

inline bool before(uint32_t a, uint32_t b) noexcept { return int32_t(a - b) < 0; }
inline bool after(uint32_t a, uint32_t b) noexcept { return before(b, a); }

inline uint8_t conntrack_index(uint8_t f) noexcept {
    if (f & tcp_flag::rst) return rst_set;
    if (f & tcp_flag::syn) return (f & tcp_flag::ack) ? synack_set : syn_set;
    if (f & tcp_flag::fin) return fin_set;
    if (f & tcp_flag::ack) return ack_set;
    return none_set;
}

// tcp_valid_flags[] of tcp_error(): ECE, CWR and PSH are masked off first.
inline bool tcp_flags_valid(uint8_t f) noexcept {
    using namespace tcp_flag;
    switch (f & uint8_t(~(ece | cwr | psh))) {
    case syn: case syn | urg: case syn | ack:
    case rst: case rst | ack:
    case fin | ack: case fin | ack | urg:
    case ack: case ack | urg:
        return true;
    default:
        return false;
    }
}

inline uint32_t segment_end(const packet_meta& m) noexcept {
    return m.tcp_seq + m.payload_len + ((m.tcp_flags & tcp_flag::syn) ? 1 : 0) +
           ((m.tcp_flags & tcp_flag::fin) ? 1 : 0);
}

// tcp_options(): only SYNs carry meaningful window scale / SACK-permitted options.
inline void tcp_options(const packet_meta& m, tcp_track& t, int d) noexcept {
    t.td_scale[d] = 0;
    t.flags[d] &= f_be_liberal;
    if (m.tcp_sack_perm) t.flags[d] |= f_sack_perm;
    if (m.tcp_wscale != 0xff) {
        t.td_scale[d] = m.tcp_wscale > tcp_max_wscale ? tcp_max_wscale : m.tcp_wscale;
        t.flags[d] |= f_window_scale;
    }
}

inline void tcp_init_sender(tcp_track& t, int s, const packet_meta& m, uint32_t end,
                            uint32_t win) noexcept {
    const int r = !s;
    t.td_end[s] = t.td_maxend[s] = end;
    t.td_maxwin[s] = win == 0 ? 1 : win;
    tcp_options(m, t, s);
    if (!((t.flags[s] & f_window_scale) && (t.flags[r] & f_window_scale))) {
        t.td_scale[s] = 0;
        t.td_scale[r] = 0;
    }
}

enum class window_result : uint8_t { accept, ignore, invalid };

// tcp_in_window(): `state` is the connection's state before this packet.
inline window_result tcp_in_window(tcp_track& t, uint8_t state, int dir, uint8_t index,
                                   const packet_meta& m, bool cfg_liberal) noexcept {
    const int s = dir, r = !dir;
    const uint8_t f = m.tcp_flags;
    const bool syn = f & tcp_flag::syn, ackf = f & tcp_flag::ack, rst = f & tcp_flag::rst;
    uint32_t seq = m.tcp_seq;
    uint32_t ack = m.tcp_ack, sack = ack;  // SACK blocks not parsed: sack = ack
    const uint16_t win_raw = m.tcp_window;
    uint32_t win = win_raw;
    uint32_t end = segment_end(m);

    // nf_tcp_log_invalid(): a liberal sender turns every complaint into ACCEPT (without
    // updating the window data, as in the kernel).
    const auto complain = [&](window_result res) noexcept {
        return ((t.flags[s] & f_be_liberal) || cfg_liberal) ? window_result::accept : res;
    };

    if (t.td_maxwin[s] == 0) {
        if (syn) {
            // SYN/ACK in reply to a SYN, or SYN from the reply direction (simultaneous open).
            tcp_init_sender(t, s, m, end, win);
            if (!ackf) return window_result::accept;  // simultaneous open
        } else {
            // Mid-connection: history lost; use the data from the packet.
            t.td_end[s] = end;
            const uint32_t swin = win << t.td_scale[s];
            t.td_maxwin[s] = swin == 0 ? 1 : swin;
            t.td_maxend[s] = end + t.td_maxwin[s];
            if (t.td_maxwin[r] == 0) {
                t.td_end[r] = t.td_maxend[r] = sack;
            } else if (sack == t.td_end[r] + 1) {
                t.td_end[r]++;  // likely a reply to a keepalive
            }
        }
    } else if (syn && after(end, t.td_end[s]) && (state == sSS || state == sSR)) {
        // Re-initialised sender (new ISN on a retransmitted SYN or SYN/ACK).
        tcp_init_sender(t, s, m, end, win);
        if (dir == 1 && !ackf) return window_result::accept;
    }

    if (!ackf) {
        ack = sack = t.td_end[r];  // no ACK: pretend it was set and OK
    } else if (rst && ack == 0) {
        ack = sack = t.td_end[r];  // broken stacks: RST+ACK with zero ack
    }

    if (rst && seq == 0 && state == sSS) seq = end = t.td_end[s];  // RST answering a SYN

    const uint32_t maxackwin = t.td_maxwin[s] > max_ack_win_const ? t.td_maxwin[s]
                                                                  : max_ack_win_const;
    const bool seq_ok = before(seq, t.td_maxend[s] + 1);
    if (!seq_ok) {
        const uint32_t overshot = end - t.td_maxend[s] + 1;
        const bool ack_ok = after(sack, t.td_end[r] - maxackwin - 1);
        const bool in_recv_win = t.td_maxwin[r] && after(end, t.td_end[s] - t.td_maxwin[r] - 1);
        if (in_recv_win && ack_ok && overshot <= t.td_maxwin[r] &&
            before(sack, t.td_end[r] + 1)) {
            // Sender exceeded the receive window: record td_end so the peer's ACK of
            // this data is not "over upper bound", but report the packet.
            t.td_end[s] = end;
            t.flags[s] |= f_data_unack;
            return complain(window_result::ignore);
        }
        return complain(window_result::invalid);  // SEQ over upper bound
    }
    if (!before(sack, t.td_end[r] + 1))
        return complain(window_result::invalid);  // ACK over upper bound
    const bool in_recv_win = !t.td_maxwin[r] || after(end, t.td_end[s] - t.td_maxwin[r] - 1);
    if (!in_recv_win) return complain(window_result::ignore);  // SEQ under lower bound
    if (!after(sack, t.td_end[r] - maxackwin - 1))
        return complain(window_result::ignore);  // ACK under lower bound

    if (!syn) win <<= t.td_scale[s];

    // Update sender data.
    const uint32_t swin = win + (sack - ack);
    if (t.td_maxwin[s] < swin) t.td_maxwin[s] = swin;
    if (after(end, t.td_end[s])) {
        t.td_end[s] = end;
        t.flags[s] |= f_data_unack;
    }
    if (ackf) {
        if (!(t.flags[s] & f_maxack_set)) {
            t.td_maxack[s] = ack;
            t.flags[s] |= f_maxack_set;
        } else if (after(ack, t.td_maxack[s])) {
            t.td_maxack[s] = ack;
        }
    }

    // Update receiver data.
    if (t.td_maxwin[r] != 0 && after(end, t.td_maxend[s])) t.td_maxwin[r] += end - t.td_maxend[s];
    if (after(sack + win, t.td_maxend[r] - 1)) {
        t.td_maxend[r] = sack + win;
        if (win == 0) t.td_maxend[r]++;
    }
    if (ack == t.td_end[r]) t.flags[r] &= uint8_t(~f_data_unack);

    // Check retransmissions.
    if (index == ack_set) {
        if (t.last_dir == dir && t.last_seq == seq && t.last_ack == ack && t.last_end == end &&
            t.last_win == win_raw) {
            if (t.retrans < 255) t.retrans++;
        } else {
            t.last_dir = uint8_t(dir);
            t.last_seq = seq;
            t.last_ack = ack;
            t.last_end = end;
            t.last_win = win_raw;
            t.retrans = 0;
        }
    }
    return window_result::accept;
}

enum class tcp_outcome : uint8_t {
    accept,   // state updated, timeout refreshed
    ignore,   // packet keeps its ctinfo-derived state; conntrack state unchanged
    invalid,  // INVALID; conntrack unchanged (apart from annotations)
    reopen,   // delete the entry; the packet starts a new connection
    kill,     // unreplied connection reset: delete the entry after this packet
};

inline bool tcp_can_early_drop(uint8_t state) noexcept {
    return state == sFW || state == sLA || state == sTW || state == sCL || state == sCW;
}

// nf_tcp_handle_invalid(): shorten the timeout of an assured connection whose FIN/RST
// answer was out of window.
inline void tcp_handle_invalid(flow_entry& e, int dir, uint8_t index, uint32_t now,
                               const conntrack_config& cfg) noexcept {
    tcp_track& t = e.tcp;
    if (!(e.status & flow_status::assured)) return;
    if (index != rst_set && index != fin_set) return;
    if (t.last_dir != dir && (t.last_index == fin_set || t.last_index == rst_set)) {
        const uint32_t left = e.expires - now;
        if (int32_t(left) < 120) return;
        if (left > cfg.timeouts.tcp_unack) e.expires = now + cfg.timeouts.tcp_unack;
    } else {
        t.last_index = index;
        t.last_dir = uint8_t(dir);
    }
}

// nf_conntrack_tcp_packet() on a confirmed entry or on a just-initialised new one
// (state none). Flag validity (tcp_error) is checked by the caller.
inline tcp_outcome tcp_packet(flow_entry& e, int dir, const packet_meta& m, uint32_t now,
                              const conntrack_config& cfg) noexcept {
    tcp_track& t = e.tcp;
    const uint8_t index = conntrack_index(m.tcp_flags);
    uint8_t old_state = e.l4_state;
    uint8_t new_state = tcp_conntracks[dir][index][old_state];
    const bool seen_reply = e.status & flow_status::seen_reply;
    const uint32_t* to = cfg.timeouts.tcp;
    bool skip_window = false;

    switch (new_state) {
    case sSS:
        if (old_state < sTW) break;
        // Reopen from TIME_WAIT/CLOSE: if the connection was closed/aborted, kill the
        // entry and let the SYN start a new one.
        if (((t.flags[dir] | t.flags[!dir]) & f_close_init) ||
            (t.last_dir == dir && t.last_index == rst_set))
            return tcp_outcome::reopen;
        [[fallthrough]];
    case sIG:
        if (index == synack_set && t.last_index == syn_set && t.last_dir != dir &&
            m.tcp_ack == t.last_end) {
            // This SYN/ACK acknowledges a SYN we ignored: resync from the annotations.
            const int ld = t.last_dir;
            old_state = sSS;
            new_state = sSR;
            t.td_end[ld] = t.last_end;
            t.td_maxend[ld] = t.last_end;
            t.td_maxwin[ld] = t.last_win == 0 ? 1 : t.last_win;
            t.td_scale[ld] = t.last_wscale;
            t.last_flags &= uint8_t(~f_exp_challenge_ack);
            t.flags[ld] = t.last_flags;
            // nf_ct_tcp_state_reset(&seen[dir])
            t.td_end[dir] = t.td_maxend[dir] = t.td_maxwin[dir] = t.td_maxack[dir] = 0;
            t.td_scale[dir] = 0;
            t.flags[dir] = 0;
            break;
        }
        t.last_index = index;
        t.last_dir = uint8_t(dir);
        t.last_seq = m.tcp_seq;
        t.last_end = segment_end(m);
        t.last_win = m.tcp_window;
        if (index == syn_set && dir == 0) {
            t.last_flags = 0;
            t.last_wscale = 0;
            if (m.tcp_wscale != 0xff) {
                t.last_flags |= f_window_scale;
                t.last_wscale = m.tcp_wscale > tcp_max_wscale ? tcp_max_wscale : m.tcp_wscale;
            }
            if (m.tcp_sack_perm) t.last_flags |= f_sack_perm;
            if (old_state == sLA) t.last_flags |= f_exp_challenge_ack;
        }
        if (old_state == sSS && index == ack_set && dir == 1) t.last_ack = m.tcp_ack;
        return tcp_outcome::ignore;
    case sIV:
        return tcp_outcome::invalid;
    case sTW:
        if (old_state == sLA && index == ack_set && t.last_dir != dir &&
            t.last_index == syn_set && (t.last_flags & f_exp_challenge_ack)) {
            // RFC 5961 challenge ACK: does not ack the last FIN.
            t.last_flags &= uint8_t(~f_exp_challenge_ack);
            return tcp_outcome::ignore;
        }
        break;
    case sS2:
        t.last_flags |= f_simultaneous_open;
        break;
    case sSR:
        if (dir == 1 && index == ack_set && (t.last_flags & f_simultaneous_open))
            new_state = sES;
        break;
    case sCL: {
        if (index != rst_set) break;
        if (tcp_can_early_drop(old_state)) {
            skip_window = true;
            break;
        }
        const bool established = old_state == sES && (e.status & flow_status::assured);
        if ((t.flags[!dir] & f_maxack_set) && t.last_index != syn_set) {
            const uint32_t seq = m.tcp_seq;
            if (seq == 0 && !established) break;
            if (before(seq, t.td_maxack[!dir]) && !cfg.tcp_ignore_invalid_rst)
                return tcp_outcome::invalid;  // invalid RST
            if (!established || seq == t.td_maxack[!dir]) break;
            if (t.last_index == ack_set && t.last_dir == dir && seq == t.last_end) break;
            new_state = old_state;  // not exact: keep state, allow a challenge ACK
        }
        if (((seen_reply && t.last_index == syn_set) ||
             (!(e.status & flow_status::assured) && t.last_index == ack_set)) &&
            m.tcp_ack == t.last_end) {
            skip_window = true;  // RST to a SYN or ACK we let through while out of sync
            break;
        }
        if (old_state == sSS && t.last_index == ack_set && t.last_dir == 1 &&
            m.tcp_seq == t.last_ack) {
            skip_window = true;  // RST answering a challenge ACK
            break;
        }
        break;
    }
    default:
        break;
    }

    if (!skip_window) {
        switch (tcp_in_window(t, old_state, dir, index, m, cfg.tcp_be_liberal)) {
        case window_result::ignore:
            return tcp_outcome::ignore;
        case window_result::invalid:
            tcp_handle_invalid(e, dir, index, now, cfg);
            return tcp_outcome::invalid;
        case window_result::accept:
            break;
        }
    }

    // In-window from here on.
    t.last_index = index;
    t.last_dir = uint8_t(dir);
    e.l4_state = new_state;
    if (old_state != new_state && new_state == sFW) t.flags[dir] |= f_close_init;

    uint32_t timeout;
    if (t.retrans >= cfg.tcp_max_retrans && to[new_state] > cfg.timeouts.tcp_retrans)
        timeout = cfg.timeouts.tcp_retrans;
    else if (index == rst_set)
        timeout = to[sCL];
    else if (((t.flags[0] | t.flags[1]) & f_data_unack) && to[new_state] > cfg.timeouts.tcp_unack)
        timeout = cfg.timeouts.tcp_unack;
    else if (t.last_win == 0 && to[new_state] > cfg.timeouts.tcp_retrans)
        timeout = cfg.timeouts.tcp_retrans;
    else
        timeout = to[new_state];

    if (!seen_reply) {
        if (m.tcp_flags & tcp_flag::rst) return tcp_outcome::kill;
        if (index == syn_set && old_state == sSS) return tcp_outcome::accept;  // no renewal
        if (new_state == sES && timeout > cfg.timeouts.tcp_unack) timeout = cfg.timeouts.tcp_unack;
    } else if (!(e.status & flow_status::assured) && (old_state == sSR || old_state == sES) &&
               new_state == sES) {
        e.status |= flow_status::assured;
    }
    e.expires = now + timeout;
    return tcp_outcome::accept;
}

// tcp_new(): can this packet create a connection? (flags already valid)
inline bool tcp_can_create(const packet_meta& m, bool loose) noexcept {
    const uint8_t ns = tcp_conntracks[0][conntrack_index(m.tcp_flags)][sNO];
    if (ns == sIV) return false;
    return ns == sSS || loose;
}

// tcp_new(): initialise the window data of a fresh entry from its first packet.
inline void tcp_new(flow_entry& e, const packet_meta& m) noexcept {
    tcp_track& t = e.tcp;
    t = tcp_track{};
    e.l4_state = sNO;
    const uint32_t end = segment_end(m);
    t.td_end[0] = end;
    t.td_maxwin[0] = m.tcp_window == 0 ? 1 : m.tcp_window;
    if (m.tcp_flags & tcp_flag::syn) {
        t.td_maxend[0] = end;
        tcp_options(m, t, 0);
    } else {
        t.td_maxend[0] = end + t.td_maxwin[0];
        t.flags[0] = t.flags[1] = f_sack_perm | f_be_liberal;
    }
    t.last_index = none_set;
}

inline ct_l4 l4_of(uint8_t proto) noexcept {
    switch (proto) {
    case ipproto_tcp: return ct_l4::tcp;
    case ipproto_udp: case ipproto_udplite: return ct_l4::udp;
    case ipproto_icmp: case ipproto_icmpv6: return ct_l4::icmp;
    case 47: return ct_l4::gre;
    case ipproto_sctp: case ipproto_dccp: return ct_l4::ports_generic;
    default: return ct_l4::generic;
    }
}

// Non-TCP "packet" handlers on an existing entry (before SEEN_REPLY is updated).
inline void other_packet(flow_entry& e, const packet_meta& m, uint32_t now,
                         const conntrack_timeouts& to) noexcept {
    const bool replied = e.status & flow_status::seen_reply;
    switch (ct_l4(e.l4_class)) {
    case ct_l4::udp:
        if (replied) {
            uint32_t extra = to.udp;
            bool stream = false;
            if (int32_t(now - (e.created + 2)) > 0) {  // still active 2 s after creation
                extra = to.udp_stream;
                stream = !(e.status & flow_status::assured);
            }
            e.expires = now + extra;
            if (stream) e.status |= flow_status::assured;
        } else {
            e.expires = now + to.udp;
        }
        break;
    case ct_l4::gre:
        if (replied) {
            e.expires = now + to.gre_stream;
            e.status |= flow_status::assured;
        } else {
            e.expires = now + to.gre;
        }
        break;
    case ct_l4::icmp:
        e.expires = now + (m.l3 == l3_kind::ipv6 ? to.icmpv6 : to.icmp);
        break;
    case ct_l4::ports_generic:
        e.expires = now + to.generic;
        if (replied) e.status |= flow_status::assured;
        break;
    default:
        e.expires = now + to.generic;
        break;
    }
}

inline uint32_t initial_timeout(ct_l4 l4, const packet_meta& m, const conntrack_timeouts& to) noexcept {
    switch (l4) {
    case ct_l4::udp: return to.udp;
    case ct_l4::gre: return to.gre;
    case ct_l4::icmp: return m.l3 == l3_kind::ipv6 ? to.icmpv6 : to.icmp;
    default: return to.generic;
    }
}

enum : uint8_t { act_none = 0, act_create = 1 };

} // namespace ct_detail

class conntrack {
public:
    static constexpr uint32_t chunk = 64;  // classify works in chunks of this many packets

    // Allocates the flow table (control time; may throw).
    conntrack(const conntrack_config& cfg, uint32_t capacity);

    // Step 1 (see the file comment). `quoted[i]`, if `quoted` and it are non-null, is the
    // parsed packet quoted by ICMP error pkts[i]. Fills out[i] for every packet. Returns
    // the number of packets with fate `deferred`.
    uint32_t classify(std::span<const packet_meta> pkts, const packet_meta* const* quoted,
                      std::span<ct_result> out, uint32_t now) noexcept;

    // Step 2: accepted[i] != 0 if the ruleset accepted pkts[i]. Must be called once after
    // every classify(), with the same packets and results, before the next classify().
    void commit(std::span<const packet_meta> pkts, std::span<ct_result> res,
                const uint8_t* accepted, uint32_t now) noexcept;

    // Incremental expiry: examines at most `budget` entries. Returns how many expired.
    uint32_t expire(uint32_t now, uint32_t budget) noexcept { return table_.expire(now, budget); }

    // Zone of a packet under the configured zone mode.
    uint16_t zone_of(const packet_meta& m) const noexcept {
        switch (cfg_.zone) {
        case ct_zone_mode::outer_vlan: return m.vlan_outer;
        case ct_zone_mode::inner_vlan: return m.n_vlans == 2 ? m.vlan_inner : m.vlan_outer;
        default: return 0;
        }
    }

    // Direction of a packet from `side` on entry e.
    static ct_dir dir_of(const flow_entry& e, flow_side side) noexcept {
        const bool orig_hi = e.status & flow_status::orig_hi;
        return (side == flow_side::hi) == orig_hi ? ct_dir::original : ct_dir::reply;
    }

    flow_table& table() noexcept { return table_; }
    const flow_table& table() const noexcept { return table_; }
    const conntrack_config& config() const noexcept { return cfg_; }
    // Replace the configuration (timeouts apply from the next refresh). Owner thread.
    void set_config(const conntrack_config& cfg) noexcept { cfg_ = cfg; }
    const ct_counters& counters() const noexcept { return counters_; }

private:
    void classify_chunk(const packet_meta* pkts, const packet_meta* const* quoted,
                        ct_result* out, uint32_t n, uint32_t done_before, ct_result* all,
                        uint32_t now) noexcept;
    bool pending_create(const ct_result* all, uint32_t n_before, const flow_key& k,
                        uint32_t h) const noexcept;
    uint32_t reserve_for(const flow_key& k, uint32_t h, flow_side side, ct_l4 l4,
                         uint32_t now) noexcept;

    conntrack_config cfg_;
    flow_table table_;
    ct_counters counters_;
};

} // namespace sluice
