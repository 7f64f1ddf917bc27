// See policy.hpp.
#include "policy.hpp"

#include "ipset_parser.hpp"
#include "ruleset_parser.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sluice {

std::string_view name_of(filter_mode m) noexcept {
    switch (m) {
    case filter_mode::enforce: return "enforce";
    case filter_mode::monitor: return "monitor";
    case filter_mode::bypass: return "bypass";
    }
    return "?";
}

std::optional<filter_mode> filter_mode_from(std::string_view name) noexcept {
    for (auto m : {filter_mode::enforce, filter_mode::monitor, filter_mode::bypass})
        if (name == name_of(m)) return m;
    return std::nullopt;
}

std::pair<uint64_t, uint64_t> policy_snapshot::rule_totals(bool ipv6, uint32_t global) const noexcept {
    uint64_t p = 0, b = 0;
    for (unsigned w = 0; w < n_workers; ++w) {
        const auto& c = (ipv6 ? workers[w].rules6 : workers[w].rules4)[global];
        p += c.packets.get();
        b += c.bytes.get();
    }
    return {p, b};
}

namespace {

// Parse one family's file; an empty text is the kernel's empty filter table.
std::string parse_rules(const policy_text& t, ip_family f, ruleset& out) {
    auto r = parse_iptables_save(t.text, t.name, f);
    if (!r.ok()) return r.error.to_string();
    out = std::move(*r.value);
    return {};
}

} // namespace

policy_build_result build_policy(const policy_sources& src, filter_mode mode, uint32_t generation,
                                 std::span<const port_binding> ports, unsigned n_workers,
                                 uint64_t now_ns) {
    policy_build_result res;
    auto p = std::make_unique<policy_snapshot>();
    p->generation = generation;
    p->mode = mode;
    p->n_workers = n_workers;
    // Sets are never mutated after publication by this path (a reload builds a new table),
    // so retired memory can simply wait for collect_garbage() before publication.
    p->sets = std::make_unique<set_table>();
    if (!src.sets.text.empty())
        if (auto e = restore_ipset(*p->sets, src.sets.text, src.sets.name)) {
            res.error = e->to_string();
            return res;
        }
    p->sets->collect_garbage();
    if (auto e = parse_rules(src.rules4, ip_family::ipv4, p->rules4); !e.empty()) {
        res.error = e;
        return res;
    }
    if (auto e = parse_rules(src.rules6, ip_family::ipv6, p->rules6); !e.empty()) {
        res.error = e;
        return res;
    }
    for (auto [rs, out, name] : {std::tuple{&p->rules4, &p->forward4, &src.rules4.name},
                                 std::tuple{&p->rules6, &p->forward6, &src.rules6.name}}) {
        auto c = compile(*rs, hook::forward, *p->sets, ports);
        if (!c.ok()) {
            res.error = (name->empty() ? std::string("rules") : *name) + ": " + c.error;
            return res;
        }
        *out = std::move(c.cls);
    }
    p->workers = std::make_unique<policy_worker_state[]>(n_workers);
    for (unsigned w = 0; w < n_workers; ++w) {
        auto& ws = p->workers[w];
        ws.rules4 = std::make_unique<rule_counter[]>(p->forward4->rule_count());
        ws.rules6 = std::make_unique<rule_counter[]>(p->forward6->rule_count());
        ws.limits4.resize(p->forward4->limit_count());
        ws.limits6.resize(p->forward6->limit_count());
        p->forward4->init_limits(ws.limits4, now_ns);
        p->forward6->init_limits(ws.limits6, now_ns);
    }
    res.snapshot = std::move(p);
    return res;
}

std::string read_policy_file(const std::string& path, policy_text& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return path + ": cannot open: " + std::strerror(errno);
    std::ostringstream s;
    s << f.rdbuf();
    if (f.bad()) return path + ": read error";
    out.name = path;
    out.text = s.str();
    return {};
}

} // namespace sluice
