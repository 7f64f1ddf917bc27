// sluice-fastpath configuration: what the daemon is told to do, parsed from an INI-style
// file (Boost.Program_options) and the command line, then validated as a whole before any
// device or EAL resource is touched. A bad value yields one precise message naming the
// option and the value; nothing is started.
//
// Lifecycle: built once in main() by load_config(); immutable afterwards and shared
// read-only with the workers. Thread safety: none needed (read-only after start-up).
#pragma once

#include "conntrack.hpp"
#include "policy.hpp"
#include "eal_args.hpp"
#include "packet.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

struct port_config {
    std::string name;    // user-facing name (used by -i/-o in rules, in stats)
    std::string device;  // PCI address (0000:03:00.0) or vdev devargs (net_pcap0,rx_pcap=...)
    bool is_pci() const;
    std::string dpdk_name() const; // the ethdev name DPDK registers the device under
};

enum class idle_mode : uint8_t { poll, sleep };

// An address of the appliance itself on one data port (`address = PORT=ADDR/PREFIX`):
// frames for it are handed to sluice-control's kernel TAP for that port (exception.hpp).
struct port_address {
    std::size_t port = 0; // index into fastpath_config::ports
    bool v6 = false;
    uint8_t prefix = 0;
    ip_addr addr{};       // IPv4-mapped for IPv4 (packet.hpp)
};
inline constexpr unsigned max_addresses_per_port = 8;

struct fastpath_config {
    std::vector<port_config> ports;
    std::vector<std::pair<std::size_t, std::size_t>> pairs; // indices into ports
    unsigned workers = 1;
    std::vector<unsigned> cpus;      // CPU for the main thread then each worker; empty = auto
    unsigned burst = 32;
    unsigned rx_desc = 1024;
    unsigned tx_desc = 1024;
    unsigned mbufs = 16383;
    unsigned mbuf_size = 2176;       // data room incl. headroom (RTE_MBUF_DEFAULT_BUF_SIZE)
    unsigned mtu = 1500;
    unsigned redirect_ring_size = 1024;
    unsigned exception_ring_size = 1024; // each worker's rings to and from sluice-control
    std::vector<port_address> addresses;  // the appliance's own addresses, per port
    idle_mode idle = idle_mode::sleep;
    unsigned idle_sleep_max_us = 200;
    huge_mode huge = huge_mode::auto_;
    unsigned memory_mb = 512;        // with --no-huge
    std::string file_prefix = "sluice";
    unsigned stats_interval_s = 0;   // 0: only on SIGUSR1 and at exit
    std::string stats_file;          // JSON counters written here at exit and on SIGUSR1
    std::string log_level = "info";
    std::vector<std::string> eal_args; // passed through verbatim after the generated ones
    // Policy (loaded at start and on SIGHUP) and connection tracking.
    std::string rules_file;          // iptables-save; empty: no IPv4 rules (ACCEPT)
    std::string rules6_file;         // ip6tables-save
    std::string sets_file;           // ipset save
    filter_mode mode = filter_mode::enforce;
    unsigned conntrack_max = 1u << 20; // tracked flows, all workers together
    unsigned frag_cache_size = 4096;   // fragment records per worker
    conntrack_config conntrack;
    // The agent socket sluice-control talks to ("" when disabled: `agent-socket = none`),
    // and the state directory whose persisted policy replaces rules/rules6/sets/mode at
    // start and on SIGHUP when it holds one ("": off). See agent.hpp.
    std::string agent_socket = "/run/sluice/fastpath.sock";
    std::string state_dir;
};

struct config_result {
    std::optional<fastpath_config> config; // set on success
    std::string error;                     // set on failure: one line, names option and value
    bool help = false;                     // --help was asked; `error` then holds the text
};

// Parse argv (and the --config file it names). Pure: touches no device.
config_result load_config(int argc, const char* const* argv);

} // namespace sluice
