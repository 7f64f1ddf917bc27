// See control_config.hpp.
#include "control_config.hpp"

#include "command_line.hpp"

#include <boost/program_options.hpp>

#include <grp.h>
#include <pwd.h>

namespace po = boost::program_options;

namespace sluice {

namespace {

std::optional<uid_t> user_id(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) return uid_t(std::stoul(s));
    if (const passwd* p = ::getpwnam(s.c_str())) return p->pw_uid;
    return std::nullopt;
}
std::optional<gid_t> group_id(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) return gid_t(std::stoul(s));
    if (const group* g = ::getgrnam(s.c_str())) return g->gr_gid;
    return std::nullopt;
}

} // namespace

control_config_result load_control_config(int argc, const char* const* argv) {
    control_config_result res;
    control_config c;
    std::string owner = "root", group = "root", mode = "0600", exceptions = "auto";
    po::options_description d("sluice-control options (also valid as `name = value` lines in the --config file)");
    // clang-format off
    d.add_options()
        ("socket", po::value(&c.socket)->default_value(c.socket), "policy API socket (AF_UNIX SOCK_SEQPACKET) sluicectl and orchestrators connect to")
        ("socket-owner", po::value(&owner)->default_value(owner), "owner of the API socket (user name or uid); the owner and root may change the policy")
        ("socket-group", po::value(&group)->default_value(group), "group of the API socket (name or gid); with a group-readable socket-mode its members get read-only access (list, stats, events)")
        ("socket-mode", po::value(&mode)->default_value(mode), "permissions of the API socket, octal (0600: root only; 0660: the group too, read-only)")
        ("fastpath-socket", po::value(&c.fastpath_socket)->default_value(c.fastpath_socket), "sluice-fastpath's agent socket")
        ("state-dir", po::value(&c.state_dir)->default_value(c.state_dir), "where the running policy is persisted (rules.v4, rules.v6, sets, mode, generation); give sluice-fastpath the same state-dir")
        ("log-level", po::value(&c.log_level)->default_value(c.log_level), "trace, debug, info, warn, error")
        ("exceptions", po::value(&exceptions)->default_value(exceptions), "exception path (attach to sluice-fastpath as a DPDK secondary process; needs hugepages): a kernel TAP per port that has an `address` in sluice-fastpath's configuration; auto (try, go on without), yes (required), no")
        ("file-prefix", po::value(&c.file_prefix)->default_value(c.file_prefix), "sluice-fastpath's DPDK file prefix (to attach to it)")
        ("cpu", po::value(&c.cpu)->default_value(c.cpu), "CPU of the exception path's lcore (not a worker's)")
        ("log-pcap", po::value(&c.log_pcap), "append packets that hit LOG/NFLOG rules to this pcap file");
    // clang-format on
    auto cl = parse_command_line(argc, argv, d,
                                 "usage: sluice-control [--config FILE] [options] [-- EAL args]\n"
                                 "The slow-path control process of Sluice: serves the policy API, persists the policy,\n"
                                 "publishes it to sluice-fastpath and runs the exception path.\n",
                                 c.eal_args);
    if (cl.help) {
        res.help = true;
        res.error = cl.text;
        return res;
    }
    if (!cl.text.empty()) {
        res.error = cl.text;
        return res;
    }
    auto bad = [&](const char* opt, const std::string& v, const char* why) {
        res.error = std::string("option '") + opt + "' value '" + v + "': " + why;
        return res;
    };
    auto u = user_id(owner);
    if (!u) return bad("socket-owner", owner, "no such user");
    auto g = group_id(group);
    if (!g) return bad("socket-group", group, "no such group");
    c.socket_owner = *u;
    c.socket_group = *g;
    try {
        size_t used = 0;
        unsigned long m = std::stoul(mode, &used, 8);
        if (used != mode.size() || m > 0777) throw std::out_of_range("mode");
        c.socket_mode = unsigned(m);
    } catch (const std::exception&) {
        return bad("socket-mode", mode, "must be an octal mode like 0600 or 0660");
    }
    if (c.socket_mode & 0007) return bad("socket-mode", mode, "must not give access to others (use a group)");
    if (exceptions == "auto") c.exceptions = exceptions_mode::auto_;
    else if (exceptions == "yes") c.exceptions = exceptions_mode::on;
    else if (exceptions == "no") c.exceptions = exceptions_mode::off;
    else return bad("exceptions", exceptions, "must be auto, yes or no");
    for (const char* lv : {"trace", "debug", "info", "warn", "error"})
        if (c.log_level == lv) {
            res.config = c;
            return res;
        }
    return bad("log-level", c.log_level, "must be trace, debug, info, warn or error");
}

} // namespace sluice
