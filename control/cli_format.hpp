// cli_format: what sluicectl prints — the policy API's replies decoded into plain rows and
// written the way the netfilter tools write them (so people and their scripts read them
// as they always have), or as JSON for scripts that would rather not parse text:
//   * rules and chains as `iptables -L -v -n --line-numbers` (the rule's spec is parsed
//     back into the policy model to fill the target/prot/opt/in/out/source/destination
//     columns and the match descriptions, as iptables prints them);
//   * sets as `ipset list` (streamed: millions of members never sit in memory);
//   * conntrack flows and events as `conntrack -L` / `conntrack -E` lines (streamed);
//   * counters (STATS_GET sections) as tables, one column per port / worker.
//
// Decoding is defensive: a reply message without the expected attributes yields nullopt
// (and is skipped), never a crash. Thread safety: pure functions, and printer objects used
// by one thread.
#pragma once

#include "cli_command.hpp"
#include "netlink.hpp"

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace sluice::cli {

// JSON string literal of `s` (quotes included), escaped per RFC 8259.
std::string json_quote(std::string_view s);

// A counter as iptables -v prints it: up to 99999 as is, then K, M, G, T (rounded); or the
// exact value with `exact`.
std::string format_count(uint64_t n, bool exact);

// ---- rules and chains ----

struct chain_row {
    uint8_t family = 4;
    std::string name;
    std::optional<std::string> policy; // built-in chains
    uint32_t rules = 0;
    std::optional<uint32_t> references;
    std::optional<uint64_t> packets, bytes; // policy counters, when the server has them
};
struct rule_row {
    uint8_t family = 4;
    std::string chain;
    uint32_t position = 0;
    std::string spec;
    uint64_t packets = 0, bytes = 0;
};
std::optional<chain_row> decode_chain(const nl::message& m);
std::optional<rule_row> decode_rule(const nl::message& m);

// iptables -L -v -n --line-numbers for the chains of `family` (only `only_chain` if not
// empty), in the order of `chains`; rules grouped under their chain by position.
std::string format_rule_listing(const std::vector<chain_row>& chains, const std::vector<rule_row>& rules,
                                uint8_t family, std::string_view only_chain, bool exact);
// {"family":"ipv4","chains":[{"name":…,"policy":…,"references":…,"rules":[{"position":…,
// "spec":…,"target":…,"packets":…,"bytes":…}]}]}
std::string rule_listing_json(const std::vector<chain_row>& chains, const std::vector<rule_row>& rules,
                              uint8_t family, std::string_view only_chain);
// One rule's row (no line ending) as iptables -L -v -n --line-numbers prints it.
std::string format_rule_line(const rule_row& r, bool exact);

// chain list: NAME POLICY RULES REFERENCES table / JSON array.
std::string format_chain_list(const std::vector<chain_row>& chains);
std::string chain_list_json(const std::vector<chain_row>& chains);

// ---- sets ----

// Prints a SET_GET dump as it streams in: set headers (SET_GET messages) and members
// (SET_ELEMS messages).
class set_printer {
public:
    set_printer(std::ostream& out, bool json, bool names_only, bool terse)
        : out_(out), json_(json), names_only_(names_only), terse_(terse) {}
    void on_message(const nl::message& m);
    void finish();
    uint64_t sets() const noexcept { return sets_; }

private:
    void close_set();
    std::ostream& out_;
    bool json_, names_only_, terse_;
    uint64_t sets_ = 0;
    bool in_set_ = false, first_member_ = true, started_ = false;
};

// ---- conntrack ----

struct flow_row {
    uint8_t l3 = 4, proto = 0;
    std::string src, dst;
    std::optional<uint16_t> sport, dport, zone;
    std::string state, tcp_state; // ct state (NEW/ESTABLISHED), TCP state
    std::optional<uint32_t> timeout, worker;
    bool assured = false;
    std::optional<uint64_t> orig_packets, orig_bytes, reply_packets, reply_bytes;
    uint8_t event = 0; // CT_EVENT: 1 new, 2 destroy
};
// A CT_GET / CT_EVENT message (CT_FLOW nest, or the flow attributes at top level).
std::optional<flow_row> decode_flow(const nl::message& m);
// The conntrack -L line (conntrack -E with the event tag when f.event is set).
std::string format_flow(const flow_row& f);
std::string flow_json(const flow_row& f);
// Whether `f` passes the filter (events are filtered here too).
bool filter_matches(const ct_filter_args& filter, const flow_row& f);

// ---- counters ----

struct stats_section {
    std::string kind, name;
    std::vector<std::pair<std::string, uint64_t>> counters;
};
// The SECTION nests of a STATS_GET message (or its top-level KIND/NAME/COUNTERs).
std::vector<stats_section> decode_sections(const nl::message& m);
// Tables per kind (ports side by side, ...); drops/monitor reasons that are zero are left
// out unless `all`.
std::string format_stats(const std::vector<stats_section>& sections, bool all);
// {"port":{"west":{"rx_packets":…}},"drops":{…},…} (sections without a name: counters
// directly under the kind).
std::string stats_json_fields(const std::vector<stats_section>& sections);

} // namespace sluice::cli
