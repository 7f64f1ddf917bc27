// Parsing iptables-save / ip6tables-save text (what iptables-restore reads) and single
// rule specifications (what `sluicectl rule append CHAIN ...` passes) into the policy
// model of ruleset.hpp.
//
// The parser follows iptables-restore: lines are processed in order; `*filter` opens the
// table (any other table is refused), `:NAME POLICY [pkts:bytes]` declares a chain,
// `[pkts:bytes] -A CHAIN spec` (or `-I CHAIN [n] spec`) adds rules, `COMMIT` closes the
// table; `#` lines are comments. Words are split the way iptables-restore splits them
// (double quotes group, backslash escapes inside quotes). Options, their negation and
// their checks follow iptables 1.8 and the kernel's checkentry: a ruleset that parses here
// is one iptables-restore would load, and its meaning is what the kernel would do.
// `-s`/`-d` lists expand into one rule per address pair, as iptables does.
//
// Errors name the place and the reason: `rules.v4:12:34: unknown option "--dprot"`
// (1-based line and column of the offending word). No exception leaves these functions.
//
// Thread safety: pure functions; call from any thread.
#pragma once

#include "ruleset.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct parse_error {
    std::string file;
    uint32_t line = 0;   // 1-based
    uint32_t column = 0; // 1-based, in bytes
    std::string reason;
    // "file:line:column: reason"
    std::string to_string() const;
};

// A value or the error that prevented it.
template <class T>
struct parsed {
    std::optional<T> value;
    parse_error error;
    bool ok() const noexcept { return value.has_value(); }
};

// Parse a whole iptables-save file for `family`. An empty file (or one with only comments)
// gives ruleset::empty(family).
parsed<ruleset> parse_iptables_save(std::string_view text, std::string_view filename,
                                    ip_family family) noexcept;

// Parse one rule specification ("-s 192.0.2.0/24 -p tcp --dport 22 -j ACCEPT"): the
// words after `-A CHAIN`. Comma lists in -s/-d give several rules. Errors are reported as
// `source:1:column: reason`. Whether a -j/-g chain exists, and the per-chain checks, are
// for check_ruleset once the rule is in a ruleset.
parsed<std::vector<rule>> parse_rule_spec(std::string_view args, ip_family family,
                                          std::string_view source = "rule") noexcept;

// A decimal number as iptables reads one (digits only, at most `max`); nullopt otherwise.
std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max) noexcept;

} // namespace sluice
