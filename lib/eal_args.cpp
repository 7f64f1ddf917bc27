// See eal_args.hpp.
#include "eal_args.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>

namespace sluice {

bool is_pci_address(std::string_view device) {
    auto colon = device.find(':');
    auto dot = device.find('.');
    return colon != std::string_view::npos && dot != std::string_view::npos && dot > colon &&
           device.find(',') == std::string_view::npos && device.rfind("net_", 0) != 0;
}

std::string dpdk_device_name(std::string_view device) {
    std::string n(device.substr(0, device.find(',')));
    if (is_pci_address(device) && std::count(n.begin(), n.end(), ':') == 1) n = "0000:" + n;
    return n;
}

std::string parse_port_arg(std::string_view arg, std::string& name, std::string& device) {
    auto eq = arg.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == arg.size()) return "expected NAME=DEVICE";
    std::string_view n = arg.substr(0, eq), d = arg.substr(eq + 1);
    for (char ch : n)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
            return "port name may only hold letters, digits, '-', '_', '.'";
    if (n.size() > 15) return "port name longer than 15 characters";
    if (!is_pci_address(d) && d.rfind("net_", 0) != 0)
        return "DEVICE must be a PCI address or a vdev starting with net_";
    name = n;
    device = d;
    return {};
}

unsigned long free_hugepages_2m() {
    std::ifstream f("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
    unsigned long n = 0;
    f >> n;
    std::ifstream mounts("/proc/mounts");
    std::string line;
    bool mounted = false;
    while (std::getline(mounts, line))
        if (line.find(" hugetlbfs ") != std::string::npos) mounted = true;
    return mounted ? n : 0;
}

std::vector<std::string> eal_arguments(const eal_plan& p) {
    std::vector<std::string> a{p.argv0, "--file-prefix=" + p.file_prefix, "--proc-type=primary"};
    std::string lcores = "--lcores=";
    for (std::size_t i = 0; i < p.lcore_cpus.size(); ++i)
        lcores += (i ? "," : "") + std::to_string(i) + "@" + std::to_string(p.lcore_cpus[i]);
    a.push_back(lcores);
    a.push_back("--main-lcore=0");
    bool use_huge = p.huge == huge_mode::yes ||
                    (p.huge == huge_mode::auto_ && free_hugepages_2m() * 2 >= p.memory_mb);
    if (!use_huge) {
        a.push_back("--no-huge");
        a.push_back("-m");
        a.push_back(std::to_string(p.memory_mb));
    }
    bool any_pci = false;
    for (const auto& d : p.devices) {
        if (is_pci_address(d)) {
            any_pci = true;
            a.push_back("-a");
            a.push_back(d);
        } else {
            a.push_back("--vdev=" + d);
        }
    }
    if (!any_pci) a.push_back("--no-pci");
    a.insert(a.end(), p.extra.begin(), p.extra.end());
    return a;
}

} // namespace sluice
