// See policy_store.hpp.
#include "policy_store.hpp"

#include "ipset_parser.hpp"
#include "ruleset_parser.hpp"

#include <algorithm>
#include <cerrno>

namespace sluice {

namespace {

struct failure {
    int err;
    std::string text;
};

// A word that goes into an ipset restore line: no line breaks (they would start a new
// command), and names without blanks.
std::optional<failure> check_word(std::string_view what, std::string_view v, bool blanks_ok) {
    if (v.empty()) return failure{EINVAL, std::string(what) + " is empty"};
    for (char c : v) {
        if (c == '\n' || c == '\r' || c == '\0')
            return failure{EINVAL, std::string(what) + " contains a line break"};
        if (!blanks_ok && (c == ' ' || c == '\t'))
            return failure{EINVAL, std::string(what) + " \"" + std::string(v) + "\" contains blanks"};
    }
    return std::nullopt;
}

bool references_set(const ruleset& rs, std::string_view name) {
    for (const chain& c : rs.chains)
        for (const rule& r : c.rules)
            for (const match& m : r.matches)
                if (auto* s = std::get_if<set_match>(&m); s && s->name == name) return true;
    return false;
}

// Apply one rule/chain change to a copy of the ruleset.
std::optional<failure> apply_rule_change(ruleset& rs, const change& c) {
    using k = change::kind;
    const char* fam = rs.family == ip_family::ipv4 ? "iptables" : "ip6tables";
    auto need_chain = [&](chain*& out) -> std::optional<failure> {
        out = rs.find(c.chain);
        if (!out) return failure{ENOENT, std::string(fam) + ": chain \"" + c.chain + "\" does not exist"};
        return std::nullopt;
    };
    chain* ch = nullptr;
    switch (c.op) {
    case k::rule_append:
    case k::rule_insert: {
        if (auto f = need_chain(ch)) return f;
        auto p = parse_rule_spec(c.spec, rs.family, "rule");
        if (!p.ok()) return failure{EINVAL, p.error.to_string()};
        size_t at = ch->rules.size();
        if (c.op == k::rule_insert) {
            uint32_t pos = c.position ? c.position : 1;
            if (pos > ch->rules.size() + 1)
                return failure{E2BIG, "index of insertion too big: " + std::to_string(pos) + " (chain " +
                                          c.chain + " has " + std::to_string(ch->rules.size()) + " rules)"};
            at = pos - 1;
        }
        ch->rules.insert(ch->rules.begin() + long(at), p.value->begin(), p.value->end());
        return std::nullopt;
    }
    case k::rule_delete: {
        if (auto f = need_chain(ch)) return f;
        if (c.position) {
            if (c.position > ch->rules.size())
                return failure{ENOENT, "index of deletion too big: " + std::to_string(c.position) + " (chain " +
                                           c.chain + " has " + std::to_string(ch->rules.size()) + " rules)"};
            ch->rules.erase(ch->rules.begin() + long(c.position - 1));
            return std::nullopt;
        }
        auto p = parse_rule_spec(c.spec, rs.family, "rule");
        if (!p.ok()) return failure{EINVAL, p.error.to_string()};
        for (const rule& r : *p.value) {
            auto it = std::find(ch->rules.begin(), ch->rules.end(), r);
            if (it == ch->rules.end())
                return failure{ENOENT, "bad rule (does a matching rule exist in chain " + c.chain + "?): " +
                                           to_rule_spec(r)};
            ch->rules.erase(it);
        }
        return std::nullopt;
    }
    case k::rule_flush:
        if (c.chain.empty()) {
            for (chain& x : rs.chains) x.rules.clear();
            return std::nullopt;
        }
        if (auto f = need_chain(ch)) return f;
        ch->rules.clear();
        return std::nullopt;
    case k::chain_new:
        if (rs.find(c.chain)) return failure{EEXIST, std::string(fam) + ": chain \"" + c.chain + "\" already exists"};
        if (auto why = chain_name_problem(c.chain)) return failure{EINVAL, "chain name \"" + c.chain + "\": " + *why};
        rs.chains.push_back(chain{c.chain, false, chain_policy::none, {}});
        return std::nullopt;
    case k::chain_delete: {
        if (auto f = need_chain(ch)) return f;
        if (ch->builtin) return failure{EPERM, "chain " + c.chain + " is built in and cannot be deleted"};
        if (!ch->rules.empty())
            return failure{ENOTEMPTY, "chain " + c.chain + " is not empty (" + std::to_string(ch->rules.size()) + " rules)"};
        for (const chain& x : rs.chains)
            for (const rule& r : x.rules)
                if ((r.target.kind == target_kind::jump || r.target.kind == target_kind::go_to) &&
                    r.target.chain == c.chain)
                    return failure{EBUSY, "chain " + c.chain + " is referenced from chain " + x.name};
        rs.chains.erase(rs.chains.begin() + (ch - rs.chains.data()));
        return std::nullopt;
    }
    case k::chain_policy: {
        if (auto f = need_chain(ch)) return f;
        if (!ch->builtin) return failure{EINVAL, "only built-in chains have a policy (" + c.chain + " is a user chain)"};
        if (c.policy == "ACCEPT") ch->policy = chain_policy::accept;
        else if (c.policy == "DROP") ch->policy = chain_policy::drop;
        else return failure{EINVAL, "policy \"" + c.policy + "\": must be ACCEPT or DROP"};
        return std::nullopt;
    }
    default: return std::nullopt;
    }
}

} // namespace

policy_store::policy_store() : sets_(std::make_unique<set_table>()) {}

uint32_t policy_store::set_references(std::string_view name) const {
    uint32_t n = 0;
    for (const ruleset* rs : {&rules4_, &rules6_})
        for (const chain& c : rs->chains)
            for (const rule& r : c.rules)
                for (const match& m : r.matches)
                    if (auto* s = std::get_if<set_match>(&m); s && s->name == name) ++n;
    return n;
}

commit_result policy_store::commit(const std::vector<change>& changes,
                                   std::optional<uint32_t> expect_generation) {
    using k = change::kind;
    commit_result res;
    auto fail = [&](uint32_t index, int err, std::string text) {
        res.ok = false;
        res.err = err;
        res.failed = index;
        res.error = std::move(text);
        return res;
    };
    if (expect_generation && *expect_generation != generation_)
        return fail(0, ESTALE, "generation " + std::to_string(*expect_generation) + " is stale: the policy is at generation " +
                                   std::to_string(generation_) + " (someone else changed it; re-read and retry)");
    if (changes.empty()) return fail(0, EINVAL, "empty transaction");

    ruleset r4 = rules4_, r6 = rules6_;
    filter_mode mode = mode_;
    bool structural = false;
    std::optional<std::string> sets_replace;
    std::string set_lines;
    std::vector<uint32_t> line_owner; // set_lines line -> change index
    auto add_line = [&](const change& c, std::string line) {
        set_lines += line + "\n";
        line_owner.push_back(c.index);
    };
    for (const change& c : changes) {
        switch (c.op) {
        case k::rule_append: case k::rule_insert: case k::rule_delete: case k::rule_flush:
        case k::chain_new: case k::chain_delete: case k::chain_policy:
            if (auto f = apply_rule_change(c.family == ip_family::ipv4 ? r4 : r6, c))
                return fail(c.index, f->err, f->text);
            structural = true;
            break;
        case k::restore:
            if (c.rules4) {
                auto p = parse_iptables_save(*c.rules4, "rules.v4", ip_family::ipv4);
                if (!p.ok()) return fail(c.index, EINVAL, p.error.to_string());
                r4 = std::move(*p.value);
            }
            if (c.rules6) {
                auto p = parse_iptables_save(*c.rules6, "rules.v6", ip_family::ipv6);
                if (!p.ok()) return fail(c.index, EINVAL, p.error.to_string());
                r6 = std::move(*p.value);
            }
            if (c.sets) {
                sets_replace = *c.sets;
                set_lines.clear();
                line_owner.clear();
            }
            if (!c.rules4 && !c.rules6 && !c.sets) return fail(c.index, EINVAL, "restore without RULES4, RULES6 or SETS");
            structural = true;
            break;
        case k::set_create:
            for (auto [w, v, b] : {std::tuple{"set name", &c.set, false}, std::tuple{"set type", &c.type, false}})
                if (auto f = check_word(w, *v, b)) return fail(c.index, f->err, f->text);
            if (!c.options.empty())
                if (auto f = check_word("set options", c.options, true)) return fail(c.index, f->err, f->text);
            add_line(c, "create " + c.set + " " + c.type + (c.options.empty() ? "" : " " + c.options) +
                            (c.exist ? " -exist" : ""));
            structural = true;
            break;
        case k::set_destroy:
            if (!c.set.empty()) {
                if (auto f = check_word("set name", c.set, false)) return fail(c.index, f->err, f->text);
                if (references_set(r4, c.set) || references_set(r6, c.set))
                    return fail(c.index, EBUSY, "set " + c.set + " cannot be destroyed: it is in use by a rule");
            }
            add_line(c, c.set.empty() ? "destroy" : "destroy " + c.set);
            structural = true;
            break;
        case k::set_flush:
            if (!c.set.empty())
                if (auto f = check_word("set name", c.set, false)) return fail(c.index, f->err, f->text);
            add_line(c, c.set.empty() ? "flush" : "flush " + c.set);
            break;
        case k::set_swap:
            for (auto* v : {&c.set, &c.set2})
                if (auto f = check_word("set name", *v, false)) return fail(c.index, f->err, f->text);
            add_line(c, "swap " + c.set + " " + c.set2);
            break;
        case k::set_add:
        case k::set_del:
            if (auto f = check_word("set name", c.set, false)) return fail(c.index, f->err, f->text);
            if (auto f = check_word("element", c.elem, true)) return fail(c.index, f->err, f->text);
            add_line(c, std::string(c.op == k::set_add ? "add " : "del ") + c.set + " " + c.elem +
                            (c.exist ? " -exist" : ""));
            break;
        case k::mode:
            mode = c.mode;
            structural = true;
            break;
        }
    }

    auto set_failure = [&](const ipset_error& e) {
        uint32_t idx = e.line >= 1 && e.line <= line_owner.size() ? line_owner[e.line - 1] : 0;
        // The reason without our private file name: "set add: reason" reads better.
        const bool exists = e.reason.find("already") != std::string::npos;
        const bool missing = e.reason.find("does not exist") != std::string::npos ||
                             e.reason.find("not added") != std::string::npos;
        return fail(idx, exists ? EEXIST : missing ? ENOENT : EINVAL,
                    "column " + std::to_string(e.column) + ": " + e.reason);
    };

    if (!structural && !sets_replace) {
        // Only elements change: the live table, all-or-nothing.
        auto parsed = parse_ipset(set_lines, "sets", sets_.get());
        if (!parsed.ok()) return set_failure(*parsed.error);
        if (auto e = apply_ipset(*sets_, parsed.commands, "sets")) return set_failure(*e);
        sets_->collect_garbage();
        ++generation_;
        res.ok = true;
        res.sets_only = true;
        res.set_lines = std::move(set_lines);
        return res;
    }

    // Structural: build the candidate sets, check the rulesets, compile it all as the
    // fast path will.
    auto next_sets = std::make_unique<set_table>();
    std::string base = sets_replace ? *sets_replace : sets_->save();
    if (auto e = restore_ipset(*next_sets, base, "sets")) return fail(0, EINVAL, e->to_string());
    if (!set_lines.empty()) {
        auto parsed = parse_ipset(set_lines, "sets", next_sets.get());
        if (!parsed.ok()) return set_failure(*parsed.error);
        if (auto e = apply_ipset(*next_sets, parsed.commands, "sets")) return set_failure(*e);
    }
    next_sets->collect_garbage();
    for (const ruleset* rs : {&r4, &r6})
        if (auto p = check_ruleset(*rs))
            return fail(changes.back().index, EINVAL,
                        std::string(rs == &r4 ? "iptables" : "ip6tables") + ": chain " + p->chain +
                            (p->rule >= 0 ? " rule " + std::to_string(p->rule + 1) : std::string()) + ": " + p->reason);
    std::string sets_text = next_sets->save();
    policy_sources src{{"rules.v4", save(r4)}, {"rules.v6", save(r6)}, {"sets", sets_text}};
    auto built = build_policy(src, mode, generation_ + 1, {}, 1, 0);
    if (!built.snapshot) return fail(changes.back().index, EINVAL, built.error);

    rules4_ = std::move(r4);
    rules6_ = std::move(r6);
    sets_ = std::move(next_sets);
    mode_ = mode;
    ++generation_;
    res.ok = true;
    return res;
}

std::string policy_store::save_to(const std::string& dir) const {
    return write_state_dir(dir, generation_, mode_, save(rules4_), save(rules6_), sets_->save());
}

std::string policy_store::load_from(const std::string& dir) {
    state_dir_contents st = read_state_dir(dir, filter_mode::enforce);
    if (!st.error.empty()) return st.error;
    if (!st.found) return {}; // nothing persisted yet
    auto p4 = parse_iptables_save(st.sources.rules4.text, st.sources.rules4.name, ip_family::ipv4);
    if (!p4.ok()) return p4.error.to_string();
    auto p6 = parse_iptables_save(st.sources.rules6.text, st.sources.rules6.name, ip_family::ipv6);
    if (!p6.ok()) return p6.error.to_string();
    auto s = std::make_unique<set_table>();
    if (auto e = restore_ipset(*s, st.sources.sets.text, st.sources.sets.name)) return e->to_string();
    s->collect_garbage();
    rules4_ = std::move(*p4.value);
    rules6_ = std::move(*p6.value);
    sets_ = std::move(s);
    mode_ = st.mode;
    generation_ = st.generation;
    return {};
}

} // namespace sluice
