// sluice-gen configuration: ports, traffic (stateless streams, a stateful TCP workload),
// run bounds and EAL settings, from an INI-style file (Boost.Program_options) and the command
// line, validated as a whole before EAL initialisation. A bad value yields one line naming
// the option and the value; nothing is started.
//
// Lifecycle: built once in main() by load_gen_config(); read-only afterwards.
// Thread safety: none needed (immutable once built).
#pragma once

#include "stream_spec.hpp"

#include "eal_args.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sluice::gen {

struct gen_port {
    std::string name;
    std::string device; // PCI address or vdev devargs
};

struct gen_config {
    std::vector<gen_port> ports;
    std::vector<stream_spec> streams;
    std::optional<tcp_spec> tcp;
    double duration_s = 10;       // the sending phase; always bounded
    unsigned drain_ms = 500;      // then receive only, until everything is back or this ends
    unsigned link_wait_s = 10;    // wait for every port's link before sending
    unsigned start_delay_ms = 0;  // then wait this long (the peer may notice its links late)
    unsigned cpu = 0;             // the generator's single lcore
    unsigned burst = 32;
    unsigned rx_desc = 1024, tx_desc = 1024;
    unsigned mbufs = 16383;       // per pool (TX and RX)
    huge_mode huge = huge_mode::auto_;
    unsigned memory_mb = 512;
    std::string file_prefix = "sluice-gen";
    std::string json_file;        // "-": standard output
    std::string log_level = "info";
    std::vector<std::string> eal_args;

    std::size_t port_index(const std::string& name) const; // ports.size() if none
    uint16_t largest_frame() const;                        // bytes written (FCS excluded)
};

struct gen_config_result {
    std::optional<gen_config> config;
    std::string error;  // one line naming option and value; with help: the help text
    bool help = false;
};

// The ports used when no --port is given: two memif clients towards an appliance that
// serves the sockets (sluice-fastpath with role=server ports on the same socket paths).
inline constexpr const char* default_port_west = "west=net_memif0,role=client,id=0,socket=/run/sluice/memif-west.sock";
inline constexpr const char* default_port_east = "east=net_memif1,role=client,id=0,socket=/run/sluice/memif-east.sock";

gen_config_result load_gen_config(int argc, const char* const* argv);

} // namespace sluice::gen
