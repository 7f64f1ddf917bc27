// Starting DPDK's EAL with the arguments eal_args.hpp builds: log them, hand them to
// rte_eal_init, log a failure. The one piece of lib/ that links DPDK (library sluice_eal),
// shared by sluice-fastpath and sluice-gen.
//
// Thread safety: main thread, once, before any other DPDK call.
#pragma once

#include <string>
#include <vector>

namespace sluice {

// True when the EAL is up; false (with the reason logged) otherwise.
bool start_eal(std::vector<std::string> args);

} // namespace sluice
