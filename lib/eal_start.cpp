// See eal_start.hpp.
#include "eal_start.hpp"

#include <rte_eal.h>
#include <rte_errno.h>

#include <spdlog/spdlog.h>

namespace sluice {

bool start_eal(std::vector<std::string> args) {
    std::string joined;
    for (auto& s : args) joined += " " + s;
    spdlog::info("EAL arguments:{}", joined);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (rte_eal_init(int(args.size()), argv.data()) < 0) {
        spdlog::error("EAL initialisation failed (see the EAL messages above): {}", rte_strerror(rte_errno));
        return false;
    }
    return true;
}

} // namespace sluice
