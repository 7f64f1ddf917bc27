// Conntrack burst functions: classify (prepare → bulk lookup → serial state pass) and
// commit (create entries for accepted NEW packets). The per-packet state machines are
// inline in conntrack.hpp. Everything here runs on the worker that owns the conntrack.
#include "conntrack.hpp"

namespace sluice {

namespace {

constexpr std::string_view tcp_state_names[tcp_state_count] = {
    "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
    "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"};

} // namespace

std::string_view name_of(tcp_state s) noexcept {
    const auto i = static_cast<unsigned>(s);
    return i < tcp_state_count ? tcp_state_names[i] : std::string_view("?");
}

conntrack::conntrack(const conntrack_config& cfg, uint32_t capacity)
    : cfg_(cfg), table_(capacity) {}

uint32_t conntrack::classify(std::span<const packet_meta> pkts, const packet_meta* const* quoted,
                             std::span<ct_result> out, uint32_t now) noexcept {
    const uint32_t n = uint32_t(pkts.size() < out.size() ? pkts.size() : out.size());
    for (uint32_t base = 0; base < n; base += chunk) {
        const uint32_t m = (n - base < chunk) ? n - base : chunk;
        classify_chunk(pkts.data() + base, quoted ? quoted + base : nullptr, out.data() + base,
                       m, base, out.data(), now);
    }
    uint32_t deferred = 0;
    for (uint32_t i = 0; i < n; ++i) deferred += out[i].fate == ct_fate::deferred;
    return deferred;
}

bool conntrack::pending_create(const ct_result* all, uint32_t n_before, const flow_key& k,
                               uint32_t h) const noexcept {
    for (uint32_t i = 0; i < n_before; ++i)
        if (all[i].action == ct_detail::act_create && all[i].hash == h &&
            table_.at(all[i].entry).key == k)
            return true;
    return false;
}

uint32_t conntrack::reserve_for(const flow_key& k, uint32_t h, flow_side side, ct_l4 l4,
                                uint32_t now) noexcept {
    uint32_t idx = table_.reserve();
    if (idx == flow_table::no_entry) {
        if (!table_.early_drop(h, now, cfg_.early_drop_min_age)) return flow_table::no_entry;
        ++counters_.early_drop;
        idx = table_.reserve();
        if (idx == flow_table::no_entry) return idx;
    }
    flow_entry& e = table_.at(idx);
    e.key = k;
    e.l4_class = uint8_t(l4);
    if (side == flow_side::hi) e.status |= flow_status::orig_hi;
    return idx;
}

void conntrack::classify_chunk(const packet_meta* pkts, const packet_meta* const* quoted,
                               ct_result* out, uint32_t n, uint32_t done_before,
                               ct_result* all, uint32_t now) noexcept {
    using namespace ct_detail;
    flow_key keys[chunk];
    uint32_t hashes[chunk];
    uint32_t found[chunk];
    flow_side sides[chunk];
    flow_class cls[chunk];
    int8_t slot[chunk];
    uint32_t nk = 0;

    // Prepare pass: classify headers, build keys, hash (bucket prefetch in lookup_bulk).
    for (uint32_t i = 0; i < n; ++i) {
        const packet_meta& m = pkts[i];
        slot[i] = -1;
        cls[i] = classify_headers(m);
        if (cls[i] == flow_class::not_ip) continue;
        if ((m.frag_flags & frag::is_fragment) && !(m.frag_flags & frag::first)) continue;
        const packet_meta* km = &m;
        if (cls[i] == flow_class::icmp_error) {
            km = quoted ? quoted[i] : nullptr;
            if (!km) continue;
            const flow_class qc = classify_headers(*km);
            if (qc == flow_class::not_ip || qc == flow_class::icmp_error ||
                qc == flow_class::icmp_other || qc == flow_class::icmp_untracked)
                continue;
        } else if (cls[i] == flow_class::icmp_other || cls[i] == flow_class::icmp_untracked) {
            continue;
        }
        sides[nk] = make_flow_key(*km, zone_of(m), keys[nk]);
        hashes[nk] = flow_hash(keys[nk]);
        slot[i] = int8_t(nk);
        ++nk;
    }

    // keys/hashes are written for [0, nk) above; GCC 12 cannot see that through the
    // const-pointer call and warns (-Wmaybe-uninitialized) — a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
    table_.lookup_bulk(keys, hashes, nk, found);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    // Serial pass, in packet order (later packets see earlier packets' updates).
    bool changed = false;  // an entry was erased during this pass: revalidate lookups
    for (uint32_t i = 0; i < n; ++i) {
        const packet_meta& m = pkts[i];
        ct_result& r = out[i];
        r = ct_result{flow_table::no_entry, 0, ct_state::none, ct_dir::original,
                      ct_fate::tracked, act_none};
        ++counters_.packets;

        if (cls[i] == flow_class::not_ip || cls[i] == flow_class::icmp_untracked) {
            r.state = ct_state::untracked;
            ++counters_.untracked;
            continue;
        }
        if ((m.frag_flags & frag::is_fragment) && !(m.frag_flags & frag::first)) {
            r.fate = ct_fate::fragment;
            ++counters_.fragments;
            continue;
        }
        if (slot[i] < 0) {  // icmp_other, or an ICMP error quoting nothing usable
            r.state = ct_state::invalid;
            ++counters_.invalid;
            continue;
        }
        const uint32_t j = uint32_t(slot[i]);
        const flow_key& k = keys[j];
        const uint32_t h = hashes[j];
        r.hash = h;

        // Resolve the entry: revalidate if the table changed, and drop expired entries.
        uint32_t idx = found[j];
        if (changed && idx != flow_table::no_entry) {
            const flow_entry& e = table_.at(idx);
            if (!(e.status & flow_status::confirmed) || !(e.key == k)) idx = table_.lookup(k, h);
        } else if (changed) {
            idx = table_.lookup(k, h);
        }
        if (idx != flow_table::no_entry && int32_t(now - table_.at(idx).expires) >= 0) {
            table_.erase(idx);
            ++counters_.expired_lazy;
            changed = true;
            idx = flow_table::no_entry;
        }

        if (cls[i] == flow_class::icmp_error) {
            if (idx == flow_table::no_entry) {
                if (pending_create(all, done_before + i, k, h)) {
                    r.fate = ct_fate::deferred;
                    ++counters_.deferred;
                } else {
                    r.state = ct_state::invalid;
                    ++counters_.invalid;
                }
                continue;
            }
            const packet_meta& q = *quoted[i];
            // The error must travel to the sender of the quoted packet.
            if (std::memcmp(m.dst.b, q.src.b, 16) != 0) {
                r.state = ct_state::invalid;
                ++counters_.invalid;
                continue;
            }
            const ct_dir inner = dir_of(table_.at(idx), sides[j]);
            r.entry = idx;
            r.dir = inner == ct_dir::original ? ct_dir::reply : ct_dir::original;
            r.state = ct_state::related;
            ++counters_.related;
            continue;
        }

        const bool is_tcp = m.l4_proto == ipproto_tcp;
        if (is_tcp && !tcp_flags_valid(m.tcp_flags)) {  // tcp_error()
            r.state = ct_state::invalid;
            ++counters_.invalid;
            continue;
        }

        if (idx != flow_table::no_entry) {
            flow_entry& e = table_.at(idx);
            const ct_dir dir = dir_of(e, sides[j]);
            const ct_state ctinfo = (dir == ct_dir::reply || (e.status & flow_status::seen_reply))
                                        ? ct_state::established
                                        : ct_state::new_;
            r.entry = idx;
            r.dir = dir;
            bool reopen = false;
            if (is_tcp) {
                switch (tcp_packet(e, int(dir), m, now, cfg_)) {
                case tcp_outcome::accept:
                    r.state = ctinfo;
                    break;
                case tcp_outcome::ignore:
                    r.state = ctinfo;
                    ++counters_.ignored;
                    break;
                case tcp_outcome::invalid:
                    r.state = ct_state::invalid;
                    r.entry = flow_table::no_entry;
                    ++counters_.invalid;
                    continue;
                case tcp_outcome::kill:
                    r.state = ctinfo;
                    r.entry = flow_table::no_entry;
                    table_.erase(idx);
                    changed = true;
                    ++counters_.killed;
                    continue;
                case tcp_outcome::reopen:
                    table_.erase(idx);
                    changed = true;
                    ++counters_.reopened;
                    reopen = true;
                    idx = flow_table::no_entry;
                    r.entry = flow_table::no_entry;
                    r.dir = ct_dir::original;
                    break;
                }
            } else {
                other_packet(e, m, now, cfg_.timeouts);
                r.state = ctinfo;
            }
            if (!reopen) {
                if (dir == ct_dir::reply) e.status |= flow_status::seen_reply;
                continue;
            }
        }

        // No entry: would this packet start a connection?
        if (pending_create(all, done_before + i, k, h)) {
            r.fate = ct_fate::deferred;
            ++counters_.deferred;
            continue;
        }
        if (is_tcp && !tcp_can_create(m, cfg_.tcp_loose)) {
            r.state = ct_state::invalid;
            ++counters_.invalid;
            continue;
        }
        if (cls[i] == flow_class::icmp_query) {
            bool reply = false;
            detail::icmp_request_type(m.l4_proto, m.icmp_type, reply);
            if (reply) {  // icmp_packet(): only requests may create
                r.state = ct_state::invalid;
                ++counters_.invalid;
                continue;
            }
        }
        const uint32_t ne = reserve_for(k, h, sides[j], l4_of(m.l4_proto), now);
        if (ne == flow_table::no_entry) {
            r.fate = ct_fate::table_full;
            ++counters_.table_full;
            continue;
        }
        r.entry = ne;
        r.state = ct_state::new_;
        r.action = act_create;
        ++counters_.new_reserved;
    }
}

void conntrack::commit(std::span<const packet_meta> pkts, std::span<ct_result> res,
                       const uint8_t* accepted, uint32_t now) noexcept {
    using namespace ct_detail;
    const uint32_t n = uint32_t(pkts.size() < res.size() ? pkts.size() : res.size());
    for (uint32_t i = 0; i < n; ++i) {
        ct_result& r = res[i];
        if (r.action != act_create) continue;
        r.action = act_none;
        if (!accepted[i]) {
            table_.release(r.entry);
            r.entry = flow_table::no_entry;
            ++counters_.not_accepted;
            continue;
        }
        const packet_meta& m = pkts[i];
        flow_entry& e = table_.at(r.entry);
        e.created = now;
        if (ct_l4(e.l4_class) == ct_l4::tcp) {
            tcp_new(e, m);
            tcp_packet(e, 0, m, now, cfg_);
        } else {
            e.l4_state = 0;
            e.expires = now + initial_timeout(ct_l4(e.l4_class), m, cfg_.timeouts);
        }
        if (!table_.insert(r.entry, r.hash)) {
            if (!(table_.early_drop(r.hash, now, cfg_.early_drop_min_age) &&
                  table_.insert(r.entry, r.hash))) {
                table_.release(r.entry);
                r.entry = flow_table::no_entry;
                ++counters_.table_full;
                continue;
            }
            ++counters_.early_drop;
        }
        ++counters_.created;
    }
}

} // namespace sluice
