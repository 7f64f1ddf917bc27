// EAL start-up arguments shared by the DPDK processes (sluice-fastpath, sluice-gen): how a
// device string is classified (PCI address or vdev devargs) and named by DPDK, whether 2 MiB
// hugepages are usable, and the argv handed to rte_eal_init() (lcore pinning, --file-prefix,
// hugepages or the --no-huge fallback, PCI allow-list or vdevs).
//
// Pure string building plus two small reads of /sys and /proc; touches no device and does
// not need the EAL. Thread safety: call from any thread (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

enum class huge_mode : uint8_t { auto_, yes, no };

// domain:bus:dev.fn (0000:03:00.0) or bus:dev.fn (03:00.0), no devargs.
bool is_pci_address(std::string_view device);

// The ethdev name DPDK registers the device under: the devargs up to the first ',', with the
// PCI domain added when it was left out.
std::string dpdk_device_name(std::string_view device);

// A --port argument, NAME=DEVICE: "" when it is one (name and device then set), else why not.
// NAME: letters, digits, '-', '_', '.', at most 15; DEVICE: a PCI address or net_* vdev.
std::string parse_port_arg(std::string_view arg, std::string& name, std::string& device);

// Free 2 MiB hugepages, or 0 when hugetlbfs is not mounted.
unsigned long free_hugepages_2m();

struct eal_plan {
    std::string argv0;
    std::string file_prefix;
    std::vector<unsigned> lcore_cpus;  // lcore i runs on CPU lcore_cpus[i]; lcore 0 is the main one
    huge_mode huge = huge_mode::auto_;
    unsigned memory_mb = 512;          // reserved with --no-huge (and what `auto` wants free)
    std::vector<std::string> devices;  // PCI addresses (-a) or vdev devargs (--vdev)
    std::vector<std::string> extra;    // appended verbatim
};

// The argv for rte_eal_init (argv[0] first). `auto` uses hugepages when at least
// memory_mb of them are free and hugetlbfs is mounted, else --no-huge -m memory_mb.
std::vector<std::string> eal_arguments(const eal_plan& plan);

} // namespace sluice
