// See cli_command.hpp.
#include "cli_command.hpp"

#include "ruleset_parser.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <sstream>

namespace po = boost::program_options;

namespace sluice::cli {

namespace {

// ---- help texts ------------------------------------------------------------------------------

constexpr const char* main_usage = R"(Usage: sluicectl [-s SOCKET] [-j] [-6] COMMAND [ARGS...]

Drives Sluice (sluice-control's policy API) the way iptables, ipset and conntrack drive
the kernel.

Commands (each takes --help):
  rule append|insert|delete|list|flush   rules in iptables syntax (-6: IPv6)
  chain new|delete|policy|list           chains
  set create|add|del|test|list|flush|swap|destroy
                                         ipsets, in ipset syntax
  restore [--rules F] [--rules6 F] [--sets F]
                                         replace rules and sets at once (iptables-save /
                                         ipset save texts; default: IPv4 rules from stdin)
  save [--rules] [--rules6] [--sets]     print the running policy as those texts
  ct list|count|delete|flush [FILTERS]   the connection tracking table (conntrack's filters)
  events [--new] [--destroy] [--count N] [--timeout S]
                                         stream conntrack events, like conntrack -E
  stats [--all]                          counters: ports, workers, drops, conntrack, rules
  mode [enforce|monitor|bypass]          show or set the enforcement mode
  generation                             the policy generation
  batch FILE|- [--generation N]          rule/chain/set commands, one per line, applied
                                         all-or-nothing

Exit status: 0 ok; 1 refused or failed (the reason is printed; `set test`: not in the set);
2 usage error; 3 sluice-control cannot be reached.
)";

struct sub_info {
    const char* usage;
    const char* about;
};

// ---- option parsing ----------------------------------------------------------------------------

// Index of the first word from `from` on that is neither an option of `desc` nor the value of
// one; a "--" there is where options end (the caller skips it).
size_t first_positional(std::span<const std::string> a, size_t from, const po::options_description& desc) {
    for (size_t i = from; i < a.size(); ++i) {
        const std::string& w = a[i];
        if (w == "--" || w.size() < 2 || w[0] != '-') return i;
        const po::option_description* d = nullptr;
        if (w[1] == '-') {
            if (w.find('=') != std::string::npos) continue;
            d = desc.find_nothrow(w.substr(2), false);
        } else {
            if (w.size() > 2) continue; // -xVALUE or grouped flags
            d = desc.find_nothrow(w, false);
        }
        if (d && d->semantic()->max_tokens() > 0) ++i; // its value
    }
    return a.size();
}

constexpr int po_style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;

struct parsed_words {
    po::variables_map vm;
    std::vector<std::string> pos;
};

// Parse `words` against `desc`. With `stop`, options are read only up to the first
// positional word (everything from there on is positional); otherwise options may come
// anywhere. Returns "" or po's complaint.
std::string parse_words(std::span<const std::string> words, const po::options_description& desc,
                        bool stop, parsed_words& out) {
    try {
        std::vector<std::string> opts;
        if (stop) {
            size_t k = first_positional(words, 0, desc);
            opts.assign(words.begin(), words.begin() + long(k));
            if (k < words.size() && words[k] == "--") ++k;
            out.pos.assign(words.begin() + long(k), words.end());
            po::store(po::command_line_parser(opts).options(desc).style(po_style).run(), out.vm);
        } else {
            po::options_description all;
            all.add(desc);
            all.add_options()("args", po::value<std::vector<std::string>>());
            po::positional_options_description p;
            p.add("args", -1);
            std::vector<std::string> w(words.begin(), words.end());
            po::store(po::command_line_parser(w).options(all).positional(p).style(po_style).run(), out.vm);
            if (out.vm.count("args")) out.pos = out.vm["args"].as<std::vector<std::string>>();
        }
        po::notify(out.vm);
    } catch (const po::error& e) {
        return e.what();
    }
    return {};
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    return s;
}

// An address or ADDRESS/PREFIXLEN of either family.
bool valid_prefix(const std::string& s, bool& v6) {
    auto slash = s.find('/');
    std::string addr = s.substr(0, slash);
    unsigned char buf[16];
    if (inet_pton(AF_INET, addr.c_str(), buf) == 1) v6 = false;
    else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) v6 = true;
    else return false;
    if (slash == std::string::npos) return true;
    return parse_uint(std::string_view(s).substr(slash + 1), v6 ? 128 : 32).has_value();
}

// The conntrack states the policy API filters on (NEW/ESTABLISHED, or a TCP state).
constexpr std::string_view ct_states[] = {"NEW",      "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                          "FIN_WAIT", "CLOSE_WAIT",  "LAST_ACK",  "TIME_WAIT",
                                          "CLOSE",    "SYN_SENT2"};

// Everything one subcommand's parse needs.
class sub_parser {
public:
    sub_parser(command base, std::string name, sub_info info)
        : c_(std::move(base)), name_(std::move(name)), info_(info), desc_("Options") {
        desc_.add_options()("help,h", "show this help")("json,j", "JSON output (for scripts)")(
            "socket", po::value<std::string>()->value_name("PATH"), "sluice-control's socket (default /run/sluice/control.sock)");
    }
    po::options_description& desc() { return desc_; }
    void family_options() {
        desc_.add_options()("ipv6,6", "IPv6 (ip6tables) instead of IPv4")("ipv4,4", "IPv4 (the default)");
    }
    void exact_option() { desc_.add_options()("exact,x", "exact counter values (no K/M/G)"); }

    // Parse; false when done (help shown or an error), with `out` filled.
    bool parse(std::span<const std::string> words, bool stop, parse_outcome& out) {
        std::vector<std::string> w(words.begin(), words.end());
        // ipset's -exist / -! may stand anywhere on set commands.
        if (name_.rfind("set ", 0) == 0) {
            auto it = std::remove_if(w.begin(), w.end(), [](const std::string& x) {
                return x == "-exist" || x == "-!" || x == "--exist";
            });
            if (it != w.end()) c_.exist = true;
            w.erase(it, w.end());
        }
        if (auto e = parse_words(w, desc_, stop, p_); !e.empty()) {
            out = usage(e);
            return false;
        }
        if (p_.vm.count("help")) {
            std::ostringstream s;
            s << "Usage: sluicectl " << name_ << " " << info_.usage << "\n\n" << info_.about << "\n\n" << desc_;
            out.status = exit_ok;
            out.out = s.str();
            return false;
        }
        if (p_.vm.count("json")) c_.json = true;
        if (p_.vm.count("socket")) c_.socket = p_.vm["socket"].as<std::string>();
        if (p_.vm.count("ipv6")) c_.family = ip_family::ipv6;
        if (p_.vm.count("ipv4")) c_.family = ip_family::ipv4;
        if (p_.vm.count("exact")) c_.exact = true;
        return true;
    }

    parse_outcome usage(const std::string& what) const {
        parse_outcome o;
        o.status = exit_usage;
        o.err = "sluicectl " + name_ + ": " + what + " (usage: sluicectl " + name_ + " " + info_.usage +
                "; see --help)";
        return o;
    }
    parse_outcome done() {
        parse_outcome o;
        o.cmd = std::move(c_);
        return o;
    }

    // Positional word count check: between lo and hi (hi = SIZE_MAX: any).
    bool count(size_t lo, size_t hi, parse_outcome& out) const {
        if (p_.pos.size() < lo) {
            out = usage("missing argument");
            return false;
        }
        if (p_.pos.size() > hi) {
            out = usage("unexpected argument '" + p_.pos[hi] + "'");
            return false;
        }
        return true;
    }

    const po::variables_map& vm() const { return p_.vm; }
    const std::vector<std::string>& pos() const { return p_.pos; }
    command& cmd() { return c_; }

private:
    command c_;
    std::string name_;
    sub_info info_;
    po::options_description desc_;
    parsed_words p_;
};

parse_outcome usage_error(std::string text) {
    parse_outcome o;
    o.status = exit_usage;
    o.err = "sluicectl: " + std::move(text) + " (see sluicectl --help)";
    return o;
}

// `sluicectl GROUP` alone (a usage error) or `sluicectl GROUP --help`: the group's usage.
std::optional<parse_outcome> group_usage(std::span<const std::string> a, const std::string& text) {
    if (!a.empty() && a[0] != "-h" && a[0] != "--help") return std::nullopt;
    parse_outcome o;
    o.status = a.empty() ? exit_usage : exit_ok;
    (a.empty() ? o.err : o.out) = text;
    return o;
}


std::span<const std::string> tail(std::span<const std::string> a, size_t from) {
    return from < a.size() ? a.subspan(from) : std::span<const std::string>{};
}

// ---- rule / chain ------------------------------------------------------------------------------

constexpr const char* spec_about =
    "SPEC is an iptables rule specification: the words after `iptables -A CHAIN`, e.g.\n"
    "  -s 192.0.2.0/24 -p tcp --dport 22 -j ACCEPT\n"
    "Every word after CHAIN belongs to SPEC (so -s, -j, -p mean what iptables says); put\n"
    "sluicectl's options (-6, -j/--json) before CHAIN. A SPEC that does not parse is reported\n"
    "with its column and nothing is sent.";

parse_outcome parse_rule(const command& base, std::span<const std::string> a) {
    if (auto o = group_usage(a,
            "Usage: sluicectl rule append|insert|delete|list|flush ...\n\n"
            "  rule append [-6] CHAIN SPEC...           append a rule\n"
            "  rule insert [-6] CHAIN [POS] SPEC...     insert before rule POS (default 1)\n"
            "  rule delete [-6] CHAIN (POS | SPEC...)   delete rule POS or the first rule equal to SPEC\n"
            "  rule list [-6] [-x] [CHAIN]              list like iptables -L -v -n --line-numbers\n"
            "  rule flush [-6] [CHAIN]                  delete every rule (of CHAIN)\n"))
        return *o;
    const std::string& sub = a[0];
    auto rest = tail(a, 1);
    command c = base;
    if (sub == "append" || sub == "insert" || sub == "delete") {
        sub_info info{sub == "append"   ? "[-6] CHAIN SPEC..."
                      : sub == "insert" ? "[-6] CHAIN [POS] SPEC..."
                                        : "[-6] CHAIN (POS | SPEC...)",
                      sub == "append"   ? "Append a rule to CHAIN." : sub == "insert"
                          ? "Insert a rule into CHAIN before rule POS (1-based; default 1: first)."
                          : "Delete rule number POS of CHAIN, or the first rule equal to SPEC."};
        std::string about = std::string(info.about) + "\n" + spec_about;
        info.about = about.c_str();
        c.what = sub == "append" ? verb::rule_append : sub == "insert" ? verb::rule_insert : verb::rule_delete;
        sub_parser p(c, "rule " + sub, info);
        p.family_options();
        parse_outcome out;
        if (!p.parse(rest, true, out)) return out;
        const auto& pos = p.pos();
        if (pos.empty()) return p.usage("missing CHAIN");
        p.cmd().chain = pos[0];
        size_t first = 1;
        if (sub != "append" && pos.size() > 1 && all_digits(pos[1])) {
            auto n = parse_uint(pos[1], UINT32_MAX);
            if (!n || *n == 0) return p.usage("invalid rule number '" + pos[1] + "' (1-based)");
            p.cmd().position = uint32_t(*n);
            first = 2;
            if (sub == "delete" && pos.size() > 2) return p.usage("POS and SPEC both given");
        }
        if (sub == "insert" && !p.cmd().position) p.cmd().position = 1;
        std::span<const std::string> words(pos);
        if (first < pos.size()) p.cmd().spec = join_words(words.subspan(first));
        if (p.cmd().spec.empty() && !(sub == "delete" && p.cmd().position))
            return p.usage("missing rule specification");
        return p.done();
    }
    if (sub == "list" || sub == "flush") {
        sub_info info{sub == "list" ? "[-6] [-x] [CHAIN]" : "[-6] [CHAIN]",
                      sub == "list" ? "List the chains (or CHAIN) with their policy and counters, then their\n"
                                      "rules, as iptables -L -v -n --line-numbers does."
                                    : "Delete every rule of CHAIN, or of every chain."};
        c.what = sub == "list" ? verb::rule_list : verb::rule_flush;
        sub_parser p(c, "rule " + sub, info);
        p.family_options();
        if (sub == "list") p.exact_option();
        parse_outcome out;
        if (!p.parse(rest, false, out) || !p.count(0, 1, out)) return out;
        if (!p.pos().empty()) p.cmd().chain = p.pos()[0];
        return p.done();
    }
    return usage_error("unknown rule command '" + sub + "' (append, insert, delete, list, flush)");
}

parse_outcome parse_chain(const command& base, std::span<const std::string> a) {
    if (auto o = group_usage(a, "Usage: sluicectl chain new|delete|policy|list ...\n\n"
                           "  chain new [-6] NAME                  create a user chain\n"
                           "  chain delete [-6] NAME               delete an empty, unreferenced user chain\n"
                           "  chain policy [-6] NAME ACCEPT|DROP   set a built-in chain's policy\n"
                           "  chain list [-6]                      chains with policy, rules, references\n"))
        return *o;
    const std::string& sub = a[0];
    command c = base;
    sub_info info{};
    size_t lo = 0, hi = 0;
    if (sub == "new") c.what = verb::chain_new, info = {"[-6] NAME", "Create user chain NAME."}, lo = hi = 1;
    else if (sub == "delete")
        c.what = verb::chain_delete, info = {"[-6] NAME", "Delete user chain NAME (empty and unreferenced)."},
        lo = hi = 1;
    else if (sub == "policy")
        c.what = verb::chain_policy,
        info = {"[-6] NAME ACCEPT|DROP", "Set the policy of built-in chain NAME (INPUT, FORWARD, OUTPUT)."},
        lo = hi = 2;
    else if (sub == "list")
        c.what = verb::chain_list, info = {"[-6]", "List the chains: policy, rules, references."};
    else return usage_error("unknown chain command '" + sub + "' (new, delete, policy, list)");
    sub_parser p(c, "chain " + sub, info);
    p.family_options();
    parse_outcome out;
    if (!p.parse(tail(a, 1), false, out) || !p.count(lo, hi, out)) return out;
    if (lo >= 1) p.cmd().chain = p.pos()[0];
    if (c.what == verb::chain_policy) {
        std::string pol = upper(p.pos()[1]);
        if (pol != "ACCEPT" && pol != "DROP") return p.usage("policy must be ACCEPT or DROP, not '" + p.pos()[1] + "'");
        p.cmd().policy = pol;
    }
    return p.done();
}

// ---- set ----------------------------------------------------------------------------------------

parse_outcome parse_set(const command& base, std::span<const std::string> a) {
    if (auto o = group_usage(a,
            "Usage: sluicectl set create|add|del|test|list|flush|swap|destroy ...\n\n"
            "  set create NAME TYPE [OPTIONS...] [-exist]   e.g. set create web hash:ip family inet\n"
            "  set add NAME ELEM [-exist]                   e.g. set add web 192.0.2.1\n"
            "  set del NAME ELEM [-exist]\n"
            "  set test NAME ELEM                           exit 0 if in the set, 1 if not\n"
            "  set list [-n|-t] [NAME]                      like ipset list\n"
            "  set flush [NAME]                             remove every element (of every set)\n"
            "  set swap NAME1 NAME2                         exchange two sets' contents\n"
            "  set destroy [NAME]                           remove the set (every unreferenced set)\n"))
        return *o;
    const std::string& sub = a[0];
    command c = base;
    sub_info info{};
    size_t lo = 0, hi = 0;
    if (sub == "create")
        c.what = verb::set_create,
        info = {"NAME TYPE [OPTIONS...] [-exist]",
                "Create a set, in ipset syntax: TYPE is hash:ip, hash:net, hash:ip,port, hash:net,port,\n"
                "hash:net,iface, bitmap:port or list:set; OPTIONS as ipset takes them (family inet6,\n"
                "hashsize 4096, maxelem 1000000, range 0-1023, ...). -exist: no error if an identical\n"
                "set exists."},
        lo = 2, hi = SIZE_MAX;
    else if (sub == "add" || sub == "del" || sub == "test") {
        c.what = sub == "add" ? verb::set_add : sub == "del" ? verb::set_del : verb::set_test;
        info = {sub == "test" ? "NAME ELEM" : "NAME ELEM [-exist]",
                sub == "add"   ? "Add element ELEM (as ipset writes it: 192.0.2.0/24, 192.0.2.1,tcp:80, 2001:db8::/32\n"
                                 "nomatch, ...) to set NAME. -exist: no error if it is there already."
                : sub == "del" ? "Delete element ELEM from set NAME. -exist: no error if it is not there."
                               : "Test whether ELEM is in set NAME: exit status 0 if it is, 1 if not."};
        lo = 2, hi = SIZE_MAX;
    } else if (sub == "list")
        c.what = verb::set_list,
        info = {"[-n|-t] [NAME]", "List the sets (or NAME) as ipset list does: header, then the members."},
        hi = 1;
    else if (sub == "flush")
        c.what = verb::set_flush, info = {"[NAME]", "Remove every element of set NAME, or of every set."}, hi = 1;
    else if (sub == "swap")
        c.what = verb::set_swap, info = {"NAME1 NAME2", "Exchange the contents of two sets of compatible types."},
        lo = hi = 2;
    else if (sub == "destroy")
        c.what = verb::set_destroy,
        info = {"[NAME]", "Remove set NAME (it must not be referenced), or every unreferenced set."}, hi = 1;
    else return usage_error("unknown set command '" + sub + "' (create, add, del, test, list, flush, swap, destroy)");
    sub_parser p(c, "set " + sub, info);
    if (sub == "list")
        p.desc().add_options()("name,n", "only the set names")("terse,t", "only the headers, no members");
    parse_outcome out;
    if (!p.parse(tail(a, 1), false, out) || !p.count(lo, hi, out)) return out;
    command& r = p.cmd();
    const auto& pos = p.pos();
    if (r.exist && (sub == "test" || sub == "list" || sub == "swap" || sub == "flush" || sub == "destroy"))
        return p.usage("-exist does not apply here");
    if (!pos.empty()) r.set = pos[0];
    std::span<const std::string> words(pos);
    switch (r.what) {
    case verb::set_create:
        r.type = pos[1];
        r.options = join_set_words(words.subspan(2));
        break;
    case verb::set_add:
    case verb::set_del:
    case verb::set_test: r.elem = join_set_words(words.subspan(1)); break;
    case verb::set_swap: r.set2 = pos[1]; break;
    case verb::set_list:
        r.names_only = p.vm().count("name");
        r.terse = p.vm().count("terse");
        break;
    default: break;
    }
    return p.done();
}

// ---- restore / save ----------------------------------------------------------------------------

parse_outcome parse_restore(const command& base, std::span<const std::string> a) {
    command c = base;
    c.what = verb::restore;
    sub_parser p(c, "restore",
                 {"[-6] [--rules FILE] [--rules6 FILE] [--sets FILE]",
                  "Replace the IPv4 rules, the IPv6 rules and/or the sets in one step (one generation,\n"
                  "all-or-nothing) from iptables-save, ip6tables-save and ipset save texts. FILE - is\n"
                  "standard input. Without any of them: the IPv4 rules (with -6 the IPv6 rules) are read\n"
                  "from standard input. Texts are parsed here first: an error names file:line:column and\n"
                  "nothing is sent. What is not given stays as it is."});
    p.family_options();
    p.desc().add_options()("rules", po::value<std::string>()->value_name("FILE"), "iptables-save text (IPv4 rules)")(
        "rules6", po::value<std::string>()->value_name("FILE"), "ip6tables-save text (IPv6 rules)")(
        "sets", po::value<std::string>()->value_name("FILE"), "ipset save text (replaces every set)");
    parse_outcome out;
    if (!p.parse(a, false, out) || !p.count(0, 0, out)) return out;
    command& r = p.cmd();
    if (p.vm().count("rules")) r.rules4_file = p.vm()["rules"].as<std::string>();
    if (p.vm().count("rules6")) r.rules6_file = p.vm()["rules6"].as<std::string>();
    if (p.vm().count("sets")) r.sets_file = p.vm()["sets"].as<std::string>();
    if (!r.rules4_file && !r.rules6_file && !r.sets_file)
        (r.family == ip_family::ipv6 ? r.rules6_file : r.rules4_file) = "-";
    int stdin_uses = int(r.rules4_file == "-") + int(r.rules6_file == "-") + int(r.sets_file == "-");
    if (stdin_uses > 1) return p.usage("only one text can come from standard input");
    return p.done();
}

parse_outcome parse_save(const command& base, std::span<const std::string> a) {
    command c = base;
    c.what = verb::save;
    sub_parser p(c, "save",
                 {"[-6] [--rules] [--rules6] [--sets]",
                  "Print the running policy: iptables-save text of the IPv4 rules (the default; with -6\n"
                  "the IPv6 rules), ip6tables-save text, ipset save text. Several: sets first."});
    p.family_options();
    p.desc().add_options()("rules", "the IPv4 rules")("rules6", "the IPv6 rules")("sets", "the sets");
    parse_outcome out;
    if (!p.parse(a, false, out) || !p.count(0, 0, out)) return out;
    command& r = p.cmd();
    r.save_rules4 = p.vm().count("rules");
    r.save_rules6 = p.vm().count("rules6");
    r.save_sets = p.vm().count("sets");
    if (!r.save_rules4 && !r.save_rules6 && !r.save_sets)
        (r.family == ip_family::ipv6 ? r.save_rules6 : r.save_rules4) = true;
    return p.done();
}

// ---- ct / events --------------------------------------------------------------------------------

void filter_options(po::options_description& d) {
    d.add_options()("proto,p", po::value<std::string>()->value_name("PROTO"), "layer 4 protocol (tcp, udp, icmp, 47, ...)")(
        "src,s", po::value<std::string>()->value_name("ADDR"), "source address (original direction), ADDRESS[/PREFIXLEN]")(
        "dst,d", po::value<std::string>()->value_name("ADDR"), "destination address, ADDRESS[/PREFIXLEN]")(
        "sport", po::value<std::string>()->value_name("PORT"), "source port")("dport", po::value<std::string>()->value_name("PORT"), "destination port")(
        "state", po::value<std::string>()->value_name("STATE"),
        "NEW, ESTABLISHED, or a TCP state (SYN_SENT, SYN_RECV, FIN_WAIT, CLOSE_WAIT, LAST_ACK, "
        "TIME_WAIT, CLOSE, SYN_SENT2)")("zone,w", po::value<std::string>()->value_name("ZONE"), "conntrack zone")(
        "family,f", po::value<std::string>()->value_name("FAMILY"), "ipv4 or ipv6");
}

// Read the filter options into `f`; "" or what is wrong.
std::string read_filter(const po::variables_map& vm, ct_filter_args& f) {
    auto get = [&](const char* n) -> std::optional<std::string> {
        if (!vm.count(n)) return std::nullopt;
        return vm[n].as<std::string>();
    };
    if (auto v = get("family")) {
        if (*v == "ipv4" || *v == "4" || *v == "inet") f.l3 = 4;
        else if (*v == "ipv6" || *v == "6" || *v == "inet6") f.l3 = 6;
        else return "--family must be ipv4 or ipv6, not '" + *v + "'";
    }
    if (auto v = get("proto")) {
        auto p = proto_from_name(*v);
        if (!p || *p == 0) return "unknown protocol '" + *v + "'";
        f.proto = *p;
    }
    std::optional<bool> fam6;
    for (auto [name, field] : {std::pair{"src", &f.src}, std::pair{"dst", &f.dst}}) {
        auto v = get(name);
        if (!v) continue;
        bool v6 = false;
        if (!valid_prefix(*v, v6)) return "--" + std::string(name) + " '" + *v + "': not an address or ADDRESS/PREFIXLEN";
        if (fam6 && *fam6 != v6) return "--src and --dst are of different families";
        if (f.l3 && (*f.l3 == 6) != v6) return "--" + std::string(name) + " '" + *v + "' is not of family ipv" +
                                                 std::to_string(*f.l3);
        fam6 = v6;
        *field = *v;
    }
    for (auto [name, field] : {std::pair{"sport", &f.sport}, std::pair{"dport", &f.dport}, std::pair{"zone", &f.zone}}) {
        auto v = get(name);
        if (!v) continue;
        auto n = parse_uint(*v, 65535);
        if (!n) return "--" + std::string(name) + " '" + *v + "': expected a number 0..65535";
        *field = uint16_t(*n);
    }
    if (auto v = get("state")) {
        std::string s = upper(*v);
        if (std::find(std::begin(ct_states), std::end(ct_states), s) == std::end(ct_states))
            return "--state '" + *v + "': expected NEW, ESTABLISHED or a TCP state (SYN_SENT, SYN_RECV, FIN_WAIT, "
                                      "CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2)";
        f.state = s;
    }
    return {};
}

parse_outcome parse_ct(const command& base, std::span<const std::string> a) {
    if (auto o = group_usage(a, "Usage: sluicectl ct list|count|delete|flush [FILTERS]\n\n"
                           "  ct list [FILTERS]     the tracked flows, one line each, like conntrack -L\n"
                           "  ct count [FILTERS]    how many flows match\n"
                           "  ct delete FILTERS     delete the matching flows\n"
                           "  ct flush              delete every flow\n\n"
                           "FILTERS: -p PROTO, -s ADDR[/LEN], -d ADDR[/LEN], --sport N, --dport N,\n"
                           "--state STATE, -w ZONE, -f ipv4|ipv6\n"))
        return *o;
    const std::string& sub = a[0];
    command c = base;
    sub_info info{};
    if (sub == "list") c.what = verb::ct_list, info = {"[FILTERS]", "List the tracked flows (as conntrack -L)."};
    else if (sub == "count") c.what = verb::ct_count, info = {"[FILTERS]", "Count the tracked flows that match."};
    else if (sub == "delete")
        c.what = verb::ct_delete, info = {"FILTERS", "Delete the tracked flows that match (at least one filter)."};
    else if (sub == "flush") c.what = verb::ct_flush, info = {"", "Delete every tracked flow."};
    else return usage_error("unknown ct command '" + sub + "' (list, count, delete, flush)");
    sub_parser p(c, "ct " + sub, info);
    if (c.what != verb::ct_flush) filter_options(p.desc());
    parse_outcome out;
    if (!p.parse(tail(a, 1), false, out) || !p.count(0, 0, out)) return out;
    if (auto e = read_filter(p.vm(), p.cmd().filter); !e.empty()) return p.usage(e);
    if (c.what == verb::ct_delete && p.cmd().filter.empty())
        return p.usage("give at least one filter (ct flush deletes every flow)");
    return p.done();
}

parse_outcome parse_events(const command& base, std::span<const std::string> a) {
    command c = base;
    c.what = verb::events;
    sub_parser p(c, "events",
                 {"[--new] [--destroy] [--count N] [--timeout S] [FILTERS]",
                  "Print conntrack events as they happen, one line each, like conntrack -E:\n"
                  "    [NEW] tcp      6 120 SYN_SENT src=... dst=... sport=... dport=... [UNREPLIED] ...\n"
                  "[DESTROY] tcp      6 src=...\n"
                  "Both kinds unless --new or --destroy is given. Ends after N events or S seconds\n"
                  "(exit status 0), or when sluice-control goes away (3). FILTERS as for ct list."});
    p.desc().add_options()("new", "flows created")("destroy", "flows removed")(
        "count,c", po::value<std::string>()->value_name("N"), "stop after N events")(
        "timeout,t", po::value<std::string>()->value_name("S"), "stop after S seconds (fractions allowed)");
    filter_options(p.desc());
    parse_outcome out;
    if (!p.parse(a, false, out) || !p.count(0, 0, out)) return out;
    command& r = p.cmd();
    r.ev_new = p.vm().count("new");
    r.ev_destroy = p.vm().count("destroy");
    if (p.vm().count("count")) {
        auto n = parse_uint(p.vm()["count"].as<std::string>(), UINT64_MAX);
        if (!n || *n == 0) return p.usage("--count must be a number >= 1");
        r.count = *n;
    }
    if (p.vm().count("timeout")) {
        const std::string& v = p.vm()["timeout"].as<std::string>();
        double s = 0;
        auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
        if (ec != std::errc() || ptr != v.data() + v.size() || !(s > 0) || s > 1e9)
            return p.usage("--timeout must be a positive number of seconds, not '" + v + "'");
        r.timeout_s = s;
    }
    if (auto e = read_filter(p.vm(), r.filter); !e.empty()) return p.usage(e);
    return p.done();
}

// ---- the rest -------------------------------------------------------------------------------------

parse_outcome parse_simple(const command& base, std::string_view word, std::span<const std::string> a) {
    command c = base;
    if (word == "stats") {
        c.what = verb::stats;
        sub_parser p(c, "stats",
                     {"[--all] [-x]",
                      "Print the counters: ports, workers, drops by reason (non-zero ones unless --all),\n"
                      "monitor-mode would-be drops, conntrack, then every rule with its counters as\n"
                      "iptables -L -v -n does (IPv4, then IPv6). --json: every counter."});
        p.desc().add_options()("all,a", "also the drop reasons that are zero");
        p.exact_option();
        parse_outcome out;
        if (!p.parse(a, false, out) || !p.count(0, 0, out)) return out;
        p.cmd().all = p.vm().count("all");
        return p.done();
    }
    if (word == "mode") {
        c.what = verb::mode;
        sub_parser p(c, "mode",
                     {"[enforce|monitor|bypass]",
                      "Without an argument: print the mode. enforce: apply the policy; monitor: count what\n"
                      "would be dropped and forward everything; bypass: no conntrack, no rules."});
        parse_outcome out;
        if (!p.parse(a, false, out) || !p.count(0, 1, out)) return out;
        if (!p.pos().empty()) {
            const std::string& m = p.pos()[0];
            if (m != "enforce" && m != "monitor" && m != "bypass")
                return p.usage("mode must be enforce, monitor or bypass, not '" + m + "'");
            p.cmd().mode = m;
        }
        return p.done();
    }
    if (word == "generation") {
        c.what = verb::generation;
        sub_parser p(c, "generation", {"", "Print the policy generation (it grows by one with every change)."});
        parse_outcome out;
        if (!p.parse(a, false, out) || !p.count(0, 0, out)) return out;
        return p.done();
    }
    // batch
    c.what = verb::batch;
    sub_parser p(c, "batch",
                 {"FILE|- [--generation N]",
                  "Apply the commands of FILE (- : standard input) as one transaction: all of them or,\n"
                  "if any is refused, none. One command per line, as after `sluicectl` (rule ..., chain\n"
                  "..., set ... changes only); blank lines and # comments are skipped. Words are split\n"
                  "as a shell would ('...' and \"...\" group). --generation N: refuse (exit status 1)\n"
                  "if the policy is no longer at generation N, i.e. someone else changed it since."});
    p.desc().add_options()("generation,g", po::value<std::string>()->value_name("N"), "the generation the batch was written against");
    parse_outcome out;
    if (!p.parse(a, false, out) || !p.count(1, 1, out)) return out;
    p.cmd().file = p.pos()[0];
    if (p.vm().count("generation")) {
        auto n = parse_uint(p.vm()["generation"].as<std::string>(), UINT32_MAX);
        if (!n) return p.usage("--generation must be a number");
        p.cmd().generation = uint32_t(*n);
    }
    return p.done();
}

} // namespace

std::string_view verb_name(verb v) noexcept {
    switch (v) {
    case verb::rule_append: return "rule append";
    case verb::rule_insert: return "rule insert";
    case verb::rule_delete: return "rule delete";
    case verb::rule_list: return "rule list";
    case verb::rule_flush: return "rule flush";
    case verb::chain_new: return "chain new";
    case verb::chain_delete: return "chain delete";
    case verb::chain_policy: return "chain policy";
    case verb::chain_list: return "chain list";
    case verb::set_create: return "set create";
    case verb::set_add: return "set add";
    case verb::set_del: return "set del";
    case verb::set_test: return "set test";
    case verb::set_list: return "set list";
    case verb::set_flush: return "set flush";
    case verb::set_swap: return "set swap";
    case verb::set_destroy: return "set destroy";
    case verb::restore: return "restore";
    case verb::save: return "save";
    case verb::ct_list: return "ct list";
    case verb::ct_count: return "ct count";
    case verb::ct_delete: return "ct delete";
    case verb::ct_flush: return "ct flush";
    case verb::stats: return "stats";
    case verb::mode: return "mode";
    case verb::generation: return "generation";
    case verb::events: return "events";
    case verb::batch: return "batch";
    }
    return "";
}

bool is_batchable(verb v) noexcept {
    switch (v) {
    case verb::rule_append: case verb::rule_insert: case verb::rule_delete: case verb::rule_flush:
    case verb::chain_new: case verb::chain_delete: case verb::chain_policy:
    case verb::set_create: case verb::set_add: case verb::set_del: case verb::set_flush:
    case verb::set_swap: case verb::set_destroy:
        return true;
    default: return false;
    }
}

parse_outcome parse_arguments(std::span<const std::string> args) {
    po::options_description global("Options");
    global.add_options()("help,h", "show this help")("socket,s", po::value<std::string>()->value_name("PATH"),
                                                     "sluice-control's socket (default /run/sluice/control.sock)")(
        "json,j", "JSON output (for scripts)")("ipv6,6", "IPv6 rules (ip6tables) instead of IPv4")(
        "ipv4,4", "IPv4 rules (the default)");
    size_t k = first_positional(args, 0, global);
    parsed_words g;
    if (auto e = parse_words(args.subspan(0, k), global, true, g); !e.empty()) return usage_error(e);
    if (k < args.size() && args[k] == "--") ++k;
    if (g.vm.count("help")) {
        std::ostringstream s;
        s << main_usage << "\n" << global;
        parse_outcome o;
        o.out = s.str();
        return o;
    }
    if (k >= args.size()) {
        parse_outcome o = usage_error("missing command");
        o.err = std::string(main_usage) + "\n" + o.err;
        return o;
    }
    command base;
    if (g.vm.count("socket")) base.socket = g.vm["socket"].as<std::string>();
    if (g.vm.count("json")) base.json = true;
    if (g.vm.count("ipv6")) base.family = ip_family::ipv6;
    if (g.vm.count("ipv4")) base.family = ip_family::ipv4;
    const std::string& word = args[k];
    auto rest = tail(args, k + 1);
    if (word == "rule") return parse_rule(base, rest);
    if (word == "chain") return parse_chain(base, rest);
    if (word == "set") return parse_set(base, rest);
    if (word == "restore") return parse_restore(base, rest);
    if (word == "save") return parse_save(base, rest);
    if (word == "ct") return parse_ct(base, rest);
    if (word == "events") return parse_events(base, rest);
    if (word == "stats" || word == "mode" || word == "generation" || word == "batch")
        return parse_simple(base, word, rest);
    if (word == "help") {
        parse_outcome o;
        o.out = std::string(main_usage) + "\n" + [&] {
            std::ostringstream s;
            s << global;
            return s.str();
        }();
        return o;
    }
    return usage_error("unknown command '" + word + "'");
}

std::string quote_word(std::string_view w) {
    bool needs = w.empty();
    for (char ch : w)
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '"') needs = true;
    if (!needs) return std::string(w);
    std::string out = "\"";
    for (char ch : w) {
        if (ch == '"' || ch == '\\') out += '\\';
        out += ch;
    }
    return out + "\"";
}

std::string join_words(std::span<const std::string> words) {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty()) out += ' ';
        out += quote_word(w);
    }
    return out;
}

std::string join_set_words(std::span<const std::string> words) {
    std::string out;
    for (size_t i = 0; i < words.size(); ++i) {
        if (i) out += ' ';
        out += i && words[i - 1] == "comment" ? quote_word(words[i]) : words[i];
    }
    return out;
}

std::vector<std::string> split_line(std::string_view line, std::string& error) {
    std::vector<std::string> out;
    std::string cur;
    bool have = false;
    error.clear();
    size_t i = 0;
    auto finish = [&] {
        if (have) out.push_back(cur);
        cur.clear();
        have = false;
    };
    while (i < line.size()) {
        char ch = line[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            finish();
            ++i;
        } else if (ch == '#' && !have) {
            break;
        } else if (ch == '\\') {
            have = true;
            if (i + 1 < line.size()) cur += line[i + 1], i += 2;
            else cur += ch, ++i;
        } else if (ch == '\'') {
            have = true;
            size_t end = line.find('\'', i + 1);
            if (end == std::string_view::npos) {
                error = "column " + std::to_string(i + 1) + ": unterminated quote";
                return {};
            }
            cur.append(line.substr(i + 1, end - i - 1));
            i = end + 1;
        } else if (ch == '"') {
            have = true;
            size_t j = i + 1;
            bool closed = false;
            for (; j < line.size(); ++j) {
                if (line[j] == '\\' && j + 1 < line.size()) cur += line[++j];
                else if (line[j] == '"') {
                    closed = true;
                    break;
                } else cur += line[j];
            }
            if (!closed) {
                error = "column " + std::to_string(i + 1) + ": unterminated quote";
                return {};
            }
            i = j + 1;
        } else {
            have = true;
            cur += ch;
            ++i;
        }
    }
    finish();
    return out;
}

} // namespace sluice::cli
