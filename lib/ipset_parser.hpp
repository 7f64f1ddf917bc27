// Reader and writer of `ipset save` / `ipset restore` text: create, add, del, test, flush,
// destroy, swap and rename lines (also the old -N/-A/-D/-T/-F/-X/-W/-E spellings), with
// `-exist` (or `-!`) anywhere on a line, `#` comments and blank lines. Elements are parsed
// per set type and family exactly as ipset writes them (192.0.2.0/24,udp:53,
// 2001:db8::1,ipv6-icmp:echo-request, 192.0.2.0/24,eth0, 1000-1010, ...), ranges included;
// the set table expands them. Counters, comments and skb* extensions on add lines are
// accepted and ignored.
//
// Lifecycle: parsing is a pure function of the text (plus, for sets the text does not
// create, the types of sets already in a table). `apply_ipset` is all-or-nothing: it first
// runs the commands against a private copy of the sets they touch, and changes the real
// table only if every command succeeded there. Errors name file:line:column and a reason.
//
// Thread safety: parse/format functions are pure (any thread); apply_ipset and
// restore_ipset change a set_table and so run on its writer thread only.
#pragma once

#include "set_table.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct ipset_error {
    std::string file;
    uint32_t line = 0, column = 0; // 1-based
    std::string reason;
    std::string to_string() const; // "file:line:column: reason"
};

struct ipset_command {
    enum class op : uint8_t { create, add, del, test, flush, destroy, swap, rename };
    op kind = op::create;
    std::string name;                  // empty for flush/destroy of all sets
    std::string name2;                 // swap / rename
    set_type type = set_type::hash_ip; // create
    set_options opt;                   // create
    set_element element;               // add / del / test
    bool exist = false;
    uint32_t line = 0, column = 0; // of the token an apply-time error is about
};

struct ipset_parse_result {
    std::vector<ipset_command> commands;
    std::optional<ipset_error> error;
    bool ok() const noexcept { return !error; }
};

// Parse a restore file. Sets it adds to but does not create are looked up in `existing`
// (may be null). Stops at the first error. Pure.
ipset_parse_result parse_ipset(std::string_view text, std::string_view filename = "<input>",
                               const set_table* existing = nullptr);

struct element_parse_result {
    std::optional<set_element> element;
    std::string error;
    uint32_t column = 0; // 1-based offset into the text of the error
};
// Parse one element (as on an add line, without the trailing flags) for a set of the given
// type and family. Pure.
element_parse_result parse_element(set_type type, set_family family, std::string_view text);

// Run parsed commands all-or-nothing; nullopt on success. Writer thread of `table`.
std::optional<ipset_error> apply_ipset(set_table& table, const std::vector<ipset_command>& cmds,
                                       std::string_view filename = "<input>");
// parse_ipset + apply_ipset. Writer thread of `table`.
std::optional<ipset_error> restore_ipset(set_table& table, std::string_view text,
                                         std::string_view filename = "<input>");

// The create line of `ipset save` (without newline) and one element's text. Pure.
std::string format_create(std::string_view name, set_type type, const set_options& opt);
std::string format_element(set_type type, set_family family, const set_element& e);

} // namespace sluice
