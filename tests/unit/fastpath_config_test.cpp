// sluice-fastpath configuration: good files parse to what they say; every bad value is
// refused with a message naming the option and the value.
#include "config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using sluice::load_config;

sluice::config_result run(std::vector<std::string> args) {
    std::vector<const char*> argv{"sluice-fastpath"};
    for (auto& a : args) argv.push_back(a.c_str());
    return load_config(int(argv.size()), argv.data());
}

const std::vector<std::string> two_ports{"--port", "a=net_null0", "--port", "b=net_null1",
                                         "--pair", "a:b"};

std::vector<std::string> with(std::vector<std::string> extra) {
    auto v = two_ports;
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
}

TEST(fastpath_config, command_line_defaults) {
    auto r = run(two_ports);
    ASSERT_TRUE(r.config) << r.error;
    const auto& c = *r.config;
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].name, "a");
    EXPECT_EQ(c.ports[0].dpdk_name(), "net_null0");
    EXPECT_FALSE(c.ports[0].is_pci());
    ASSERT_EQ(c.pairs.size(), 1u);
    EXPECT_EQ(c.pairs[0], (std::pair<std::size_t, std::size_t>{0, 1}));
    EXPECT_EQ(c.workers, 1u);
    EXPECT_EQ(c.burst, 32u);
    EXPECT_EQ(c.idle, sluice::idle_mode::sleep);
}

TEST(fastpath_config, file_and_command_line_and_eal_args) {
    std::string path = ::testing::TempDir() + "/fp.conf";
    {
        std::ofstream f(path);
        f << "# comment\nport = in=0000:03:00.0\nport = out=03:00.1\npair = in:out\n"
             "workers = 2\nmtu = 9000\nmbuf-size = 9216\nidle = poll\n";
    }
    auto r = run({"--config", path, "--workers", "1", "--", "--log-level=8"});
    ASSERT_TRUE(r.config) << r.error;
    const auto& c = *r.config;
    EXPECT_TRUE(c.ports[0].is_pci());
    EXPECT_EQ(c.ports[1].dpdk_name(), "0000:03:00.1");
    EXPECT_EQ(c.workers, 1u) << "the command line wins over the file";
    EXPECT_EQ(c.mtu, 9000u);
    EXPECT_EQ(c.idle, sluice::idle_mode::poll);
    ASSERT_EQ(c.eal_args.size(), 1u);
    EXPECT_EQ(c.eal_args[0], "--log-level=8");
    std::remove(path.c_str());
}

TEST(fastpath_config, policy_and_conntrack_options) {
    auto args = two_ports;
    for (const char* a : {"--rules", "r.v4", "--rules6", "r.v6", "--sets", "s.save", "--mode", "monitor",
                          "--ct-zone", "outer-vlan", "--ct-tcp-loose", "false", "--ct-timeout",
                          "tcp-established=3600", "--ct-timeout", "udp=10", "--conntrack-max", "4096"})
        args.push_back(a);
    auto r = run(args);
    ASSERT_TRUE(r.config) << r.error;
    const auto& c = *r.config;
    EXPECT_EQ(c.rules_file, "r.v4");
    EXPECT_EQ(c.rules6_file, "r.v6");
    EXPECT_EQ(c.sets_file, "s.save");
    EXPECT_EQ(c.mode, sluice::filter_mode::monitor);
    EXPECT_EQ(c.conntrack.zone, sluice::ct_zone_mode::outer_vlan);
    EXPECT_FALSE(c.conntrack.tcp_loose);
    EXPECT_EQ(c.conntrack.timeouts.tcp[3], 3600u);
    EXPECT_EQ(c.conntrack.timeouts.udp, 10u);
    EXPECT_EQ(c.conntrack.timeouts.icmp, 30u); // untouched: netfilter's default
    EXPECT_EQ(c.conntrack_max, 4096u);
}

TEST(fastpath_config, help) {
    auto r = run({"--help"});
    EXPECT_TRUE(r.help);
    EXPECT_NE(r.error.find("--port"), std::string::npos);
    EXPECT_NE(r.error.find("--idle"), std::string::npos);
}

struct bad_case {
    std::vector<std::string> args;
    std::string message;
};

TEST(fastpath_config, bad_values_name_option_and_value) {
    const std::vector<bad_case> cases{
        {{}, "option 'port': no port configured"},
        {{"--port", "a"}, "option 'port' value 'a': expected NAME=DEVICE"},
        {{"--port", "a=eth0"}, "option 'port' value 'a=eth0': DEVICE must be a PCI address or a vdev"},
        {{"--port", "a=net_null0", "--port", "a=net_null1"}, "option 'port' value 'a=net_null1': duplicate port name"},
        {{"--port", "a=net_null0", "--port", "b=net_null0"}, "option 'port' value 'b=net_null0': device net_null0 already used"},
        {with({"--pair", "a:c"}), "option 'pair' value 'a:c': no port named 'c'"},
        {{"--port", "a=net_null0", "--pair", "a:a"}, "option 'pair' value 'a:a': a port cannot be paired with itself"},
        {with({"--workers", "0"}), "option 'workers' value '0': must be between 1 and 64"},
        {with({"--mtu", "99999"}), "option 'mtu' value '99999': must be between 68 and 9000"},
        {with({"--rx-desc", "1000"}), "option 'rx-desc' value '1000': must be a power of two"},
        {with({"--burst", "0"}), "option 'burst' value '0': must be between 1 and 256"},
        {with({"--idle", "spin"}), "option 'idle' value 'spin': must be 'poll' or 'sleep'"},
        {with({"--hugepages", "maybe"}), "option 'hugepages' value 'maybe'"},
        {with({"--cpus", "0,x"}), "option 'cpus' value '0,x': 'x' is not a CPU number"},
        {with({"--cpus", "0"}), "option 'cpus' value '0': need 2 CPUs"},
        {with({"--mbufs", "2000"}), "option 'mbufs' value '2000': too few"},
        {with({"--log-level", "loud"}), "option 'log-level' value 'loud'"},
        {with({"--workers", "many"}), "workers"},
        {with({"--mode", "audit"}), "option 'mode' value 'audit': must be 'enforce', 'monitor' or 'bypass'"},
        {with({"--conntrack-max", "10"}), "option 'conntrack-max' value '10': must be between 1024 per worker"},
        {with({"--ct-zone", "vlan"}), "option 'ct-zone' value 'vlan'"},
        {with({"--ct-timeout", "udp"}), "option 'ct-timeout' value 'udp': expected NAME=SECONDS"},
        {with({"--ct-timeout", "udp=0"}), "option 'ct-timeout' value 'udp=0': SECONDS must be"},
        {with({"--ct-timeout", "tcp-bogus=5"}), "option 'ct-timeout' value 'tcp-bogus=5': unknown timeout 'tcp-bogus'"},
        {with({"--no-such-option"}), "unrecognised option '--no-such-option'"},
        {{"--config", "/nonexistent/sluice.conf"}, "option 'config' value '/nonexistent/sluice.conf': cannot open file"},
    };
    for (const auto& c : cases) {
        auto r = run(c.args);
        EXPECT_FALSE(r.config);
        EXPECT_NE(r.error.find(c.message), std::string::npos)
            << "expected \"" << c.message << "\" in \"" << r.error << "\"";
    }
}

TEST(fastpath_config, bad_line_in_file_names_the_file) {
    std::string path = ::testing::TempDir() + "/bad.conf";
    {
        std::ofstream f(path);
        f << "port = a=net_null0\nworkrs = 2\n";
    }
    auto r = run({"--config", path});
    EXPECT_FALSE(r.config);
    EXPECT_NE(r.error.find(path), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("workrs"), std::string::npos) << r.error;
    std::remove(path.c_str());
}

} // namespace
