// policy_store: sluice-control's authoritative policy — the IPv4 and IPv6 filter tables,
// the ipsets, the enforcement mode and the generation number — and the only code that
// changes it.
//
// Changes arrive as `change`s (one API request each). A transaction is a list of changes
// applied all-or-nothing: the rulesets are edited on copies, the set commands are checked
// against the set table, and the result is compiled exactly as sluice-fastpath will
// compile it (build_policy) before anything is committed. A committed transaction is one
// new generation. Transactions that touch only set elements (add/del/flush/swap) are
// applied to the live set table and reported as `sets_only`, so the fast path can apply
// the same lines to its live sets without recompiling rules; anything else yields a whole
// new policy text.
//
// Persistence: save_to()/load_from() keep the policy in a state directory
// (read_state_dir/write_state_dir in policy.hpp: the files sluice-fastpath starts from).
//
// Thread safety: one thread (sluice-control's main loop).
#pragma once

#include "policy.hpp"
#include "ruleset.hpp"
#include "set_table.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

// One requested change. Which fields matter depends on `op`.
struct change {
    enum class kind : uint8_t {
        rule_append, rule_insert, rule_delete, rule_flush,
        chain_new, chain_delete, chain_policy,
        restore, // whole texts (rules4 / rules6 / sets: those given)
        set_create, set_destroy, set_flush, set_swap, set_add, set_del,
        mode,
    };
    kind op = kind::rule_append;
    ip_family family = ip_family::ipv4;
    std::string chain;
    std::string spec;          // rule spec (append/insert/delete-by-spec)
    uint32_t position = 0;     // 1-based; 0: none
    std::string policy;        // ACCEPT / DROP
    std::optional<std::string> rules4, rules6, sets; // restore
    std::string set, set2, type, options, elem;
    bool exist = false;
    filter_mode mode = filter_mode::enforce;
    uint32_t index = 0;        // position of the change in its transaction (errors)
};

struct commit_result {
    bool ok = false;
    int err = 0;            // errno-style reason when !ok
    std::string error;      // precise text
    uint32_t failed = 0;    // index of the change that failed
    bool sets_only = false; // only set elements changed: see set_lines
    std::string set_lines;  // ipset restore lines of a sets_only commit
};

class policy_store {
public:
    policy_store();

    // Apply `changes` all-or-nothing as generation()+1. `expect_generation`, when given,
    // must equal generation() (else ESTALE).
    commit_result commit(const std::vector<change>& changes,
                         std::optional<uint32_t> expect_generation = std::nullopt);

    uint32_t generation() const noexcept { return generation_; }
    filter_mode mode() const noexcept { return mode_; }
    const ruleset& rules(ip_family f) const noexcept { return f == ip_family::ipv4 ? rules4_ : rules6_; }
    const set_table& sets() const noexcept { return *sets_; }
    std::string rules_text(ip_family f) const { return save(rules(f)); }
    std::string sets_text() const { return sets_->save(); }
    // Rules (both families) that reference set `name`.
    uint32_t set_references(std::string_view name) const;

    // Persist to / restore from `dir`. "" on success, else the reason. load() of a
    // directory without a policy leaves the store empty (generation 0) and succeeds.
    std::string save_to(const std::string& dir) const;
    std::string load_from(const std::string& dir);

private:
    uint32_t generation_ = 0;
    filter_mode mode_ = filter_mode::enforce;
    ruleset rules4_ = ruleset::empty(ip_family::ipv4);
    ruleset rules6_ = ruleset::empty(ip_family::ipv6);
    std::unique_ptr<set_table> sets_;
};

} // namespace sluice
