// See agent.hpp.
#include "agent.hpp"

#include "stats.hpp"

#include "ipset_parser.hpp"
#include "policy_api.hpp"

#include <rte_ring.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <filesystem>
#include <thread>
#include <unistd.h>

namespace sluice {

namespace {

using steady = std::chrono::steady_clock;

uint32_t now_seconds() {
    return uint32_t(steady_ns() / 1000000000u);
}

long long us_since(steady::time_point t0) {
    return std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - t0).count();
}

std::string message_label(uint16_t type) {
    auto n = api::message_name(type);
    if (!n.empty()) return std::string(n);
    char buf[16];
    std::snprintf(buf, sizeof buf, "type 0x%04x", type);
    return buf;
}

void put_counter(nl::builder& b, std::string_view name, uint64_t v) {
    size_t c = b.begin_nest(api::a_counter);
    b.put_str(api::a_name, name);
    b.put_u64(api::a_value, v);
    b.end_nest(c);
}

} // namespace

std::string agent::listen() {
    if (cfg_.agent_socket.empty()) return {};
    std::error_code ec;
    auto dir = std::filesystem::path(cfg_.agent_socket).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
        std::filesystem::create_directories(dir, ec);
        if (ec) return "cannot create " + dir.string() + ": " + ec.message();
    }
    if (auto e = server_.listen(cfg_.agent_socket, socket_access{::geteuid(), ::getegid(), 0600});
        !e.empty())
        return e;
    listening_ = true;
    return {};
}

void agent::attach(policy_slot& policy, port_set& ports, worker_set& workers,
                   uint32_t& generation) {
    policy_ = &policy;
    ports_ = &ports;
    workers_ = &workers;
    generation_ = &generation;
}

void agent::poll(int timeout_ms) {
    if (!listening_ || !policy_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
        return;
    }
    server_.poll_once(
        timeout_ms,
        [this](const api_peer& p, const nl::message& m, nl::builder& r) {
            // Nothing a client sends may stop the fast path: an allocation failure (a 64 MiB
            // message of tiny attributes, a huge policy) is that request's error, not ours.
            try {
                handle(p, m, r);
            } catch (const std::exception& e) {
                fail(r, m.hdr, ENOMEM, message_label(m.hdr.type) + ": " + e.what());
            }
        },
        [this](const api_peer& p) { closed(p); });
    drain_events();
}

// ---- dispatch ----

void agent::handle(const api_peer& peer, const nl::message& m, nl::builder& reply) {
    ++requests_;
    const nl::header& h = m.hdr;
    if (!(h.flags & nl::f_request)) {
        fail(reply, h, EINVAL,
             message_label(h.type) + ": not a request (NLM_F_REQUEST is not set)");
        return;
    }
    const nl::attr_list al = m.attrs();
    switch (h.type) {
    case api::fp_policy:
        fp_policy(m, al, reply);
        break;
    case api::fp_sets:
        fp_sets(m, al, reply);
        break;
    case api::gen_get:
    case api::mode_get: {
        if (!check(message_label(h.type), m, al, {}, reply)) break;
        const policy_snapshot& p = *policy_->current();
        reply.begin(h.type, 0, h.seq, h.pid);
        reply.put_u32(api::a_generation, *generation_);
        reply.put_str(api::a_mode, name_of(p.mode));
        reply.end();
        if (h.flags & nl::f_ack) answer_ack(m, reply);
        break;
    }
    case api::stats_get:
        if (check("STATS_GET", m, al, {}, reply)) stats_get(m, reply);
        break;
    case api::rule_get:
        rule_get(peer, m, al, reply);
        break;
    case api::ct_get:
        ct_get(peer, m, al, reply);
        break;
    case api::ct_count:
        ct_count(m, al, reply);
        break;
    case api::ct_delete:
    case api::ct_flush:
        ct_delete(m, al, reply);
        break;
    case api::ct_subscribe:
        ct_subscribe(peer, m, al, reply);
        break;
    default:
        fail(reply, h, EOPNOTSUPP, "unsupported message " + message_label(h.type));
        break;
    }
}

void agent::fail(nl::builder& reply, const nl::header& req, int err, std::string_view text,
                 uint32_t offset) {
    ++errors_;
    spdlog::debug("agent: {} answered {}: {}", message_label(req.type), err, text);
    nl::put_error(reply, req, err, text, offset);
}

void agent::closed(const api_peer& peer) {
    size_t n = subs_.size();
    std::erase_if(subs_, [&](const subscriber& s) { return s.peer == peer.id; });
    if (subs_.size() != n) {
        spdlog::info("agent: conntrack event subscriber {} (pid {}) left", peer.id, peer.pid);
        set_event_flags();
    }
}

bool agent::check(std::string_view what, const nl::message& m, const nl::attr_list& al,
                  std::span<const attr_spec> spec, nl::builder& reply) {
    if (auto e = check_attrs(what, al, spec)) {
        fail(reply, m.hdr, e->err, e->text, e->offset);
        return false;
    }
    return true;
}

bool agent::need_dump(const nl::message& m, nl::builder& reply) {
    if ((m.hdr.flags & nl::f_dump) == nl::f_dump) return true;
    fail(reply, m.hdr, EINVAL, message_label(m.hdr.type) + " is a dump request: set NLM_F_DUMP");
    return false;
}

void agent::answer_ack(const nl::message& m, nl::builder& reply) {
    nl::put_error(reply, m.hdr, 0);
}

// ---- policy ----

void agent::fp_policy(const nl::message& m, const nl::attr_list& al, nl::builder& reply) {
    using namespace api;
    static constexpr attr_spec spec[] = {{a_generation, attr_kind::u32, true},
                                         {a_mode, attr_kind::str},
                                         {a_rules4, attr_kind::text},
                                         {a_rules6, attr_kind::text},
                                         {a_sets, attr_kind::text}};
    if (!check("FP_POLICY", m, al, spec, reply)) return;
    const nl::attr* g = al.find(a_generation);
    const uint32_t gen = *g->u32();
    if (gen == 0) {
        fail(reply, m.hdr, EINVAL, "FP_POLICY: GENERATION must be at least 1", g->offset);
        return;
    }
    filter_mode mode = policy_->current()->mode;
    if (const nl::attr* a = al.find(a_mode)) {
        auto fm = filter_mode_from(*a->str());
        if (!fm) {
            fail(reply, m.hdr, EINVAL,
                 "FP_POLICY: MODE '" + std::string(*a->str()) +
                     "' is not enforce, monitor or bypass",
                 a->offset);
            return;
        }
        mode = *fm;
    }
    policy_sources src;
    src.rules4.name = "rules.v4";
    src.rules6.name = "rules.v6";
    src.sets.name = "sets";
    for (auto [type, text] :
         {std::pair{a_rules4, &src.rules4.text}, std::pair{a_rules6, &src.rules6.text},
          std::pair{a_sets, &src.sets.text}})
        if (auto t = al.text(type)) *text = std::move(*t);
    const auto t0 = steady::now();
    auto built = compile_policy(cfg_, src, mode, gen);
    if (!built.snapshot) {
        spdlog::warn("agent: FP_POLICY generation {} rejected, generation {} stays: {}", gen,
                     *generation_, built.error);
        fail(reply, m.hdr, EINVAL, built.error);
        return;
    }
    const policy_snapshot& p = *built.snapshot;
    std::string what = std::to_string(p.forward4->rule_count()) + " IPv4 rule(s), " +
                       std::to_string(p.forward6->rule_count()) + " IPv6 rule(s), " +
                       std::to_string(p.sets->list().size()) + " set(s)";
    const auto t1 = steady::now();
    policy_->replace(std::move(built.snapshot));
    *generation_ = gen;
    spdlog::info(
        "agent: policy generation {} applied, mode {}: {} (compiled in {} us, published in {} us)",
        gen, name_of(mode), what,
        std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count(), us_since(t1));
    answer_ack(m, reply);
}

void agent::fp_sets(const nl::message& m, const nl::attr_list& al, nl::builder& reply) {
    using namespace api;
    static constexpr attr_spec spec[] = {{a_generation, attr_kind::u32, true},
                                         {a_sets, attr_kind::text, true}};
    if (!check("FP_SETS", m, al, spec, reply)) return;
    const nl::attr* g = al.find(a_generation);
    const uint32_t gen = *g->u32();
    if (gen == 0) {
        fail(reply, m.hdr, EINVAL, "FP_SETS: GENERATION must be at least 1", g->offset);
        return;
    }
    const std::string text = *al.text(a_sets);
    set_table& sets = *policy_->current()->sets;
    std::vector<ipset_command> cmds;
    std::string err = parse_fp_sets(text, sets, cmds);
    if (err.empty())
        if (auto e = apply_ipset(sets, cmds, "sets")) err = e->to_string();
    if (!err.empty()) {
        spdlog::warn("agent: FP_SETS generation {} rejected, generation {} stays: {}", gen,
                     *generation_, err);
        fail(reply, m.hdr, EINVAL, err);
        return;
    }
    // Tables and bodies the change replaced may still be read by a worker's current burst.
    policy_->synchronize();
    sets.collect_garbage();
    *generation_ = gen;
    spdlog::info("agent: set change applied as generation {} ({} command(s))", gen, cmds.size());
    answer_ack(m, reply);
}

// ---- counters ----

void agent::stats_get(const nl::message& m, nl::builder& reply) {
    if (!need_dump(m, reply)) return;
    const policy_snapshot& p = *policy_->current();
    const stats_report r = collect_stats(*ports_, *workers_, p, *generation_);
    auto section = [&](std::string_view kind, std::string_view name, auto&& body) {
        reply.begin(api::stats_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
        size_t s = reply.begin_nest(api::a_section);
        reply.put_str(api::a_kind, kind);
        reply.put_str(api::a_name, name);
        body();
        reply.end_nest(s);
        reply.end();
    };
    for (const auto& pt : r.ports)
        section("port", pt.name, [&] {
            put_counter(reply, "link_up", pt.link_up);
            for (const auto& v : pt.values())
                put_counter(reply, v.name, v.value);
        });
    for (const auto& w : r.workers)
        section("worker", std::to_string(w.index), [&] {
            put_counter(reply, "lcore", w.lcore);
            for (const auto& v : w.values())
                put_counter(reply, v.name, v.value);
        });
    for (auto [kind, d] : {std::pair{"drops", &r.drops}, std::pair{"monitor", &r.would_drop}})
        section(kind, "", [&] {
            for (size_t k = 0; k < drop_reason_count; ++k)
                put_counter(reply, drop_reasons[k].name, (*d)[k]);
        });
    section("conntrack", "", [&] {
        for (const auto& v : r.conntrack)
            put_counter(reply, v.name, v.value);
    });
    section("policy", "", [&] {
        put_counter(reply, "generation", r.generation);
        put_counter(reply, "rules4", p.forward4->rule_count());
        put_counter(reply, "rules6", p.forward6->rule_count());
        put_counter(reply, "sets", p.sets->list().size());
    });
    section("agent", "", [&] {
        put_counter(reply, "clients", server_.peers().size());
        put_counter(reply, "subscribers", subs_.size());
        put_counter(reply, "requests", requests_);
        put_counter(reply, "errors", errors_);
        put_counter(reply, "events_sent", events_sent_);
        put_counter(reply, "events_unsent", events_unsent_);
    });
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

void agent::rule_get(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                     nl::builder& reply) {
    using namespace api;
    static constexpr attr_spec spec[] = {{a_family, attr_kind::u8}, {a_chain, attr_kind::str}};
    if (!check("RULE_GET", m, al, spec, reply) || !need_dump(m, reply)) return;
    uint8_t fam = 0;
    if (const nl::attr* a = al.find(a_family)) {
        fam = *a->u8();
        if (fam != 4 && fam != 6) {
            fail(reply, m.hdr, EINVAL,
                 "RULE_GET: FAMILY must be 4 or 6, not " + std::to_string(fam), a->offset);
            return;
        }
    }
    std::string chain;
    if (const nl::attr* a = al.find(a_chain)) chain = std::string(*a->str());
    bool alive = true;
    for_each_rule(*policy_->current(), [&](bool v6, const std::string& ch, uint32_t pos,
                                           const std::string& spec_text, uint64_t pk, uint64_t by) {
        if (!alive || (fam && (fam == 6) != v6) || (!chain.empty() && chain != ch)) return;
        reply.begin(api::rule_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
        reply.put_u8(a_family, v6 ? 6 : 4);
        reply.put_str(a_chain, ch);
        reply.put_u32(a_position, pos);
        reply.put_str(a_spec, spec_text);
        reply.put_u64(a_packets, pk);
        reply.put_u64(a_bytes, by);
        reply.end();
        if (reply.size() >= nl::dump_datagram) alive = server_.flush(peer.id, reply);
    });
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

// ---- conntrack ----

bool agent::filter_of(const nl::message& m, const nl::attr_list& al, ct_filter& f,
                      nl::builder& reply) {
    f = ct_filter{};
    const nl::attr* a = al.find(api::a_ct_filter);
    if (!a) return true;
    if (auto e = parse_ct_filter(*a, f)) {
        fail(reply, m.hdr, e->err, e->text, e->offset);
        return false;
    }
    return true;
}

template <class Fn> void agent::for_each_flow(const ct_filter& f, Fn&& fn) {
    const uint32_t now = now_seconds();
    for (const auto& w : workers_->workers) {
        const flow_table& t = static_cast<const packet_filter&>(*w->filter).tracker().table();
        for (uint32_t i = 0; i < t.capacity(); ++i) {
            // Cheap pre-check on the live entry before the validated copy: most are free.
            if (!(__atomic_load_n(&t.at(i).status, __ATOMIC_RELAXED) & flow_status::confirmed))
                continue;
            flow_entry e;
            if (!read_flow_entry(t.at(i), e) || int32_t(now - e.expires) >= 0) continue;
            const ct_flow_view v = view_of(e, now);
            if (f.matches(v) && !fn(v, w->index)) return;
        }
    }
}

void agent::ct_get(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                   nl::builder& reply) {
    static constexpr attr_spec spec[] = {{api::a_ct_filter, attr_kind::nest}};
    ct_filter f;
    if (!check("CT_GET", m, al, spec, reply) || !filter_of(m, al, f, reply) || !need_dump(m, reply))
        return;
    for_each_flow(f, [&](const ct_flow_view& v, unsigned worker) {
        reply.begin(api::ct_get, nl::f_multi, m.hdr.seq, m.hdr.pid);
        put_ct_flow(reply, v, worker);
        reply.end();
        if (reply.size() < nl::dump_datagram) return true;
        drain_events(); // a long dump must not let the workers' event rings overflow
        return server_.flush(peer.id, reply);
    });
    nl::put_done(reply, m.hdr.seq, m.hdr.pid);
}

void agent::ct_count(const nl::message& m, const nl::attr_list& al, nl::builder& reply) {
    static constexpr attr_spec spec[] = {{api::a_ct_filter, attr_kind::nest}};
    ct_filter f;
    if (!check("CT_COUNT", m, al, spec, reply) || !filter_of(m, al, f, reply)) return;
    uint64_t n = 0;
    for_each_flow(f, [&](const ct_flow_view&, unsigned) { return ++n, true; });
    reply.begin(api::ct_count, 0, m.hdr.seq, m.hdr.pid);
    reply.put_u64(api::a_count, n);
    reply.end();
    if (m.hdr.flags & nl::f_ack) answer_ack(m, reply);
}

request_error agent::run_ct_delete(const ct_filter& f, uint64_t& deleted) {
    const auto deadline = steady::now() + ct_command_timeout;
    auto wait_idle = [&](bool& all) {
        while (true) {
            all = true;
            for (const auto& w : workers_->workers)
                all &= w->ct_cmd.done.load(std::memory_order_acquire) ==
                       w->ct_cmd.posted.load(std::memory_order_relaxed);
            if (all || steady::now() >= deadline) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            drain_events(); // the workers' destroy events, while they delete
        }
    };
    bool idle = false;
    wait_idle(idle);
    if (!idle)
        return {EBUSY, "a worker is still running an earlier conntrack delete; try again", 0};
    for (auto& w : workers_->workers) {
        w->ct_cmd.filter = f;
        w->ct_cmd.posted.store(w->ct_cmd.posted.load(std::memory_order_relaxed) + 1,
                               std::memory_order_release);
    }
    wait_idle(idle);
    if (!idle) {
        std::string slow;
        for (const auto& w : workers_->workers)
            if (w->ct_cmd.done.load(std::memory_order_acquire) !=
                w->ct_cmd.posted.load(std::memory_order_relaxed))
                slow += (slow.empty() ? "" : ", ") + std::to_string(w->index);
        return {ETIMEDOUT,
                "worker(s) " + slow + " did not finish within " +
                    std::to_string(ct_command_timeout.count()) + " ms; the deletion goes on there",
                0};
    }
    deleted = 0;
    for (const auto& w : workers_->workers)
        deleted += w->ct_cmd.deleted;
    return {};
}

void agent::ct_delete(const nl::message& m, const nl::attr_list& al, nl::builder& reply) {
    const bool flush = m.hdr.type == api::ct_flush;
    const char* what = flush ? "CT_FLUSH" : "CT_DELETE";
    const attr_spec spec[] = {{api::a_ct_filter, attr_kind::nest, !flush}};
    ct_filter f;
    if (!check(what, m, al, spec, reply) || !filter_of(m, al, f, reply)) return;
    if (!flush && f.empty()) {
        fail(reply, m.hdr, EINVAL,
             "CT_DELETE: the CT_FILTER is empty (it would delete every flow; send CT_FLUSH for "
             "that)",
             al.find(api::a_ct_filter)->offset);
        return;
    }
    const auto t0 = steady::now();
    uint64_t n = 0;
    request_error e = run_ct_delete(f, n);
    if (e.err) {
        spdlog::warn("agent: {}: {}", what, e.text);
        fail(reply, m.hdr, e.err, std::string(what) + ": " + e.text);
        return;
    }
    spdlog::info("agent: {} deleted {} flow(s) in {} us", what, n, us_since(t0));
    reply.begin(m.hdr.type, 0, m.hdr.seq, m.hdr.pid);
    reply.put_u64(api::a_count, n);
    reply.end();
    if (m.hdr.flags & nl::f_ack) answer_ack(m, reply);
}

void agent::ct_subscribe(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                         nl::builder& reply) {
    static constexpr attr_spec spec[] = {{api::a_events, attr_kind::u32},
                                         {api::a_ct_filter, attr_kind::nest}};
    ct_filter f;
    if (!check("CT_SUBSCRIBE", m, al, spec, reply) || !filter_of(m, al, f, reply)) return;
    uint32_t mask = 3;
    if (const nl::attr* a = al.find(api::a_events)) {
        mask = *a->u32();
        if (mask == 0 || (mask & ~3u)) {
            fail(reply, m.hdr, EINVAL,
                 "CT_SUBSCRIBE: EVENTS " + std::to_string(mask) +
                     " must be 1 (new), 2 (destroy) or 3 (both)",
                 a->offset);
            return;
        }
    }
    auto it = std::find_if(subs_.begin(), subs_.end(),
                           [&](const subscriber& s) { return s.peer == peer.id; });
    if (it == subs_.end()) {
        subs_.emplace_back();
        it = subs_.end() - 1;
        it->peer = peer.id;
        spdlog::info("agent: conntrack event subscriber {} (pid {}), events mask {}", peer.id,
                     peer.pid, mask);
    }
    it->mask = mask;
    it->filter = f;
    set_event_flags();
    answer_ack(m, reply);
}

void agent::set_event_flags() {
    for (auto& w : workers_->workers)
        w->ct_events_on.store(!subs_.empty(), std::memory_order_relaxed);
}

void agent::send_events(subscriber& s) {
    if (!s.pending_n) return;
    if (server_.send_to(s.peer, s.pending.bytes()))
        events_sent_ += s.pending_n;
    else
        events_unsent_ += s.pending_n;
    s.pending.clear();
    s.pending_n = 0;
}

void agent::drain_events() {
    constexpr unsigned batch = 256;
    constexpr uint32_t budget = 1u << 16; // per worker and poll: the main loop keeps going
    ct_event_record ev[batch];
    const uint32_t now = now_seconds();
    for (const auto& w : workers_->workers) {
        if (!w->ct_events) continue;
        for (uint32_t taken = 0; taken < budget;) {
            unsigned n =
                rte_ring_sc_dequeue_burst_elem(w->ct_events, ev, sizeof ev[0], batch, nullptr);
            if (!n) break;
            taken += n;
            for (unsigned i = 0; i < n && !subs_.empty(); ++i) {
                ct_flow_view v = view_of(entry_of(ev[i]), now);
                if (ev[i].event == uint8_t(flow_event::destroyed)) v.timeout = 0;
                for (auto& s : subs_) {
                    if (!(s.mask & (1u << (ev[i].event - 1))) || !s.filter.matches(v)) continue;
                    s.pending.begin(api::ct_event, 0, 0, 0);
                    put_ct_flow(s.pending, v, ev[i].worker);
                    s.pending.put_u8(api::a_event, ev[i].event);
                    s.pending.end();
                    ++s.pending_n;
                    if (s.pending.size() >= 64 * 1024) send_events(s);
                }
            }
        }
    }
    for (auto& s : subs_)
        send_events(s);
}

// ---- start-up ----

policy_build_result load_startup_policy(const fastpath_config& cfg, uint32_t& generation,
                                        std::string& from) {
    if (!cfg.state_dir.empty()) {
        auto st = read_state_dir(cfg.state_dir, cfg.mode);
        if (!st.error.empty()) return {nullptr, st.error};
        if (st.found) {
            auto r = compile_policy(cfg, st.sources, st.mode, st.generation);
            if (r.snapshot) {
                generation = st.generation;
                from = "state dir " + cfg.state_dir;
            }
            return r;
        }
    }
    from = "configuration files";
    return load_policy(cfg, generation);
}

} // namespace sluice
