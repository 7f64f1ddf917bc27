// agent_codec: the EAL-free half of sluice-fastpath's agent (agent.hpp) — what the
// requests mean and how flows look on the wire, kept apart from sockets, workers and DPDK
// so that unit tests and fuzzers can run it:
//   * request attribute checking (types, sizes, required/duplicate/unknown attributes), with
//     the precise text and byte offset the extended ack carries;
//   * conntrack flows: reading an entry of a table another thread writes (read_flow_entry),
//     its original-direction view (ct_flow_view), the CT_FLOW nest, and CT_FILTER
//     (parse_ct_filter, ct_filter::matches — the latter also runs on the workers, for
//     CT_DELETE/CT_FLUSH);
//   * conntrack events as workers hand them to the main thread (ct_event_record);
//   * FP_SETS texts (add/del/flush/swap lines only);
//
// Thread safety: pure functions and plain values, any thread; read_flow_entry is made for
// a reader racing with the table's owner (see there).
#pragma once

#include "conntrack.hpp"
#include "flow_table.hpp"
#include "ipset_parser.hpp"
#include "netlink.hpp"
#include "policy.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// ---- requests ----

// An error answer: positive errno, text, offset of the offending attribute in the request
// message (0: none).
struct request_error {
    int err = 0;
    std::string text;
    uint32_t offset = 0;
};

enum class attr_kind : uint8_t { u8, u16, u32, u64, str, text, nest, flag };
struct attr_spec {
    uint16_t type;
    attr_kind kind;
    bool required = false;
};

// Name of an attribute of policy_api.hpp ("GENERATION"), or its number as text.
std::string attribute_name(uint16_t type);

// Check `al` (the attributes of request `what`, e.g. "FP_POLICY") against `spec`: a list
// that did not parse, an attribute not in the spec, a scalar of the wrong size, a string
// without its NUL, a repeated attribute (only `text` pieces may repeat) or a missing
// required one is an EINVAL naming the attribute and its offset. nullopt: all good.
std::optional<request_error> check_attrs(std::string_view what, const nl::attr_list& al,
                                         std::span<const attr_spec> spec);

// ---- conntrack flows ----

// Copy entry `shared` of a flow table that its owning worker may be writing right now, for
// a dump on another thread. The worker takes no lock, so the copy is validated instead:
// the entry is read twice, word by word with relaxed atomic loads, and accepted only if
// it is confirmed (not free, not reserved) and both reads agree on key, status, tracker
// kind and creation time — an entry being freed, reused or created meanwhile is retried
// a few times, then skipped. Mutable fields (timeout, TCP state) are those of one instant
// around the read. The table's arrays are never freed while workers run, so the read is
// always in bounds. Returns false when the entry is not a (stable) confirmed flow.
bool read_flow_entry(const flow_entry& shared, flow_entry& out) noexcept;

// A flow as conntrack(8) shows it: its original direction and its states.
struct ct_flow_view {
    uint8_t l3 = 4; // 4 or 6
    uint8_t proto = 0;
    ip_addr src{}, dst{}; // original direction (IPv4 mapped in ::ffff:0:0/96)
    bool has_ports =
        false; // TCP/UDP/SCTP/DCCP ports, or ICMP (SPORT = identifier, DPORT = request type)
    uint16_t sport = 0, dport = 0;
    ct_state state = ct_state::new_; // NEW until a reply was seen, then ESTABLISHED
    bool tcp = false;
    tcp_state tcp_st = tcp_state::none;
    uint32_t timeout = 0; // seconds left
    uint16_t zone = 0;
    bool assured = false;
};
ct_flow_view view_of(const flow_entry& e, uint32_t now) noexcept;

// "192.0.2.1" / "2001:db8::1".
std::string format_address(const ip_addr& a, bool ipv6);

// Which flows a CT_GET/CT_COUNT/CT_DELETE/CT_FLUSH is about. Every criterion given must
// hold; an empty filter matches every live flow. Expired entries (not yet swept) never
// match. Trivially copyable: the main thread hands it to workers by value.
struct ct_prefix {
    ip_addr addr{};   // masked, IPv4 mapped
    uint8_t bits = 0; // prefix length over the 128-bit (mapped) address
};
struct ct_filter {
    uint8_t l3 = 0; // 0: any, 4, 6
    std::optional<uint8_t> proto;
    std::optional<ct_prefix> src, dst;
    std::optional<uint16_t> sport, dport, zone;
    // STATE: matches the flow's conntrack state (NEW/ESTABLISHED) or its TCP state
    // (SYN_SENT, ...); "ESTABLISHED" is both.
    ct_state state = ct_state::none; // none: not a conntrack state name
    int8_t tcp_st = -1;              // -1: not a TCP state name
    bool has_state = false;

    bool empty() const noexcept {
        return !l3 && !proto && !src && !dst && !sport && !dport && !zone && !has_state;
    }
    bool matches(const flow_entry& e, uint32_t now) const noexcept;
    bool matches(const ct_flow_view& v) const noexcept;
};

// Decode a CT_FILTER nest of a request (its attributes' offsets are those in the message).
std::optional<request_error> parse_ct_filter(const nl::attr& nest, ct_filter& out);

// Append a CT_FLOW nest: L3 PROTO SRC DST [SPORT DPORT] STATE [TCP_STATE] TIMEOUT ZONE
// WORKER ASSURED. (The table keeps no per-direction packet/byte counters: not sent.)
void put_ct_flow(nl::builder& b, const ct_flow_view& v, uint32_t worker);

// A conntrack event as a worker queues it for the main thread: 64 bytes, a ring element.
struct ct_event_record {
    uint8_t entry[56]; // the flow_entry up to its TCP window data (key, timers, state, status)
    uint32_t worker;
    uint8_t event; // flow_event
    uint8_t pad[3];
};
static_assert(sizeof(ct_event_record) == 64);
static_assert(offsetof(flow_entry, tcp) == sizeof(ct_event_record::entry));

inline void make_event(ct_event_record& r, flow_event ev, const flow_entry& e,
                       uint32_t worker) noexcept {
    std::memcpy(r.entry, &e, sizeof r.entry);
    r.worker = worker;
    r.event = uint8_t(ev);
    r.pad[0] = r.pad[1] = r.pad[2] = 0;
}
// The entry of an event (TCP window data zeroed).
flow_entry entry_of(const ct_event_record& r) noexcept;

// ---- sets and policy texts ----

// Parse an FP_SETS text against the live sets: add, del, flush and swap lines only.
// "" with `out` filled, or "sets:LINE:COLUMN: reason".
std::string parse_fp_sets(std::string_view text, const set_table& sets,
                          std::vector<ipset_command>& out);

} // namespace sluice
