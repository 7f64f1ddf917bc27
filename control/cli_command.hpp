// cli_command: what a sluicectl command line means — the words users type turned into a
// `command` (which operation, on what, with which options), with the help text of every
// command and subcommand, and the few text rules the CLI shares with iptables: how rule
// words are joined into one specification (quoting as iptables-save does) and how a batch
// file's lines are split into words.
//
// Options are read with Boost.Program_options in three layers: global options before the
// command word (`sluicectl -s SOCK -j rule ...`), then the command's own options. Rule
// specifications are iptables words (`-s`, `-j`, `-p` mean what iptables says), so for
// `rule append|insert|delete` option parsing stops at CHAIN and every word after it belongs
// to the specification. Set commands accept ipset's `-exist` (or `-!`) anywhere.
//
// Only the command line is checked here (exit status 2 on a mistake); whether a rule or a
// set element is valid is for check_command (cli_request.hpp) and the server.
//
// Thread safety: pure functions of their arguments; any thread.
#pragma once

#include "ruleset.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::cli {

inline constexpr const char* default_socket = "/run/sluice/control.sock";

// Exit statuses scripts can rely on.
enum exit_status : int {
    exit_ok = 0,
    exit_failed = 1,  // the server refused or failed (or a rule/set did not parse); for
                      // `set test`: the element is not in the set
    exit_usage = 2,   // the command line is wrong
    exit_connect = 3, // sluice-control cannot be reached, or the connection was lost
};

enum class verb : uint8_t {
    rule_append, rule_insert, rule_delete, rule_list, rule_flush,
    chain_new, chain_delete, chain_policy, chain_list,
    set_create, set_add, set_del, set_test, set_list, set_flush, set_swap, set_destroy,
    restore, save,
    ct_list, ct_count, ct_delete, ct_flush,
    stats, mode, generation, events, batch,
};

// "rule append", "set test", ... (for messages).
std::string_view verb_name(verb v) noexcept;
// Whether `v` changes rules, chains or sets — the commands a batch may hold.
bool is_batchable(verb v) noexcept;

// Conntrack filter options, as the conntrack tool spells them.
struct ct_filter_args {
    std::optional<uint8_t> l3;    // 4 or 6 (-f ipv4|ipv6)
    std::optional<uint8_t> proto; // -p
    std::optional<std::string> src, dst; // -s / -d: address or ADDRESS/PREFIXLEN
    std::optional<uint16_t> sport, dport, zone;
    std::optional<std::string> state; // NEW, ESTABLISHED or a TCP state, upper case
    bool empty() const noexcept {
        return !l3 && !proto && !src && !dst && !sport && !dport && !zone && !state;
    }
};

struct command {
    verb what = verb::generation;
    // global
    std::string socket = default_socket;
    bool json = false;
    ip_family family = ip_family::ipv4;
    bool exact = false; // -x: exact counter values instead of K/M/G
    // rule / chain
    std::string chain;
    std::string spec;                // the rule words joined (quote_word)
    std::optional<uint32_t> position; // insert: default 1; delete: by number
    std::string policy;              // ACCEPT | DROP
    // set
    std::string set, set2, type, options, elem;
    bool exist = false;
    bool names_only = false, terse = false; // set list -n / -t
    // restore / save: file names ("-": standard input) and what to print
    std::optional<std::string> rules4_file, rules6_file, sets_file;
    bool save_rules4 = false, save_rules6 = false, save_sets = false;
    // ct / events
    ct_filter_args filter;
    bool ev_new = false, ev_destroy = false;
    std::optional<uint64_t> count;
    std::optional<double> timeout_s;
    // stats
    bool all = false;
    // mode: empty = show
    std::string mode;
    // batch
    std::string file;
    std::optional<uint32_t> generation;
};

struct parse_outcome {
    std::optional<command> cmd; // set when there is something to run
    int status = exit_ok;       // without cmd: exit_ok (help in `out`) or exit_usage
    std::string out;            // help text
    std::string err;            // what is wrong, one line (plus a hint)
};

// Parse the words after the program name.
parse_outcome parse_arguments(std::span<const std::string> args);

// A word of a rule specification as iptables-save writes it: bare when it needs no quotes,
// else in double quotes with `"` and `\` escaped — what iptables-restore's word splitting
// (and so parse_rule_spec) reads back as the same word.
std::string quote_word(std::string_view word);
// The words joined with single spaces, each through quote_word.
std::string join_words(std::span<const std::string> words);

// Set elements and create options as ipset reads them: the words joined with spaces as
// they are ("192.0.2.0/24 nomatch" may come as one word or two), except that a word after
// `comment` is quoted as ipset save quotes it.
std::string join_set_words(std::span<const std::string> words);

// Split a batch line into words the way a shell would for these commands: whitespace
// separates, '…' is literal, "…" groups with \ escaping, \ escapes outside quotes, and `#`
// at the start of a word begins a comment. On an unterminated quote `error` is set.
std::vector<std::string> split_line(std::string_view line, std::string& error);

} // namespace sluice::cli
