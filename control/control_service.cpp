// See control_service.hpp.
#include "control_service.hpp"

#include "ipset_parser.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/stat.h>

namespace sluice {

namespace {

using namespace api;

bool is_change(uint16_t t) {
    switch (t) {
    case rule_new: case rule_del: case rule_flush:
    case chain_new: case chain_del: case api::chain_policy:
    case table_restore:
    case set_create: case set_destroy: case set_flush: case set_swap: case set_add: case set_del:
    case mode_set:
        return true;
    default: return false;
    }
}

// Copy of message `m` with another seq/pid (relaying between client and fast path).
std::vector<uint8_t> restamp(std::span<const uint8_t> bytes, uint32_t seq, uint32_t pid) {
    std::vector<uint8_t> v(bytes.begin(), bytes.end());
    std::memcpy(v.data() + 8, &seq, 4);
    std::memcpy(v.data() + 12, &pid, 4);
    return v;
}

void put_ack(nl::builder& b, const nl::message& m) {
    if (m.hdr.flags & nl::f_ack) nl::put_error(b, m.hdr, 0);
}

void mkdir_parent(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i)
        if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0755);
}

std::optional<ip_family> family_of(const nl::attr_list& a) {
    const nl::attr* f = a.find(a_family);
    if (!f) return ip_family::ipv4;
    auto v = f->u8();
    if (v == 4) return ip_family::ipv4;
    if (v == 6) return ip_family::ipv6;
    return std::nullopt;
}

} // namespace

control_service::control_service(const control_config& cfg) : cfg_(cfg) {}

std::string control_service::start() {
    if (auto e = store_.load_from(cfg_.state_dir); !e.empty()) return "persisted policy unreadable: " + e;
    if (store_.generation())
        spdlog::info("persisted policy: generation {}, mode {}, {} IPv4 / {} IPv6 chain(s), {} set(s)",
                     store_.generation(), name_of(store_.mode()), store_.rules(ip_family::ipv4).chains.size(),
                     store_.rules(ip_family::ipv6).chains.size(), store_.sets().list().size());
    mkdir_parent(cfg_.socket);
    socket_access acc{cfg_.socket_owner, cfg_.socket_group, cfg_.socket_mode};
    if (auto e = server_.listen(cfg_.socket, acc); !e.empty()) return e;
    spdlog::info("policy API on {} (mode {:o})", cfg_.socket, cfg_.socket_mode);
    return {};
}

bool control_service::is_writer(const api_peer& p) const noexcept {
    return p.uid == 0 || p.uid == cfg_.socket_owner;
}

void control_service::poll(int timeout_ms) {
    server_.poll_once(
        timeout_ms, [this](const api_peer& p, const nl::message& m, nl::builder& r) { handle(p, m, r); },
        [this](const api_peer& p) {
            batches_.erase(p.id);
            subscribers_.erase(p.id);
        });
    tend_fastpath();
    relay_events();
}

// ---- the fast path link --------------------------------------------------------------------

namespace {
// Whether the peer of a connected client socket has gone (the fast path exited).
bool peer_gone(const api_client& c) {
    pollfd p{c.fd(), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLRDHUP));
}
} // namespace

void control_service::tend_fastpath() {
    if (fp_.connected() && peer_gone(fp_)) {
        spdlog::warn("sluice-fastpath closed its agent socket (stopped or restarting)");
        lost_ = true;
        fp_.close();
        fp_ev_.close();
        last_try_ = {};
    }
    if (fp_ev_.connected() && peer_gone(fp_ev_)) fp_ev_.close();
    if (fp_.connected()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_try_ < std::chrono::seconds(1)) return;
    last_try_ = now;
    if (!fp_.connect(cfg_.fastpath_socket, 5000).empty()) {
        if (ever_connected_) lost_ = true;
        return;
    }
    nl::builder b;
    b.begin(gen_get, nl::f_request, fp_.next_seq());
    b.end();
    auto r = fp_.request(b);
    if (r.err || r.messages.empty()) {
        fp_.close();
        return;
    }
    auto al = r.at(0).attrs();
    uint32_t fp_gen = 0;
    if (auto* g = al.find(a_generation)) fp_gen = g->u32().value_or(0);
    if (ever_connected_) spdlog::info("sluice-fastpath is back (generation {})", fp_gen);
    else spdlog::info("connected to sluice-fastpath at {} (generation {})", cfg_.fastpath_socket, fp_gen);
    ever_connected_ = true;
    if (store_.generation() == 0) {
        spdlog::info("no policy persisted yet: sluice-fastpath keeps its own until the first change");
        return;
    }
    if (fp_gen != store_.generation()) {
        spdlog::info("bringing sluice-fastpath from generation {} to {}", fp_gen, store_.generation());
        push_full_policy();
    }
}

bool control_service::push_full_policy() {
    nl::builder b;
    b.begin(fp_policy, nl::f_request | nl::f_ack, fp_.next_seq());
    b.put_u32(a_generation, store_.generation());
    b.put_str(a_mode, name_of(store_.mode()));
    b.put_text(a_rules4, store_.rules_text(ip_family::ipv4));
    b.put_text(a_rules6, store_.rules_text(ip_family::ipv6));
    b.put_text(a_sets, store_.sets_text());
    b.end();
    auto r = fp_.request(b);
    if (r.err) {
        spdlog::error("sluice-fastpath refused generation {}: {} ({})", store_.generation(), r.text,
                      std::strerror(r.err));
        if (r.err == EPIPE) fp_.close();
        return false;
    }
    return true;
}

void control_service::publish(const commit_result& cr) {
    if (!fp_.connected()) {
        spdlog::warn("sluice-fastpath not connected: generation {} is persisted and will be applied when it is",
                     store_.generation());
        return;
    }
    if (!cr.sets_only) {
        push_full_policy();
        return;
    }
    nl::builder b;
    b.begin(fp_sets, nl::f_request | nl::f_ack, fp_.next_seq());
    b.put_u32(a_generation, store_.generation());
    b.put_text(a_sets, cr.set_lines);
    b.end();
    auto r = fp_.request(b);
    if (r.err) {
        spdlog::error("sluice-fastpath refused the set change of generation {}: {}; sending the whole policy",
                      store_.generation(), r.text);
        if (r.err == EPIPE) fp_.close();
        else push_full_policy();
    }
}

void control_service::relay(const api_peer& peer, const nl::message& m, nl::builder& reply,
                            const std::function<bool(const nl::message&)>& keep) {
    const bool dump = (m.hdr.flags & nl::f_dump) == nl::f_dump;
    if (!fp_.connected()) {
        nl::put_error(reply, m.hdr, ENOTCONN, "sluice-fastpath is not running (or not reachable at " +
                                                  cfg_.fastpath_socket + ")");
        return;
    }
    nl::builder fwd;
    auto bytes = restamp(m.bytes, fp_.next_seq(), 0);
    fwd.put_raw(bytes.data(), bytes.size());
    auto r = fp_.request(fwd, [&](const nl::message& part) {
        if (keep && !keep(part)) return;
        auto v = restamp(part.bytes, m.hdr.seq, m.hdr.pid);
        reply.put_raw(v.data(), v.size());
        if (reply.size() > (1u << 20)) server_.flush(peer.id, reply);
    });
    if (r.err == EPIPE) fp_.close();
    if (r.err) nl::put_error(reply, m.hdr, r.err, r.text, r.offset);
    else if (dump) nl::put_done(reply, m.hdr.seq, m.hdr.pid);
    else put_ack(reply, m);
}

void control_service::relay_events() {
    if (subscribers_.empty()) {
        if (fp_ev_.connected()) fp_ev_.close();
        return;
    }
    if (!fp_ev_.connected()) {
        if (!fp_.connected() || !fp_ev_.connect(cfg_.fastpath_socket, 5000).empty()) return;
        nl::builder b;
        b.begin(ct_subscribe, nl::f_request | nl::f_ack, fp_ev_.next_seq());
        b.put_u32(a_events, 3);
        b.end();
        if (fp_ev_.request(b).err) {
            fp_ev_.close();
            return;
        }
    }
    for (int k = 0; k < 4096; ++k) {
        auto ev = fp_ev_.receive(0);
        if (ev.empty()) break;
        for (int id : subscribers_) server_.send_to(id, ev);
    }
}

// ---- requests --------------------------------------------------------------------------------

bool control_service::decode_change(const nl::message& m, const nl::attr_list& a, change& c,
                                    nl::builder& reply) {
    auto missing = [&](const char* what) {
        nl::put_error(reply, m.hdr, EINVAL, std::string(message_name(m.hdr.type)) + ": missing attribute " + what);
        return false;
    };
    auto str = [&](uint16_t type, std::string& out, const char* what, bool required) {
        auto v = a.text(type);
        if (!v) {
            if (const nl::attr* bad = a.find(type)) {
                nl::put_error(reply, m.hdr, EINVAL, std::string(what) + ": not a NUL-terminated string", bad->offset);
                return false;
            }
            return required ? missing(what) : true;
        }
        out = *v;
        return true;
    };
    auto fam = family_of(a);
    if (!fam) {
        nl::put_error(reply, m.hdr, EINVAL, "FAMILY must be a u8 of value 4 or 6", a.find(a_family)->offset);
        return false;
    }
    c.family = *fam;
    if (const nl::attr* p = a.find(a_position)) {
        auto v = p->u32();
        if (!v || *v == 0) {
            nl::put_error(reply, m.hdr, EINVAL, "POSITION must be a u32 >= 1", p->offset);
            return false;
        }
        c.position = *v;
    }
    c.exist = a.find(a_exist) != nullptr;
    switch (m.hdr.type) {
    case rule_new:
        c.op = c.position ? change::kind::rule_insert : change::kind::rule_append;
        return str(a_chain, c.chain, "CHAIN", true) && str(a_spec, c.spec, "SPEC", true);
    case rule_del:
        c.op = change::kind::rule_delete;
        if (!str(a_chain, c.chain, "CHAIN", true) || !str(a_spec, c.spec, "SPEC", false)) return false;
        if (!c.position && c.spec.empty()) return missing("POSITION or SPEC");
        return true;
    case rule_flush: c.op = change::kind::rule_flush; return str(a_chain, c.chain, "CHAIN", false);
    case chain_new: c.op = change::kind::chain_new; return str(a_chain, c.chain, "CHAIN", true);
    case chain_del: c.op = change::kind::chain_delete; return str(a_chain, c.chain, "CHAIN", true);
    case api::chain_policy:
        c.op = change::kind::chain_policy;
        return str(a_chain, c.chain, "CHAIN", true) && str(a_policy, c.policy, "POLICY", true);
    case table_restore: {
        c.op = change::kind::restore;
        std::string t;
        for (auto [type, field, what] : {std::tuple{a_rules4, &c.rules4, "RULES4"}, std::tuple{a_rules6, &c.rules6, "RULES6"},
                                         std::tuple{a_sets, &c.sets, "SETS"}}) {
            if (!a.find(type)) continue;
            if (!str(type, t, what, true)) return false;
            *field = t;
        }
        if (!c.rules4 && !c.rules6 && !c.sets) return missing("RULES4, RULES6 or SETS");
        return true;
    }
    case set_create:
        c.op = change::kind::set_create;
        return str(a_set, c.set, "SET", true) && str(a_type, c.type, "TYPE", true) &&
               str(a_options, c.options, "OPTIONS", false);
    case set_destroy: c.op = change::kind::set_destroy; return str(a_set, c.set, "SET", false);
    case set_flush: c.op = change::kind::set_flush; return str(a_set, c.set, "SET", false);
    case set_swap:
        c.op = change::kind::set_swap;
        return str(a_set, c.set, "SET", true) && str(a_set2, c.set2, "SET2", true);
    case set_add:
    case set_del:
        c.op = m.hdr.type == set_add ? change::kind::set_add : change::kind::set_del;
        return str(a_set, c.set, "SET", true) && str(a_elem, c.elem, "ELEM", true);
    case mode_set: {
        c.op = change::kind::mode;
        std::string v;
        if (!str(a_mode, v, "MODE", true)) return false;
        auto md = filter_mode_from(v);
        if (!md) {
            nl::put_error(reply, m.hdr, EINVAL, "MODE \"" + v + "\": must be enforce, monitor or bypass",
                          a.find(a_mode)->offset);
            return false;
        }
        c.mode = *md;
        return true;
    }
    }
    nl::put_error(reply, m.hdr, EOPNOTSUPP, "not a change");
    return false;
}

void control_service::commit(const api_peer& peer, const nl::message& m, std::vector<change> changes,
                             const std::vector<uint16_t>& types, std::optional<uint32_t> generation,
                             nl::builder& reply) {
    for (uint32_t i = 0; i < changes.size(); ++i) changes[i].index = i;
    auto t0 = std::chrono::steady_clock::now();
    commit_result r = store_.commit(changes, generation);
    if (!r.ok) {
        std::string what = r.error;
        if (changes.size() > 1)
            what = "change " + std::to_string(r.failed + 1) + " of " + std::to_string(changes.size()) + " (" +
                   std::string(message_name(types[r.failed])) + "): " + r.error + "; nothing was applied";
        spdlog::warn("change by uid {} pid {} refused: {}", peer.uid, peer.pid, what);
        nl::put_error(reply, m.hdr, r.err, what);
        return;
    }
    if (auto e = store_.save_to(cfg_.state_dir); !e.empty())
        spdlog::error("generation {} not persisted: {}", store_.generation(), e);
    publish(r);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    std::string what;
    for (size_t i = 0; i < types.size() && i < 4; ++i) what += (i ? "," : "") + std::string(message_name(types[i]));
    if (types.size() > 4) what += ",...";
    spdlog::info("change by uid {} pid {}: {} ({} change(s)) -> generation {}{} in {} us", peer.uid, peer.pid, what,
                 changes.size(), store_.generation(), r.sets_only ? " (sets only)" : "", us);
    if (m.hdr.flags & nl::f_ack) {
        // The ACK names the new generation: an extra GEN message before it.
        reply.begin(gen_get, 0, m.hdr.seq, m.hdr.pid);
        reply.put_u32(a_generation, store_.generation());
        reply.end();
        nl::put_error(reply, m.hdr, 0);
    }
}

void control_service::handle(const api_peer& peer, const nl::message& m, nl::builder& reply) {
    if (!(m.hdr.flags & nl::f_request)) {
        nl::put_error(reply, m.hdr, EINVAL, "not a request (NLM_F_REQUEST missing)");
        return;
    }
    auto a = m.attrs();
    if (!a.error.empty()) {
        nl::put_error(reply, m.hdr, EINVAL, std::string(message_name(m.hdr.type)) + ": " + a.error, a.error_offset);
        return;
    }
    const uint16_t t = m.hdr.type;
    const bool writes = is_change(t) || t == batch_begin || t == batch_end || t == batch_abort || t == ct_delete ||
                        t == ct_flush;
    if (writes && !is_writer(peer)) {
        spdlog::warn("uid {} pid {} may not {} (read-only)", peer.uid, peer.pid, message_name(t));
        nl::put_error(reply, m.hdr, EPERM,
                      "permission denied: uid " + std::to_string(peer.uid) +
                          " has read-only access (changes: root and the socket owner)");
        return;
    }
    batch& bt = batches_[peer.id];
    if (is_change(t)) {
        change c;
        if (!decode_change(m, a, c, reply)) return;
        if (bt.open) {
            bt.changes.push_back(std::move(c));
            bt.types.push_back(t);
            put_ack(reply, m);
            return;
        }
        commit(peer, m, {std::move(c)}, {t}, std::nullopt, reply);
        return;
    }
    switch (t) {
    case batch_begin: {
        if (bt.open) {
            nl::put_error(reply, m.hdr, EBUSY, "a batch is already open on this connection");
            return;
        }
        bt = batch{};
        bt.open = true;
        if (const nl::attr* g = a.find(a_generation)) {
            auto v = g->u32();
            if (!v) {
                nl::put_error(reply, m.hdr, EINVAL, "GENERATION must be a u32", g->offset);
                bt.open = false;
                return;
            }
            bt.generation = *v;
        }
        put_ack(reply, m);
        return;
    }
    case batch_end: {
        if (!bt.open) {
            nl::put_error(reply, m.hdr, EINVAL, "BATCH_END without BATCH_BEGIN");
            return;
        }
        batch done = std::move(bt);
        bt = batch{};
        commit(peer, m, std::move(done.changes), done.types, done.generation, reply);
        return;
    }
    case batch_abort:
        bt = batch{};
        put_ack(reply, m);
        return;
    case gen_get:
    case mode_get:
        reply.begin(t, 0, m.hdr.seq, m.hdr.pid);
        reply.put_u32(a_generation, store_.generation());
        reply.put_str(a_mode, name_of(store_.mode()));
        reply.end();
        put_ack(reply, m);
        return;
    case table_save:
        reply.begin(table_save, 0, m.hdr.seq, m.hdr.pid);
        reply.put_u32(a_generation, store_.generation());
        reply.put_text(a_rules4, store_.rules_text(ip_family::ipv4));
        reply.put_text(a_rules6, store_.rules_text(ip_family::ipv6));
        reply.put_text(a_sets, store_.sets_text());
        reply.end();
        put_ack(reply, m);
        return;
    case rule_get: reply_rules(peer, m, a, reply); return;
    case chain_get: reply_chains(m, a, reply); return;
    case set_get: reply_sets(peer, m, a, reply); return;
    case set_test: {
        std::string name, elem;
        auto n = a.text(a_set), e = a.text(a_elem);
        if (!n || !e) {
            nl::put_error(reply, m.hdr, EINVAL, "SET_TEST: missing attribute SET or ELEM");
            return;
        }
        const ip_set* s = store_.sets().find(*n);
        if (!s) {
            nl::put_error(reply, m.hdr, ENOENT, "set " + *n + " does not exist");
            return;
        }
        auto pe = parse_element(s->type(), s->family(), *e);
        if (!pe.element) {
            nl::put_error(reply, m.hdr, EINVAL, "element \"" + *e + "\": column " + std::to_string(pe.column) + ": " + pe.error,
                          a.find(a_elem)->offset);
            return;
        }
        if (!s->test(*pe.element)) {
            nl::put_error(reply, m.hdr, ENOENT, *e + " is NOT in set " + *n);
            return;
        }
        nl::put_error(reply, m.hdr, 0);
        return;
    }
    case stats_get:
    case ct_get:
    case ct_count:
    case ct_delete:
    case ct_flush:
        if (t == ct_delete || t == ct_flush)
            spdlog::info("{} by uid {} pid {}", message_name(t), peer.uid, peer.pid);
        relay(peer, m, reply);
        return;
    case ct_subscribe:
        subscribers_.insert(peer.id);
        put_ack(reply, m);
        return;
    default:
        nl::put_error(reply, m.hdr, EOPNOTSUPP,
                      "unsupported message type 0x" + [&] {
                          char b[8];
                          std::snprintf(b, sizeof b, "%04x", t);
                          return std::string(b);
                      }());
    }
}

void control_service::reply_rules(const api_peer& peer, const nl::message& m, const nl::attr_list& a,
                                  nl::builder& reply) {
    auto fam = a.find(a_family) ? family_of(a) : std::nullopt;
    auto chain_name = a.text(a_chain);
    auto wanted = [&](ip_family f, std::string_view ch) {
        return (!fam || *fam == f) && (!chain_name || *chain_name == ch);
    };
    if (chain_name) {
        bool found = false;
        for (ip_family f : {ip_family::ipv4, ip_family::ipv6})
            if ((!fam || *fam == f) && store_.rules(f).find(*chain_name)) found = true;
        if (!found) {
            nl::put_error(reply, m.hdr, ENOENT, "chain " + *chain_name + " does not exist");
            return;
        }
    }
    // Counters live in the fast path; when it runs this generation, its dump is the answer.
    if (fp_.connected()) {
        nl::builder q;
        q.begin(gen_get, nl::f_request, fp_.next_seq());
        q.end();
        auto g = fp_.request(q);
        uint32_t fp_gen = 0;
        if (!g.err && !g.messages.empty()) {
            auto ga = g.at(0).attrs();
            if (auto* x = ga.find(a_generation)) fp_gen = x->u32().value_or(0);
        }
        if (fp_gen == store_.generation() && store_.generation()) {
            relay(peer, m, reply, [&](const nl::message& part) {
                auto pa = part.attrs();
                std::string ch = pa.text(a_chain).value_or("");
                ip_family pf = family_of(pa).value_or(ip_family::ipv4);
                return wanted(pf, ch);
            });
            return;
        }
    }
    for (ip_family f : {ip_family::ipv4, ip_family::ipv6})
        for (const chain& c : store_.rules(f).chains) {
            if (!wanted(f, c.name)) continue;
            for (size_t i = 0; i < c.rules.size(); ++i) {
                reply.begin(rule_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
                reply.put_u8(a_family, f == ip_family::ipv4 ? 4 : 6);
                reply.put_str(a_chain, c.name);
                reply.put_u32(a_position, uint32_t(i + 1));
                reply.put_text(a_spec, to_rule_spec(c.rules[i]));
                reply.put_u64(a_packets, 0);
                reply.put_u64(a_bytes, 0);
                reply.end();
                if (reply.size() > (1u << 20)) server_.flush(peer.id, reply);
            }
        }
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

void control_service::reply_chains(const nl::message& m, const nl::attr_list& a, nl::builder& reply) {
    auto fam = a.find(a_family) ? family_of(a) : std::nullopt;
    for (ip_family f : {ip_family::ipv4, ip_family::ipv6}) {
        if (fam && *fam != f) continue;
        for (const chain& c : store_.rules(f).chains) {
            reply.begin(chain_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
            reply.put_u8(a_family, f == ip_family::ipv4 ? 4 : 6);
            reply.put_str(a_chain, c.name);
            if (c.builtin) reply.put_str(a_policy, c.policy == chain_policy::drop ? "DROP" : "ACCEPT");
            reply.put_u32(a_rules, uint32_t(c.rules.size()));
            uint32_t refs = 0;
            for (const chain& x : store_.rules(f).chains)
                for (const rule& r : x.rules)
                    if (r.target.chain == c.name) ++refs;
            reply.put_u32(a_references, refs);
            reply.end();
        }
    }
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

void control_service::reply_sets(const api_peer& peer, const nl::message& m, const nl::attr_list& a,
                                 nl::builder& reply) {
    auto only = a.text(a_set);
    if (only && !store_.sets().find(*only)) {
        nl::put_error(reply, m.hdr, ENOENT, "set " + *only + " does not exist");
        return;
    }
    for (const ip_set* s : store_.sets().list()) {
        if (only && s->name() != *only) continue;
        std::string create = format_create(s->name(), s->type(), s->options());
        std::string head = "create " + s->name() + " " + std::string(set_type_name(s->type()));
        std::string opts = create.size() > head.size() ? create.substr(head.size() + 1) : "";
        reply.begin(set_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
        reply.put_str(a_set, s->name());
        reply.put_str(a_type, set_type_name(s->type()));
        reply.put_str(a_options, opts);
        reply.put_u32(a_elements, uint32_t(s->size()));
        reply.put_u32(a_references, store_.set_references(s->name()));
        reply.end();
        // Elements, as `ipset save` writes them, a few hundred per message.
        std::string text = store_.sets().save(s->name());
        std::string prefix = "add " + s->name() + " ";
        size_t pos = 0, in_msg = 0;
        bool open = false;
        while (pos < text.size()) {
            size_t eol = text.find('\n', pos);
            if (eol == std::string::npos) eol = text.size();
            std::string_view line(text.data() + pos, eol - pos);
            pos = eol + 1;
            if (line.substr(0, prefix.size()) != prefix) continue;
            if (!open) {
                reply.begin(set_elems, nl::f_multi, m.hdr.seq, m.hdr.pid);
                reply.put_str(a_set, s->name());
                open = true;
            }
            reply.put_str(a_elem, line.substr(prefix.size()));
            if (++in_msg == 500) {
                reply.end();
                open = false;
                in_msg = 0;
                if (reply.size() > (1u << 20)) server_.flush(peer.id, reply);
            }
        }
        if (open) reply.end();
    }
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

} // namespace sluice
