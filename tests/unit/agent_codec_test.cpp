// Agent codec tests (fastpath/agent_codec.hpp, no EAL): request attribute checking with
// its offsets, CT_FILTER decoding and matching on original-direction views, the CT_FLOW
// nest, flow-table events, the racing reader (read_flow_entry against a writer thread),
// FP_SETS line restrictions, the state directory and the agent's options.
#include "agent_codec.hpp"
#include "config.hpp"
#include "packet_builder.hpp"
#include "policy_api.hpp"


#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace sluice;
namespace fs = std::filesystem;

namespace {

// A confirmed entry for a flow whose first packet went src:sp -> dst:dp.
flow_entry flow(const char* src, const char* dst, uint16_t sp, uint16_t dp, uint8_t proto,
                uint32_t expires = 2000, uint8_t extra_status = 0) {
    packet_meta m{};
    m.src = test::make_addr(src);
    m.dst = test::make_addr(dst);
    m.sport = sp;
    m.dport = dp;
    m.l3 = std::strchr(src, ':') ? l3_kind::ipv6 : l3_kind::ipv4;
    m.l4_proto = proto;
    m.icmp_type = proto == ipproto_icmp ? 8 : 0;
    flow_entry e;
    std::memset(static_cast<void*>(&e), 0, sizeof e);
    flow_side side = make_flow_key(m, 0, e.key);
    e.status = uint8_t(flow_status::confirmed | extra_status |
                       (side == flow_side::hi ? flow_status::orig_hi : 0));
    e.l4_class = uint8_t(ct_detail::l4_of(proto));
    e.expires = expires;
    e.created = 1;
    return e;
}

// Build one message with the given attributes and parse its attribute list.
struct msg {
    nl::builder b;
    std::vector<uint8_t> bytes;
    nl::message m;
    nl::attr_list al;
    template <class F> explicit msg(F&& fill) {
        b.begin(api::fp_policy, nl::f_request, 1);
        fill(b);
        b.end();
        bytes.assign(b.bytes().begin(), b.bytes().end());
        m = nl::split(bytes).messages.at(0);
        al = m.attrs();
    }
};

constexpr attr_spec policy_spec[] = {{api::a_generation, attr_kind::u32, true},
                                     {api::a_mode, attr_kind::str},
                                     {api::a_rules4, attr_kind::text}};

} // namespace

TEST(AgentCodec, CheckAttrsAcceptsAWellFormedRequest) {
    msg r([](nl::builder& b) {
        b.put_u32(api::a_generation, 3);
        b.put_str(api::a_mode, "monitor");
        b.put_text(api::a_rules4, std::string(200000, 'x')); // several pieces: allowed
    });
    EXPECT_FALSE(check_attrs("FP_POLICY", r.al, policy_spec));
    EXPECT_EQ(r.al.text(api::a_rules4)->size(), 200000u);
}

TEST(AgentCodec, CheckAttrsNamesTheOffendingAttributeAndItsOffset) {
    msg wrong_size([](nl::builder& b) {
        b.put_u32(api::a_generation, 3);
        b.put_u8(api::a_mode, 'A'); // no NUL
    });
    auto e = check_attrs("FP_POLICY", wrong_size.al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->err, EINVAL);
    EXPECT_EQ(e->offset, 16u + 8u); // after the header and GENERATION (4 + 4)
    EXPECT_NE(e->text.find("MODE"), std::string::npos) << e->text;
    EXPECT_NE(
        e->text.find("expected NUL-terminated string, got 1 byte(s) without a terminating NUL"),
        std::string::npos)
        << e->text;

    msg short_gen([](nl::builder& b) { b.put_u16(api::a_generation, 3); });
    e = check_attrs("FP_POLICY", short_gen.al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->offset, 16u);
    EXPECT_NE(e->text.find("expected u32 (4 bytes), got 2 byte(s)"), std::string::npos) << e->text;

    msg missing([](nl::builder& b) { b.put_str(api::a_mode, "enforce"); });
    e = check_attrs("FP_POLICY", missing.al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->text, "FP_POLICY: attribute GENERATION is required");

    msg twice([](nl::builder& b) {
        b.put_u32(api::a_generation, 3);
        b.put_u32(api::a_generation, 4);
    });
    e = check_attrs("FP_POLICY", twice.al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->offset, 24u);
    EXPECT_NE(e->text.find("more than once"), std::string::npos);

    msg unknown([](nl::builder& b) {
        b.put_u32(api::a_generation, 3);
        b.put_u32(999, 1);
    });
    e = check_attrs("FP_POLICY", unknown.al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->text, "FP_POLICY: attribute #999 at offset 24: not accepted here");

    // A length running past the message: the list does not parse.
    std::vector<uint8_t> bad = {8, 0, 1, 0, 1, 0, 0, 0, 40, 0, 31, 0};
    auto al = nl::parse_attrs(bad, 16);
    e = check_attrs("FP_POLICY", al, policy_spec);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->offset, 24u);
    EXPECT_NE(e->text.find("out of bounds"), std::string::npos) << e->text;
}

TEST(AgentCodec, FlowViewIsTheOriginalDirection) {
    // 198.51.100.7 > 192.0.2.1 in the key order: the original sender is the key's "hi".
    for (auto [src, dst] :
         {std::pair{"198.51.100.7", "192.0.2.1"}, std::pair{"192.0.2.1", "198.51.100.7"}}) {
        flow_entry e = flow(src, dst, 40000, 443, ipproto_tcp, 1100,
                            flow_status::seen_reply | flow_status::assured);
        e.l4_state = uint8_t(tcp_state::established);
        ct_flow_view v = view_of(e, 1000);
        EXPECT_EQ(format_address(v.src, false), src);
        EXPECT_EQ(format_address(v.dst, false), dst);
        EXPECT_EQ(v.sport, 40000);
        EXPECT_EQ(v.dport, 443);
        EXPECT_EQ(v.l3, 4);
        EXPECT_EQ(v.state, ct_state::established);
        EXPECT_TRUE(v.tcp);
        EXPECT_EQ(v.tcp_st, tcp_state::established);
        EXPECT_EQ(v.timeout, 100u);
        EXPECT_TRUE(v.assured);
    }
    ct_flow_view u = view_of(flow("2001:db8::2", "2001:db8::1", 53, 5353, ipproto_udp, 900), 1000);
    EXPECT_EQ(u.l3, 6);
    EXPECT_EQ(format_address(u.src, true), "2001:db8::2");
    EXPECT_EQ(u.state, ct_state::new_);
    EXPECT_FALSE(u.tcp);
    EXPECT_EQ(u.timeout, 0u); // expired
    ct_flow_view g = view_of(flow("192.0.2.1", "192.0.2.2", 0, 0, 47), 0);
    EXPECT_FALSE(g.has_ports);
}

TEST(AgentCodec, CtFlowNestRoundTrip) {
    flow_entry e = flow("192.0.2.1", "198.51.100.7", 40000, 22, ipproto_tcp, 1030);
    e.l4_state = uint8_t(tcp_state::syn_sent);
    nl::builder b;
    b.begin(api::ct_get, nl::f_multi, 9);
    put_ct_flow(b, view_of(e, 1000), 3);
    b.end();
    auto m = nl::split(b.bytes()).messages.at(0);
    auto top = m.attrs();
    ASSERT_EQ(top.items.size(), 1u);
    ASSERT_TRUE(top.items[0].nested);
    auto f = nl::parse_attrs(top.items[0].data, top.items[0].offset + 4);
    ASSERT_TRUE(f.error.empty());
    EXPECT_EQ(*f.find(api::a_l3)->u8(), 4);
    EXPECT_EQ(*f.find(api::a_proto)->u8(), 6);
    EXPECT_EQ(*f.find(api::a_src)->str(), "192.0.2.1");
    EXPECT_EQ(*f.find(api::a_dst)->str(), "198.51.100.7");
    EXPECT_EQ(*f.find(api::a_sport)->u16(), 40000);
    EXPECT_EQ(*f.find(api::a_dport)->u16(), 22);
    EXPECT_EQ(*f.find(api::a_state)->str(), "NEW");
    EXPECT_EQ(*f.find(api::a_tcp_state)->str(), "SYN_SENT");
    EXPECT_EQ(*f.find(api::a_timeout)->u32(), 30u);
    EXPECT_EQ(*f.find(api::a_worker)->u32(), 3u);
    EXPECT_EQ(*f.find(api::a_zone)->u16(), 0);
    EXPECT_EQ(*f.find(api::a_assured)->u8(), 0);
}

TEST(AgentCodec, CtFilterMatches) {
    auto parse = [](auto&& fill) {
        msg r([&](nl::builder& b) {
            size_t n = b.begin_nest(api::a_ct_filter);
            fill(b);
            b.end_nest(n);
        });
        ct_filter f;
        auto e = parse_ct_filter(r.al.items.at(0), f);
        EXPECT_FALSE(e) << e->text;
        return f;
    };
    flow_entry tcp =
        flow("192.0.2.1", "198.51.100.7", 40000, 22, ipproto_tcp, 1100, flow_status::seen_reply);
    tcp.l4_state = uint8_t(tcp_state::established);
    flow_entry udp = flow("192.0.2.9", "198.51.100.7", 5000, 53, ipproto_udp);
    flow_entry v6 = flow("2001:db8::1", "2001:db8:1::1", 1, 2, ipproto_udp);

    ct_filter all = parse([](nl::builder&) {});
    EXPECT_TRUE(all.empty());
    EXPECT_TRUE(all.matches(tcp, 1000));
    EXPECT_FALSE(all.matches(tcp, 1100)); // expired entries never match

    ct_filter net = parse([](nl::builder& b) { b.put_str(api::a_src, "192.0.2.0/29"); });
    EXPECT_EQ(net.l3, 4);
    EXPECT_TRUE(net.matches(tcp, 1000));
    EXPECT_FALSE(net.matches(udp, 1000)); // .9 is outside /29
    EXPECT_FALSE(net.matches(v6, 1000));

    ct_filter reply_side = parse([](nl::builder& b) { b.put_str(api::a_src, "198.51.100.7"); });
    EXPECT_FALSE(reply_side.matches(tcp, 1000)); // the original direction only

    ct_filter ports = parse([](nl::builder& b) {
        b.put_u8(api::a_proto, 6);
        b.put_u16(api::a_dport, 22);
        b.put_u16(api::a_sport, 40000);
    });
    EXPECT_TRUE(ports.matches(tcp, 1000));
    EXPECT_FALSE(ports.matches(udp, 1000));

    ct_filter est = parse([](nl::builder& b) { b.put_str(api::a_state, "ESTABLISHED"); });
    EXPECT_TRUE(est.matches(tcp, 1000));
    EXPECT_FALSE(est.matches(udp, 1000));
    ct_filter syn = parse([](nl::builder& b) { b.put_str(api::a_state, "SYN_SENT"); });
    EXPECT_FALSE(syn.matches(tcp, 1000));
    ct_filter fresh = parse([](nl::builder& b) { b.put_str(api::a_state, "NEW"); });
    EXPECT_TRUE(fresh.matches(udp, 1000));

    ct_filter six = parse([](nl::builder& b) {
        b.put_u8(api::a_l3, 6);
        b.put_str(api::a_dst, "2001:db8:1::/48");
    });
    EXPECT_TRUE(six.matches(v6, 1000));
    EXPECT_FALSE(six.matches(udp, 1000));
}

TEST(AgentCodec, CtFilterErrorsArePrecise) {
    auto error_of = [](auto&& fill) {
        msg r([&](nl::builder& b) {
            b.put_u32(api::a_generation, 1); // offset 16, so the nest starts at 24
            size_t n = b.begin_nest(api::a_ct_filter);
            fill(b);
            b.end_nest(n);
        });
        ct_filter f;
        auto e = parse_ct_filter(r.al.items.at(1), f);
        return e ? *e : request_error{};
    };
    auto e = error_of([](nl::builder& b) { b.put_u8(api::a_l3, 5); });
    EXPECT_EQ(e.err, EINVAL);
    EXPECT_EQ(e.offset, 28u); // first attribute inside the nest
    EXPECT_NE(e.text.find("must be 4 or 6"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) {
        b.put_u8(api::a_proto, 6);
        b.put_str(api::a_src, "192.0.2.300");
    });
    EXPECT_EQ(e.offset, 36u);
    EXPECT_NE(e.text.find("'192.0.2.300' is not"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) { b.put_str(api::a_src, "192.0.2.0/33"); });
    EXPECT_EQ(e.err, EINVAL);
    e = error_of([](nl::builder& b) {
        b.put_str(api::a_src, "192.0.2.1");
        b.put_str(api::a_dst, "2001:db8::1");
    });
    EXPECT_NE(e.text.find("different families"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) {
        b.put_u8(api::a_l3, 6);
        b.put_str(api::a_src, "192.0.2.1");
    });
    EXPECT_NE(e.text.find("differs from L3 6"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) { b.put_str(api::a_state, "HALF_OPEN"); });
    EXPECT_NE(e.text.find("unknown state 'HALF_OPEN'"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) { b.put_u32(api::a_sport, 80); });
    EXPECT_NE(e.text.find("SPORT"), std::string::npos) << e.text;
    e = error_of([](nl::builder& b) { b.put_u32(api::a_generation, 80); });
    EXPECT_NE(e.text.find("not accepted here"), std::string::npos) << e.text;
}

TEST(AgentCodec, FlowTableEventsAndRecords) {
    struct seen {
        std::vector<std::pair<flow_event, flow_key>> ev;
        static void emit(void* ctx, flow_event e, const flow_entry& f) noexcept {
            static_cast<seen*>(ctx)->ev.push_back({e, f.key});
        }
    } s;
    flow_event_sink sink{&seen::emit, &s};
    flow_table t(64);
    auto add = [&](uint16_t port) {
        uint32_t i = t.reserve();
        t.at(i) = flow("192.0.2.1", "198.51.100.7", port, 80, ipproto_tcp, 100);
        t.at(i).status = flow_status::reserved;
        EXPECT_TRUE(t.insert(i, flow_hash(t.at(i).key)));
        return i;
    };
    uint32_t a = add(1); // no sink: no event
    t.set_event_sink(&sink);
    uint32_t b = add(2);
    t.erase(a);
    t.expire(200, 64); // b expires
    t.set_event_sink(nullptr);
    add(3);
    ASSERT_EQ(s.ev.size(), 3u);
    EXPECT_EQ(s.ev[0].first, flow_event::confirmed);
    EXPECT_EQ(s.ev[0].second.port_lo, 2);
    EXPECT_EQ(s.ev[1].first, flow_event::destroyed);
    EXPECT_EQ(s.ev[1].second.port_lo, 1);
    EXPECT_EQ(s.ev[2].first, flow_event::destroyed);
    EXPECT_EQ(s.ev[2].second.port_lo, 2);
    (void)b;

    flow_entry e = flow("192.0.2.1", "198.51.100.7", 7, 80, ipproto_tcp, 55, flow_status::assured);
    e.tcp.td_end[0] = 12345;
    ct_event_record r;
    make_event(r, flow_event::confirmed, e, 5);
    flow_entry back = entry_of(r);
    EXPECT_TRUE(back.key == e.key);
    EXPECT_EQ(back.expires, 55u);
    EXPECT_EQ(back.status, e.status);
    EXPECT_EQ(back.tcp.td_end[0], 0u);
    EXPECT_EQ(r.worker, 5u);
    EXPECT_EQ(r.event, 1);
}

TEST(AgentCodec, ReadFlowEntryRejectsFreeAndReservedEntries) {
    flow_table t(8);
    flow_entry out;
    EXPECT_FALSE(read_flow_entry(t.at(0), out));
    uint32_t i = t.reserve();
    t.at(i).key = flow("192.0.2.1", "198.51.100.7", 1, 2, ipproto_udp).key;
    EXPECT_FALSE(read_flow_entry(t.at(i), out));
    t.at(i).expires = 10;
    ASSERT_TRUE(t.insert(i, flow_hash(t.at(i).key)));
    ASSERT_TRUE(read_flow_entry(t.at(i), out));
    EXPECT_TRUE(out.key == t.at(i).key);
}

// A reader copying entries while their owner creates and destroys flows in them must never
// accept a torn key: every key it accepts is one the writer actually inserted.
TEST(AgentCodec, ReadFlowEntryAgainstAWriter) {
    flow_table t(256);
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> rounds{0};
    auto key_of = [](uint32_t n) {
        flow_key k =
            flow("192.0.2.1", "198.51.100.7", uint16_t(n), uint16_t(n * 7), ipproto_udp).key;
        std::memset(k.lo.b, int(n & 0xff), 10); // vary many bytes together
        std::memset(k.hi.b, int(n & 0xff), 10);
        return k;
    };
    std::thread writer([&] {
        uint32_t n = 0;
        std::vector<uint32_t> live;
        while (!stop.load(std::memory_order_relaxed)) {
            uint32_t i = t.reserve();
            if (i == flow_table::no_entry) {
                for (uint32_t x : live)
                    t.erase(x);
                live.clear();
                rounds.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            flow_entry& e = t.at(i);
            e.key = key_of(++n % 4096);
            e.created = n;
            e.expires = 100;
            e.key.port_hi = uint16_t((n % 4096) * 7);
            if (t.insert(i, flow_hash(e.key)))
                live.push_back(i);
            else
                t.release(i);
        }
    });
    uint64_t accepted = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < deadline) {
        for (uint32_t i = 0; i < t.capacity(); ++i) {
            flow_entry e;
            if (!read_flow_entry(t.at(i), e)) continue;
            ++accepted;
            uint32_t n = e.key.port_lo;
            ASSERT_TRUE(e.key == key_of(n)) << "torn key accepted at entry " << i;
        }
    }
    stop = true;
    writer.join();
    EXPECT_GT(accepted, 0u);
    EXPECT_GT(rounds.load(), 0u);
}

TEST(AgentCodec, FpSetsTakesElementLinesOnly) {
    set_table sets;
    ASSERT_TRUE(sets.create("blocked", set_type::hash_ip, set_options{}).ok());
    ASSERT_TRUE(sets.create("other", set_type::hash_ip, set_options{}).ok());
    std::vector<ipset_command> cmds;
    EXPECT_EQ(parse_fp_sets("add blocked 192.0.2.1\ndel blocked 192.0.2.2 -exist\nflush other\n"
                            "swap blocked other\n",
                            sets, cmds),
              "");
    EXPECT_EQ(cmds.size(), 4u);
    EXPECT_EQ(parse_fp_sets("add blocked 192.0.2.1\ncreate x hash:ip\n", sets, cmds),
              "sets:2:1: FP_SETS takes add, del, flush and swap lines only; 'create' changes the "
              "sets themselves (send FP_POLICY)");
    std::string e = parse_fp_sets("add blocked 192.0.2.300\n", sets, cmds);
    EXPECT_EQ(e.rfind("sets:1:", 0), 0u) << e;
    e = parse_fp_sets("add nosuch 192.0.2.1\n", sets, cmds);
    EXPECT_EQ(e.rfind("sets:1:", 0), 0u) << e;
}

TEST(AgentCodec, StateDir) {
    fs::path d = fs::temp_directory_path() / ("sluice-state-test-" + std::to_string(::getpid()));
    fs::remove_all(d);
    auto st = read_state_dir(d.string(), filter_mode::monitor);
    EXPECT_FALSE(st.found);
    EXPECT_EQ(st.error, "");
    fs::create_directories(d);
    auto write = [&](const char* name, const char* text) { std::ofstream(d / name) << text; };
    write("rules.v4", "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n");
    st = read_state_dir(d.string(), filter_mode::monitor);
    EXPECT_FALSE(st.found); // no generation: incomplete, the configuration's files are used
    write("generation", "42\n");
    st = read_state_dir(d.string(), filter_mode::monitor);
    ASSERT_TRUE(st.found) << st.error;
    EXPECT_EQ(st.generation, 42u);
    EXPECT_EQ(st.mode, filter_mode::monitor); // no mode file
    EXPECT_EQ(st.sources.rules4.text, "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n");
    EXPECT_EQ(st.sources.rules4.name, (d / "rules.v4").string());
    EXPECT_EQ(st.sources.rules6.text, "");
    write("mode", "bypass\n");
    st = read_state_dir(d.string(), filter_mode::enforce);
    EXPECT_EQ(st.mode, filter_mode::bypass);
    write("mode", "loud\n");
    st = read_state_dir(d.string(), filter_mode::enforce);
    EXPECT_NE(st.error.find("'loud' is not a mode"), std::string::npos) << st.error;
    write("mode", "enforce");
    write("generation", "x1");
    st = read_state_dir(d.string(), filter_mode::enforce);
    EXPECT_NE(st.error.find("'x1' is not a generation number"), std::string::npos) << st.error;
    fs::remove_all(d);
}

// The agent's options: validated with the others, named in the error.
TEST(AgentCodec, AgentOptions) {
    auto run = [](std::vector<std::string> extra) {
        std::vector<std::string> args{"sluice-fastpath", "--port", "a=net_null0", "--port",
                                      "b=net_null1",     "--pair", "a:b"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<const char*> argv;
        for (auto& a : args) argv.push_back(a.c_str());
        return load_config(int(argv.size()), argv.data());
    };
    auto r = run({});
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->agent_socket, "/run/sluice/fastpath.sock");
    EXPECT_EQ(r.config->state_dir, "");
    r = run({"--agent-socket", "none", "--state-dir", "/var/lib/sluice"});
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->agent_socket, "");
    EXPECT_EQ(r.config->state_dir, "/var/lib/sluice");
    r = run({"--agent-socket", "/tmp/x.sock"});
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->agent_socket, "/tmp/x.sock");
    r = run({"--agent-socket", "/" + std::string(120, 'a')});
    ASSERT_FALSE(r.config);
    EXPECT_EQ(r.error.rfind("option 'agent-socket' value '/aaa", 0), 0u) << r.error;
    EXPECT_NE(r.error.find("1 to 107 bytes or 'none'"), std::string::npos) << r.error;
    r = run({"--agent-socket", "/run/sluice/"});
    ASSERT_FALSE(r.config);
    EXPECT_NE(r.error.find("agent-socket"), std::string::npos) << r.error;
}
