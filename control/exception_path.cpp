// See exception_path.hpp.
#include "exception_path.hpp"

#include "eal_start.hpp"
#include "exception.hpp"
#include "packet.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_ring.h>

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace sluice {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr unsigned ring_batch = 64; // mbufs per ring per poll()
constexpr unsigned tap_batch = 32;  // frames per TAP per poll()
constexpr unsigned secondary_lcore = RTE_MAX_LCORE - 1;

std::string errno_text(int e) { return std::string(std::strerror(e)); }

// The directory the EAL keeps its runtime files in (eal_get_runtime_dir()), before the
// EAL is up: /var/run/dpdk/<prefix> for root, else under $XDG_RUNTIME_DIR or /tmp.
// RTM_NEWADDR over rtnetlink: "" or why not.
std::string add_address(int ifindex, const exception_address& a) {
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0) return "netlink socket: " + errno_text(errno);
    struct {
        nlmsghdr h;
        ifaddrmsg ifa;
        char attrs[64];
    } req{};
    const uint32_t alen = a.v6 ? 16 : 4;
    const uint8_t* addr = a.v6 ? a.addr : a.addr + 12;
    req.h.nlmsg_type = RTM_NEWADDR;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    req.h.nlmsg_seq = 1;
    req.ifa.ifa_family = a.v6 ? AF_INET6 : AF_INET;
    req.ifa.ifa_prefixlen = a.prefix;
    req.ifa.ifa_flags = a.v6 ? IFA_F_NODAD : 0;
    req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    req.ifa.ifa_index = uint32_t(ifindex);
    uint32_t len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    for (uint16_t type : {uint16_t(IFA_LOCAL), uint16_t(IFA_ADDRESS)}) {
        auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(len));
        rta->rta_type = type;
        rta->rta_len = uint16_t(RTA_LENGTH(alen));
        std::memcpy(RTA_DATA(rta), addr, alen);
        len = NLMSG_ALIGN(len) + RTA_ALIGN(rta->rta_len);
    }
    req.h.nlmsg_len = len;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    std::string err;
    if (sendto(nl, &req, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) != ssize_t(len)) {
        err = "netlink send: " + errno_text(errno);
    } else {
        alignas(nlmsghdr) char buf[4096];
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        auto* h = reinterpret_cast<nlmsghdr*>(buf);
        if (n < ssize_t(NLMSG_LENGTH(sizeof(nlmsgerr))) || h->nlmsg_type != NLMSG_ERROR)
            err = "netlink: no acknowledgement";
        else if (int e = static_cast<nlmsgerr*>(NLMSG_DATA(h))->error; e != 0)
            err = "RTM_NEWADDR: " + errno_text(-e);
    }
    close(nl);
    return err;
}

std::string address_text(const exception_address& a) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.v6 ? a.addr : a.addr + 12, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(a.prefix);
}

std::string ip_text(const ip_addr& a, bool v6) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? a.b : a.b + 12, buf, sizeof buf);
    return buf;
}

// One line about a logged frame: protocol, addresses, ports or ICMP type, lengths, flags.
std::string frame_summary(const uint8_t* f, uint32_t len) {
    packet_meta m;
    auto r = parse_packet(f, len, len, m);
    if (!r.ok) return "unparsable frame of " + std::to_string(len) + " B (" + std::string(name_of(r.reason)) + ")";
    char buf[256];
    if (m.l3 != l3_kind::ipv4 && m.l3 != l3_kind::ipv6) {
        std::snprintf(buf, sizeof buf, "ethertype 0x%04x len %u", m.ethertype, len);
        return buf;
    }
    const bool v6 = m.l3 == l3_kind::ipv6;
    std::string s = v6 ? "IPv6 " : "IPv4 ";
    const std::string src = ip_text(m.src, v6), dst = ip_text(m.dst, v6);
    const bool first = !(m.frag_flags & frag::is_fragment) || (m.frag_flags & frag::first);
    switch (m.l4_proto) {
    case 6:
    case 17:
    case 132:
        s += m.l4_proto == 6 ? "TCP " : m.l4_proto == 17 ? "UDP " : "SCTP ";
        if (first) s += (v6 ? "[" + src + "]" : src) + ":" + std::to_string(m.sport) + " > " +
                        (v6 ? "[" + dst + "]" : dst) + ":" + std::to_string(m.dport);
        else s += src + " > " + dst;
        if (m.l4_proto == 6 && first) {
            s += " [";
            const char* names = "FSRPAUEC";
            for (int b = 0; b < 8; ++b)
                if (m.tcp_flags & (1u << b)) s += names[b];
            s += "]";
        }
        break;
    case 1:
    case 58:
        std::snprintf(buf, sizeof buf, "%s %s > %s type %u code %u", m.l4_proto == 1 ? "ICMP" : "ICMPv6",
                      src.c_str(), dst.c_str(), m.icmp_type, m.icmp_code);
        s += buf;
        break;
    default: s += "proto " + std::to_string(m.l4_proto) + " " + src + " > " + dst;
    }
    std::snprintf(buf, sizeof buf, " len %u ttl %u%s", m.ip_total_len, m.ttl,
                  m.frag_flags & frag::is_fragment ? " fragment" : "");
    return s + buf;
}

} // namespace

std::vector<std::pair<std::string_view, uint64_t>> exception_path_counters::values() const {
    return {{"from_workers", from_workers},     {"to_tap", to_tap},
            {"tap_write_failed", tap_write_failed}, {"no_tap", no_tap},
            {"from_tap", from_tap},             {"injected", injected},
            {"inject_ring_full", inject_ring_full}, {"inject_no_mbuf", inject_no_mbuf},
            {"inject_too_big", inject_too_big}, {"log_hits", log_hits},
            {"log_lines", log_lines},           {"log_suppressed", log_suppressed},
            {"pcap_written", pcap_written},     {"pcap_failed", pcap_failed},
            {"bad_mark", bad_mark}};
}

struct exception_path::impl {
    struct tap_port {
        std::string name, ifname, error;
        uint16_t port_id = 0;
        int fd = -1;
        std::vector<std::string> addresses;
    };
    const rte_memzone* zone = nullptr;
    const exception_info* info = nullptr;
    rte_mempool* pool = nullptr;
    std::vector<rte_ring*> exc, inj;
    std::vector<tap_port> ports;
    std::array<int16_t, RTE_MAX_ETHPORTS> index_of{};
    FILE* pcap = nullptr;
    bool pcap_dirty = false;
    clock_type::time_point next_bind{}, next_alive{};
    double tokens = 0;
    clock_type::time_point last_refill{};
    std::vector<uint8_t> buf = std::vector<uint8_t>(65536);
    int lock_fd = -1; // flock: one exception path per fast path

    ~impl() {
        if (lock_fd >= 0) close(lock_fd);
        for (auto& p : ports)
            if (p.fd >= 0) close(p.fd);
        if (pcap) std::fclose(pcap);
    }
};

exception_path::exception_path(exception_path_config cfg) : cfg_(std::move(cfg)), d_(std::make_unique<impl>()) {
    d_->index_of.fill(-1);
}

exception_path::~exception_path() {
    d_.reset(); // the TAPs go with their file descriptors
    if (eal_up_) rte_eal_cleanup();
}

exception_path::attach_status exception_path::attach(const std::string& argv0) {
    attach_status st;
    if (eal_up_) {
        st.error = "already attached";
        return st;
    }
    const std::string config = dpdk_runtime_dir(cfg_.file_prefix) + "/config";
    if (!rte_eal_primary_proc_alive(config.c_str())) {
        st.retry = true;
        st.error = "no sluice-fastpath runs with file-prefix '" + cfg_.file_prefix + "' (" + config +
                   " not held by a DPDK primary)";
        return st;
    }
    // One control process per fast path: the rings are single-consumer/single-producer on
    // this side. The lock goes with the process, also on SIGKILL.
    const std::string lock = exception_lock_path(cfg_.file_prefix);
    d_->lock_fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d_->lock_fd < 0 || flock(d_->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        st.retry = true;
        st.error = d_->lock_fd < 0 ? "cannot open " + lock + ": " + errno_text(errno)
                                   : "another process runs the exception path of file-prefix '" +
                                         cfg_.file_prefix + "' (" + lock + " is locked)";
        if (d_->lock_fd >= 0) close(d_->lock_fd);
        d_->lock_fd = -1;
        return st;
    }
    std::vector<std::string> args{argv0,
                                  "--file-prefix=" + cfg_.file_prefix,
                                  "--proc-type=secondary",
                                  "--lcores=" + std::to_string(secondary_lcore) + "@" + std::to_string(cfg_.cpu),
                                  "--main-lcore=" + std::to_string(secondary_lcore),
                                  "--no-pci",
                                  "--no-telemetry"};
    args.insert(args.end(), cfg_.eal_args.begin(), cfg_.eal_args.end());
    if (!start_eal(args)) {
        st.error = std::string("EAL secondary initialisation failed: ") + rte_strerror(rte_errno) +
                   " (the fast path must run with hugepages: a --no-huge primary shares no memory)";
        return st;
    }
    eal_up_ = true;
    st.ok = true;
    bind();
    return st;
}

bool exception_path::bind() {
    impl& d = *d_;
    const rte_memzone* mz = rte_memzone_lookup(exception_info_zone);
    if (!mz) return false;
    const auto* info = static_cast<const exception_info*>(mz->addr);
    if (__atomic_load_n(&info->magic, __ATOMIC_ACQUIRE) != exception_info_magic) return false;
    if (info->version != exception_info_version || info->n_ports > exception_max_ports) {
        spdlog::error("exception path: {} has version {} (expected {}): sluice-fastpath and "
                      "sluice-control are from different builds", exception_info_zone, info->version,
                      exception_info_version);
        gone_ = true;
        return false;
    }
    d.pool = rte_mempool_lookup(exception_pool_name);
    if (!d.pool) return false;
    std::vector<rte_ring*> exc, inj;
    for (unsigned k = 0;; ++k) {
        rte_ring* e = rte_ring_lookup(exception_ring_name(k).c_str());
        rte_ring* i = rte_ring_lookup(inject_ring_name(k).c_str());
        if (!e || !i) break;
        exc.push_back(e);
        inj.push_back(i);
    }
    if (exc.size() != info->n_workers || exc.empty()) return false;
    // A control process killed inside a ring operation left its side's head ahead of the
    // tail; roll it back (the worker only reads the other side, and only the tail of ours).
    for (rte_ring* r : exc)
        if (r->cons.head != r->cons.tail) {
            spdlog::warn("exception path: ring {}: an interrupted dequeue rolled back", r->name);
            r->cons.head = r->cons.tail;
        }
    for (rte_ring* r : inj)
        if (r->prod.head != r->prod.tail) {
            spdlog::warn("exception path: ring {}: an interrupted enqueue rolled back", r->name);
            r->prod.head = r->prod.tail;
        }
    d.zone = mz;
    d.info = info;
    d.exc = std::move(exc);
    d.inj = std::move(inj);
    for (uint32_t i = 0; i < info->n_ports; ++i) {
        const exception_port_info& pi = info->ports[i];
        impl::tap_port tp;
        tp.name.assign(pi.name, strnlen(pi.name, sizeof pi.name));
        tp.port_id = pi.port_id;
        for (unsigned a = 0; a < pi.n_addresses && a < exception_max_addresses; ++a)
            tp.addresses.push_back(address_text(pi.addresses[a]));
        if (pi.port_id < RTE_MAX_ETHPORTS) d.index_of[pi.port_id] = int16_t(i);
        d.ports.push_back(std::move(tp));
    }
    if (cfg_.tap)
        for (uint32_t i = 0; i < info->n_ports; ++i)
            if (info->ports[i].n_addresses) make_tap(i);
    if (!cfg_.log_pcap.empty()) {
        d.pcap = std::fopen(cfg_.log_pcap.c_str(), "ab");
        if (!d.pcap) {
            spdlog::error("exception path: cannot open log-pcap {}: {}", cfg_.log_pcap, errno_text(errno));
        } else if (std::ftell(d.pcap) == 0) {
            // pcap global header: magic, 2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET.
            const uint32_t hdr[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
            std::fwrite(hdr, sizeof hdr, 1, d.pcap);
            std::fflush(d.pcap);
        }
    }
    d.tokens = 2.0 * cfg_.log_lines_per_s;
    d.last_refill = clock_type::now();
    ready_ = true;
    spdlog::info("exception path attached: {} worker ring pair(s), {} port(s)\n{}", d.exc.size(),
                 d.ports.size(), describe());
    return true;
}

void exception_path::make_tap(uint32_t i) {
    impl::tap_port& tp = d_->ports[i];
    const exception_port_info& pi = d_->info->ports[i];
    tp.ifname = ("sl-" + tp.name).substr(0, IFNAMSIZ - 1);
    auto fail = [&](const std::string& what) {
        tp.error = what;
        spdlog::error("exception path: port '{}': TAP {}: {}", tp.name, tp.ifname, what);
        if (tp.fd >= 0) close(tp.fd);
        tp.fd = -1;
    };
    tp.fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tp.fd < 0) return fail("open /dev/net/tun: " + errno_text(errno));
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, tp.ifname.c_str(), IFNAMSIZ - 1);
    if (ioctl(tp.fd, TUNSETIFF, &ifr) < 0)
        return fail("TUNSETIFF: " + errno_text(errno) +
                    (errno == EBUSY ? " (another sluice-control holds it?)" : ""));
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return fail("socket: " + errno_text(errno));
    std::string err;
    ifreq q{};
    std::strncpy(q.ifr_name, tp.ifname.c_str(), IFNAMSIZ - 1);
    q.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    std::memcpy(q.ifr_hwaddr.sa_data, pi.mac, 6);
    if (ioctl(s, SIOCSIFHWADDR, &q) < 0) err = "set MAC: " + errno_text(errno);
    q.ifr_mtu = pi.mtu;
    if (err.empty() && ioctl(s, SIOCSIFMTU, &q) < 0) err = "set MTU: " + errno_text(errno);
    if (err.empty() && ioctl(s, SIOCGIFFLAGS, &q) < 0) err = "get flags: " + errno_text(errno);
    q.ifr_flags = short(q.ifr_flags | IFF_UP);
    if (err.empty() && ioctl(s, SIOCSIFFLAGS, &q) < 0) err = "set up: " + errno_text(errno);
    if (err.empty() && ioctl(s, SIOCGIFINDEX, &q) < 0) err = "ifindex: " + errno_text(errno);
    const int ifindex = q.ifr_ifindex;
    close(s);
    if (!err.empty()) return fail(err);
    for (unsigned a = 0; a < pi.n_addresses && a < exception_max_addresses; ++a)
        if (auto e = add_address(ifindex, pi.addresses[a]); !e.empty())
            return fail(address_text(pi.addresses[a]) + ": " + e);
}

unsigned exception_path::poll() {
    if (!eal_up_ || gone_) return 0;
    impl& d = *d_;
    const auto now = clock_type::now();
    if (!ready_) {
        if (now < d.next_bind) return 0;
        d.next_bind = now + std::chrono::milliseconds(200);
        if (!bind()) return 0;
    }
    if (now >= d.next_alive) {
        d.next_alive = now + std::chrono::milliseconds(100);
        if (!rte_eal_primary_proc_alive(nullptr) ||
            __atomic_load_n(&d.info->magic, __ATOMIC_ACQUIRE) != exception_info_magic) {
            gone_ = true;
            spdlog::error("exception path: sluice-fastpath has exited; restart sluice-control to re-attach");
            return 0;
        }
    }
    const uint64_t before = c_.from_workers + c_.from_tap;
    for (unsigned k = 0; k < d.exc.size(); ++k) from_workers(k);
    for (std::size_t i = 0; i < d.ports.size(); ++i)
        if (d.ports[i].fd >= 0) from_tap(i);
    if (d.pcap_dirty) {
        std::fflush(d.pcap);
        d.pcap_dirty = false;
    }
    return unsigned(c_.from_workers + c_.from_tap - before);
}

void exception_path::from_workers(unsigned k) {
    impl& d = *d_;
    rte_mbuf* pkts[ring_batch];
    const unsigned n = rte_ring_sc_dequeue_burst(d.exc[k], reinterpret_cast<void**>(pkts), ring_batch, nullptr);
    c_.from_workers += n;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const uint32_t mark = m->hash.usr;
        const uint32_t len = m->pkt_len;
        const uint8_t* frame = m->nb_segs == 1 || len > d.buf.size()
                                   ? rte_pktmbuf_mtod(m, const uint8_t*)
                                   : static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, len, d.buf.data()));
        const uint32_t flen = m->nb_segs == 1 || len > d.buf.size() ? m->data_len : len;
        const int16_t port = m->port < RTE_MAX_ETHPORTS ? d.index_of[m->port] : -1;
        switch (exception_mark::reason(mark)) {
        case exception_reason::local:
            if (port < 0) {
                ++c_.bad_mark;
            } else if (d.ports[size_t(port)].fd < 0) {
                ++c_.no_tap;
            } else if (write(d.ports[size_t(port)].fd, frame, flen) == ssize_t(flen)) {
                ++c_.to_tap;
            } else {
                ++c_.tap_write_failed;
            }
            break;
        case exception_reason::log:
            log_hit(frame, flen, port, mark);
            break;
        default: ++c_.bad_mark;
        }
        rte_pktmbuf_free(m);
    }
}

void exception_path::from_tap(std::size_t port) {
    impl& d = *d_;
    const impl::tap_port& tp = d.ports[port];
    rte_mbuf* out[tap_batch];
    unsigned n = 0;
    for (unsigned j = 0; j < tap_batch; ++j) {
        const ssize_t r = read(tp.fd, d.buf.data(), d.buf.size());
        if (r <= 0) break; // EAGAIN: nothing more
        ++c_.from_tap;
        rte_mbuf* m = rte_pktmbuf_alloc(d.pool);
        if (!m) {
            ++c_.inject_no_mbuf;
            continue;
        }
        if (size_t(r) > rte_pktmbuf_tailroom(m)) {
            rte_pktmbuf_free(m);
            ++c_.inject_too_big;
            continue;
        }
        std::memcpy(rte_pktmbuf_mtod(m, void*), d.buf.data(), size_t(r));
        m->data_len = uint16_t(r);
        m->pkt_len = uint32_t(r);
        m->port = tp.port_id;
        out[n++] = m;
    }
    if (!n) return;
    // Worker 0 sends everything: one ring keeps the kernel's frames in order.
    const unsigned done = rte_ring_sp_enqueue_burst(d.inj[0], reinterpret_cast<void* const*>(out), n, nullptr);
    c_.injected += done;
    c_.inject_ring_full += n - done;
    for (unsigned i = done; i < n; ++i) rte_pktmbuf_free(out[i]);
}

void exception_path::log_hit(const uint8_t* frame, uint32_t len, int port, uint32_t mark) {
    impl& d = *d_;
    ++c_.log_hits;
    const auto now = clock_type::now();
    if (d.pcap) {
        timeval tv{};
        gettimeofday(&tv, nullptr);
        const uint32_t rec[4] = {uint32_t(tv.tv_sec), uint32_t(tv.tv_usec), len, len};
        if (std::fwrite(rec, sizeof rec, 1, d.pcap) == 1 && std::fwrite(frame, len, 1, d.pcap) == 1) {
            ++c_.pcap_written;
            d.pcap_dirty = true;
        } else {
            ++c_.pcap_failed;
        }
    }
    const double rate = cfg_.log_lines_per_s, burst = 2.0 * rate;
    d.tokens = std::min(burst, d.tokens + rate * std::chrono::duration<double>(now - d.last_refill).count());
    d.last_refill = now;
    if (d.tokens < 1.0) {
        ++c_.log_suppressed;
        return;
    }
    d.tokens -= 1.0;
    ++c_.log_lines;
    const bool v6 = exception_mark::rule_v6(mark);
    const uint32_t rule = exception_mark::rule_index(mark);
    std::string rule_text = cfg_.describe_rule ? cfg_.describe_rule(v6, rule)
                                               : std::string(v6 ? "ip6" : "ip4") + " rule #" + std::to_string(rule);
    spdlog::info("LOG {} in={}: {}{}", rule_text, port >= 0 ? d.ports[size_t(port)].name : "?",
                 frame_summary(frame, len),
                 c_.log_suppressed ? " (" + std::to_string(c_.log_suppressed) + " suppressed so far)" : "");
}

std::vector<int> exception_path::fds() const {
    std::vector<int> v;
    for (const auto& p : d_->ports)
        if (p.fd >= 0) v.push_back(p.fd);
    return v;
}

std::string exception_path::describe() const {
    std::string s;
    for (const auto& p : d_->ports) {
        s += "  port " + p.name + " (ethdev " + std::to_string(p.port_id) + "): ";
        if (p.addresses.empty()) s += "no address, no TAP";
        else {
            for (const auto& a : p.addresses) s += a + " ";
            s += p.fd >= 0 ? "on TAP " + p.ifname : "TAP " + p.ifname + " failed: " + p.error;
        }
        s += "\n";
    }
    if (!s.empty()) s.pop_back();
    return s;
}

} // namespace sluice
