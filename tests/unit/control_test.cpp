// sluice-control's service through its real socket: a control_service listening on a
// temporary AF_UNIX socket (no fast path attached), driven with the C++ client the CLI
// uses. Changes, batches, generations, persistence, rights and malformed input.
#include "api_client.hpp"
#include "control_service.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace sluice;
namespace fs = std::filesystem;

namespace {

class control_fixture : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sluice-control-test.XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        start();
    }
    void TearDown() override {
        stop();
        fs::remove_all(dir_);
    }
    void start(unsigned mode = 0600, gid_t group = 0) {
        cfg_.socket = dir_ + "/control.sock";
        cfg_.fastpath_socket = dir_ + "/no-fastpath.sock";
        cfg_.state_dir = dir_ + "/state";
        cfg_.socket_mode = mode;
        cfg_.socket_group = group;
        cfg_.exceptions = exceptions_mode::off;
        svc_ = std::make_unique<control_service>(cfg_);
        ASSERT_EQ(svc_->start(), "");
        run_ = true;
        thread_ = std::thread([this] {
            while (run_) svc_->poll(10);
        });
        ASSERT_EQ(cli_.connect(cfg_.socket), "");
    }
    void stop() {
        cli_.close();
        run_ = false;
        if (thread_.joinable()) thread_.join();
        svc_.reset();
    }

    // One request message with attributes added by `fill`.
    api_reply req(uint16_t type, const std::function<void(nl::builder&)>& fill = {},
                  uint16_t flags = nl::f_request | nl::f_ack) {
        nl::builder b;
        b.begin(type, flags, cli_.next_seq());
        if (fill) fill(b);
        b.end();
        return cli_.request(b);
    }
    api_reply append(const std::string& chain, const std::string& spec, uint8_t family = 4) {
        return req(api::rule_new, [&](nl::builder& b) {
            b.put_u8(api::a_family, family);
            b.put_str(api::a_chain, chain);
            b.put_str(api::a_spec, spec);
        });
    }
    uint32_t generation() {
        auto r = req(api::gen_get, {}, nl::f_request);
        EXPECT_EQ(r.err, 0);
        return r.at(0).attrs().find(api::a_generation)->u32().value();
    }
    std::string saved(uint16_t attr) {
        auto r = req(api::table_save, {}, nl::f_request);
        EXPECT_EQ(r.err, 0);
        return r.at(0).attrs().text(attr).value_or("<none>");
    }
    std::vector<std::string> rule_specs(const std::string& chain) {
        auto r = req(api::rule_get, [&](nl::builder& b) { b.put_str(api::a_chain, chain); }, nl::f_request | nl::f_dump);
        EXPECT_EQ(r.err, 0) << r.text;
        std::vector<std::string> out;
        for (size_t k = 0; k < r.messages.size(); ++k) out.push_back(*r.at(k).attrs().text(api::a_spec));
        return out;
    }

    std::string dir_;
    control_config cfg_;
    std::unique_ptr<control_service> svc_;
    std::atomic<bool> run_{false};
    std::thread thread_;
    api_client cli_;
};

} // namespace

TEST_F(control_fixture, rules_append_insert_delete_and_save) {
    EXPECT_EQ(generation(), 0u);
    EXPECT_EQ(append("FORWARD", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT").err, 0);
    EXPECT_EQ(append("FORWARD", "-p tcp --dport 22 -j DROP").err, 0);
    auto ins = req(api::rule_new, [](nl::builder& b) {
        b.put_str(api::a_chain, "FORWARD");
        b.put_u32(api::a_position, 1);
        b.put_str(api::a_spec, "-s 192.0.2.0/24 -j ACCEPT");
    });
    EXPECT_EQ(ins.err, 0) << ins.text;
    EXPECT_EQ(generation(), 3u);
    EXPECT_EQ(rule_specs("FORWARD"),
              (std::vector<std::string>{"-s 192.0.2.0/24 -j ACCEPT", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                                        "-p tcp -m tcp --dport 22 -j DROP"}));
    auto del = req(api::rule_del, [](nl::builder& b) {
        b.put_str(api::a_chain, "FORWARD");
        b.put_str(api::a_spec, "-p tcp --dport 22 -j DROP");
    });
    EXPECT_EQ(del.err, 0) << del.text;
    auto del2 = req(api::rule_del, [](nl::builder& b) {
        b.put_str(api::a_chain, "FORWARD");
        b.put_u32(api::a_position, 1);
    });
    EXPECT_EQ(del2.err, 0);
    EXPECT_EQ(rule_specs("FORWARD"), (std::vector<std::string>{"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}));
    EXPECT_NE(saved(api::a_rules4).find("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
              std::string::npos);
}

TEST_F(control_fixture, bad_rule_is_refused_with_position_and_changes_nothing) {
    EXPECT_EQ(append("FORWARD", "-j ACCEPT").err, 0);
    auto r = append("FORWARD", "-p tcp --dprot 22 -j ACCEPT");
    EXPECT_EQ(r.err, EINVAL);
    EXPECT_EQ(r.text, "rule:1:8: unknown option \"--dprot\"");
    auto r2 = append("NOPE", "-j ACCEPT");
    EXPECT_EQ(r2.err, ENOENT);
    auto r3 = append("FORWARD", "-j NOCHAIN");
    EXPECT_EQ(r3.err, EINVAL) << r3.text;
    EXPECT_EQ(generation(), 1u);
    EXPECT_EQ(rule_specs("FORWARD").size(), 1u);
}

TEST_F(control_fixture, chains_and_policies) {
    auto mk = req(api::chain_new, [](nl::builder& b) { b.put_str(api::a_chain, "web"); });
    EXPECT_EQ(mk.err, 0);
    EXPECT_EQ(req(api::chain_new, [](nl::builder& b) { b.put_str(api::a_chain, "web"); }).err, EEXIST);
    EXPECT_EQ(append("FORWARD", "-p tcp -j web").err, 0);
    EXPECT_EQ(req(api::chain_del, [](nl::builder& b) { b.put_str(api::a_chain, "web"); }).err, EBUSY);
    auto pol = req(api::chain_policy, [](nl::builder& b) {
        b.put_str(api::a_chain, "FORWARD");
        b.put_str(api::a_policy, "DROP");
    });
    EXPECT_EQ(pol.err, 0);
    EXPECT_NE(saved(api::a_rules4).find(":FORWARD DROP"), std::string::npos);
    EXPECT_EQ(req(api::chain_policy, [](nl::builder& b) {
                  b.put_str(api::a_chain, "web");
                  b.put_str(api::a_policy, "DROP");
              }).err,
              EINVAL);
}

TEST_F(control_fixture, sets_change_live_and_test) {
    auto c = req(api::set_create, [](nl::builder& b) {
        b.put_str(api::a_set, "allowed");
        b.put_str(api::a_type, "hash:net");
        b.put_str(api::a_options, "family inet hashsize 1024 maxelem 65536");
    });
    ASSERT_EQ(c.err, 0) << c.text;
    EXPECT_EQ(append("FORWARD", "-m set --match-set allowed src -j ACCEPT").err, 0);
    auto add = [&](const char* e) {
        return req(api::set_add, [&](nl::builder& b) {
            b.put_str(api::a_set, "allowed");
            b.put_str(api::a_elem, e);
        });
    };
    EXPECT_EQ(add("192.0.2.0/24").err, 0);
    EXPECT_EQ(add("198.51.100.7").err, 0);
    EXPECT_EQ(add("192.0.2.0/24").err, EEXIST);
    EXPECT_EQ(add("not-an-address").err, EINVAL);
    auto test = [&](const char* e) {
        return req(api::set_test, [&](nl::builder& b) {
            b.put_str(api::a_set, "allowed");
            b.put_str(api::a_elem, e);
        });
    };
    EXPECT_EQ(test("192.0.2.77").err, 0);
    EXPECT_EQ(test("203.0.113.1").err, ENOENT);
    auto list = req(api::set_get, [](nl::builder& b) { b.put_str(api::a_set, "allowed"); }, nl::f_request | nl::f_dump);
    ASSERT_EQ(list.err, 0);
    ASSERT_EQ(list.messages.size(), 2u);
    auto head = list.at(0).attrs();
    EXPECT_EQ(head.find(api::a_elements)->u32(), 2u);
    EXPECT_EQ(head.find(api::a_references)->u32(), 1u);
    EXPECT_EQ(list.at(1).attrs().all(api::a_elem).size(), 2u);
    EXPECT_EQ(req(api::set_destroy, [](nl::builder& b) { b.put_str(api::a_set, "allowed"); }).err, EBUSY);
}

TEST_F(control_fixture, batch_is_all_or_nothing_and_checks_generation) {
    EXPECT_EQ(append("FORWARD", "-j ACCEPT").err, 0);
    const uint32_t g = generation();
    nl::builder b;
    b.begin(api::batch_begin, nl::f_request | nl::f_ack, cli_.next_seq());
    b.put_u32(api::a_generation, g);
    b.end();
    b.begin(api::rule_new, nl::f_request | nl::f_ack, cli_.next_seq());
    b.put_str(api::a_chain, "FORWARD");
    b.put_str(api::a_spec, "-p udp -j DROP");
    b.end();
    b.begin(api::rule_new, nl::f_request | nl::f_ack, cli_.next_seq());
    b.put_str(api::a_chain, "FORWARD");
    b.put_str(api::a_spec, "-p udp --bogus -j DROP");
    b.end();
    b.begin(api::batch_end, nl::f_request | nl::f_ack, cli_.next_seq());
    b.end();
    auto r = cli_.request(b);
    EXPECT_EQ(r.err, EINVAL);
    EXPECT_NE(r.text.find("change 2 of 2 (RULE_NEW)"), std::string::npos) << r.text;
    EXPECT_EQ(generation(), g);
    EXPECT_EQ(rule_specs("FORWARD").size(), 1u);

    // A batch naming a generation that moved on is refused whole.
    nl::builder s;
    s.begin(api::batch_begin, nl::f_request | nl::f_ack, cli_.next_seq());
    s.put_u32(api::a_generation, g - 1);
    s.end();
    s.begin(api::rule_flush, nl::f_request | nl::f_ack, cli_.next_seq());
    s.end();
    s.begin(api::batch_end, nl::f_request | nl::f_ack, cli_.next_seq());
    s.end();
    auto st = cli_.request(s);
    EXPECT_EQ(st.err, ESTALE) << st.text;
    EXPECT_EQ(rule_specs("FORWARD").size(), 1u);
}

TEST_F(control_fixture, restore_is_atomic_and_persisted_across_restart) {
    const std::string rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                              "-A FORWARD -m set --match-set web dst -j ACCEPT\nCOMMIT\n";
    const std::string sets = "create web hash:ip,port family inet hashsize 1024 maxelem 65536\n"
                             "add web 192.0.2.2,tcp:80\n";
    auto r = req(api::table_restore, [&](nl::builder& b) {
        b.put_text(api::a_rules4, rules);
        b.put_text(api::a_sets, sets);
    });
    ASSERT_EQ(r.err, 0) << r.text;
    EXPECT_EQ(generation(), 1u);
    auto bad = req(api::table_restore, [&](nl::builder& b) { b.put_text(api::a_rules4, "*nat\nCOMMIT\n"); });
    EXPECT_EQ(bad.err, EINVAL);
    EXPECT_NE(bad.text.find("rules.v4:1:"), std::string::npos) << bad.text;
    // A large text goes in pieces and comes back whole.
    std::string big = "create big hash:ip family inet hashsize 65536 maxelem 1000000\n";
    for (int i = 0; i < 20000; ++i)
        big += "add big 10." + std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255) + ".1\n";
    ASSERT_EQ(req(api::table_restore, [&](nl::builder& b) {
                  b.put_text(api::a_rules4, rules);
                  b.put_text(api::a_sets, sets + big);
              }).err,
              0);
    EXPECT_EQ(generation(), 2u);
    const std::string before4 = saved(api::a_rules4), before_sets = saved(api::a_sets);
    EXPECT_GT(before_sets.size(), 300000u);

    stop();
    start();
    EXPECT_EQ(generation(), 2u);
    EXPECT_EQ(saved(api::a_rules4), before4);
    // Same sets and elements (a hash table's save order may differ after a rebuild).
    auto lines = [](const std::string& t) {
        std::vector<std::string> v;
        size_t p = 0;
        for (size_t e; (e = t.find('\n', p)) != std::string::npos; p = e + 1) v.push_back(t.substr(p, e - p));
        std::sort(v.begin(), v.end());
        return v;
    };
    auto after_sets = saved(api::a_sets);
    EXPECT_TRUE(lines(after_sets) == lines(before_sets)) << "sets differ after the restart";
}

TEST_F(control_fixture, malformed_messages_get_precise_errors_and_change_nothing) {
    // Attribute length past the end of the message.
    std::vector<uint8_t> msg(16 + 8, 0);
    uint32_t len = uint32_t(msg.size());
    uint16_t type = api::rule_new, flags = nl::f_request | nl::f_ack;
    uint32_t seq = 77;
    std::memcpy(msg.data(), &len, 4);
    std::memcpy(msg.data() + 4, &type, 2);
    std::memcpy(msg.data() + 6, &flags, 2);
    std::memcpy(msg.data() + 8, &seq, 4);
    uint16_t alen = 200, atype = api::a_chain;
    std::memcpy(msg.data() + 16, &alen, 2);
    std::memcpy(msg.data() + 18, &atype, 2);
    ASSERT_EQ(::send(cli_.fd(), msg.data(), msg.size(), 0), ssize_t(msg.size()));
    auto got = cli_.receive(2000);
    auto s = nl::split(got);
    ASSERT_EQ(s.messages.size(), 1u);
    auto e = nl::parse_error(s.messages[0]);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->err, EINVAL);
    EXPECT_EQ(e->offset, 16u);
    EXPECT_NE(e->text.find("out of bounds"), std::string::npos) << e->text;
    EXPECT_EQ(e->request.seq, 77u);

    // A string without its NUL, an unknown message type, a missing attribute.
    auto nonul = req(api::chain_new, [](nl::builder& b) { b.put(api::a_chain, "web", 3); });
    EXPECT_EQ(nonul.err, EINVAL);
    EXPECT_EQ(nonul.offset, 16u);
    EXPECT_EQ(req(0x7f01).err, EOPNOTSUPP);
    auto nospec = req(api::rule_new, [](nl::builder& b) { b.put_str(api::a_chain, "FORWARD"); });
    EXPECT_EQ(nospec.err, EINVAL);
    EXPECT_EQ(nospec.text, "RULE_NEW: missing attribute SPEC");
    auto badmode = req(api::mode_set, [](nl::builder& b) { b.put_str(api::a_mode, "loud"); });
    EXPECT_EQ(badmode.err, EINVAL);
    // Garbage datagram: shorter than a header.
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    ASSERT_EQ(::send(cli_.fd(), junk, sizeof junk, 0), 5);
    auto g2 = cli_.receive(2000);
    ASSERT_FALSE(g2.empty());
    EXPECT_EQ(generation(), 0u);
    // Conntrack needs the fast path: a clear error, not a hang.
    auto ct = req(api::ct_count, {}, nl::f_request);
    EXPECT_EQ(ct.err, ENOTCONN);
}

TEST_F(control_fixture, read_only_group_may_read_but_not_change) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
    const passwd* nobody = ::getpwnam("nobody");
    const group* nog = ::getgrnam("nogroup");
    if (!nobody || !nog) GTEST_SKIP() << "no nobody/nogroup here";
    stop();
    ::chmod(dir_.c_str(), 0755);
    start(0660, nog->gr_gid);
    pid_t child = ::fork();
    if (child == 0) {
        if (::setgid(nog->gr_gid) != 0 || ::setuid(nobody->pw_uid) != 0) ::_exit(10);
        api_client c;
        if (!c.connect(cfg_.socket).empty()) ::_exit(11);
        nl::builder b;
        b.begin(api::gen_get, nl::f_request, c.next_seq());
        b.end();
        if (c.request(b).err != 0) ::_exit(12);
        nl::builder w;
        w.begin(api::rule_flush, nl::f_request | nl::f_ack, c.next_seq());
        w.end();
        auto r = c.request(w);
        ::_exit(r.err == EPERM && r.text.find("read-only") != std::string::npos ? 0 : 13);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(control_fixture, huge_batch_is_one_generation_and_one_bad_change_refuses_it_whole) {
    auto batch = [&](int n, bool spoil) {
        nl::builder b;
        b.begin(api::batch_begin, nl::f_request, cli_.next_seq());
        b.end();
        for (int i = 0; i < n; ++i) {
            b.begin(api::rule_new, nl::f_request, cli_.next_seq());
            b.put_str(api::a_chain, "FORWARD");
            std::string spec = "-s 10." + std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255) +
                               ".0/24 -p tcp --dport " + std::to_string(1 + i % 60000) + " -j DROP";
            if (spoil && i == n - 1) spec += " --bogus";
            b.put_str(api::a_spec, spec);
            b.end();
        }
        b.begin(api::batch_end, nl::f_request | nl::f_ack, cli_.next_seq());
        b.end();
        return cli_.request(b);
    };
    auto bad = batch(5000, true);
    EXPECT_EQ(bad.err, EINVAL);
    EXPECT_NE(bad.text.find("change 5000 of 5000"), std::string::npos) << bad.text;
    EXPECT_EQ(generation(), 0u);
    EXPECT_TRUE(rule_specs("FORWARD").empty());
    auto good = batch(5000, false);
    ASSERT_EQ(good.err, 0) << good.text;
    EXPECT_EQ(generation(), 1u);
    EXPECT_EQ(rule_specs("FORWARD").size(), 5000u);
}
