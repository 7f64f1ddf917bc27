// sluice-control configuration: the API socket and who may use it, the fast path's agent
// socket, the state directory, and the exception path. Read from an INI-style file and the
// command line (lib/command_line), validated whole before anything starts; a bad value
// gives one line naming the option and the value.
//
// Lifecycle: built once in main(); read-only afterwards. Thread safety: none needed.
#pragma once

#include "eal_args.hpp"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace sluice {

enum class exceptions_mode : uint8_t { off, auto_, on };

struct control_config {
    std::string socket = "/run/sluice/control.sock";
    uid_t socket_owner = 0;
    gid_t socket_group = 0;
    unsigned socket_mode = 0600;
    std::string fastpath_socket = "/run/sluice/fastpath.sock";
    std::string state_dir = "/var/lib/sluice";
    std::string log_level = "info";
    // Exception path (DPDK secondary process attached to sluice-fastpath).
    exceptions_mode exceptions = exceptions_mode::auto_;
    std::string file_prefix = "sluice";
    unsigned cpu = 0;
    std::string log_pcap;               // LOG/NFLOG hits appended here (pcap)
    std::vector<std::string> eal_args;
};

struct control_config_result {
    std::optional<control_config> config;
    std::string error; // or the help text when help
    bool help = false;
};

control_config_result load_control_config(int argc, const char* const* argv);

} // namespace sluice
