// The reference evaluator: what Linux netfilter decides for one packet traversing one hook
// of a filter table, computed the slow, obvious way — walk the chain, test each rule's
// matches in order, follow -j/-g/RETURN with an explicit return stack exactly as
// ipt_do_table does. It exists to be the semantic reference that the compiled fast-path
// classifier is checked against (differential tests, fuzzers), and to explain a verdict
// (`sluicectl trace`). Clarity beats speed; it allocates and may be slow.
//
// Semantics, as the kernel has them:
//  * -j CHAIN pushes the next rule and enters CHAIN; -g CHAIN enters CHAIN without
//    pushing, so a RETURN from it resumes after the last -j. RETURN, or falling off the end
//    of a user chain, pops; with nothing to pop, the hook chain's policy decides.
//  * LOG, NFLOG and rules without a target match, are recorded, and evaluation goes on.
//  * Core matches (-s -d -i -o -p -f) first, then match modules in rule order, stopping at
//    the first that fails (so a statistic match after a failing match draws no random
//    number, as in the kernel).
//  * Non-first fragments never match port, multiport, icmp-type or tcp-flags matches, not
//    even negated ones. `-f` matches exactly the non-first fragments.
//  * A packet of the other address family does not traverse this table: the verdict is the
//    hook chain's policy with no rule matched.
// Preconditions: check_ruleset(rs) found no problem (a jump loop is cut off after a step
// limit with DROP, as the kernel's stack overflow would be).
//
// Thread safety: pure function of its arguments plus what the callbacks do; callable from
// any thread if the callbacks are.
#pragma once

#include "packet.hpp"
#include "ruleset.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace sluice {

// What the kernel knows about a packet besides its headers.
struct packet_context {
    uint8_t ct = ct_bit(ct_state::new_); // ct_state bit(s) of the packet's conntrack entry
    std::string_view in_iface;           // "" where the hook has none (OUTPUT)
    std::string_view out_iface;          // "" where the hook has none (INPUT)
    std::optional<std::array<uint8_t, 6>> src_mac; // absent: not received on Ethernet
};

// Where a rule is: ruleset::chains[chain].rules[rule].
struct rule_ref {
    uint32_t chain = 0;
    uint32_t rule = 0;
    bool operator==(const rule_ref&) const = default;
};

// `-m set --match-set NAME dims`: is the packet in the set (before `!`)? Typically
// `sets.find(name)->match(pkt, dims, ctx.in_iface, ctx.out_iface)`. Unknown set: false.
using set_lookup = std::function<bool(std::string_view set_name, const packet_meta& pkt,
                                      dim_flags dims, const packet_context& ctx)>;
// 32 random bits for -m statistic (the kernel uses the low 31).
using random_source = std::function<uint32_t()>;
// -m limit: does the rule's token bucket have a token now (and take it)?
using limit_check = std::function<bool(rule_ref where, const limit_match& limit)>;

struct eval_hooks {
    set_lookup sets;      // empty: no set contains anything
    random_source random; // empty: always 0 (probability > 0 always matches)
    limit_check limit;    // empty: always under the limit
};

enum class verdict : uint8_t { accept, drop, reject };

struct eval_result {
    verdict v = verdict::accept;
    reject_kind reject = reject_kind::icmp_port_unreachable; // when v == reject
    bool by_policy = false;         // decided by the hook chain's policy
    std::vector<rule_ref> matched;  // every rule that matched, in evaluation order
};

// Run `pkt` through `hook_chain` (INPUT, FORWARD or OUTPUT) of `rs`. An unknown or
// non-built-in hook chain gives DROP with by_policy set.
eval_result evaluate(const ruleset& rs, std::string_view hook_chain, const packet_meta& pkt,
                     const packet_context& ctx, const eval_hooks& hooks = {});

// Single-rule match test (core matches and modules), used by evaluate. `where` is passed to
// the limit callback.
bool rule_matches(const rule& r, ip_family family, const packet_meta& pkt,
                  const packet_context& ctx, const eval_hooks& hooks, rule_ref where);

} // namespace sluice
