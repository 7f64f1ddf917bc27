// See cli_request.hpp.
#include "cli_request.hpp"

#include "ipset_parser.hpp"
#include "ruleset_parser.hpp"

#include <cstring>

namespace sluice::cli {

using namespace api;

namespace {

void put_filter(nl::builder& b, const ct_filter_args& f) {
    size_t n = b.begin_nest(a_ct_filter);
    if (f.l3) b.put_u8(a_l3, *f.l3);
    if (f.proto) b.put_u8(a_proto, *f.proto);
    if (f.src) b.put_str(a_src, *f.src);
    if (f.dst) b.put_str(a_dst, *f.dst);
    if (f.sport) b.put_u16(a_sport, *f.sport);
    if (f.dport) b.put_u16(a_dport, *f.dport);
    if (f.state) b.put_str(a_state, *f.state);
    if (f.zone) b.put_u16(a_zone, *f.zone);
    b.end_nest(n);
}

std::string set_create_line(const command& c) {
    std::string line = "create " + c.set + " " + c.type;
    if (!c.options.empty()) line += " " + c.options;
    return line;
}

// Find the attribute at `offset` among `payload`'s attributes (which start at `base`).
std::string find_attr(std::span<const uint8_t> payload, uint32_t base, uint32_t offset, int depth) {
    auto al = nl::parse_attrs(payload, base);
    for (const nl::attr& a : al.items) {
        if (a.offset == offset) return attribute_name(a.type);
        uint32_t end = a.offset + uint32_t(nl::attr_header_len + a.data.size());
        if (a.nested && offset > a.offset && offset < end && depth < 4) {
            std::string inner = find_attr(a.data, a.offset + uint32_t(nl::attr_header_len), offset, depth + 1);
            if (!inner.empty()) return attribute_name(a.type) + "." + inner;
        }
    }
    return {};
}

bool digits_at(std::string_view s, size_t& i, uint32_t& v) {
    size_t start = i;
    v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 9) v = v * 10 + uint32_t(s[i++] - '0');
    return i > start;
}

} // namespace

uint8_t family_number(ip_family f) noexcept { return f == ip_family::ipv6 ? 6 : 4; }

std::string check_command(const command& c, const policy_texts* texts) {
    auto with_position = [](std::string error, std::string_view name, std::string_view text) {
        named_text src{std::string(name), std::string(text)};
        std::string pos = show_position(error, std::span<const named_text>(&src, 1));
        return pos.empty() ? error : error + "\n" + pos.substr(0, pos.size() - 1);
    };
    switch (c.what) {
    case verb::rule_append:
    case verb::rule_insert:
    case verb::rule_delete: {
        if (c.spec.empty()) return {};
        if (c.spec.size() > 1000000) return "rule specification too long (" + std::to_string(c.spec.size()) + " bytes)";
        auto p = parse_rule_spec(c.spec, c.family, "rule");
        if (!p.ok()) return with_position(p.error.to_string(), "rule", c.spec);
        return {};
    }
    case verb::chain_new:
        if (auto why = chain_name_problem(c.chain)) return "chain name \"" + c.chain + "\": " + *why;
        return {};
    case verb::set_create: {
        std::string line = set_create_line(c);
        auto r = parse_ipset(line + "\n", "set");
        if (!r.ok()) return with_position(r.error->to_string(), "set", line);
        return {};
    }
    case verb::restore: {
        if (!texts) return {};
        struct item {
            const std::optional<std::string>* text;
            const std::string* name;
            ip_family family;
        };
        for (auto [text, name, fam] : {item{&texts->rules4, &texts->rules4_name, ip_family::ipv4},
                                       item{&texts->rules6, &texts->rules6_name, ip_family::ipv6}}) {
            if (!*text) continue;
            auto p = parse_iptables_save(**text, *name, fam);
            if (!p.ok()) return with_position(p.error.to_string(), *name, **text);
            if (auto problem = check_ruleset(*p.value)) {
                std::string where = *name + ": chain " + problem->chain;
                if (problem->rule >= 0) where += ", rule " + std::to_string(problem->rule + 1);
                return where + ": " + problem->reason;
            }
        }
        if (texts->sets) {
            auto r = parse_ipset(*texts->sets, texts->sets_name);
            if (!r.ok()) return with_position(r.error->to_string(), texts->sets_name, *texts->sets);
        }
        return {};
    }
    default: return {};
    }
}

void put_dump(nl::builder& b, uint16_t type, uint32_t seq, std::optional<uint8_t> family, std::string_view chain,
              std::string_view set) {
    b.begin(type, nl::f_request | nl::f_dump, seq);
    if (family) b.put_u8(a_family, *family);
    if (!chain.empty()) b.put_str(a_chain, chain);
    if (!set.empty()) b.put_str(a_set, set);
    b.end();
}

void put_request(nl::builder& b, const command& c, uint32_t seq, const policy_texts* texts) {
    constexpr uint16_t change = nl::f_request | nl::f_ack;
    constexpr uint16_t query = nl::f_request | nl::f_ack;
    const uint8_t fam = family_number(c.family);
    switch (c.what) {
    case verb::rule_append:
    case verb::rule_insert:
        b.begin(rule_new, change, seq);
        b.put_u8(a_family, fam);
        b.put_str(a_chain, c.chain);
        b.put_text(a_spec, c.spec);
        if (c.what == verb::rule_insert) b.put_u32(a_position, c.position.value_or(1));
        break;
    case verb::rule_delete:
        b.begin(rule_del, change, seq);
        b.put_u8(a_family, fam);
        b.put_str(a_chain, c.chain);
        if (c.position) b.put_u32(a_position, *c.position);
        else b.put_text(a_spec, c.spec);
        break;
    case verb::rule_flush:
        b.begin(rule_flush, change, seq);
        b.put_u8(a_family, fam);
        if (!c.chain.empty()) b.put_str(a_chain, c.chain);
        break;
    case verb::rule_list: put_dump(b, rule_get, seq, fam, c.chain); return;
    case verb::chain_new:
    case verb::chain_delete:
        b.begin(c.what == verb::chain_new ? chain_new : chain_del, change, seq);
        b.put_u8(a_family, fam);
        b.put_str(a_chain, c.chain);
        break;
    case verb::chain_policy:
        b.begin(api::chain_policy, change, seq);
        b.put_u8(a_family, fam);
        b.put_str(a_chain, c.chain);
        b.put_str(a_policy, c.policy);
        break;
    case verb::chain_list: put_dump(b, chain_get, seq, fam); return;
    case verb::set_create:
        b.begin(set_create, change, seq);
        b.put_str(a_set, c.set);
        b.put_str(a_type, c.type);
        if (!c.options.empty()) b.put_text(a_options, c.options);
        if (c.exist) b.put(a_exist, nullptr, 0);
        break;
    case verb::set_add:
    case verb::set_del:
    case verb::set_test:
        b.begin(c.what == verb::set_add ? set_add : c.what == verb::set_del ? set_del : set_test,
                c.what == verb::set_test ? query : change, seq);
        b.put_str(a_set, c.set);
        b.put_text(a_elem, c.elem);
        if (c.exist) b.put(a_exist, nullptr, 0);
        break;
    case verb::set_list: put_dump(b, set_get, seq, std::nullopt, {}, c.set); return;
    case verb::set_flush:
    case verb::set_destroy:
        b.begin(c.what == verb::set_flush ? set_flush : set_destroy, change, seq);
        if (!c.set.empty()) b.put_str(a_set, c.set);
        break;
    case verb::set_swap:
        b.begin(set_swap, change, seq);
        b.put_str(a_set, c.set);
        b.put_str(a_set2, c.set2);
        break;
    case verb::restore:
        b.begin(table_restore, change, seq);
        if (texts && texts->rules4) b.put_text(a_rules4, *texts->rules4);
        if (texts && texts->rules6) b.put_text(a_rules6, *texts->rules6);
        if (texts && texts->sets) b.put_text(a_sets, *texts->sets);
        break;
    case verb::save: b.begin(table_save, query, seq); break;
    case verb::ct_list:
        b.begin(ct_get, nl::f_request | nl::f_dump, seq);
        if (!c.filter.empty()) put_filter(b, c.filter);
        break;
    case verb::ct_count:
        b.begin(ct_count, query, seq);
        if (!c.filter.empty()) put_filter(b, c.filter);
        break;
    case verb::ct_delete:
        b.begin(ct_delete, change, seq);
        put_filter(b, c.filter);
        break;
    case verb::ct_flush: b.begin(ct_flush, change, seq); break;
    case verb::stats: put_dump(b, stats_get, seq); return;
    case verb::mode:
        if (c.mode.empty()) b.begin(mode_get, query, seq);
        else {
            b.begin(mode_set, change, seq);
            b.put_str(a_mode, c.mode);
        }
        break;
    case verb::generation: b.begin(gen_get, query, seq); break;
    case verb::events: {
        b.begin(ct_subscribe, query, seq);
        uint32_t mask = (c.ev_new ? 1u : 0u) | (c.ev_destroy ? 2u : 0u);
        b.put_u32(a_events, mask ? mask : 3u);
        if (!c.filter.empty()) put_filter(b, c.filter);
        break;
    }
    case verb::batch: return; // several messages: see cli_session
    }
    b.end();
}

std::vector<named_text> sources_of(const command& c, const policy_texts* texts) {
    std::vector<named_text> out;
    if (!c.spec.empty()) out.push_back({"rule", c.spec});
    if (c.what == verb::set_create) out.push_back({"set", set_create_line(c)});
    if (c.what == verb::restore && texts) {
        // The server calls them rules.v4 / rules.v6 / sets; we call them by their file names.
        if (texts->rules4) out.push_back({"rules.v4", *texts->rules4});
        if (texts->rules6) out.push_back({"rules.v6", *texts->rules6});
        if (texts->sets) out.push_back({"sets", *texts->sets});
    }
    return out;
}

std::string attribute_name(uint16_t type) {
    switch (type) {
    case a_generation: return "GENERATION";
    case a_family: return "FAMILY";
    case a_chain: return "CHAIN";
    case a_spec: return "SPEC";
    case a_position: return "POSITION";
    case a_packets: return "PACKETS";
    case a_bytes: return "BYTES";
    case a_policy: return "POLICY";
    case a_rules: return "RULES";
    case a_rules4: return "RULES4";
    case a_rules6: return "RULES6";
    case a_sets: return "SETS";
    case a_set: return "SET";
    case a_set2: return "SET2";
    case a_type: return "TYPE";
    case a_options: return "OPTIONS";
    case a_elem: return "ELEM";
    case a_exist: return "EXIST";
    case a_elements: return "ELEMENTS";
    case a_references: return "REFERENCES";
    case a_ct_filter: return "CT_FILTER";
    case a_ct_flow: return "CT_FLOW";
    case a_count: return "COUNT";
    case a_events: return "EVENTS";
    case a_event: return "EVENT";
    case a_section: return "SECTION";
    case a_kind: return "KIND";
    case a_name: return "NAME";
    case a_counter: return "COUNTER";
    case a_value: return "VALUE";
    case a_mode: return "MODE";
    case a_l3: return "L3";
    case a_proto: return "PROTO";
    case a_src: return "SRC";
    case a_dst: return "DST";
    case a_sport: return "SPORT";
    case a_dport: return "DPORT";
    case a_state: return "STATE";
    case a_zone: return "ZONE";
    case a_timeout: return "TIMEOUT";
    case a_worker: return "WORKER";
    case a_orig_packets: return "ORIG_PACKETS";
    case a_orig_bytes: return "ORIG_BYTES";
    case a_reply_packets: return "REPLY_PACKETS";
    case a_reply_bytes: return "REPLY_BYTES";
    case a_tcp_state: return "TCP_STATE";
    case a_assured: return "ASSURED";
    default: return "#" + std::to_string(type);
    }
}

std::string attribute_at(std::span<const uint8_t> request, uint32_t offset) {
    auto s = nl::split(request);
    if (s.messages.empty() || offset < nl::header_len) return {};
    return find_attr(s.messages.front().payload, uint32_t(nl::header_len), offset, 0);
}

std::string errno_name(int err) {
    if (const char* n = strerrorname_np(err)) return n;
    return "E" + std::to_string(err);
}

std::string show_position(std::string_view error, std::span<const named_text> sources) {
    for (const named_text& src : sources) {
        std::string key = src.name + ":";
        for (size_t at = error.find(key); at != std::string_view::npos; at = error.find(key, at + 1)) {
            // The name must start the text or follow a space / "(".
            if (at > 0 && error[at - 1] != ' ' && error[at - 1] != '(') continue;
            size_t i = at + key.size();
            uint32_t line = 0, col = 0;
            if (!digits_at(error, i, line) || i >= error.size() || error[i] != ':') continue;
            ++i;
            if (!digits_at(error, i, col) || i >= error.size() || error[i] != ':' || line == 0 || col == 0) continue;
            // Line `line` of the text.
            size_t start = 0;
            for (uint32_t l = 1; l < line; ++l) {
                start = src.text.find('\n', start);
                if (start == std::string::npos) break;
                ++start;
            }
            if (start == std::string::npos || start > src.text.size()) continue;
            size_t end = src.text.find('\n', start);
            std::string_view text(src.text);
            std::string_view l = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
            if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
            if (col > l.size() + 1) continue;
            std::string caret;
            for (size_t k = 0; k + 1 < col; ++k) caret += l[k] == '\t' ? '\t' : ' ';
            return "  " + std::string(l) + "\n  " + caret + "^\n";
        }
    }
    return {};
}

std::string describe_refusal(std::span<const uint8_t> request, int err, std::string_view text, uint32_t offset,
                             std::span<const named_text> sources) {
    std::string out = text.empty() ? std::string(std::strerror(err)) : std::string(text);
    if (offset) {
        std::string a = attribute_at(request, offset);
        if (!a.empty() && out.find(a) == std::string::npos) out += " (attribute " + a + ")";
    }
    std::string pos = show_position(out, sources);
    if (!pos.empty()) out += "\n" + pos.substr(0, pos.size() - 1);
    return out;
}

} // namespace sluice::cli
