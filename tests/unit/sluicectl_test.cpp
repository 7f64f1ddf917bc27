// sluicectl without a server: argv -> command (usage errors exit 2), command -> request
// bytes (message type, flags, attributes), local checks (a bad rule or set is reported with
// its column and nothing is sent), canned replies -> the text iptables/ipset/conntrack would
// print (and JSON), error and exit-status mapping, batches and events over a scripted
// transport. The last group drives the real sluice-control service (control_service on a
// temporary socket, no fast path) through the real socket transport.
#include "cli_command.hpp"
#include "cli_format.hpp"
#include "cli_request.hpp"
#include "cli_session.hpp"
#include "control_service.hpp"
#include "ruleset_parser.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace sluice;
using namespace sluice::cli;
namespace fs = std::filesystem;

namespace {

// ---- helpers ------------------------------------------------------------------------------------

parse_outcome parse(std::vector<std::string> args) { return parse_arguments(args); }

command parsed(std::vector<std::string> args) {
    auto p = parse(args);
    EXPECT_TRUE(p.cmd.has_value()) << p.err;
    return p.cmd.value_or(command{});
}

// One message built by `fill` (a reply as a server would send it).
std::vector<uint8_t> msg(uint16_t type, const std::function<void(nl::builder&)>& fill, uint16_t flags = nl::f_multi) {
    nl::builder b;
    b.begin(type, flags, 1);
    if (fill) fill(b);
    b.end();
    return {b.bytes().begin(), b.bytes().end()};
}

nl::message view(const std::vector<uint8_t>& bytes) { return nl::split(bytes).messages.at(0); }

struct built {
    std::vector<uint8_t> bytes;
    nl::message m;
    nl::attr_list al;
};
built request_of(const command& c, const policy_texts* texts = nullptr) {
    nl::builder b;
    put_request(b, c, 7, texts);
    built r;
    r.bytes.assign(b.bytes().begin(), b.bytes().end());
    r.m = view(r.bytes);
    r.al = r.m.attrs();
    return r;
}

std::vector<uint8_t> chain_msg(uint8_t fam, std::string name, std::optional<std::string> policy, uint32_t rules,
                               uint32_t refs) {
    return msg(api::chain_get, [&](nl::builder& b) {
        b.put_u8(api::a_family, fam);
        b.put_str(api::a_chain, name);
        if (policy) b.put_str(api::a_policy, *policy);
        b.put_u32(api::a_rules, rules);
        b.put_u32(api::a_references, refs);
    });
}
std::vector<uint8_t> rule_msg(uint8_t fam, std::string chain, uint32_t pos, std::string spec, uint64_t pk, uint64_t by) {
    return msg(api::rule_get, [&](nl::builder& b) {
        b.put_u8(api::a_family, fam);
        b.put_str(api::a_chain, chain);
        b.put_u32(api::a_position, pos);
        b.put_text(api::a_spec, spec);
        b.put_u64(api::a_packets, pk);
        b.put_u64(api::a_bytes, by);
    });
}
std::vector<uint8_t> flow_msg(uint16_t type, uint8_t proto, uint16_t sport, uint16_t dport, std::string state,
                              std::string tcp_state, bool assured, uint8_t event = 0) {
    return msg(type, [&](nl::builder& b) {
        size_t n = b.begin_nest(api::a_ct_flow);
        b.put_u8(api::a_l3, 4);
        b.put_u8(api::a_proto, proto);
        b.put_str(api::a_src, "192.0.2.1");
        b.put_str(api::a_dst, "192.0.2.2");
        b.put_u16(api::a_sport, sport);
        b.put_u16(api::a_dport, dport);
        b.put_str(api::a_state, state);
        if (!tcp_state.empty()) b.put_str(api::a_tcp_state, tcp_state);
        b.put_u32(api::a_timeout, 431999);
        b.put_u16(api::a_zone, 0);
        b.put_u32(api::a_worker, 1);
        b.put_u8(api::a_assured, assured ? 1 : 0);
        b.end_nest(n);
        if (event) b.put_u8(api::a_event, event);
    }, type == api::ct_event ? 0 : nl::f_multi);
}

// A transport answering each request with the next scripted answer.
struct scripted_transport final : transport {
    struct answer {
        int err = 0;
        std::string text;
        uint32_t offset = 0;
        std::vector<std::vector<uint8_t>> messages;
        bool lost = false;
    };
    std::deque<answer> answers;
    std::deque<std::vector<uint8_t>> events; // empty: nothing within the wait; none left: closed
    std::vector<std::vector<uint8_t>> sent; // every request datagram
    std::string connect_error;
    bool connected = false;
    bool lost_ = false;
    uint32_t seq = 100;

    std::string connect(const std::string&) override {
        connected = connect_error.empty();
        return connect_error;
    }
    api_reply request(const nl::builder& b, const std::function<void(const nl::message&)>& each) override {
        sent.emplace_back(b.bytes().begin(), b.bytes().end());
        api_reply r;
        if (answers.empty()) {
            r.err = EPIPE;
            r.text = "connection closed or timed out waiting for the answer";
            lost_ = true;
            return r;
        }
        answer a = std::move(answers.front());
        answers.pop_front();
        for (auto& m : a.messages) {
            if (each) each(view(m));
            else r.messages.push_back(m);
        }
        r.err = a.err;
        r.text = a.text;
        r.offset = a.offset;
        lost_ = a.lost;
        return r;
    }
    std::optional<std::vector<uint8_t>> receive(int timeout_ms) override {
        if (events.empty()) return std::nullopt;
        std::vector<uint8_t> e = std::move(events.front());
        events.pop_front();
        if (e.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 20)));
        return e;
    }
    uint32_t next_seq() override { return ++seq; }
    bool lost() const override { return lost_; }

    // The messages of request datagram k.
    std::vector<nl::message> messages(size_t k) const { return nl::split(sent.at(k)).messages; }
};

scripted_transport::answer ack_with_generation(uint32_t g) {
    scripted_transport::answer a;
    a.messages.push_back(msg(api::gen_get, [&](nl::builder& b) { b.put_u32(api::a_generation, g); }, 0));
    return a;
}

struct run_result {
    int status;
    std::string out, err;
};
run_result run(scripted_transport& t, std::vector<std::string> args, std::string input = {}) {
    std::ostringstream out, err;
    std::istringstream in(input);
    int st = run_sluicectl(args, t, {out, err, in});
    return {st, out.str(), err.str()};
}

// ---- words and specs ------------------------------------------------------------------------------

TEST(sluicectl_spec, quoting_follows_iptables_save) {
    EXPECT_EQ(quote_word("ACCEPT"), "ACCEPT");
    EXPECT_EQ(quote_word("192.0.2.0/24"), "192.0.2.0/24");
    EXPECT_EQ(quote_word("RELATED,ESTABLISHED"), "RELATED,ESTABLISHED");
    EXPECT_EQ(quote_word("ssh in"), "\"ssh in\"");
    EXPECT_EQ(quote_word(""), "\"\"");
    EXPECT_EQ(quote_word("say \"hi\""), "\"say \\\"hi\\\"\"");
    EXPECT_EQ(quote_word("a\\b c"), "\"a\\\\b c\"");
    EXPECT_EQ(quote_word("a\\b"), "a\\b"); // outside quotes a backslash is ordinary
    std::vector<std::string> w{"-m", "comment", "--comment", "ssh from \"the\" lab\\", "-j", "ACCEPT"};
    std::string spec = join_words(w);
    EXPECT_EQ(spec, "-m comment --comment \"ssh from \\\"the\\\" lab\\\\\" -j ACCEPT");
    // What parse_rule_spec (iptables-restore's word splitting) reads back is the same word.
    auto p = parse_rule_spec(spec, ip_family::ipv4);
    ASSERT_TRUE(p.ok()) << p.error.to_string();
    EXPECT_EQ(p.value->front().comment(), "ssh from \"the\" lab\\");
}

TEST(sluicectl_spec, set_words_and_batch_lines) {
    std::vector<std::string> one{"192.0.2.0/24 nomatch"}, two{"192.0.2.0/24", "nomatch"},
        commented{"192.0.2.1", "comment", "web server"};
    EXPECT_EQ(join_set_words(one), "192.0.2.0/24 nomatch");
    EXPECT_EQ(join_set_words(two), "192.0.2.0/24 nomatch");
    EXPECT_EQ(join_set_words(commented), "192.0.2.1 comment \"web server\"");

    std::string err;
    EXPECT_EQ(split_line("rule append FORWARD -m comment --comment \"a b\" -j ACCEPT # tail", err),
              (std::vector<std::string>{"rule", "append", "FORWARD", "-m", "comment", "--comment", "a b", "-j",
                                        "ACCEPT"}));
    EXPECT_EQ(split_line("set add s 'x \"y\"' a\\ b \"q\\\"\"", err),
              (std::vector<std::string>{"set", "add", "s", "x \"y\"", "a b", "q\""}));
    EXPECT_TRUE(split_line("   # only a comment", err).empty());
    EXPECT_EQ(split_line("a#b", err), (std::vector<std::string>{"a#b"}));
    split_line("rule append X \"open", err);
    EXPECT_EQ(err, "column 15: unterminated quote");
}

// ---- argv -> command --------------------------------------------------------------------------------

TEST(sluicectl_args, rule_words_after_chain_belong_to_the_spec) {
    // -s before the command is the socket, after CHAIN it is iptables' source.
    command c = parsed({"-s", "/tmp/x.sock", "rule", "append", "FORWARD", "-s", "192.0.2.1", "-p", "tcp", "-j", "ACCEPT"});
    EXPECT_EQ(c.what, verb::rule_append);
    EXPECT_EQ(c.socket, "/tmp/x.sock");
    EXPECT_EQ(c.chain, "FORWARD");
    EXPECT_EQ(c.spec, "-s 192.0.2.1 -p tcp -j ACCEPT");
    EXPECT_FALSE(c.json);

    c = parsed({"rule", "append", "-6", "--json", "FORWARD", "-j", "DROP"});
    EXPECT_EQ(c.family, ip_family::ipv6);
    EXPECT_TRUE(c.json);
    EXPECT_EQ(c.spec, "-j DROP");
    c = parsed({"-6", "-j", "rule", "append", "FORWARD", "-6", "-j", "DROP"}); // the 2nd -6 is the spec's
    EXPECT_EQ(c.spec, "-6 -j DROP");
    EXPECT_TRUE(c.json);
    c = parsed({"rule", "append", "--", "FORWARD", "-j", "DROP"});
    EXPECT_EQ(c.chain, "FORWARD");

    c = parsed({"rule", "insert", "FORWARD", "-p", "udp", "-j", "ACCEPT"});
    EXPECT_EQ(c.position, 1u);
    c = parsed({"rule", "insert", "FORWARD", "3", "-p", "udp", "-j", "ACCEPT"});
    EXPECT_EQ(c.position, 3u);
    EXPECT_EQ(c.spec, "-p udp -j ACCEPT");
    c = parsed({"rule", "delete", "FORWARD", "2"});
    EXPECT_EQ(c.position, 2u);
    EXPECT_TRUE(c.spec.empty());
    c = parsed({"rule", "delete", "FORWARD", "-j", "web"});
    EXPECT_FALSE(c.position);
    EXPECT_EQ(c.spec, "-j web");
    c = parsed({"rule", "list", "FORWARD", "-x", "-6"});
    EXPECT_EQ(c.what, verb::rule_list);
    EXPECT_TRUE(c.exact);
    EXPECT_EQ(c.family, ip_family::ipv6);
    c = parsed({"rule", "flush"});
    EXPECT_TRUE(c.chain.empty());
}

TEST(sluicectl_args, usage_errors_exit_2) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {},
             {"frobnicate"},
             {"rule"},
             {"rule", "append"},
             {"rule", "append", "FORWARD"},
             {"rule", "insert", "FORWARD", "0", "-j", "DROP"},
             {"rule", "delete", "FORWARD", "2", "-j", "DROP"},
             {"rule", "list", "A", "B"},
             {"rule", "list", "--bogus"},
             {"chain", "policy", "FORWARD", "REJECT"},
             {"chain", "new"},
             {"set", "add", "only-name"},
             {"set", "test", "s", "1.2.3.4", "-exist"},
             {"set", "swap", "a"},
             {"ct", "list", "-p", "nosuchproto"},
             {"ct", "list", "-s", "192.0.2.300"},
             {"ct", "list", "-s", "192.0.2.1", "-d", "2001:db8::1"},
             {"ct", "list", "--dport", "70000"},
             {"ct", "list", "--state", "WHATEVER"},
             {"ct", "delete"},
             {"ct", "flush", "-p", "tcp"},
             {"events", "--count", "0"},
             {"events", "--timeout", "-1"},
             {"mode", "sideways"},
             {"generation", "extra"},
             {"batch"},
             {"restore", "--rules", "-", "--sets", "-"},
             {"--nope"},
         }) {
        auto p = parse(args);
        EXPECT_FALSE(p.cmd) << args.size();
        EXPECT_EQ(p.status, exit_usage) << (args.empty() ? "" : args[0]);
        EXPECT_FALSE(p.err.empty());
    }
    auto p = parse({"rule", "insert", "FORWARD", "0", "-j", "DROP"});
    EXPECT_NE(p.err.find("invalid rule number '0'"), std::string::npos) << p.err;
    p = parse({"ct", "list", "--dport", "70000"});
    EXPECT_NE(p.err.find("--dport '70000': expected a number 0..65535"), std::string::npos) << p.err;
}

TEST(sluicectl_args, help_everywhere) {
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"--help"}, {"help"}, {"rule", "--help"}, {"rule", "append", "--help"}, {"rule", "list", "-h"},
             {"chain", "policy", "--help"}, {"set", "-h"}, {"set", "create", "--help"}, {"restore", "--help"},
             {"save", "--help"}, {"ct", "--help"}, {"ct", "delete", "--help"}, {"events", "--help"},
             {"stats", "--help"}, {"mode", "--help"}, {"generation", "--help"}, {"batch", "--help"}}) {
        auto p = parse(args);
        EXPECT_FALSE(p.cmd);
        EXPECT_EQ(p.status, exit_ok);
        EXPECT_NE(p.out.find("Usage: sluicectl"), std::string::npos) << args[0];
    }
    EXPECT_NE(parse({"rule", "append", "--help"}).out.find("Every word after CHAIN belongs to SPEC"), std::string::npos);
}

TEST(sluicectl_args, sets_ct_and_the_rest) {
    command c = parsed({"set", "add", "web", "192.0.2.0/24", "nomatch", "-exist"});
    EXPECT_EQ(c.what, verb::set_add);
    EXPECT_EQ(c.set, "web");
    EXPECT_EQ(c.elem, "192.0.2.0/24 nomatch");
    EXPECT_TRUE(c.exist);
    c = parsed({"set", "create", "-!", "web", "hash:net,port", "family", "inet6", "hashsize", "4096"});
    EXPECT_EQ(c.type, "hash:net,port");
    EXPECT_EQ(c.options, "family inet6 hashsize 4096");
    EXPECT_TRUE(c.exist);
    c = parsed({"set", "list", "-t", "web"});
    EXPECT_TRUE(c.terse);
    EXPECT_EQ(c.set, "web");
    c = parsed({"set", "swap", "a", "b"});
    EXPECT_EQ(c.set2, "b");

    c = parsed({"ct", "list", "-p", "TCP", "-s", "192.0.2.0/24", "--dport", "8080", "--state", "established", "-f",
                "ipv4", "-w", "3"});
    EXPECT_EQ(c.filter.proto, 6);
    EXPECT_EQ(c.filter.src, "192.0.2.0/24");
    EXPECT_EQ(c.filter.dport, 8080);
    EXPECT_EQ(c.filter.state, "ESTABLISHED");
    EXPECT_EQ(c.filter.l3, 4);
    EXPECT_EQ(c.filter.zone, 3);
    c = parsed({"ct", "delete", "-d", "2001:db8::/32"});
    EXPECT_EQ(c.filter.dst, "2001:db8::/32");

    c = parsed({"events", "--new", "--count", "5", "--timeout", "2.5", "-p", "udp"});
    EXPECT_TRUE(c.ev_new);
    EXPECT_FALSE(c.ev_destroy);
    EXPECT_EQ(c.count, 5u);
    EXPECT_DOUBLE_EQ(*c.timeout_s, 2.5);
    EXPECT_EQ(c.filter.proto, 17);

    c = parsed({"restore"});
    EXPECT_EQ(c.rules4_file, "-");
    EXPECT_FALSE(c.rules6_file);
    c = parsed({"-6", "restore"});
    EXPECT_EQ(c.rules6_file, "-");
    c = parsed({"restore", "--rules6", "r6", "--sets", "-"});
    EXPECT_EQ(c.rules6_file, "r6");
    EXPECT_EQ(c.sets_file, "-");
    EXPECT_FALSE(c.rules4_file);
    c = parsed({"save"});
    EXPECT_TRUE(c.save_rules4 && !c.save_rules6 && !c.save_sets);
    c = parsed({"save", "--sets", "--rules6"});
    EXPECT_TRUE(!c.save_rules4 && c.save_rules6 && c.save_sets);

    EXPECT_TRUE(parsed({"mode"}).mode.empty());
    EXPECT_EQ(parsed({"mode", "monitor"}).mode, "monitor");
    c = parsed({"batch", "-", "--generation", "41"});
    EXPECT_EQ(c.file, "-");
    EXPECT_EQ(c.generation, 41u);
    EXPECT_TRUE(parsed({"stats", "--all"}).all);
}

// ---- command -> request ------------------------------------------------------------------------------

TEST(sluicectl_request, changes_carry_ack_and_their_attributes) {
    auto r = request_of(parsed({"-6", "rule", "insert", "FORWARD", "2", "-m", "comment", "--comment", "a b", "-j",
                                "ACCEPT"}));
    EXPECT_EQ(r.m.hdr.type, api::rule_new);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_ack);
    EXPECT_EQ(r.m.hdr.seq, 7u);
    EXPECT_EQ(r.al.find(api::a_family)->u8(), 6);
    EXPECT_EQ(r.al.text(api::a_chain), "FORWARD");
    EXPECT_EQ(r.al.text(api::a_spec), "-m comment --comment \"a b\" -j ACCEPT");
    EXPECT_EQ(r.al.find(api::a_position)->u32(), 2u);

    r = request_of(parsed({"rule", "append", "web", "-j", "DROP"}));
    EXPECT_EQ(r.al.find(api::a_family)->u8(), 4);
    EXPECT_EQ(r.al.find(api::a_position), nullptr);

    r = request_of(parsed({"rule", "delete", "web", "3"}));
    EXPECT_EQ(r.m.hdr.type, api::rule_del);
    EXPECT_EQ(r.al.find(api::a_position)->u32(), 3u);
    EXPECT_EQ(r.al.find(api::a_spec), nullptr);

    r = request_of(parsed({"rule", "flush"}));
    EXPECT_EQ(r.m.hdr.type, api::rule_flush);
    EXPECT_EQ(r.al.find(api::a_chain), nullptr);

    r = request_of(parsed({"chain", "policy", "FORWARD", "drop"}));
    EXPECT_EQ(r.m.hdr.type, api::chain_policy);
    EXPECT_EQ(r.al.text(api::a_policy), "DROP");

    r = request_of(parsed({"set", "create", "web", "hash:ip", "family", "inet", "-exist"}));
    EXPECT_EQ(r.m.hdr.type, api::set_create);
    EXPECT_EQ(r.al.text(api::a_type), "hash:ip");
    EXPECT_EQ(r.al.text(api::a_options), "family inet");
    EXPECT_NE(r.al.find(api::a_exist), nullptr);
    r = request_of(parsed({"set", "create", "web", "hash:ip"}));
    EXPECT_EQ(r.al.find(api::a_options), nullptr);
    EXPECT_EQ(r.al.find(api::a_exist), nullptr);

    r = request_of(parsed({"set", "del", "web", "192.0.2.1"}));
    EXPECT_EQ(r.m.hdr.type, api::set_del);
    EXPECT_EQ(r.al.text(api::a_elem), "192.0.2.1");
    r = request_of(parsed({"set", "swap", "a", "b"}));
    EXPECT_EQ(r.al.text(api::a_set), "a");
    EXPECT_EQ(r.al.text(api::a_set2), "b");
    r = request_of(parsed({"set", "destroy"}));
    EXPECT_EQ(r.m.hdr.type, api::set_destroy);
    EXPECT_TRUE(r.al.items.empty());

    r = request_of(parsed({"mode", "bypass"}));
    EXPECT_EQ(r.m.hdr.type, api::mode_set);
    EXPECT_EQ(r.al.text(api::a_mode), "bypass");

    policy_texts t;
    t.rules4 = std::string(200000, '#'); // longer than one attribute: pieces, concatenated
    t.sets = "create s hash:ip\n";
    r = request_of(parsed({"restore"}), &t);
    EXPECT_EQ(r.m.hdr.type, api::table_restore);
    EXPECT_EQ(r.al.text(api::a_rules4), t.rules4);
    EXPECT_EQ(r.al.text(api::a_sets), t.sets);
    EXPECT_FALSE(r.al.text(api::a_rules6));
}

TEST(sluicectl_request, queries_dump_or_ack) {
    auto r = request_of(parsed({"-6", "rule", "list", "FORWARD"}));
    EXPECT_EQ(r.m.hdr.type, api::rule_get);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_dump);
    EXPECT_EQ(r.al.find(api::a_family)->u8(), 6);
    EXPECT_EQ(r.al.text(api::a_chain), "FORWARD");

    r = request_of(parsed({"set", "list", "web"}));
    EXPECT_EQ(r.m.hdr.type, api::set_get);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_dump);
    EXPECT_EQ(r.al.text(api::a_set), "web");

    r = request_of(parsed({"set", "test", "web", "192.0.2.1"}));
    EXPECT_EQ(r.m.hdr.type, api::set_test);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_ack);

    for (auto [args, type] : {std::pair{std::vector<std::string>{"generation"}, api::gen_get},
                              std::pair{std::vector<std::string>{"mode"}, api::mode_get},
                              std::pair{std::vector<std::string>{"save"}, api::table_save},
                              std::pair{std::vector<std::string>{"ct", "count"}, api::ct_count},
                              std::pair{std::vector<std::string>{"ct", "flush"}, api::ct_flush}}) {
        r = request_of(parsed(args));
        EXPECT_EQ(r.m.hdr.type, type);
        EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_ack);
        EXPECT_TRUE(r.al.items.empty());
    }
    r = request_of(parsed({"stats"}));
    EXPECT_EQ(r.m.hdr.type, api::stats_get);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_dump);

    r = request_of(parsed({"ct", "delete", "-p", "tcp", "-s", "192.0.2.0/24", "--sport", "40000", "--state",
                           "SYN_SENT", "-f", "ipv4"}));
    EXPECT_EQ(r.m.hdr.type, api::ct_delete);
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_ack);
    const nl::attr* f = r.al.find(api::a_ct_filter);
    ASSERT_NE(f, nullptr);
    EXPECT_TRUE(f->nested);
    auto fl = nl::parse_attrs(f->data, f->offset + 4);
    EXPECT_EQ(fl.find(api::a_l3)->u8(), 4);
    EXPECT_EQ(fl.find(api::a_proto)->u8(), 6);
    EXPECT_EQ(fl.text(api::a_src), "192.0.2.0/24");
    EXPECT_EQ(fl.find(api::a_sport)->u16(), 40000);
    EXPECT_EQ(fl.text(api::a_state), "SYN_SENT");
    EXPECT_EQ(fl.find(api::a_dst), nullptr);
    // The offset of an attribute inside the nest is named with its path.
    EXPECT_EQ(attribute_at(r.bytes, fl.find(api::a_src)->offset), "CT_FILTER.SRC");
    EXPECT_EQ(attribute_at(r.bytes, f->offset), "CT_FILTER");
    EXPECT_EQ(attribute_at(r.bytes, 3), "");

    r = request_of(parsed({"ct", "list"}));
    EXPECT_EQ(r.m.hdr.flags, nl::f_request | nl::f_dump);
    EXPECT_EQ(r.al.find(api::a_ct_filter), nullptr);

    r = request_of(parsed({"events", "--destroy", "-p", "udp"}));
    EXPECT_EQ(r.m.hdr.type, api::ct_subscribe);
    EXPECT_EQ(r.al.find(api::a_events)->u32(), 2u);
    EXPECT_NE(r.al.find(api::a_ct_filter), nullptr);
    EXPECT_EQ(request_of(parsed({"events"})).al.find(api::a_events)->u32(), 3u);
}

// ---- local checks -------------------------------------------------------------------------------------

TEST(sluicectl_check, bad_rules_and_sets_are_caught_with_their_column) {
    EXPECT_EQ(check_command(parsed({"rule", "append", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"})), "");
    EXPECT_EQ(check_command(parsed({"rule", "append", "FORWARD", "-p", "tcp", "--dprot", "22", "-j", "ACCEPT"})),
              "rule:1:8: unknown option \"--dprot\"\n"
              "  -p tcp --dprot 22 -j ACCEPT\n"
              "         ^");
    EXPECT_NE(check_command(parsed({"-6", "rule", "append", "FORWARD", "-s", "192.0.2.1", "-j", "ACCEPT"})), "");
    EXPECT_EQ(check_command(parsed({"chain", "new", "bad name"})).substr(0, 23), "chain name \"bad name\": ");
    EXPECT_EQ(check_command(parsed({"chain", "new", "web"})), "");
    EXPECT_EQ(check_command(parsed({"set", "create", "web", "hash:ip", "family", "inet6"})), "");
    std::string e = check_command(parsed({"set", "create", "web", "hash:ip", "familly", "inet"}));
    EXPECT_EQ(e.substr(0, 10), "set:1:20: ") << e;
    EXPECT_NE(e.find("\n  create web hash:ip familly inet\n                     ^"), std::string::npos) << e;

    command c = parsed({"restore", "--rules", "x.rules", "--sets", "x.sets"});
    policy_texts t;
    t.rules4_name = "x.rules";
    t.rules4 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
               "-A FORWARD -p tcp --dprot 1 -j ACCEPT\nCOMMIT\n";
    e = check_command(c, &t);
    EXPECT_EQ(e, "x.rules:5:19: unknown option \"--dprot\"\n"
                 "  -A FORWARD -p tcp --dprot 1 -j ACCEPT\n"
                 "                    ^");
    t.rules4 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -j nowhere\nCOMMIT\n";
    e = check_command(c, &t);
    EXPECT_EQ(e, "x.rules:5:15: chain \"nowhere\" does not exist\n"
                 "  -A FORWARD -j nowhere\n"
                 "                ^");
    t.rules4.reset();
    t.sets_name = "x.sets";
    t.sets = "create s hash:ip\nadd s 192.0.2.300\n";
    e = check_command(c, &t);
    EXPECT_EQ(e.substr(0, 9), "x.sets:2:") << e;
    EXPECT_NE(e.find("  add s 192.0.2.300\n"), std::string::npos) << e;
}

TEST(sluicectl_check, refusals_name_the_attribute_and_the_position) {
    command c = parsed({"rule", "append", "FORWARD", "-j", "nowhere"});
    nl::builder b;
    put_request(b, c, 1);
    auto al = view(std::vector<uint8_t>(b.bytes().begin(), b.bytes().end())).attrs();
    uint32_t spec_at = al.find(api::a_spec)->offset;
    auto sources = sources_of(c);
    EXPECT_EQ(describe_refusal(b.bytes(), EINVAL, "bad target", spec_at, sources), "bad target (attribute SPEC)");
    EXPECT_EQ(describe_refusal(b.bytes(), ENOENT, "", 0, sources), "No such file or directory");
    EXPECT_EQ(describe_refusal(b.bytes(), EINVAL, "change 2 of 3 (RULE_NEW): rule:1:4: chain \"nowhere\" does not exist",
                               0, sources),
              "change 2 of 3 (RULE_NEW): rule:1:4: chain \"nowhere\" does not exist\n"
              "  -j nowhere\n"
              "     ^");
    named_text two{"rules.v4", "line one\n\tline two\n"};
    EXPECT_EQ(show_position("rules.v4:2:3: x", std::span<const named_text>(&two, 1)), "  \tline two\n  \t ^\n");
    EXPECT_EQ(show_position("rules.v4:9:1: x", std::span<const named_text>(&two, 1)), "");
    EXPECT_EQ(show_position("myrules.v4:1:1: x", std::span<const named_text>(&two, 1)), "");
    EXPECT_EQ(errno_name(ESTALE), "ESTALE");
}

// ---- replies -> text --------------------------------------------------------------------------------

TEST(sluicectl_format, counters_as_iptables_v) {
    EXPECT_EQ(format_count(0, false), "0");
    EXPECT_EQ(format_count(99999, false), "99999");
    EXPECT_EQ(format_count(100000, false), "100K");
    EXPECT_EQ(format_count(123456, false), "123K");
    EXPECT_EQ(format_count(9999499, false), "9999K");
    EXPECT_EQ(format_count(9999500, false), "10M");
    EXPECT_EQ(format_count(98765432, false), "99M");
    EXPECT_EQ(format_count(98765432, true), "98765432");
    EXPECT_EQ(format_count(12345678901234, false), "12T");
}

TEST(sluicectl_format, rule_listing_like_iptables_L_v_n_line_numbers) {
    std::vector<chain_row> chains;
    std::vector<rule_row> rules;
    for (auto& m : {chain_msg(4, "INPUT", "ACCEPT", 0, 0), chain_msg(4, "FORWARD", "DROP", 3, 0),
                    chain_msg(4, "OUTPUT", "ACCEPT", 0, 0), chain_msg(4, "web", std::nullopt, 1, 1),
                    chain_msg(6, "FORWARD", "ACCEPT", 1, 0)})
        chains.push_back(*decode_chain(view(m)));
    for (auto& m : {rule_msg(4, "FORWARD", 2, "-j web", 123456, 98765432),
                    rule_msg(4, "FORWARD", 1, "-p tcp -m tcp --dport 22 -m comment --comment \"ssh in\" -j ACCEPT", 12, 720),
                    rule_msg(4, "FORWARD", 3, "-s 198.51.100.7/32 ! -d 10.0.0.0/8 -i west -o east+ -p udp -m udp "
                                              "--sport 1:1024 -j REJECT --reject-with icmp-port-unreachable", 0, 0),
                    rule_msg(4, "web", 1, "-m set --match-set allowed src,dst -m conntrack --ctstate NEW,ESTABLISHED -g other", 5, 300),
                    rule_msg(6, "FORWARD", 1, "-p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT", 1, 104)})
        rules.push_back(*decode_rule(view(m)));
    const std::string head = "num   pkts bytes target     prot opt in     out     source               destination\n";
    EXPECT_EQ(format_rule_listing(chains, rules, 4, {}, false),
              "Chain INPUT (policy ACCEPT)\n" + head +
                  "\n"
                  "Chain FORWARD (policy DROP)\n" + head +
                  "1       12   720 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:22 /* ssh in */\n"
                  "2     123K   99M web        all  --  *      *       0.0.0.0/0            0.0.0.0/0\n"
                  "3        0     0 REJECT     udp  --  west   east+   198.51.100.7        !10.0.0.0/8           udp spts:1:1024 reject-with icmp-port-unreachable\n"
                  "\n"
                  "Chain OUTPUT (policy ACCEPT)\n" + head +
                  "\n"
                  "Chain web (1 references)\n" + head +
                  "1        5   300 other      all  --  *      *       0.0.0.0/0            0.0.0.0/0           [goto]  match-set allowed src,dst ctstate NEW,ESTABLISHED\n");
    EXPECT_EQ(format_rule_listing(chains, rules, 6, "FORWARD", true),
              "Chain FORWARD (policy ACCEPT)\n"
              "num      pkts      bytes target     prot opt in     out     source               destination\n"
              "1           1        104 ACCEPT     icmpv6 --  *      *       ::/0                 ::/0                 ipv6-icmptype 128\n");
    std::string j = rule_listing_json(chains, rules, 4, "web");
    EXPECT_EQ(j, "{\"family\":\"ipv4\",\"chains\":[{\"name\":\"web\",\"policy\":null,\"references\":1,\"rules\":["
                 "{\"position\":1,\"spec\":\"-m set --match-set allowed src,dst -m conntrack --ctstate NEW,ESTABLISHED "
                 "-g other\",\"target\":\"other\",\"packets\":5,\"bytes\":300}]}]}");

    // Chain headers with the policy counters when the server has them.
    chain_row c = chains[1];
    c.packets = 1234567;
    c.bytes = 42;
    EXPECT_EQ(format_rule_listing({c}, {}, 4, {}, false).substr(0, 48), "Chain FORWARD (policy DROP 1235K packets, 42 byt");

    EXPECT_EQ(format_chain_list({chains[0], chains[3]}),
              "CHAIN  POLICY   RULES  REFERENCES\n"
              "INPUT  ACCEPT       0           0\n"
              "web    -            1           1\n");
    EXPECT_EQ(chain_list_json({chains[3]}),
              "{\"chains\":[{\"family\":\"ipv4\",\"name\":\"web\",\"policy\":null,\"rules\":1,\"references\":1}]}");
}

TEST(sluicectl_format, match_descriptions) {
    auto line = [](std::string spec, uint8_t fam = 4) {
        rule_row r;
        r.family = fam;
        r.position = 1;
        r.spec = spec;
        std::string l = format_rule_line(r, false);
        return l.size() > 94 ? l.substr(94) : std::string("<short>" + l);
    };
    EXPECT_EQ(line("-p tcp -m tcp --sport 1000:2000 ! --dport 80 --tcp-flags SYN,ACK SYN -j ACCEPT"),
              "tcp spts:1000:2000 dpt:!80 flags:0x12/0x02");
    EXPECT_EQ(line("-p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT"), "multiport dports 80,443,8000:8080");
    EXPECT_EQ(line("-p icmp -m icmp --icmp-type 3/4 -j ACCEPT"), "icmptype 3 code 4");
    EXPECT_EQ(line("-m state --state INVALID -j DROP"), "state INVALID");
    EXPECT_EQ(line("-m conntrack ! --ctstate NEW -j DROP"), "! ctstate NEW");
    EXPECT_EQ(line("-m set ! --match-set bad src -j ACCEPT"), "! match-set bad src");
    EXPECT_EQ(line("-m mac --mac-source 02:00:00:00:00:0A -j ACCEPT"), "MAC 02:00:00:00:00:0a");
    EXPECT_EQ(line("-m statistic --mode random --probability 0.5 -j ACCEPT"),
              "statistic mode random probability 0.50000000000");
    EXPECT_EQ(line("-m limit --limit 3/hour -j LOG --log-prefix \"x: \""),
              "limit: avg 3/hour burst 5 LOG flags 0 level 4 prefix \"x: \"");
    EXPECT_EQ(line("-j NFLOG --nflog-group 5 --nflog-prefix hello"), "nflog-prefix hello nflog-group 5");
}

TEST(sluicectl_format, sets_like_ipset_list) {
    auto header = msg(api::set_get, [](nl::builder& b) {
        b.put_str(api::a_set, "web");
        b.put_str(api::a_type, "hash:ip");
        b.put_str(api::a_options, "family inet hashsize 1024 maxelem 65536");
        b.put_u32(api::a_elements, 2);
        b.put_u32(api::a_references, 1);
    });
    auto elems = msg(api::set_elems, [](nl::builder& b) {
        b.put_str(api::a_set, "web");
        b.put_str(api::a_elem, "192.0.2.1");
        b.put_str(api::a_elem, "192.0.2.0/24 nomatch");
    });
    auto empty = msg(api::set_get, [](nl::builder& b) {
        b.put_str(api::a_set, "none");
        b.put_str(api::a_type, "bitmap:port");
        b.put_str(api::a_options, "range 0-1023");
        b.put_u32(api::a_elements, 0);
        b.put_u32(api::a_references, 0);
        b.put_u64(api::a_bytes, 8392);
    });
    auto print = [&](bool json, bool names, bool terse) {
        std::ostringstream s;
        set_printer p(s, json, names, terse);
        for (auto* m : {&header, &elems, &empty}) p.on_message(view(*m));
        p.finish();
        return s.str();
    };
    EXPECT_EQ(print(false, false, false), "Name: web\nType: hash:ip\nHeader: family inet hashsize 1024 maxelem 65536\n"
                                          "References: 1\nNumber of entries: 2\nMembers:\n192.0.2.1\n192.0.2.0/24 nomatch\n"
                                          "\n"
                                          "Name: none\nType: bitmap:port\nHeader: range 0-1023\nSize in memory: 8392\n"
                                          "References: 0\nNumber of entries: 0\nMembers:\n");
    EXPECT_EQ(print(false, true, false), "web\nnone\n");
    EXPECT_EQ(print(false, false, true).find("Members"), std::string::npos);
    EXPECT_EQ(print(true, false, false),
              "{\"sets\":[{\"name\":\"web\",\"type\":\"hash:ip\",\"header\":\"family inet hashsize 1024 maxelem 65536\","
              "\"references\":1,\"entries\":2,\"members\":[\"192.0.2.1\",\"192.0.2.0/24 nomatch\"]},"
              "{\"name\":\"none\",\"type\":\"bitmap:port\",\"header\":\"range 0-1023\",\"size_in_memory\":8392,"
              "\"references\":0,\"entries\":0,\"members\":[]}]}\n");
    EXPECT_EQ(print(true, true, false), "{\"sets\":[{\"name\":\"web\"},{\"name\":\"none\"}]}\n");
    std::ostringstream s;
    set_printer p(s, true, false, false);
    p.finish();
    EXPECT_EQ(s.str(), "{\"sets\":[]}\n");
}

TEST(sluicectl_format, flows_like_conntrack) {
    auto tcp = decode_flow(view(flow_msg(api::ct_get, 6, 40000, 8080, "ESTABLISHED", "ESTABLISHED", true)));
    ASSERT_TRUE(tcp);
    EXPECT_EQ(format_flow(*tcp), "tcp      6 431999 ESTABLISHED src=192.0.2.1 dst=192.0.2.2 sport=40000 dport=8080 "
                                 "src=192.0.2.2 dst=192.0.2.1 sport=8080 dport=40000 [ASSURED] zone=0");
    auto icmp = decode_flow(view(flow_msg(api::ct_get, 1, 77, 8, "NEW", "", false)));
    EXPECT_EQ(format_flow(*icmp), "icmp     1 431999 src=192.0.2.1 dst=192.0.2.2 type=8 code=0 id=77 [UNREPLIED] "
                                  "src=192.0.2.2 dst=192.0.2.1 type=0 code=0 id=77 zone=0");
    auto ev = decode_flow(view(flow_msg(api::ct_event, 17, 5353, 53, "NEW", "", false, 1)));
    EXPECT_EQ(format_flow(*ev).substr(0, 30), "    [NEW] udp      17 431999 s");
    ev = decode_flow(view(flow_msg(api::ct_event, 6, 1, 2, "ESTABLISHED", "TIME_WAIT", true, 2)));
    EXPECT_EQ(format_flow(*ev).substr(0, 36), "[DESTROY] tcp      6 TIME_WAIT src=1"); // no timeout
    EXPECT_EQ(flow_json(*tcp), "{\"family\":\"ipv4\",\"proto\":\"tcp\",\"protonum\":6,\"src\":\"192.0.2.1\",\"dst\":"
                               "\"192.0.2.2\",\"sport\":40000,\"dport\":8080,\"state\":\"ESTABLISHED\",\"tcp_state\":"
                               "\"ESTABLISHED\",\"timeout\":431999,\"zone\":0,\"worker\":1,\"assured\":true}");
    EXPECT_EQ(flow_json(*ev).substr(0, 20), "{\"event\":\"destroy\",\"");

    ct_filter_args f;
    EXPECT_TRUE(filter_matches(f, *tcp));
    f.src = "192.0.2.0/30";
    f.proto = 6;
    f.dport = 8080;
    f.state = "ESTABLISHED";
    EXPECT_TRUE(filter_matches(f, *tcp));
    f.src = "192.0.2.2/32";
    EXPECT_FALSE(filter_matches(f, *tcp));
    f = {};
    f.l3 = 6;
    EXPECT_FALSE(filter_matches(f, *tcp));
    f = {};
    f.state = "TIME_WAIT";
    EXPECT_FALSE(filter_matches(f, *tcp));
    EXPECT_TRUE(filter_matches(f, *ev));
}

TEST(sluicectl_format, stats_tables_and_json) {
    auto m = msg(api::stats_get, [](nl::builder& b) {
        auto section = [&](const char* kind, const char* name, std::vector<std::pair<const char*, uint64_t>> cs) {
            size_t s = b.begin_nest(api::a_section);
            b.put_str(api::a_kind, kind);
            b.put_str(api::a_name, name);
            for (auto [n, v] : cs) {
                size_t c = b.begin_nest(api::a_counter);
                b.put_str(api::a_name, n);
                b.put_u64(api::a_value, v);
                b.end_nest(c);
            }
            b.end_nest(s);
        };
        section("port", "west", {{"rx_packets", 1000}, {"tx_packets", 998}});
        section("port", "east", {{"rx_packets", 5}, {"tx_packets", 123456789}});
        section("drops", "", {{"l2_truncated", 0}, {"policy_drop", 12}});
        section("conntrack", "", {{"flows", 3}});
    });
    auto sections = decode_sections(view(m));
    ASSERT_EQ(sections.size(), 4u);
    EXPECT_EQ(format_stats(sections, false), "Ports         west       east\n"
                                             "  rx_packets  1000          5\n"
                                             "  tx_packets   998  123456789\n"
                                             "\n"
                                             "Drops (non-zero; --all for every reason)\n"
                                             "  policy_drop  12\n"
                                             "\n"
                                             "Conntrack\n"
                                             "  flows  3\n");
    EXPECT_NE(format_stats(sections, true).find("  l2_truncated   0\n"), std::string::npos);
    EXPECT_EQ(stats_json_fields(sections),
              "\"port\":{\"west\":{\"rx_packets\":1000,\"tx_packets\":998},\"east\":{\"rx_packets\":5,"
              "\"tx_packets\":123456789}},\"drops\":{\"l2_truncated\":0,\"policy_drop\":12},\"conntrack\":{\"flows\":3}");
    EXPECT_EQ(json_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

// ---- whole commands over a scripted transport ---------------------------------------------------------

TEST(sluicectl_session, a_change_and_its_exit_status) {
    scripted_transport t;
    t.answers.push_back(ack_with_generation(5));
    auto r = run(t, {"rule", "append", "FORWARD", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"});
    EXPECT_EQ(r.status, exit_ok);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
    ASSERT_EQ(t.sent.size(), 1u);
    EXPECT_EQ(t.messages(0).at(0).hdr.type, api::rule_new);

    t.answers.push_back(ack_with_generation(6));
    r = run(t, {"-j", "chain", "new", "web"});
    EXPECT_EQ(r.out, "{\"ok\":true,\"generation\":6}\n");

    // Refused by the server: its text, the attribute, exit 1.
    scripted_transport::answer no;
    no.err = ENOENT;
    no.text = "iptables: chain \"nope\" does not exist";
    t.answers.push_back(no);
    r = run(t, {"rule", "append", "nope", "-j", "DROP"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.err, "sluicectl: rule append: iptables: chain \"nope\" does not exist\n");
    t.answers.push_back(no);
    r = run(t, {"-j", "rule", "append", "nope", "-j", "DROP"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.out, "{\"error\":{\"status\":1,\"message\":\"rule append: iptables: chain \\\"nope\\\" does not "
                     "exist\",\"errno\":2,\"name\":\"ENOENT\"}}\n");

    // A spec error the server found: the position in the spec we sent.
    scripted_transport::answer bad;
    bad.err = EINVAL;
    bad.text = "rule:1:4: chain \"nope\" does not exist";
    t.answers.push_back(bad);
    r = run(t, {"rule", "append", "FORWARD", "-j", "nope"});
    EXPECT_EQ(r.err, "sluicectl: rule append: rule:1:4: chain \"nope\" does not exist\n  -j nope\n     ^\n");

    // Caught locally: nothing is sent, not even a connection.
    scripted_transport local;
    r = run(local, {"rule", "append", "FORWARD", "-p", "tcp", "--dprot", "22"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_TRUE(local.sent.empty());
    EXPECT_FALSE(local.connected);
    EXPECT_NE(r.err.find("rule:1:8: unknown option \"--dprot\""), std::string::npos);

    // Usage errors: 2, nothing sent.
    r = run(local, {"rule", "append", "FORWARD"});
    EXPECT_EQ(r.status, exit_usage);
    EXPECT_TRUE(local.sent.empty());

    // No server: 3. A lost connection: 3.
    scripted_transport down;
    down.connect_error = "connect /run/sluice/control.sock: No such file or directory";
    r = run(down, {"generation"});
    EXPECT_EQ(r.status, exit_connect);
    EXPECT_EQ(r.err, "sluicectl: cannot reach sluice-control: connect /run/sluice/control.sock: No such file or "
                     "directory\n");
    scripted_transport gone; // no scripted answer: the connection closes
    r = run(gone, {"generation"});
    EXPECT_EQ(r.status, exit_connect);
    // ... but an EPIPE the server relays (its fast path went away) is a refusal: 1.
    scripted_transport relay;
    scripted_transport::answer pipe;
    pipe.err = EPIPE;
    pipe.text = "send: Broken pipe";
    relay.answers.push_back(pipe);
    r = run(relay, {"ct", "count"});
    EXPECT_EQ(r.status, exit_failed);
}

TEST(sluicectl_session, queries_print_their_answers) {
    scripted_transport t;
    scripted_transport::answer g;
    g.messages.push_back(msg(api::gen_get, [](nl::builder& b) {
        b.put_u32(api::a_generation, 42);
        b.put_str(api::a_mode, "monitor");
    }, 0));
    t.answers.push_back(g);
    t.answers.push_back(g);
    t.answers.push_back(g);
    EXPECT_EQ(run(t, {"generation"}).out, "42\n");
    EXPECT_EQ(run(t, {"mode"}).out, "monitor\n");
    EXPECT_EQ(run(t, {"-j", "generation"}).out, "{\"generation\":42}\n");

    scripted_transport::answer member, not_member;
    not_member.err = ENOENT;
    not_member.text = "192.0.2.9 is NOT in set web";
    t.answers.push_back(member);
    t.answers.push_back(not_member);
    auto r = run(t, {"set", "test", "web", "192.0.2.1"});
    EXPECT_EQ(r.status, exit_ok);
    EXPECT_EQ(r.out, "192.0.2.1 is in set web.\n");
    r = run(t, {"set", "test", "web", "192.0.2.9"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.out, "192.0.2.9 is NOT in set web.\n");
    scripted_transport::answer no_set;
    no_set.err = ENOENT;
    no_set.text = "set nope does not exist";
    t.answers.push_back(no_set);
    r = run(t, {"set", "test", "nope", "192.0.2.9"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.err, "sluicectl: set test: set nope does not exist\n");

    scripted_transport::answer save;
    save.messages.push_back(msg(api::table_save, [](nl::builder& b) {
        b.put_u32(api::a_generation, 3);
        b.put_text(api::a_rules4, "*filter\nCOMMIT\n");
        b.put_text(api::a_rules6, "*filter6\nCOMMIT\n");
        b.put_text(api::a_sets, "create s hash:ip\n");
    }, 0));
    t.answers.push_back(save);
    t.answers.push_back(save);
    t.answers.push_back(save);
    EXPECT_EQ(run(t, {"save"}).out, "*filter\nCOMMIT\n");
    EXPECT_EQ(run(t, {"save", "--rules6", "--sets"}).out, "create s hash:ip\n*filter6\nCOMMIT\n");
    EXPECT_EQ(run(t, {"-j", "save", "--sets"}).out, "{\"generation\":3,\"sets\":\"create s hash:ip\\n\"}\n");

    // rule list: a CHAIN_GET dump, then RULE_GET.
    scripted_transport l;
    scripted_transport::answer chains, rules;
    chains.messages = {chain_msg(4, "FORWARD", "DROP", 1, 0)};
    rules.messages = {rule_msg(4, "FORWARD", 1, "-j ACCEPT", 1, 2)};
    l.answers.push_back(chains);
    l.answers.push_back(rules);
    r = run(l, {"rule", "list", "FORWARD"});
    EXPECT_EQ(r.status, exit_ok);
    EXPECT_EQ(r.out, "Chain FORWARD (policy DROP)\n"
                     "num   pkts bytes target     prot opt in     out     source               destination\n"
                     "1        1     2 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0\n");
    ASSERT_EQ(l.sent.size(), 2u);
    EXPECT_EQ(l.messages(0).at(0).hdr.type, api::chain_get);
    EXPECT_EQ(l.messages(1).at(0).hdr.type, api::rule_get);

    // ct list streams; the count goes to stderr.
    scripted_transport c;
    scripted_transport::answer flows;
    flows.messages = {flow_msg(api::ct_get, 6, 1, 2, "ESTABLISHED", "ESTABLISHED", true),
                      flow_msg(api::ct_get, 17, 3, 4, "NEW", "", false)};
    c.answers.push_back(flows);
    c.answers.push_back(flows);
    r = run(c, {"ct", "list", "-p", "tcp"});
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
    EXPECT_EQ(r.err, "sluicectl: 2 flow entries have been shown.\n");
    r = run(c, {"-j", "ct", "list"});
    EXPECT_EQ(r.out.substr(0, 21), "{\"flows\":[{\"family\":\"");
    EXPECT_EQ(r.out.substr(r.out.size() - 4), "}]}\n");
    scripted_transport::answer count;
    count.messages.push_back(msg(api::ct_delete, [](nl::builder& b) { b.put_u64(api::a_count, 7); }, 0));
    c.answers.push_back(count);
    EXPECT_EQ(run(c, {"ct", "delete", "-p", "udp"}).out, "7 flow entries have been deleted.\n");
}

TEST(sluicectl_session, restore_reads_files_and_stdin) {
    char tmpl[] = "/tmp/sluicectl-test.XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                        "-A FORWARD -m set --match-set web src -j ACCEPT\nCOMMIT\n";
    std::ofstream(dir + "/sets") << "create web hash:ip\nadd web 192.0.2.1\n";
    scripted_transport t;
    t.answers.push_back(ack_with_generation(9));
    auto r = run(t, {"restore", "--sets", dir + "/sets", "--rules", "-"}, rules);
    EXPECT_EQ(r.status, exit_ok) << r.err;
    ASSERT_EQ(t.sent.size(), 1u);
    auto al = t.messages(0).at(0).attrs();
    EXPECT_EQ(al.text(api::a_rules4), rules);
    EXPECT_EQ(al.text(api::a_sets), "create web hash:ip\nadd web 192.0.2.1\n");
    EXPECT_FALSE(al.text(api::a_rules6));

    r = run(t, {"restore", "--rules", dir + "/missing"});
    EXPECT_EQ(r.status, exit_usage);
    EXPECT_NE(r.err.find("cannot read " + dir + "/missing"), std::string::npos);
    r = run(t, {"-6", "restore"}, "*filter\n-A FORWARD -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n");
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("<stdin>:2:"), std::string::npos) << r.err;
    EXPECT_EQ(t.sent.size(), 1u);
    fs::remove_all(dir);
}

TEST(sluicectl_session, batch_is_one_transaction) {
    const std::string file = "# setup\n"
                             "chain new web\n"
                             "\n"
                             "rule append web -s 192.0.2.0/24 -j ACCEPT\n"
                             "sluicectl set add allowed '192.0.2.7'\n";
    scripted_transport t;
    t.answers.push_back({});                  // BATCH_BEGIN
    t.answers.push_back({});                  // the changes
    t.answers.push_back(ack_with_generation(12)); // BATCH_END
    auto r = run(t, {"batch", "-", "--generation", "11"}, file);
    EXPECT_EQ(r.status, exit_ok) << r.err;
    EXPECT_EQ(r.out, "applied 3 change(s): generation 12\n");
    ASSERT_EQ(t.sent.size(), 3u);
    auto begin = t.messages(0);
    EXPECT_EQ(begin.at(0).hdr.type, api::batch_begin);
    EXPECT_EQ(begin.at(0).hdr.flags, nl::f_request | nl::f_ack);
    EXPECT_EQ(begin.at(0).attrs().find(api::a_generation)->u32(), 11u);
    auto changes = t.messages(1);
    ASSERT_EQ(changes.size(), 3u);
    EXPECT_EQ(changes[0].hdr.type, api::chain_new);
    EXPECT_EQ(changes[1].hdr.type, api::rule_new);
    EXPECT_EQ(changes[2].hdr.type, api::set_add);
    EXPECT_EQ(changes[2].attrs().text(api::a_elem), "192.0.2.7");
    for (const auto& m : changes) EXPECT_EQ(m.hdr.flags, nl::f_request | nl::f_ack);
    EXPECT_EQ(t.messages(2).at(0).hdr.type, api::batch_end);

    // The generation moved: ESTALE, a clear message, exit 1.
    scripted_transport stale;
    stale.answers.push_back({});
    stale.answers.push_back({});
    scripted_transport::answer est;
    est.err = ESTALE;
    est.text = "change 1 of 3 (CHAIN_NEW): generation 11 is stale: the policy is at generation 13 (someone else "
               "changed it; re-read and retry); nothing was applied";
    stale.answers.push_back(est);
    r = run(stale, {"batch", "-", "--generation", "11"}, file);
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.err, "sluicectl: batch refused: generation 11 is stale: the policy is at generation 13 (someone "
                     "else changed it; re-read and retry); nothing was applied\n");

    // A change refused at commit: named by its line, with the position in its spec.
    scripted_transport late;
    late.answers.push_back({});
    late.answers.push_back({});
    scripted_transport::answer bad;
    bad.err = EINVAL;
    bad.text = "change 2 of 3 (RULE_NEW): rule:1:4: no such set; nothing was applied";
    late.answers.push_back(bad);
    r = run(late, {"batch", "-"}, file);
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.err, "sluicectl: <stdin>:4: change 2 of 3 (RULE_NEW): rule:1:4: no such set; nothing was applied\n"
                     "  -s 192.0.2.0/24 -j ACCEPT\n"
                     "     ^\n");

    // A change refused on the way: BATCH_ABORT, exit 1.
    scripted_transport early;
    early.answers.push_back({});
    scripted_transport::answer refused;
    refused.err = EINVAL;
    refused.text = "SET_ADD: missing attribute ELEM";
    early.answers.push_back(refused);
    early.answers.push_back({}); // the abort's ACK
    r = run(early, {"batch", "-"}, file);
    EXPECT_EQ(r.status, exit_failed);
    ASSERT_EQ(early.sent.size(), 3u);
    EXPECT_EQ(early.messages(2).at(0).hdr.type, api::batch_abort);
    EXPECT_NE(r.err.find("<stdin>:2-5: refused: SET_ADD: missing attribute ELEM; nothing was applied"), std::string::npos)
        << r.err;

    // Lines are checked before anything is sent.
    scripted_transport none;
    r = run(none, {"batch", "-"}, "chain new a\nrule append a -p tcp --dport x -j ACCEPT\n");
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("<stdin>:2: rule:1:16: invalid port/service \"x\" specified"), std::string::npos) << r.err;
    r = run(none, {"batch", "-"}, "chain new a\nstats\n");
    EXPECT_EQ(r.status, exit_usage);
    EXPECT_NE(r.err.find("<stdin>:2: 'stats' cannot be part of a batch"), std::string::npos) << r.err;
    r = run(none, {"batch", "-"}, "rule frob\n");
    EXPECT_EQ(r.status, exit_usage);
    r = run(none, {"batch", "-"}, "set add s \"unterminated\n");
    EXPECT_EQ(r.status, exit_usage);
    EXPECT_TRUE(none.sent.empty());
    EXPECT_FALSE(none.connected);

    // Big batches go in several datagrams, each within batch_datagram (plus one message).
    std::string many;
    for (int i = 0; i < 6000; ++i) many += "set add allowed 192.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + "\n";
    scripted_transport big;
    for (int i = 0; i < 20; ++i) big.answers.push_back({});
    r = run(big, {"-j", "batch", "-"}, many);
    EXPECT_EQ(r.status, exit_ok) << r.err;
    EXPECT_EQ(r.out, "{\"ok\":true,\"changes\":6000}\n");
    size_t n = 0;
    for (size_t k = 1; k + 1 < big.sent.size(); ++k) {
        EXPECT_LE(big.sent[k].size(), batch_datagram + 256);
        n += big.messages(k).size();
    }
    EXPECT_GT(big.sent.size(), 3u);
    EXPECT_EQ(n, 6000u);
}

TEST(sluicectl_session, events_until_count_or_close) {
    scripted_transport t;
    t.answers.push_back({}); // the subscription's ACK
    t.events.push_back(flow_msg(api::ct_event, 6, 1, 2, "NEW", "SYN_SENT", false, 1));
    t.events.push_back(std::vector<uint8_t>{}); // nothing for a while
    t.events.push_back(flow_msg(api::ct_event, 17, 3, 4, "NEW", "", false, 1)); // filtered out
    t.events.push_back(flow_msg(api::ct_event, 6, 1, 2, "ESTABLISHED", "TIME_WAIT", true, 2));
    t.events.push_back(flow_msg(api::ct_event, 6, 5, 6, "NEW", "SYN_SENT", false, 1));
    auto r = run(t, {"events", "-p", "tcp", "--count", "2"});
    EXPECT_EQ(r.status, exit_ok);
    EXPECT_EQ(r.out, "    [NEW] tcp      6 431999 SYN_SENT src=192.0.2.1 dst=192.0.2.2 sport=1 dport=2 [UNREPLIED] "
                     "src=192.0.2.2 dst=192.0.2.1 sport=2 dport=1 zone=0\n"
                     "[DESTROY] tcp      6 TIME_WAIT src=192.0.2.1 dst=192.0.2.2 sport=1 dport=2 src=192.0.2.2 "
                     "dst=192.0.2.1 sport=2 dport=1 [ASSURED] zone=0\n");
    EXPECT_EQ(t.events.size(), 1u); // stopped after the second shown

    scripted_transport d;
    d.answers.push_back({});
    d.events.push_back(flow_msg(api::ct_event, 6, 1, 2, "NEW", "SYN_SENT", false, 1));
    d.events.push_back(flow_msg(api::ct_event, 6, 1, 2, "ESTABLISHED", "CLOSE", true, 2));
    r = run(d, {"-j", "events", "--destroy"}); // then the connection closes
    EXPECT_EQ(r.status, exit_connect);
    EXPECT_EQ(r.out.substr(0, 20), "{\"event\":\"destroy\",\"");
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2); // the event, then the error object
    EXPECT_NE(r.out.find("\"status\":3"), std::string::npos);

    scripted_transport q;
    q.answers.push_back({});
    for (int i = 0; i < 100; ++i) q.events.push_back(std::vector<uint8_t>{}); // 20 ms each
    r = run(q, {"events", "--timeout", "0.05"});
    EXPECT_EQ(r.status, exit_ok);
}

// ---- against the real sluice-control service ----------------------------------------------------------

class sluicectl_live : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sluicectl-live.XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        cfg_.socket = dir_ + "/control.sock";
        cfg_.fastpath_socket = dir_ + "/no-fastpath.sock";
        cfg_.state_dir = dir_ + "/state";
        cfg_.socket_owner = ::getuid();
        cfg_.socket_group = ::getgid();
        cfg_.exceptions = exceptions_mode::off;
        spdlog::set_level(spdlog::level::err); // the service logs every change
        svc_ = std::make_unique<control_service>(cfg_);
        ASSERT_EQ(svc_->start(), "");
        run_ = true;
        thread_ = std::thread([this] {
            while (run_) svc_->poll(10);
        });
    }
    void TearDown() override {
        run_ = false;
        if (thread_.joinable()) thread_.join();
        svc_.reset();
        fs::remove_all(dir_);
    }
    run_result ctl(std::vector<std::string> args, std::string input = {}) {
        args.insert(args.begin(), {"-s", cfg_.socket});
        socket_transport t;
        std::ostringstream out, err;
        std::istringstream in(input);
        int st = run_sluicectl(args, t, {out, err, in});
        return {st, out.str(), err.str()};
    }

    std::string dir_;
    control_config cfg_;
    std::unique_ptr<control_service> svc_;
    std::atomic<bool> run_{false};
    std::thread thread_;
};

TEST_F(sluicectl_live, rules_sets_batches_and_errors) {
    EXPECT_EQ(ctl({"generation"}).out, "0\n");
    auto r = ctl({"rule", "append", "FORWARD", "-p", "tcp", "--dport", "22", "-m", "comment", "--comment", "ssh in",
                  "-j", "ACCEPT"});
    EXPECT_EQ(r.status, exit_ok) << r.err;
    EXPECT_EQ(ctl({"chain", "new", "web"}).status, exit_ok);
    EXPECT_EQ(ctl({"rule", "insert", "FORWARD", "1", "-j", "web"}).status, exit_ok);
    EXPECT_EQ(ctl({"chain", "policy", "FORWARD", "DROP"}).status, exit_ok);
    r = ctl({"rule", "list", "FORWARD"});
    EXPECT_EQ(r.status, exit_ok) << r.err;
    EXPECT_EQ(r.out, "Chain FORWARD (policy DROP)\n"
                     "num   pkts bytes target     prot opt in     out     source               destination\n"
                     "1        0     0 web        all  --  *      *       0.0.0.0/0            0.0.0.0/0\n"
                     "2        0     0 ACCEPT     tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            "
                     "tcp dpt:22 /* ssh in */\n");
    r = ctl({"rule", "list", "nosuch"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    r = ctl({"rule", "append", "FORWARD", "-j", "nowhere"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
    EXPECT_EQ(ctl({"rule", "delete", "FORWARD", "-j", "web"}).status, exit_ok);
    EXPECT_EQ(ctl({"rule", "delete", "FORWARD", "5"}).status, exit_failed);

    EXPECT_EQ(ctl({"set", "create", "allowed", "hash:ip"}).status, exit_ok);
    EXPECT_EQ(ctl({"set", "add", "allowed", "192.0.2.1"}).status, exit_ok);
    EXPECT_EQ(ctl({"set", "add", "allowed", "192.0.2.1"}).status, exit_failed);
    EXPECT_EQ(ctl({"set", "add", "allowed", "192.0.2.1", "-exist"}).status, exit_ok);
    EXPECT_EQ(ctl({"set", "test", "allowed", "192.0.2.1"}).status, exit_ok);
    r = ctl({"set", "test", "allowed", "192.0.2.2"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_EQ(r.out, "192.0.2.2 is NOT in set allowed.\n");
    r = ctl({"set", "list", "allowed"});
    EXPECT_EQ(r.out, "Name: allowed\nType: hash:ip\nHeader: family inet hashsize 1024 maxelem 65536\n"
                     "References: 0\nNumber of entries: 1\nMembers:\n192.0.2.1\n");

    auto gen = std::stoul(ctl({"generation"}).out);
    r = ctl({"batch", "-", "--generation", std::to_string(gen)},
            "rule append web -m set --match-set allowed src -j ACCEPT\nset add allowed 192.0.2.5\n");
    EXPECT_EQ(r.status, exit_ok) << r.err;
    EXPECT_EQ(r.out, "applied 2 change(s): generation " + std::to_string(gen + 1) + "\n");
    r = ctl({"batch", "-", "--generation", std::to_string(gen)}, "set add allowed 192.0.2.6\n");
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("batch refused: generation " + std::to_string(gen) + " is stale"), std::string::npos) << r.err;
    r = ctl({"batch", "-"}, "set add allowed 192.0.2.7\nrule append nowhere -j ACCEPT\n");
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("<stdin>:2: change 2 of 2"), std::string::npos) << r.err;
    EXPECT_EQ(ctl({"set", "test", "allowed", "192.0.2.7"}).status, exit_failed); // nothing applied

    r = ctl({"save", "--sets"}); // (members in hash order)
    EXPECT_EQ(r.out.substr(0, 63), "create allowed hash:ip family inet hashsize 1024 maxelem 65536\n");
    EXPECT_NE(r.out.find("\nadd allowed 192.0.2.1\n"), std::string::npos);
    EXPECT_NE(r.out.find("\nadd allowed 192.0.2.5\n"), std::string::npos);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
    r = ctl({"restore"}, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                         "-A FORWARD -m set --match-set nosuch src -j DROP\nCOMMIT\n");
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.err;
    EXPECT_EQ(ctl({"-j", "mode", "monitor"}).out, "{\"ok\":true,\"generation\":" + std::to_string(gen + 2) + "}\n");
    EXPECT_EQ(ctl({"mode"}).out, "monitor\n");

    // What needs the fast path says so (exit 1), and a missing server is exit 3.
    r = ctl({"ct", "count"});
    EXPECT_EQ(r.status, exit_failed);
    EXPECT_NE(r.err.find("sluice-fastpath"), std::string::npos) << r.err;
    socket_transport t;
    std::ostringstream out, err;
    std::istringstream in;
    std::vector<std::string> args{"-s", dir_ + "/elsewhere.sock", "generation"};
    EXPECT_EQ(run_sluicectl(args, t, {out, err, in}), exit_connect);
}

} // namespace
