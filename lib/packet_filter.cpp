// See packet_filter.hpp.
#include "packet_filter.hpp"

namespace sluice {

namespace {
constexpr uint32_t fragments_per_datagram = 4; // sizing of the fragment pool
}

packet_filter::packet_filter(const conntrack_config& ct, uint32_t flow_capacity,
                             uint32_t frag_datagrams, unsigned worker_index)
    : ct_(ct, flow_capacity), frags_(frag_datagrams, frag_datagrams * fragments_per_datagram),
      worker_(worker_index), random_(0x9e3779b9u * (worker_index + 1)),
      max_released_(frag_datagrams * fragments_per_datagram + max_burst) {
    released_ = std::make_unique<filter_release[]>(max_released_);
}

uint32_t packet_filter::next_random() noexcept {
    // xorshift32: -m statistic draws; per worker, never 0.
    random_ ^= random_ << 13;
    random_ ^= random_ >> 17;
    random_ ^= random_ << 5;
    return random_;
}

void packet_filter::decide(const policy_snapshot& policy, filter_decision& out, filter_action a,
                           drop_reason r) noexcept {
    if (a != filter_action::forward && policy.mode == filter_mode::monitor) {
        counters_.would_drop[size_t(r)].add(1);
        a = filter_action::forward;
    }
    out.action = a;
    out.reason = r;
}

void packet_filter::judge(const policy_snapshot& policy, const packet_meta& m,
                          const filter_input& in, uint8_t ct_bits, filter_decision& out,
                          uint64_t now_ns) noexcept {
    const bool v6 = m.l3 == l3_kind::ipv6;
    const classifier& cls = policy.forward(v6);
    policy_worker_state& ws = policy.workers[worker_];
    rule_counter* rc = v6 ? ws.rules6.get() : ws.rules4.get();
    if (ct_bits == ct_bit(ct_state::established) && cls.established_bypass_safe()) {
        counters_.established_bypass.add(1);
        for (uint32_t g : cls.established_path()) {
            rc[g].packets.add(1);
            rc[g].bytes.add(in.wire_len);
        }
        decide(policy, out, filter_action::forward, drop_reason::policy_drop);
        return;
    }
    classify_input ci;
    ci.src_mac = in.src_mac;
    ci.random = next_random();
    ci.ct = ct_bits;
    ci.in_port = in.in_port;
    ci.out_port = in.out_port;
    classify_worker cw{v6 ? std::span<limit_bucket>(ws.limits6) : std::span<limit_bucket>(ws.limits4),
                       now_ns};
    classify_result r;
    cls.classify(m, ci, cw, r);
    counters_.classified.add(1);
    const uint32_t recorded = r.n_matched < max_recorded_matches ? r.n_matched : max_recorded_matches;
    for (uint32_t k = 0; k < recorded; ++k) {
        rc[r.matched[k]].packets.add(1);
        rc[r.matched[k]].bytes.add(in.wire_len);
    }
    // LOG/NFLOG: the matched rules are few; look their targets up in the ruleset.
    const ruleset& rs = v6 ? policy.rules6 : policy.rules4;
    for (uint32_t k = 0; k < recorded; ++k) {
        const rule_ref at = cls.rule_at(r.matched[k]);
        const target_kind t = rs.chains[at.chain].rules[at.rule].target.kind;
        if (t == target_kind::log || t == target_kind::nflog) {
            out.log_rule = r.matched[k];
            break;
        }
    }
    switch (r.v) {
    case verdict::accept: decide(policy, out, filter_action::forward, drop_reason::policy_drop); break;
    case verdict::drop: decide(policy, out, filter_action::drop, drop_reason::policy_drop); break;
    case verdict::reject:
        out.reject = r.reject;
        decide(policy, out, filter_action::reject, drop_reason::policy_reject);
        break;
    }
}

uint32_t packet_filter::pass(const policy_snapshot& policy, const packet_meta* pkts,
                             const filter_input* in, filter_decision* out, uint32_t n,
                             uint32_t* deferred, uint32_t now_s, uint64_t now_ns) noexcept {
    // ICMP errors are tracked by the packet they quote.
    bool any_quoted = false;
    for (uint32_t i = 0; i < n; ++i) {
        quoted_ptr_[i] = nullptr;
        const packet_meta& m = pkts[i];
        if (!m.quoted_off || !in[i].frame || m.quoted_off >= in[i].frame_len) continue;
        if (parse_quoted(in[i].frame + m.quoted_off, in[i].frame_len - m.quoted_off, m.l3,
                         quoted_[i]).ok) {
            quoted_ptr_[i] = &quoted_[i];
            any_quoted = true;
        }
    }
    ct_.classify({pkts, n}, any_quoted ? quoted_ptr_.data() : nullptr, {ct_res_.data(), n}, now_s);

    // Prefetch what the classifier will look at, for the packets it will run on.
    uint32_t n_cls = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const packet_meta& m = pkts[i];
        if (ct_res_[i].fate != ct_fate::tracked || (m.l3 != l3_kind::ipv4 && m.l3 != l3_kind::ipv6)) continue;
        const classifier& cls = policy.forward(m.l3 == l3_kind::ipv6);
        if (ct_res_[i].state == ct_state::established && cls.established_bypass_safe()) continue;
        cls.prefetch_index(m);
        cls_idx_[n_cls++] = i;
    }
    for (uint32_t k = 0; k < n_cls; ++k) {
        const packet_meta& m = pkts[cls_idx_[k]];
        policy.forward(m.l3 == l3_kind::ipv6).prefetch_candidates(m);
    }

    uint32_t n_deferred = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const packet_meta& m = pkts[i];
        const ct_result& r = ct_res_[i];
        accepted_[i] = 0;
        out[i].log_rule = no_rule;
        if (m.l3 != l3_kind::ipv4 && m.l3 != l3_kind::ipv6) {
            counters_.not_ip.add(1);
            out[i] = filter_decision{};
            continue;
        }
        switch (r.fate) {
        case ct_fate::deferred: deferred[n_deferred++] = i; continue;
        case ct_fate::table_full:
            decide(policy, out[i], filter_action::drop, drop_reason::ct_table_full);
            continue;
        case ct_fate::fragment: // never here: fragments are held, their datagram judged whole
            decide(policy, out[i], filter_action::drop, drop_reason::ip_bad_fragment);
            continue;
        case ct_fate::tracked: break;
        }
        judge(policy, m, in[i], ct_bit(r.state), out[i], now_ns);
        // In monitor mode the packet is forwarded, so its flow is tracked as accepted.
        accepted_[i] = out[i].action == filter_action::forward;
    }
    ct_.commit({pkts, n}, {ct_res_.data(), n}, accepted_.data(), now_s);
    for (uint32_t i = 0; i < n; ++i) {
        const ct_result& r = ct_res_[i];
        if (r.fate != ct_fate::tracked) continue;
        if (r.state == ct_state::new_ && accepted_[i] && r.entry != flow_table::no_entry)
            ct_.table().at(r.entry).generation = policy.generation;
    }
    return n_deferred;
}

void packet_filter::judge_all(const policy_snapshot& policy, const packet_meta* pkts,
                              const filter_input* in, filter_decision* out, const uint32_t* map,
                              uint32_t n, uint32_t now_s, uint64_t now_ns) noexcept {
    // Deferred rounds: packets whose flow an earlier packet of the burst created, in order.
    // round_map_[k] is the index (into pkts) of the k-th packet of the round.
    uint32_t nd = n;
    for (uint32_t k = 0; k < n; ++k) round_map_[k] = map ? map[k] : k;
    bool contiguous = map == nullptr;
    while (nd) {
        const packet_meta* rp = pkts;
        const filter_input* ri = in;
        filter_decision* ro = out;
        if (!contiguous) {
            for (uint32_t k = 0; k < nd; ++k) {
                round_pkts_[k] = pkts[round_map_[k]];
                round_in_[k] = in[round_map_[k]];
            }
            rp = round_pkts_.data();
            ri = round_in_.data();
            ro = round_out_.data();
        }
        uint32_t next = pass(policy, rp, ri, ro, nd, deferred_.data(), now_s, now_ns);
        if (!contiguous)
            for (uint32_t k = 0; k < nd; ++k) out[round_map_[k]] = round_out_[k];
        for (uint32_t k = 0; k < next; ++k) deferred_[k] = round_map_[deferred_[k]];
        for (uint32_t k = 0; k < next; ++k) round_map_[k] = deferred_[k];
        nd = next;
        contiguous = false;
    }
}

void packet_filter::release_datagram(uint32_t d, filter_decision first, filter_decision others,
                                     const packet_meta* meta) noexcept {
    void* cookies[frag_cache::max_per_datagram];
    const uint32_t n = frags_.cookies(d, cookies);
    const bool has_first = frags_.has_first(d);
    for (uint32_t k = 0; k < n && n_released_ < max_released_; ++k) {
        const bool is_first = has_first && k == 0;
        released_[n_released_++] = {cookies[k], is_first ? first : others, is_first ? meta : nullptr};
    }
    frags_.release(d);
}

filter_decision packet_filter::hold_fragment(const policy_snapshot& policy, const packet_meta& m,
                                             const filter_input& in, uint32_t now_s) noexcept {
    filter_decision d;
    auto r = frags_.add(m, ct_.zone_of(m), in.cookie, in.src_mac, in.in_port, in.out_port, now_s);
    switch (r.what) {
    case frag_cache::outcome::held: d.action = filter_action::hold; break;
    case frag_cache::outcome::complete:
        d.action = filter_action::hold;
        completed_[n_completed_++] = r.datagram;
        break;
    case frag_cache::outcome::duplicate:
        decide(policy, d, filter_action::drop, drop_reason::frag_duplicate);
        break;
    case frag_cache::outcome::overlap: {
        filter_decision all;
        decide(policy, all, filter_action::drop, drop_reason::frag_overlap);
        release_datagram(r.datagram, all, all, nullptr);
        d = all;
        break;
    }
    case frag_cache::outcome::refused:
        decide(policy, d, filter_action::drop, drop_reason::frag_no_room);
        break;
    }
    return d;
}

void packet_filter::run(const policy_snapshot& policy, std::span<const packet_meta> pkts,
                        std::span<const filter_input> in, std::span<filter_decision> out,
                        uint32_t now_s, uint64_t now_ns) noexcept {
    const uint32_t n = uint32_t(pkts.size());
    n_released_ = 0;
    n_released_meta_ = 0;
    n_completed_ = 0;
    if (policy.mode == filter_mode::bypass) {
        for (uint32_t i = 0; i < n; ++i) out[i] = filter_decision{};
        return;
    }
    // Fragments go to the fragment cache; everything else is judged now.
    uint32_t n_plain = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const packet_meta& m = pkts[i];
        if ((m.frag_flags & frag::is_fragment) && (m.l3 == l3_kind::ipv4 || m.l3 == l3_kind::ipv6))
            out[i] = hold_fragment(policy, m, in[i], now_s);
        else
            plain_map_[n_plain++] = i;
    }
    if (n_plain == n) judge_all(policy, pkts.data(), in.data(), out.data(), nullptr, n, now_s, now_ns);
    else if (n_plain) judge_all(policy, pkts.data(), in.data(), out.data(), plain_map_.data(), n_plain, now_s, now_ns);

    // Completed datagrams: judge each by its first fragment, then hand all fragments back.
    for (uint32_t c = 0; c < n_completed_; ++c) {
        const uint32_t d = completed_[c];
        packet_meta& m = released_meta_[n_released_meta_++];
        m = frags_.first_meta(d);
        filter_input fi;
        fi.src_mac = frags_.first_src_mac(d);
        fi.in_port = frags_.in_port(d);
        fi.out_port = frags_.out_port(d);
        filter_decision dec;
        judge_all(policy, &m, &fi, &dec, nullptr, 1, now_s, now_ns);
        filter_decision others = dec;
        if (others.action == filter_action::reject) others.action = filter_action::drop;
        release_datagram(d, dec, others, &m);
    }
}

void packet_filter::expire(const policy_snapshot& policy, uint32_t now_s, uint32_t budget) noexcept {
    n_released_ = 0;
    ct_.expire(now_s, budget);
    const uint32_t d = frags_.expire_one(now_s, budget);
    if (d != frag_cache::no_datagram) {
        filter_decision drop;
        decide(policy, drop, filter_action::drop, drop_reason::frag_timeout);
        // Monitor mode forwards what it would drop; an incomplete datagram is let go too.
        release_datagram(d, drop, drop, nullptr);
    }
}

void packet_filter::drain() noexcept {
    n_released_ = 0;
    filter_decision drop{filter_action::drop, drop_reason::frag_timeout, reject_kind::icmp_port_unreachable, no_rule};
    for (uint32_t d = frags_.any(); d != frag_cache::no_datagram; d = frags_.any())
        release_datagram(d, drop, drop, nullptr);
}

} // namespace sluice
