// Conntrack states as the ruleset sees them (`-m conntrack --ctstate`), shared by the
// conntrack engine that decides them and the rule model / classifier that match them.
// Values are the kernel's XT_CONNTRACK_STATE_* bits (xt_conntrack.h): INVALID 1,
// ESTABLISHED 2, RELATED 4, NEW 8, UNTRACKED 64, so a rule's --ctstate mask matches a
// packet iff (mask & ct_bit(state)) != 0. `none` is "no state yet" (conntrack's answer
// for a packet it could not judge: deferred, fragment, table full).
//
// Thread safety: constants and pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

enum class ct_state : uint8_t {
    none = 0,
    invalid = 1u << 0,
    established = 1u << 1,
    related = 1u << 2,
    new_ = 1u << 3,
    untracked = 1u << 6,
};
constexpr uint8_t ct_bit(ct_state s) noexcept { return static_cast<uint8_t>(s); }
constexpr uint8_t operator|(ct_state a, ct_state b) noexcept { return ct_bit(a) | ct_bit(b); }
constexpr bool ct_state_matches(uint8_t mask, ct_state s) noexcept { return (mask & ct_bit(s)) != 0; }
inline constexpr uint8_t ct_state_all = 0x4f;

// "NEW", "ESTABLISHED", ... as conntrack(8) and iptables print them; "NONE" for none.
constexpr std::string_view name_of(ct_state s) noexcept {
    switch (s) {
    case ct_state::none: return "NONE";
    case ct_state::invalid: return "INVALID";
    case ct_state::established: return "ESTABLISHED";
    case ct_state::related: return "RELATED";
    case ct_state::new_: return "NEW";
    case ct_state::untracked: return "UNTRACKED";
    }
    return "?";
}

} // namespace sluice
