// cli_request: what sluicectl sends for a command, what it checks before sending, and how
// it words a refusal.
//
//   * check_command: the local checks that make a bad rule or set fail early, with its
//     position, before anything is sent (the server checks again): rule specifications
//     (parse_rule_spec), chain names, set create lines (parse_ipset), restore texts
//     (parse_iptables_save + check_ruleset, parse_ipset).
//   * put_request: the one request message of a command (policy_api.hpp gives the
//     attributes). Changes carry NLM_F_REQUEST|NLM_F_ACK; dumps NLM_F_REQUEST|NLM_F_DUMP;
//     other queries NLM_F_REQUEST|NLM_F_ACK (their answer, then the ACK, as netlink does).
//   * describe_refusal: the server's error text, the attribute its extended-ack offset
//     points at, and — when the text names a position in something we sent
//     ("rule:1:12: …", "rules.v4:7:3: …") — that line with a caret under the column.
//
// Thread safety: pure functions; any thread.
#pragma once

#include "cli_command.hpp"
#include "netlink.hpp"
#include "policy_api.hpp"

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace sluice::cli {

// Texts of a restore, and the names errors call them by (the file names).
struct policy_texts {
    std::optional<std::string> rules4, rules6, sets;
    std::string rules4_name = "rules.v4", rules6_name = "rules.v6", sets_name = "sets";
};

// A text we sent, by the name error messages give it.
struct named_text {
    std::string name;
    std::string text;
};

uint8_t family_number(ip_family f) noexcept;

// "" when `c` passes the local checks, else the error (one line naming the place and the
// reason, then the offending line with a caret when there is one). `texts` for restore.
std::string check_command(const command& c, const policy_texts* texts = nullptr);

// Append the request of `c` (any verb except batch) as one message with sequence `seq`.
void put_request(nl::builder& b, const command& c, uint32_t seq, const policy_texts* texts = nullptr);

// A dump request (NLM_F_REQUEST|NLM_F_DUMP) with the optional attributes.
void put_dump(nl::builder& b, uint16_t type, uint32_t seq, std::optional<uint8_t> family = std::nullopt,
              std::string_view chain = {}, std::string_view set = {});

// The texts whose positions a refusal of `c` may name (for describe_refusal).
std::vector<named_text> sources_of(const command& c, const policy_texts* texts = nullptr);

// "SPEC", "CT_FILTER", ... ; "#N" for an unknown number.
std::string attribute_name(uint16_t type);
// Name (nested: "CT_FILTER.SRC") of the attribute at `offset` in `request` (one message);
// "" when no attribute starts there.
std::string attribute_at(std::span<const uint8_t> request, uint32_t offset);
// "ENOENT", ... ("E<n>" if unknown).
std::string errno_name(int err);

// When `error` contains "NAME:LINE:COL:" for a text of that name: the line, indented by
// two spaces, and a caret under the column (two lines, newline-terminated). Else "".
std::string show_position(std::string_view error, std::span<const named_text> sources);

// The human text of a refusal: the server's text (strerror when it sent none), the
// attribute the offset names, and show_position. No trailing newline.
std::string describe_refusal(std::span<const uint8_t> request, int err, std::string_view text,
                             uint32_t offset, std::span<const named_text> sources);

} // namespace sluice::cli
