// Fuzz target for lib/ruleset_parser: parse arbitrary text as an iptables-save file (the
// first byte's low bit picks IPv4 or IPv6); when it parses, the table must pass
// check_ruleset, save() must parse back to an equal ruleset and save the same text again,
// and the reference evaluator must terminate on a few packets. The first line is also fed
// to parse_rule_spec, whose rules must survive to_rule_spec -> parse_rule_spec unchanged.
// Traps on any violation.
#include "rule_eval.hpp"
#include "ruleset.hpp"
#include "ruleset_parser.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace sluice;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

void exercise_evaluator(const ruleset& rs) {
    packet_meta p{};
    bool v6 = rs.family == ip_family::ipv6;
    p.l3 = v6 ? l3_kind::ipv6 : l3_kind::ipv4;
    if (!v6) p.src.b[10] = p.src.b[11] = p.dst.b[10] = p.dst.b[11] = 0xff;
    packet_context ctx;
    ctx.in_iface = "eth0";
    ctx.out_iface = "eth1";
    eval_hooks hooks;
    uint32_t seed = 1;
    hooks.random = [&] { return seed = seed * 1103515245u + 12345u; };
    hooks.sets = [](std::string_view name, const packet_meta&, dim_flags, const packet_context&) {
        return name.size() % 2 == 0;
    };
    const uint8_t protos[] = {6, 17, 1, 58, 47};
    for (uint8_t proto : protos) {
        p.l4_proto = proto;
        p.sport = 1024;
        p.dport = 80;
        p.tcp_flags = 0x02;
        p.icmp_type = 8;
        evaluate(rs, "FORWARD", p, ctx, hooks);
        evaluate(rs, "INPUT", p, ctx, hooks);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 64 * 1024) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    ip_family fam = (size > 0 && (data[0] & 1)) ? ip_family::ipv6 : ip_family::ipv4;

    auto first = parse_iptables_save(text, "fuzz", fam);
    if (first.ok()) {
        const ruleset& rs = *first.value;
        check(!check_ruleset(rs));
        std::string saved = save(rs);
        auto second = parse_iptables_save(saved, "saved", fam);
        check(second.ok());
        check(*second.value == rs);
        check(save(*second.value) == saved);
        exercise_evaluator(rs);
    } else {
        check(!first.error.reason.empty());
        check(first.error.line >= 1 && first.error.column >= 1);
    }

    std::string_view line = text.substr(0, text.find('\n'));
    auto spec = parse_rule_spec(line, fam);
    if (spec.ok()) {
        for (const rule& r : *spec.value) {
            std::string s = to_rule_spec(r);
            auto again = parse_rule_spec(s, fam);
            check(again.ok());
            check(again.value->size() == 1 && (*again.value)[0] == r);
        }
    }
    return 0;
}
