// Fuzz target for lib/ipset_parser: parse arbitrary text as an ipset restore file; when it
// parses and applies, `save` it, restore the saved text into a fresh table and save again —
// the two saves must hold the same lines (hash order may differ between tables), and each
// single element must survive format -> parse_element unchanged. Traps on any violation.
//
// Sizes are clamped before applying (maxelem, hashsize) so one input cannot spend seconds
// filling a million-element set; parsing itself sees the text unchanged.
#include "ipset_parser.hpp"
#include "set_table.hpp"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

using namespace sluice;

namespace {

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        v.push_back(l);
    std::sort(v.begin(), v.end());
    return v;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 4096) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_ipset(text, "fuzz");
    if (!parsed.ok()) {
        if (parsed.error->line == 0 || parsed.error->column == 0 || parsed.error->reason.empty())
            __builtin_trap();
        return 0;
    }
    for (auto& c : parsed.commands) {
        c.opt.maxelem = std::min<uint32_t>(c.opt.maxelem, 512);
        c.opt.hashsize = std::min<uint32_t>(c.opt.hashsize, 256);
        if (c.opt.range_to - c.opt.range_from > 4096)
            c.opt.range_to = uint16_t(c.opt.range_from + 4096);
    }
    set_table t1;
    if (apply_ipset(t1, parsed.commands, "fuzz")) return 0;
    std::string s1 = t1.save();

    set_table t2;
    if (auto err = restore_ipset(t2, s1, "saved")) __builtin_trap();
    std::string s2 = t2.save();
    if (lines(s1) != lines(s2)) __builtin_trap();

    // Every element line's element text reparses to itself.
    for (const ip_set* s : t1.list()) {
        std::string one = t1.save(s->name());
        std::istringstream in(one);
        std::string l;
        std::getline(in, l); // create line
        std::string prefix = "add " + s->name() + " ";
        while (std::getline(in, l)) {
            if (l.compare(0, prefix.size(), prefix) != 0) __builtin_trap();
            std::string rest = l.substr(prefix.size());
            std::string elem = rest.substr(0, rest.find(' '));
            auto r = parse_element(s->type(), s->family(), elem);
            if (!r.element) __builtin_trap();
            if (format_element(s->type(), s->family(), *r.element) != elem) __builtin_trap();
        }
    }
    return 0;
}
