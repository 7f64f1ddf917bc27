// See policy.hpp.
#include "policy.hpp"

#include "ipset_parser.hpp"
#include "ruleset_parser.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice {

std::string_view name_of(filter_mode m) noexcept {
    switch (m) {
    case filter_mode::enforce: return "enforce";
    case filter_mode::monitor: return "monitor";
    case filter_mode::bypass: return "bypass";
    }
    return "?";
}

std::optional<filter_mode> filter_mode_from(std::string_view name) noexcept {
    for (auto m : {filter_mode::enforce, filter_mode::monitor, filter_mode::bypass})
        if (name == name_of(m)) return m;
    return std::nullopt;
}

std::pair<uint64_t, uint64_t> policy_snapshot::rule_totals(bool ipv6, uint32_t global) const noexcept {
    uint64_t p = 0, b = 0;
    for (unsigned w = 0; w < n_workers; ++w) {
        const auto& c = (ipv6 ? workers[w].rules6 : workers[w].rules4)[global];
        p += c.packets.get();
        b += c.bytes.get();
    }
    return {p, b};
}

namespace {

std::optional<std::string> read_file(const std::filesystem::path& p, std::string& error) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) return std::nullopt;
    policy_text t;
    if (auto e = read_policy_file(p.string(), t); !e.empty()) {
        error = e;
        return std::nullopt;
    }
    return std::move(t.text);
}

std::string trim(std::string s) {
    auto b = s.find_first_not_of(" \t\r\n");
    auto e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Parse one family's file; an empty text is the kernel's empty filter table.
std::string parse_rules(const policy_text& t, ip_family f, ruleset& out) {
    auto r = parse_iptables_save(t.text, t.name, f);
    if (!r.ok()) return r.error.to_string();
    out = std::move(*r.value);
    return {};
}

} // namespace

policy_build_result build_policy(const policy_sources& src, filter_mode mode, uint32_t generation,
                                 std::span<const port_binding> ports, unsigned n_workers,
                                 uint64_t now_ns) {
    policy_build_result res;
    auto p = std::make_unique<policy_snapshot>();
    p->generation = generation;
    p->mode = mode;
    p->n_workers = n_workers;
    // Sets are never mutated after publication by this path (a reload builds a new table),
    // so retired memory can simply wait for collect_garbage() before publication.
    p->sets = std::make_unique<set_table>();
    if (!src.sets.text.empty())
        if (auto e = restore_ipset(*p->sets, src.sets.text, src.sets.name)) {
            res.error = e->to_string();
            return res;
        }
    p->sets->collect_garbage();
    if (auto e = parse_rules(src.rules4, ip_family::ipv4, p->rules4); !e.empty()) {
        res.error = e;
        return res;
    }
    if (auto e = parse_rules(src.rules6, ip_family::ipv6, p->rules6); !e.empty()) {
        res.error = e;
        return res;
    }
    for (auto [rs, out, name] : {std::tuple{&p->rules4, &p->forward4, &src.rules4.name},
                                 std::tuple{&p->rules6, &p->forward6, &src.rules6.name}}) {
        auto c = compile(*rs, hook::forward, *p->sets, ports);
        if (!c.ok()) {
            res.error = (name->empty() ? std::string("rules") : *name) + ": " + c.error;
            return res;
        }
        *out = std::move(c.cls);
    }
    p->workers = std::make_unique<policy_worker_state[]>(n_workers);
    for (unsigned w = 0; w < n_workers; ++w) {
        auto& ws = p->workers[w];
        ws.rules4 = std::make_unique<rule_counter[]>(p->forward4->rule_count());
        ws.rules6 = std::make_unique<rule_counter[]>(p->forward6->rule_count());
        ws.limits4.resize(p->forward4->limit_count());
        ws.limits6.resize(p->forward6->limit_count());
        p->forward4->init_limits(ws.limits4, now_ns);
        p->forward6->init_limits(ws.limits6, now_ns);
    }
    res.snapshot = std::move(p);
    return res;
}

std::string read_policy_file(const std::string& path, policy_text& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return path + ": cannot open: " + std::strerror(errno);
    std::ostringstream s;
    s << f.rdbuf();
    if (f.bad()) return path + ": read error";
    out.name = path;
    out.text = s.str();
    return {};
}

state_dir_contents read_state_dir(const std::string& dir, filter_mode default_mode) {
    namespace fs = std::filesystem;
    state_dir_contents st;
    st.mode = default_mode;
    if (dir.empty()) return st;
    const fs::path d(dir);
    auto failed = [&](std::string why) {
        st.error = std::move(why);
        return st;
    };
    std::string err;
    auto gen = read_file(d / "generation", err);
    if (!err.empty()) return failed(err);
    if (!gen) return st; // no complete state: the configuration's files
    const std::string g = trim(*gen);
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(g.data(), g.data() + g.size(), v);
    if (g.empty() || ec != std::errc() || p != g.data() + g.size() || v == 0)
        return failed((d / "generation").string() + ": '" + g +
                      "' is not a generation number (1..4294967295)");
    st.generation = v;
    auto m = read_file(d / "mode", err);
    if (!err.empty()) return failed(err);
    if (m) {
        const std::string w = trim(*m);
        auto fm = filter_mode_from(w);
        if (!fm)
            return failed((d / "mode").string() + ": '" + w +
                          "' is not a mode (enforce, monitor, bypass)");
        st.mode = *fm;
    }
    for (auto [name, text] :
         {std::pair{"rules.v4", &st.sources.rules4}, std::pair{"rules.v6", &st.sources.rules6},
          std::pair{"sets", &st.sources.sets}}) {
        text->name = (d / name).string();
        if (auto t = read_file(d / name, err)) text->text = std::move(*t);
        if (!err.empty()) return failed(err);
    }
    st.found = true;
    return st;
}

std::string write_state_dir(const std::string& dir, uint32_t generation, filter_mode mode,
                            const std::string& rules4, const std::string& rules6,
                            const std::string& sets) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    for (auto [name, text] : {std::pair<const char*, std::string>{"rules.v4", rules4},
                              {"rules.v6", rules6},
                              {"sets", sets},
                              {"mode", std::string(name_of(mode)) + "\n"},
                              {"generation", std::to_string(generation) + "\n"}}) {
        std::string path = dir + "/" + name, tmp = path + ".tmp";
        {
            std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
            f << text;
            f.flush();
            if (!f) return tmp + ": write failed";
        }
        if (std::rename(tmp.c_str(), path.c_str()) != 0) return path + ": rename failed: " + std::strerror(errno);
    }
    return {};
}

} // namespace sluice
