// Unit tests of lib/set_table and lib/ipset_parser: every set type against packets built
// with documentation addresses, nomatch, families, list:set, swap, restore/save round trip
// and error locations, a 1M-element set (memory per element), and one writer changing a set
// while two readers look up keys that never change.
//
// When running as root with the ipset tool installed, one test compares nomatch and range
// semantics against the kernel inside a throwaway network namespace; otherwise it skips.
#include "ipset_parser.hpp"
#include "set_table.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

using namespace sluice;

namespace {

constexpr uint8_t tcp = 6, udp = 17, icmp = 1, icmpv6 = 58, gre = 47;

ip_addr addr(const char* s) {
    ip_addr a{};
    if (std::strchr(s, ':')) {
        EXPECT_EQ(inet_pton(AF_INET6, s, a.b), 1) << s;
    } else {
        a.b[10] = a.b[11] = 0xff;
        EXPECT_EQ(inet_pton(AF_INET, s, a.b + 12), 1) << s;
    }
    return a;
}

// A small packet_meta builder: pkt("192.0.2.1", "198.51.100.1").tcp(1234, 80)
struct pkt {
    packet_meta m{};
    pkt(const char* src, const char* dst) {
        m.src = addr(src);
        m.dst = addr(dst);
        m.l3 = std::strchr(src, ':') ? l3_kind::ipv6 : l3_kind::ipv4;
        m.l4_proto = tcp;
    }
    pkt& l4(uint8_t proto, uint16_t sport, uint16_t dport) {
        m.l4_proto = proto, m.sport = sport, m.dport = dport;
        return *this;
    }
    pkt& tcp_(uint16_t s, uint16_t d) { return l4(tcp, s, d); }
    pkt& udp_(uint16_t s, uint16_t d) { return l4(udp, s, d); }
    pkt& icmp_(uint8_t type, uint8_t code) {
        m.l4_proto = m.l3 == l3_kind::ipv4 ? icmp : icmpv6;
        m.icmp_type = type, m.icmp_code = code;
        m.sport = 77;
        m.dport = uint16_t((type << 8) | code);
        return *this;
    }
    pkt& later_fragment() {
        m.frag_flags = frag::is_fragment;
        return *this;
    }
    operator const packet_meta&() const { return m; }
};

dim_flags dims(const char* s) {
    auto d = parse_dim_flags(s);
    EXPECT_TRUE(d.has_value()) << s;
    return d.value_or(dim_flags{});
}

set_element el(set_table& t, const char* set, const char* text) {
    const ip_set* s = t.find(set);
    EXPECT_NE(s, nullptr);
    auto r = parse_element(s->type(), s->family(), text);
    EXPECT_TRUE(r.element.has_value()) << text << ": " << r.error;
    return r.element.value_or(set_element{});
}

// Restore text into the table, failing the test on any error.
void restore(set_table& t, std::string_view text) {
    auto err = restore_ipset(t, text, "test");
    ASSERT_FALSE(err.has_value()) << err->to_string();
}

} // namespace

TEST(set_table, dim_flags_parse) {
    auto d = parse_dim_flags("src,dst,src");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count, 3);
    EXPECT_TRUE(d->src(0));
    EXPECT_FALSE(d->src(1));
    EXPECT_TRUE(d->src(2));
    EXPECT_FALSE(parse_dim_flags("src,"));
    EXPECT_FALSE(parse_dim_flags("both"));
    EXPECT_FALSE(parse_dim_flags("src,src,src,src,src,src,src"));
}

TEST(set_table, hash_ip) {
    set_table t;
    restore(t,
            "create a hash:ip\nadd a 192.0.2.1\nadd a 192.0.2.8/30\nadd a 192.0.2.20-192.0.2.22\n");
    EXPECT_EQ(t.find("a")->size(), 8u);
    const ip_set& a = *t.find("a");
    EXPECT_TRUE(a.match(pkt("192.0.2.1", "198.51.100.1"), dims("src")));
    EXPECT_FALSE(a.match(pkt("192.0.2.1", "198.51.100.1"), dims("dst")));
    EXPECT_TRUE(a.match(pkt("198.51.100.1", "192.0.2.11"), dims("dst")));
    EXPECT_TRUE(a.match(pkt("198.51.100.1", "192.0.2.21"), dims("dst,dst")));
    EXPECT_FALSE(a.match(pkt("198.51.100.1", "192.0.2.12"), dims("dst")));
    // A set with fewer flags than dimensions is fine; an IPv6 packet never matches inet.
    EXPECT_FALSE(a.match(pkt("::ffff:192.0.2.1", "2001:db8::1"), dims("src")));
    ASSERT_TRUE(t.del("a", el(t, "a", "192.0.2.1")).ok());
    EXPECT_FALSE(a.match(pkt("192.0.2.1", "198.51.100.1"), dims("src")));
    EXPECT_EQ(t.del("a", el(t, "a", "192.0.2.1")).error,
              "Element cannot be deleted from the set: it's not added");
    EXPECT_TRUE(t.del("a", el(t, "a", "192.0.2.1"), true).ok());
    EXPECT_EQ(t.add("a", el(t, "a", "192.0.2.8")).error,
              "Element cannot be added to the set: it's already added");
    EXPECT_TRUE(t.add("a", el(t, "a", "192.0.2.8"), true).ok());
    // Re-adding after delete revives the tombstone.
    ASSERT_TRUE(t.add("a", el(t, "a", "192.0.2.1")).ok());
    EXPECT_TRUE(a.match(pkt("192.0.2.1", "198.51.100.1"), dims("src")));
}

TEST(set_table, hash_ip_inet6) {
    set_table t;
    restore(t, "create h hash:ip family inet6 hashsize 64\nadd h 2001:db8::1\n");
    const ip_set& h = *t.find("h");
    EXPECT_TRUE(h.match(pkt("2001:db8::1", "2001:db8::2"), dims("src")));
    EXPECT_FALSE(h.match(pkt("2001:db8::2", "2001:db8::1"), dims("src")));
    EXPECT_FALSE(h.match(pkt("192.0.2.1", "192.0.2.2"), dims("src")));
    auto r = parse_element(set_type::hash_ip, set_family::inet6, "2001:db8::/126");
    EXPECT_FALSE(r.element);
}

TEST(set_table, hash_net_nomatch) {
    set_table t;
    restore(t, "create b hash:net\n"
               "add b 192.0.2.0/24\n"
               "add b 192.0.2.128/25 nomatch\n"
               "add b 192.0.2.130\n"
               "add b 10.0.0.1-10.0.0.6\n");
    const ip_set& b = *t.find("b");
    auto src = [&](const char* a) { return b.match(pkt(a, "198.51.100.9"), dims("src")); };
    EXPECT_TRUE(src("192.0.2.1"));
    EXPECT_FALSE(src("192.0.2.129")); // the /25 nomatch excludes it from the /24
    EXPECT_TRUE(src("192.0.2.130"));  // ... but the /32 is more specific still
    EXPECT_FALSE(src("198.51.100.1"));
    for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.0.6"})
        EXPECT_TRUE(src(a)) << a;
    EXPECT_FALSE(src("10.0.0.0"));
    EXPECT_FALSE(src("10.0.0.7"));
    // The range became CIDR blocks exactly as ipset stores them.
    std::string saved = t.save("b");
    for (const char* l : {"add b 10.0.0.1\n", "add b 10.0.0.2/31\n", "add b 10.0.0.4/31\n",
                          "add b 10.0.0.6\n", "add b 192.0.2.128/25 nomatch\n"})
        EXPECT_NE(saved.find(l), std::string::npos) << l << " in\n" << saved;
    // ipset test: a host address is looked up like a packet, a prefix tests that entry.
    bool in = true;
    ASSERT_TRUE(t.test("b", el(t, "b", "192.0.2.129"), in).ok());
    EXPECT_FALSE(in);
    ASSERT_TRUE(t.test("b", el(t, "b", "192.0.2.0/24"), in).ok());
    EXPECT_TRUE(in);
    // Deleting the nomatch entry lets the /24 decide again.
    ASSERT_TRUE(t.del("b", el(t, "b", "192.0.2.128/25")).ok());
    EXPECT_TRUE(src("192.0.2.129"));
    // -exist re-add switches nomatch on and off, as the kernel does.
    ASSERT_TRUE(t.add("b", el(t, "b", "192.0.2.0/24"), true).ok());
    auto nm = el(t, "b", "192.0.2.0/24");
    nm.nomatch = true;
    ASSERT_TRUE(t.add("b", nm, true).ok());
    EXPECT_FALSE(src("192.0.2.1"));
    EXPECT_EQ(t.add("b", el(t, "b", "0.0.0.0/0")).error,
              "The value of the CIDR parameter of the IP address is invalid");
}

TEST(set_table, hash_ip_port) {
    set_table t;
    restore(t, "create c hash:ip,port\n"
               "add c 192.0.2.1,80\n"
               "add c 192.0.2.1,udp:53\n"
               "add c 192.0.2.1,icmp:echo-request\n"
               "add c 192.0.2.2,gre:0\n"
               "add c 192.0.2.4,tcp:1-3\n");
    const ip_set& c = *t.find("c");
    EXPECT_EQ(c.size(), 7u);
    auto sd = dims("src,dst");
    EXPECT_TRUE(c.match(pkt("192.0.2.1", "198.51.100.1").tcp_(40000, 80), sd));
    EXPECT_FALSE(c.match(pkt("192.0.2.1", "198.51.100.1").udp_(40000, 80), sd)); // protocol
    EXPECT_FALSE(c.match(pkt("192.0.2.1", "198.51.100.1").tcp_(80, 40000), sd));
    EXPECT_TRUE(c.match(pkt("192.0.2.1", "198.51.100.1").tcp_(80, 40000), dims("src,src")));
    EXPECT_TRUE(c.match(pkt("198.51.100.1", "192.0.2.1").udp_(53, 53), dims("dst,dst")));
    EXPECT_TRUE(c.match(pkt("192.0.2.1", "198.51.100.1").icmp_(8, 0), sd));
    EXPECT_FALSE(c.match(pkt("192.0.2.1", "198.51.100.1").icmp_(0, 0), sd));
    EXPECT_TRUE(c.match(pkt("192.0.2.2", "198.51.100.1").l4(gre, 0, 0), sd));
    EXPECT_TRUE(c.match(pkt("192.0.2.4", "198.51.100.1").tcp_(9, 2), sd));
    EXPECT_FALSE(c.match(pkt("192.0.2.4", "198.51.100.1").tcp_(9, 4), sd));
    EXPECT_FALSE(c.match(pkt("192.0.2.1", "198.51.100.1").tcp_(40000, 80), dims("src"))); // 1 flag
    EXPECT_FALSE(c.match(pkt("192.0.2.1", "198.51.100.1").tcp_(40000, 80).later_fragment(), sd));
}

TEST(set_table, hash_net_port_inet6) {
    set_table t;
    restore(t, "create d hash:net,port family inet6\n"
               "add d 2001:db8::/32,tcp:80\n"
               "add d 2001:db8:1::/48,tcp:80 nomatch\n"
               "add d 2001:db8::1,ipv6-icmp:echo-request\n");
    const ip_set& d = *t.find("d");
    auto sd = dims("src,dst");
    EXPECT_TRUE(d.match(pkt("2001:db8:5::1", "2001:db8::2").tcp_(1, 80), sd));
    EXPECT_FALSE(d.match(pkt("2001:db8:1::1", "2001:db8::2").tcp_(1, 80), sd));
    EXPECT_FALSE(d.match(pkt("2001:db9::1", "2001:db8::2").tcp_(1, 80), sd));
    EXPECT_TRUE(d.match(pkt("2001:db8::1", "2001:db8::2").icmp_(128, 0), sd));
    EXPECT_FALSE(d.match(pkt("192.0.2.1", "192.0.2.2").tcp_(1, 80), sd));
    auto r = parse_element(set_type::hash_net_port, set_family::inet6, "2001:db8::1,icmp:ping");
    EXPECT_EQ(r.error, "Protocol ICMP can be used with family inet only");
}

TEST(set_table, hash_net_iface) {
    set_table t;
    restore(t, "create e hash:net,iface maxelem 10 counters comment\n"
               "add e 192.0.2.0/24,eth0 packets 0 bytes 0 comment \"hi there\"\n"
               "add e 192.0.2.128/25,eth0 nomatch\n"
               "add e 198.51.100.0/24,eth1\n");
    const ip_set& e = *t.find("e");
    auto p = pkt("192.0.2.1", "198.51.100.1");
    EXPECT_TRUE(e.match(p, dims("src,src"), "eth0", "eth1"));
    EXPECT_FALSE(e.match(p, dims("src,dst"), "eth0", "eth1"));
    EXPECT_TRUE(e.match(p, dims("dst,dst"), "eth0", "eth1"));
    EXPECT_FALSE(e.match(p, dims("src,src"), "", "eth1")); // no incoming interface
    EXPECT_FALSE(e.match(pkt("192.0.2.200", "198.51.100.1"), dims("src,src"), "eth0", "eth1"));
    auto r = parse_element(set_type::hash_net_iface, set_family::inet, "192.0.2.0/24,physdev:eth1");
    EXPECT_FALSE(r.element);
    EXPECT_NE(t.save().find("add e 192.0.2.0/24,eth0\n"), std::string::npos);
}

TEST(set_table, bitmap_port) {
    set_table t;
    restore(t,
            "create f bitmap:port range 1000-2000\nadd f 1000\nadd f 1500-1502\nadd f tcp:1999\n");
    const ip_set& f = *t.find("f");
    EXPECT_EQ(f.size(), 5u);
    EXPECT_TRUE(f.match(pkt("192.0.2.1", "198.51.100.1").tcp_(1, 1501), dims("dst")));
    EXPECT_TRUE(f.match(pkt("2001:db8::1", "2001:db8::2").udp_(1999, 1), dims("src")));
    EXPECT_FALSE(f.match(pkt("192.0.2.1", "198.51.100.1").tcp_(1, 1503), dims("dst")));
    EXPECT_FALSE(f.match(pkt("192.0.2.1", "198.51.100.1").l4(132, 1, 1000), dims("dst"))); // sctp
    EXPECT_EQ(t.add("f", el(t, "f", "2001")).error, "Element is out of the range of the set");
    EXPECT_EQ(t.save(), "create f bitmap:port range 1000-2000\nadd f 1000\nadd f 1500\n"
                        "add f 1501\nadd f 1502\nadd f 1999\n");
}

TEST(set_table, list_set) {
    set_table t;
    restore(t, "create a hash:ip\nadd a 192.0.2.1\n"
               "create b hash:net\nadd b 192.0.2.0/24\nadd b 192.0.2.2 nomatch\n"
               "create v6 hash:ip family inet6\nadd v6 2001:db8::2\n"
               "create g list:set\nadd g b\nadd g v6\nadd g a before b\n");
    const ip_set& g = *t.find("g");
    EXPECT_TRUE(g.match(pkt("192.0.2.1", "198.51.100.1"), dims("src")));
    EXPECT_FALSE(g.match(pkt("192.0.2.2", "198.51.100.1"), dims("src"))); // nomatch in b
    EXPECT_TRUE(g.match(pkt("192.0.2.3", "198.51.100.1"), dims("src")));
    EXPECT_TRUE(g.match(pkt("2001:db8::2", "2001:db8::3"), dims("src")));
    EXPECT_EQ(t.save("g"), "create g list:set size 8\nadd g a\nadd g b\nadd g v6\n");
    EXPECT_EQ(t.find("a")->references(), 1u);
    EXPECT_EQ(t.destroy("a").error, "Set cannot be destroyed: it is in use by a kernel component");
    EXPECT_EQ(t.add("g", el(t, "g", "g")).error,
              "Sets with list:set type cannot be added to the set.");
    ASSERT_TRUE(t.del("g", el(t, "g", "a")).ok());
    EXPECT_FALSE(g.match(pkt("192.0.2.1", "198.51.100.9"), dims("src")) &&
                 !t.find("b")->match(pkt("192.0.2.1", "198.51.100.9"), dims("src")));
    EXPECT_TRUE(t.destroy("a").ok());
    // list:set is saved after the sets it names.
    std::string s = t.save();
    EXPECT_LT(s.find("create v6"), s.find("create g"));
}

TEST(set_table, swap_and_rename) {
    set_table t;
    restore(t, "create x hash:ip\nadd x 192.0.2.1\ncreate y hash:ip\nadd y 192.0.2.2\n"
               "create z hash:ip family inet6\n");
    ip_set* x = t.find("x");
    x->ref(); // a rule holds x
    auto p1 = pkt("192.0.2.1", "198.51.100.1"), p2 = pkt("192.0.2.2", "198.51.100.1");
    EXPECT_TRUE(x->match(p1, dims("src")));
    ASSERT_TRUE(t.swap("x", "y").ok());
    EXPECT_FALSE(x->match(p1, dims("src")));
    EXPECT_TRUE(x->match(p2, dims("src")));
    EXPECT_TRUE(t.find("y")->match(p1, dims("src")));
    EXPECT_EQ(t.swap("x", "z").error, "The sets cannot be swapped: their type does not match");
    EXPECT_EQ(t.rename("x", "w").error, "Set cannot be renamed: it is in use by another system");
    EXPECT_EQ(t.destroy("x").error, "Set cannot be destroyed: it is in use by a kernel component");
    x->unref();
    ASSERT_TRUE(t.rename("x", "w").ok());
    EXPECT_EQ(t.find("x"), nullptr);
    ASSERT_TRUE(t.flush("w").ok());
    EXPECT_FALSE(t.find("w")->match(p2, dims("src")));
    ASSERT_TRUE(t.destroy_all().ok());
    EXPECT_TRUE(t.list().empty());
}

TEST(set_table, maxelem_and_timeout) {
    set_table t;
    t.tick(100);
    restore(t, "create m hash:ip maxelem 3 timeout 10\nadd m 192.0.2.1\nadd m 192.0.2.2 timeout 0\n"
               "add m 192.0.2.3 timeout 50\n");
    EXPECT_EQ(t.add("m", el(t, "m", "192.0.2.4")).error, "Hash is full, cannot add more elements");
    const ip_set& m = *t.find("m");
    auto p = [](const char* a) { return pkt(a, "198.51.100.1"); };
    EXPECT_TRUE(m.match(p("192.0.2.1"), dims("src")));
    EXPECT_EQ(t.save("m"), t.save("m"));
    EXPECT_NE(t.save("m").find("add m 192.0.2.1 timeout 10\n"), std::string::npos);
    t.tick(110); // 192.0.2.1 expires lazily
    EXPECT_FALSE(m.match(p("192.0.2.1"), dims("src")));
    EXPECT_TRUE(m.match(p("192.0.2.2"), dims("src")));
    EXPECT_TRUE(m.match(p("192.0.2.3"), dims("src")));
    // The expired slot is reclaimed when room is needed.
    EXPECT_TRUE(t.add("m", el(t, "m", "192.0.2.4")).ok());
    EXPECT_EQ(t.save("m").find("192.0.2.1 "), std::string::npos);
    set_table u;
    auto err = restore_ipset(u, "create n hash:ip\nadd n 192.0.2.1 timeout 5\n", "f");
    ASSERT_TRUE(err);
    EXPECT_EQ(err->to_string(),
              "f:2:17: Timeout cannot be used: set was created without timeout support");
}

TEST(ipset_parser, errors_carry_location_and_apply_nothing) {
    set_table t;
    restore(t, "create keep hash:ip\nadd keep 192.0.2.1\n");
    struct row {
        const char* text;
        const char* error;
    } rows[] = {
        {"create s hash:ip\nadd s 192.0.2.1\nadd s 192.0.2.300\n",
         "sets.txt:3:7: element 192.0.2.300 is not a valid IPv4 address"},
        {"create s hash:net\nadd s 192.0.2.0/33\n", "sets.txt:2:17: '33' is out of range 0-32"},
        {"create s hash:ip,port\nadd s 192.0.2.1,gre:5\n",
         "sets.txt:2:21: Protocol gre can be used with pseudo port value 0 only"},
        {"create s hash:foo\n", "sets.txt:1:10: unknown set type 'hash:foo'"},
        {"add nosuch 192.0.2.1\n", "sets.txt:1:5: The set with the given name does not exist"},
        {"create s hash:ip hashsize x\n", "sets.txt:1:27: 'x' is not a valid value of hashsize"},
        {"flush keep\nadd keep 192.0.2.9\nadd keep 192.0.2.9\n",
         "sets.txt:3:10: Element cannot be added to the set: it's already added"},
        {"create keep hash:ip\n",
         "sets.txt:1:8: Set cannot be created: set with the same name already exists"},
        {"destroy keep\nfrob\n", "sets.txt:2:1: unknown command 'frob'"},
        {"create s hash:ip\nadd s 192.0.2.1 nomatch\n",
         "sets.txt:2:17: Unknown argument: 'nomatch'"},
        {"create s bitmap:port\n", "sets.txt:1:21: Missing mandatory option: range"},
    };
    for (const auto& r : rows) {
        std::string before = t.save();
        auto err = restore_ipset(t, r.text, "sets.txt");
        ASSERT_TRUE(err) << r.text;
        EXPECT_EQ(err->to_string(), r.error);
        EXPECT_EQ(t.save(), before) << "partially applied: " << r.text;
    }
    // -exist makes the duplicates harmless.
    restore(t, "create keep hash:ip -exist\nadd -exist keep 192.0.2.1\n");
}

TEST(ipset_parser, save_round_trip) {
    const char* text =
        "create a hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval "
        "0xc5e630c7\n"
        "add a 192.0.2.10\n"
        "create c hash:ip,port family inet hashsize 1024 maxelem 65536\n"
        "add c 192.0.2.2,gre:0\nadd c 192.0.2.1,icmp:echo-request\nadd c 192.0.2.1,icmp:200/7\n"
        "add c 192.0.2.1,253:0\nadd c 192.0.2.1,udp:53\nadd c 192.0.2.1,sctp:5\n"
        "create d hash:net,port family inet6 hashsize 1024 maxelem 65536 timeout 100\n"
        "add d 2001:db8::/32,tcp:80 timeout 99\n"
        "add d 2001:db8::1,ipv6-icmp:address-unreachable timeout 4\n"
        "create e hash:net,iface family inet hashsize 1024 maxelem 10 counters comment\n"
        "add e 192.0.2.0/24,physdev-free0 packets 0 bytes 0 comment \"x y\"\n"
        "add e 192.0.2.0/25,eth1 nomatch\n"
        "create f bitmap:port range 1000-2000\nadd f 1000\n"
        "create g list:set size 8\nadd g a\nadd g c\n";
    set_table t1, t2;
    restore(t1, text);
    std::string s1 = t1.save();
    restore(t2, s1);
    std::string s2 = t2.save();
    auto sorted = [](const std::string& s) {
        std::vector<std::string> v;
        std::istringstream in(s);
        for (std::string l; std::getline(in, l);)
            v.push_back(l);
        std::sort(v.begin(), v.end());
        return v;
    };
    EXPECT_EQ(sorted(s1), sorted(s2));
    EXPECT_NE(s1.find("add c 192.0.2.1,icmp:echo-request\n"), std::string::npos) << s1;
    EXPECT_NE(s1.find("add c 192.0.2.1,icmp:200/7\n"), std::string::npos);
    EXPECT_NE(s1.find("add c 192.0.2.1,253:0\n"), std::string::npos);
    EXPECT_NE(s1.find("add d 2001:db8::1,ipv6-icmp:address-unreachable timeout 4\n"),
              std::string::npos);
    EXPECT_NE(s1.find("add e 192.0.2.0/25,eth1 nomatch\n"), std::string::npos);
    EXPECT_NE(
        s1.find("create e hash:net,iface family inet hashsize 1024 maxelem 10 counters comment\n"),
        std::string::npos);
}

TEST(set_table, one_million_elements) {
    set_table t;
    set_options o;
    o.maxelem = 2'000'000;
    ASSERT_TRUE(t.create("big", set_type::hash_ip, o).ok());
    ip_set& s = *t.find("big");
    set_element e;
    e.cidr = 32;
    auto key = [](uint32_t i) { return 0x0a000000u + i * 7u; }; // spread over 10/8
    auto set_v4 = [](ip_addr& a, uint32_t v) {
        a = ip_addr{};
        a.b[10] = a.b[11] = 0xff;
        a.b[12] = uint8_t(v >> 24), a.b[13] = uint8_t(v >> 16), a.b[14] = uint8_t(v >> 8),
        a.b[15] = uint8_t(v);
    };
    constexpr uint32_t n = 1'000'000;
    for (uint32_t i = 0; i < n; ++i) {
        set_v4(e.addr, key(i));
        ASSERT_TRUE(t.add("big", e).ok());
    }
    t.collect_garbage();
    EXPECT_EQ(s.size(), n);
    double per = double(s.memory_bytes()) / n;
    std::printf("hash:ip inet, %u elements: %zu bytes, %.1f bytes/element\n", n, s.memory_bytes(),
                per);
    EXPECT_LT(per, 20.0);
    packet_meta p{};
    p.l3 = l3_kind::ipv4;
    auto src = dims("src");
    uint32_t hits = 0;
    for (uint32_t i = 0; i < n; ++i) {
        set_v4(p.src, key(i));
        hits += s.match(p, src);
        set_v4(p.src, key(i) + 3); // never a multiple-of-7 offset: absent
        hits += s.match(p, src) ? 1000000 : 0;
    }
    EXPECT_EQ(hits, n);
}

TEST(set_table, hash_net_memory_per_element) {
    set_table t;
    set_options o;
    o.maxelem = 300'000;
    ASSERT_TRUE(t.create("n", set_type::hash_net, o).ok());
    set_element e;
    e.cidr = 24;
    for (uint32_t i = 0; i < 200'000; ++i) {
        uint32_t v = 0x0a000000u + (i << 8);
        e.addr = ip_addr{};
        e.addr.b[10] = e.addr.b[11] = 0xff;
        e.addr.b[12] = uint8_t(v >> 24), e.addr.b[13] = uint8_t(v >> 16),
        e.addr.b[14] = uint8_t(v >> 8);
        ASSERT_TRUE(t.add("n", e).ok());
    }
    const ip_set& s = *t.find("n");
    std::printf("hash:net inet, 200k /24 elements: %.1f bytes/element\n",
                double(s.memory_bytes()) / 200'000);
    EXPECT_TRUE(s.match(pkt("10.1.2.3", "192.0.2.1"), dims("src")));
    EXPECT_FALSE(s.match(pkt("198.51.100.1", "192.0.2.1"), dims("src")));
}

// One writer adds and removes churn elements (forcing several table rebuilds, tombstones
// and prefix-length bitmap changes) while two readers check keys that never change.
TEST(set_table, concurrent_writer_and_readers) {
    set_table t;
    set_options o;
    o.maxelem = 1'000'000;
    o.hashsize = 64;
    ASSERT_TRUE(t.create("n", set_type::hash_net, o).ok());
    restore(t, "add n 192.0.2.0/24\nadd n 192.0.2.128/26 nomatch\nadd n 198.51.100.7\n");
    const ip_set& s = *t.find("n");
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> wrong{0}, lookups{0};
    auto reader = [&] {
        pkt in1("192.0.2.1", "0.0.0.0"), out1("192.0.2.129", "0.0.0.0"),
            in2("198.51.100.7", "0.0.0.0"), out2("198.51.100.8", "0.0.0.0"),
            in3("192.0.2.200", "0.0.0.0");
        auto d = dims("src");
        uint64_t n = 0, bad = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            bad += !s.match(in1, d);
            bad += s.match(out1, d);
            bad += !s.match(in2, d);
            bad += s.match(out2, d);
            bad += !s.match(in3, d);
            n += 5;
        }
        wrong += bad;
        lookups += n;
    };
    std::thread r1(reader), r2(reader);
    set_element e;
    auto at = [&](uint32_t v, uint8_t cidr) {
        e.addr = ip_addr{};
        e.addr.b[10] = e.addr.b[11] = 0xff;
        e.addr.b[12] = uint8_t(v >> 24), e.addr.b[13] = uint8_t(v >> 16),
        e.addr.b[14] = uint8_t(v >> 8), e.addr.b[15] = uint8_t(v);
        e.cidr = cidr;
    };
    for (int round = 0; round < 3; ++round) {
        for (uint32_t i = 0; i < 20'000; ++i) {
            // Churn across prefix lengths 16..32 in 10/8, plus a nomatch now and then.
            uint8_t c = uint8_t(16 + i % 17);
            at(0x0a000000u + (i << 8), c);
            e.nomatch = (i % 5) == 0;
            ASSERT_TRUE(t.add("n", e, true).ok());
        }
        for (uint32_t i = 0; i < 20'000; i += 2) {
            at(0x0a000000u + (i << 8), uint8_t(16 + i % 17));
            ASSERT_TRUE(t.del("n", e, true).ok());
        }
    }
    stop = true;
    r1.join();
    r2.join();
    EXPECT_EQ(wrong.load(), 0u);
    EXPECT_GT(lookups.load(), 0u);
    std::printf("concurrent: %llu lookups, 0 wrong\n", (unsigned long long)lookups.load());
}

// Compare nomatch and range handling with the kernel's ipset when we can.
TEST(set_table, against_kernel_ipset) {
    if (geteuid() != 0 || std::system("command -v ipset >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "needs root and the ipset tool";
    const char* ns = "sluice-set-test";
    std::string x = std::string("ip netns exec ") + ns + " ipset ";
    if (std::system((std::string("ip netns add ") + ns + " 2>/dev/null").c_str()) != 0)
        GTEST_SKIP() << "cannot create a network namespace";
    struct cleanup {
        const char* ns;
        ~cleanup() { std::system((std::string("ip netns del ") + ns).c_str()); }
    } c{ns};
    const char* script = "create k hash:net\nadd k 192.0.2.0/24\nadd k 192.0.2.128/25 nomatch\n"
                         "add k 192.0.2.130\nadd k 10.0.0.1-10.0.0.6\n";
    FILE* f = popen((x + "restore").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(script, f);
    ASSERT_EQ(pclose(f), 0);
    set_table t;
    restore(t, script);
    for (const char* a : {"192.0.2.1", "192.0.2.129", "192.0.2.130", "10.0.0.0", "10.0.0.3",
                          "10.0.0.6", "10.0.0.7"}) {
        bool kernel = std::system((x + "-q test k " + a).c_str()) == 0;
        bool ours = t.find("k")->match(pkt(a, "198.51.100.1"), dims("src"));
        EXPECT_EQ(kernel, ours) << a;
    }
}
