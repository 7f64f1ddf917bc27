// The policy model: the iptables `filter` table of one address family, as plain data.
//
// A `ruleset` holds the three built-in chains INPUT, FORWARD and OUTPUT (always present,
// always first, in that order, each with a policy ACCEPT or DROP) followed by user chains
// in declaration order. A chain is an ordered list of `rule`s. A rule is the conjunction of
// its core matches (-s, -d, -i, -o, -p, -f) and of its match modules (`-m tcp`, `-m set`,
// ...) in the order they were written, plus one target. Everything is stored the way the
// kernel stores it after iptables' userspace has normalised the command line: CIDRs are
// masked, `--syn` is a tcp-flags mask/compare, icmp names are type/code ranges, limit
// rates are the kernel's scaled period, statistic probabilities the kernel's 31-bit
// threshold. That makes two rulesets equal (`==`) exactly when iptables-save would print
// them the same way, and `save()` prints them the way iptables-save does.
//
// Per-rule counters are not part of the model; they belong to whoever evaluates rules.
//
// Lifecycle: built by the parser (ruleset_parser.hpp) or by hand, validated with
// `check_ruleset`, then compiled into whatever the fast path runs; the model itself is
// never touched by workers. Thread safety: plain values; const access from any number of
// threads, mutation by one thread at a time. The free functions are pure.
#pragma once

#include "ct_state.hpp"
#include "set_table.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice {

enum class ip_family : uint8_t { ipv4, ipv6 };

// An address prefix. IPv4 addresses are kept IPv4-mapped (::ffff:a.b.c.d), like ip_addr in
// packet.hpp; `prefix` counts in the family's own terms (0..32 or 0..128). Host bits are
// always zero.
struct cidr {
    std::array<uint8_t, 16> addr{};
    uint8_t prefix = 0;
    bool v4 = true;
    bool operator==(const cidr&) const = default;
};

struct port_range {
    uint16_t lo = 0, hi = 0xffff;
    bool operator==(const port_range&) const = default;
};

// Interface name as -i/-o take it: `eth0` exact, `eth+` any name starting with `eth`.
struct iface_match {
    std::string name; // without the trailing '+'
    bool wildcard = false;
    bool negate = false;
    bool operator==(const iface_match&) const = default;
};

struct addr_match {
    cidr net;
    bool negate = false;
    bool operator==(const addr_match&) const = default;
};

struct proto_match {
    uint8_t proto = 0; // IPPROTO_*; never 0 (`-p all` is stored as no proto_match)
    bool negate = false;
    bool operator==(const proto_match&) const = default;
};

// Conntrack states: ct_state.hpp.

// ---- match modules -------------------------------------------------------------------

// -m tcp / -m udp / -m sctp (xt_tcpudp, xt_sctp): ports, and for tcp the flags. Absent
// fields do not constrain. Never matches a non-first fragment, not even when negated.
struct tcpudp_match {
    uint8_t proto = 6; // 6 tcp, 17 udp, 132 sctp: which module this is
    std::optional<port_range> sport, dport;
    bool sport_negate = false, dport_negate = false;
    // tcp only: (flags & mask) == comp, negated as a whole.
    std::optional<std::pair<uint8_t, uint8_t>> flags; // {mask, comp}
    bool flags_negate = false;
    bool operator==(const tcpudp_match&) const = default;
};

// -m multiport --sports/--dports/--ports (xt_multiport revision 1): up to 15 slots, a
// range taking two.
enum class multiport_dir : uint8_t { src, dst, any };
struct multiport_match {
    multiport_dir dir = multiport_dir::dst;
    std::vector<port_range> ports;
    bool negate = false;
    bool operator==(const multiport_match&) const = default;
};

// -m icmp --icmp-type / -m icmp6 --icmpv6-type: type and an inclusive code range.
// For IPv4, type 255 means "any".
struct icmp_match {
    bool v6 = false;
    uint8_t type = 0;
    uint8_t code_lo = 0, code_hi = 0xff;
    bool negate = false;
    bool operator==(const icmp_match&) const = default;
};

// -m conntrack --ctstate / -m state --state.
struct ctstate_match {
    uint8_t mask = 0; // ct_state bits
    bool negate = false;
    bool state_module = false; // written as `-m state --state` (same semantics)
    bool operator==(const ctstate_match&) const = default;
};

// -m set --match-set NAME src,dst...
struct set_match {
    std::string name;
    dim_flags dims;
    bool negate = false;
    bool operator==(const set_match& o) const {
        return name == o.name && dims.count == o.dims.count && dims.src_mask == o.dims.src_mask &&
               negate == o.negate;
    }
};

// -m mac --mac-source
struct mac_match {
    std::array<uint8_t, 6> addr{};
    bool negate = false;
    bool operator==(const mac_match&) const = default;
};

// -m comment --comment
struct comment_match {
    std::string text;
    bool operator==(const comment_match&) const = default;
};

// -m statistic --mode random --probability P: matches when a 31-bit random number is below
// `threshold` (= lround(P * 2^31), as the kernel stores it).
struct statistic_match {
    uint32_t threshold = 0;
    bool negate = false;
    bool operator==(const statistic_match&) const = default;
};

// -m limit --limit R --limit-burst B: `period` is the kernel's avg (XT_LIMIT_SCALE=10000
// units per second per packet), burst the bucket depth.
struct limit_match {
    uint32_t period = 0;
    uint32_t burst = 5;
    bool operator==(const limit_match&) const = default;
};

using match = std::variant<tcpudp_match, multiport_match, icmp_match, ctstate_match, set_match,
                           mac_match, comment_match, statistic_match, limit_match>;

// ---- targets -------------------------------------------------------------------------

enum class reject_kind : uint8_t {
    icmp_net_unreachable,
    icmp_host_unreachable,
    icmp_port_unreachable,
    icmp_proto_unreachable,
    icmp_net_prohibited,
    icmp_host_prohibited,
    icmp_admin_prohibited,
    tcp_reset,
    icmp6_no_route,
    icmp6_adm_prohibited,
    icmp6_addr_unreachable,
    icmp6_port_unreachable,
    icmp6_policy_fail,
    icmp6_reject_route,
};
// The --reject-with name iptables-save writes ("icmp-port-unreachable", ...). Pure.
std::string_view reject_kind_name(reject_kind k) noexcept;

enum class target_kind : uint8_t {
    none, // no -j: the rule only counts; evaluation continues
    accept,
    drop,
    reject,
    return_,
    log,
    nflog,
    jump, // -j CHAIN
    go_to, // -g CHAIN
};

struct log_options {
    std::string prefix;   // at most 29 bytes
    uint8_t level = 4;    // syslog level 0..7
    uint8_t flags = 0;    // log_flag::*
    bool operator==(const log_options&) const = default;
};
namespace log_flag {
inline constexpr uint8_t tcp_sequence = 1, tcp_options = 2, ip_options = 4, uid = 8,
                         macdecode = 0x20;
}

struct nflog_options {
    uint16_t group = 0;
    std::string prefix;           // at most 63 bytes
    std::optional<uint32_t> size; // --nflog-size
    uint16_t threshold = 1;
    bool operator==(const nflog_options&) const = default;
};

struct rule_target {
    target_kind kind = target_kind::none;
    reject_kind reject = reject_kind::icmp_port_unreachable;
    std::string chain; // jump / go_to
    log_options log;
    nflog_options nflog;
    bool operator==(const rule_target&) const = default;
};

// ---- rules and chains ----------------------------------------------------------------

struct rule {
    std::optional<addr_match> src, dst;
    std::optional<iface_match> in, out;
    std::optional<proto_match> proto;
    std::optional<bool> fragment; // -f: true, ! -f: false (IPv4 only)
    std::vector<match> matches;   // in command-line order
    rule_target target;

    // The text of the first -m comment, or "" — what counters and logs show for the rule.
    std::string_view comment() const noexcept;
    bool operator==(const rule&) const = default;
};

enum class chain_policy : uint8_t { accept, drop, none /* user chain */ };

struct chain {
    std::string name;
    bool builtin = false;
    chain_policy policy = chain_policy::none;
    std::vector<rule> rules;
    bool operator==(const chain&) const = default;
};

struct ruleset {
    ip_family family = ip_family::ipv4;
    std::vector<chain> chains; // INPUT, FORWARD, OUTPUT, then user chains

    // An empty filter table: the three built-in chains with policy ACCEPT.
    static ruleset empty(ip_family f);
    chain* find(std::string_view name) noexcept;
    const chain* find(std::string_view name) const noexcept;
    bool operator==(const ruleset&) const = default;
};

// ---- names, text and validation ---------------------------------------------------------

inline constexpr std::array<std::string_view, 3> builtin_chain_names{"INPUT", "FORWARD",
                                                                      "OUTPUT"};

// "-s 10.0.0.0/8 -p tcp -m tcp --dport 80 -j ACCEPT": the rule as iptables-save writes it
// after "-A CHAIN". Pure.
std::string to_rule_spec(const rule& r);
// "-A CHAIN <spec>". Pure.
std::string to_save_line(std::string_view chain, const rule& r);
// The whole table in iptables-save format ("*filter" ... "COMMIT\n"), chain counters
// written as [0:0]. Pure.
std::string save(const ruleset& rs);

// Text form of a CIDR as iptables-save writes it ("10.0.0.0/8", "2001:db8::/32"). Pure.
std::string to_string(const cidr& c);
// Protocol name as iptables-save writes it ("tcp", "gre", "200"). Pure.
std::string proto_name(uint8_t proto);
// Protocol number for a name or number ("tcp", "TCP", "6", "all" -> 0); nullopt if unknown.
std::optional<uint8_t> proto_from_name(std::string_view name) noexcept;

// Where a validation problem is: chain and rule index (rule == -1: the chain itself).
struct ruleset_problem {
    std::string chain;
    int rule = -1;
    std::string reason;
};
// What iptables-restore and the kernel would refuse in a whole table: jumps to chains that
// do not exist or to built-in chains, jump loops reachable from a built-in chain (ELOOP),
// -o in INPUT, -i in OUTPUT, -m mac on a path from OUTPUT. Returns the first problem in
// chain/rule order, nullopt when the table is loadable. Pure.
std::optional<ruleset_problem> check_ruleset(const ruleset& rs);

// Whether `name` can name a user chain: 1..28 chars, not starting with '-' or '!', no
// whitespace, not a built-in chain or a target name. Returns the reason if not. Pure.
std::optional<std::string> chain_name_problem(std::string_view name);

} // namespace sluice
