// agent: sluice-fastpath's side of the policy API — the data-plane subset, served on the
// agent socket (`agent-socket`, AF_UNIX SOCK_SEQPACKET, netlink framing: lib/netlink.hpp,
// lib/policy_api.hpp) for sluice-control. The main thread runs it between its other duties
// (links, counters, signals); the workers never see a socket.
//
// Messages served (every request needs NLM_F_REQUEST; replies carry the request's seq/pid):
//   FP_POLICY  GENERATION [MODE] [RULES4] [RULES6] [SETS] -> ACK. Compiled (build_policy,
//              sources named rules.v4 / rules.v6 / sets) and published (policy_slot, QSBR);
//              an error is EINVAL with "rules.v4:LINE:COLUMN: reason" and nothing changes.
//              MODE absent: the current mode. Texts absent: empty.
//   FP_SETS    GENERATION SETS -> ACK. ipset restore lines (add/del/flush/swap only) applied
//              all-or-nothing to the current snapshot's live set_table (the main thread is
//              its single writer; memory the change retires is freed after a QSBR grace
//              period), without recompiling rules.
//   GEN_GET    -> GEN_GET{GENERATION MODE}: the applied generation (last FP_POLICY/FP_SETS,
//              the state dir's, or 1 + SIGHUP reloads); MODE_GET answers the same.
//   STATS_GET  (dump) -> STATS_GET messages, each one SECTION nest {KIND NAME COUNTER{NAME
//              VALUE}...}: KIND port (NAME = port), worker (NAME = index), drops, monitor
//              (would-be drops), conntrack, policy, agent (NAME "" for the last five).
//   RULE_GET   (dump) [FAMILY] [CHAIN] -> RULE_GET{FAMILY CHAIN POSITION SPEC PACKETS BYTES}.
//   CT_GET     (dump) [CT_FILTER] -> CT_GET{CT_FLOW} per flow;  CT_COUNT [CT_FILTER] ->
//              CT_COUNT{COUNT};  CT_DELETE CT_FILTER (non-empty) -> CT_DELETE{COUNT};
//              CT_FLUSH [CT_FILTER] -> CT_FLUSH{COUNT}.
//   CT_SUBSCRIBE [EVENTS mask: 1 new, 2 destroy; default 3] [CT_FILTER] -> ACK, then
//              CT_EVENT{CT_FLOW EVENT} messages with seq 0 until the socket closes.
// Requests without data in their answer (FP_*, CT_SUBSCRIBE) are always ACKed; the others
// add an ACK after their answer when NLM_F_ACK is set. Dumps require NLM_F_DUMP.
// Anything else: EOPNOTSUPP "unsupported message NAME"; a malformed datagram or attribute:
// EINVAL naming it, with the attribute's offset in the extended ack.
//
// Conntrack. Dumps and counts read the workers' flow tables from the main thread without
// any lock (agent_codec.hpp, read_flow_entry: double read, validated; a flow created or
// destroyed during the dump may or may not appear, timers are those of an instant around
// the read); they stream, flushed every nl::dump_datagram bytes, and never stop a worker.
// Deletions are done by the worker that owns the flows (ct_mailbox in worker.hpp): the
// main thread posts the filter to every worker and waits at most ct_command_timeout for all
// of them (the workers erase in bounded chunks between bursts); on timeout the answer is
// ETIMEDOUT and the command completes later (a new one meanwhile gets EBUSY). Events:
// while someone is subscribed the workers queue confirmed/destroyed flows into per-worker
// rings (ct_events_lost when full; a delete erases no more per iteration than its ring
// has room for, so deletes lose no destroy event); each poll(), each wait for a delete and
// each datagram of a CT dump drains them and sends them to the subscribers, one datagram
// per subscriber and round, non-blocking (events a full socket refuses are counted in the
// agent section's events_unsent). An event's CT_FLOW is the flow as it was confirmed or
// destroyed (TIMEOUT 0 for destroy); the subscriber's CT_FILTER applies to it.
//
// Flow attributes (CT_FLOW; CT_FILTER takes the same): L3 u8, PROTO u8, SRC/DST string
// (original direction; a filter may give ADDRESS/PREFIXLEN), SPORT/DPORT u16 (ports; for
// ICMP queries SPORT is the identifier and DPORT the request type, as the flow key holds
// them; absent for protocols without ports), STATE "NEW" (no reply seen) or "ESTABLISHED"
// (a filter's STATE also matches the TCP state), TCP_STATE (TCP only, "SYN_SENT", ...),
// TIMEOUT u32 seconds left, ZONE u16, WORKER u32, ASSURED u8. No per-direction packet or
// byte counters: the flow table keeps none.
//
// Lifecycle: construct and listen() before EAL init (a socket that cannot be created is
// logged, and the fast path runs without agent: it never depends on control); attach()
// once the workers exist; poll() in the main loop; destroyed after the workers stopped.
// Thread safety: main thread only.
#pragma once

#include "agent_codec.hpp"
#include "config.hpp"
#include "policy_slot.hpp"
#include "port.hpp"
#include "worker.hpp"

#include "api_server.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace sluice {

inline constexpr std::chrono::milliseconds ct_command_timeout{5000};

class agent {
  public:
    explicit agent(const fastpath_config& cfg) : cfg_(cfg) {}
    agent(const agent&) = delete;
    agent& operator=(const agent&) = delete;

    // Create the socket (mode 0600, owned by this process's user; the directory is made if
    // missing). "" or the reason; "" too when the agent is disabled.
    std::string listen();
    bool listening() const noexcept { return listening_; }

    // The running data plane and the applied generation (shared with main's SIGHUP path).
    void attach(policy_slot& policy, port_set& ports, worker_set& workers, uint32_t& generation);

    // Serve what arrives within timeout_ms and deliver pending conntrack events (sleeps when
    // the agent is disabled).
    void poll(int timeout_ms);

  private:
    struct subscriber {
        int peer = 0;
        uint32_t mask = 3;
        ct_filter filter;
        nl::builder pending;
        uint64_t pending_n = 0;
    };

    void handle(const api_peer& peer, const nl::message& m, nl::builder& reply);
    void closed(const api_peer& peer);
    bool check(std::string_view what, const nl::message& m, const nl::attr_list& al,
               std::span<const attr_spec> spec, nl::builder& reply);
    bool need_dump(const nl::message& m, nl::builder& reply);
    void answer_ack(const nl::message& m, nl::builder& reply);
    void fail(nl::builder& reply, const nl::header& req, int err, std::string_view text,
              uint32_t offset = 0);

    void fp_policy(const nl::message& m, const nl::attr_list& al, nl::builder& reply);
    void fp_sets(const nl::message& m, const nl::attr_list& al, nl::builder& reply);
    void stats_get(const nl::message& m, nl::builder& reply);
    void rule_get(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                  nl::builder& reply);
    void ct_get(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                nl::builder& reply);
    void ct_count(const nl::message& m, const nl::attr_list& al, nl::builder& reply);
    void ct_delete(const nl::message& m, const nl::attr_list& al, nl::builder& reply);
    void ct_subscribe(const api_peer& peer, const nl::message& m, const nl::attr_list& al,
                      nl::builder& reply);

    // The optional CT_FILTER of a request; false (error answered) if malformed.
    bool filter_of(const nl::message& m, const nl::attr_list& al, ct_filter& f, nl::builder& reply);
    // Every live flow matching f: fn(const ct_flow_view&, worker index); fn returns false
    // to stop. Main thread, lock-free reads (see above).
    template <class Fn> void for_each_flow(const ct_filter& f, Fn&& fn);
    // Post a delete to every worker and wait; "" with `deleted` set, or errno + text.
    request_error run_ct_delete(const ct_filter& f, uint64_t& deleted);

    void set_event_flags();
    void drain_events();
    void send_events(subscriber& s);

    const fastpath_config& cfg_;
    api_server server_;
    bool listening_ = false;
    policy_slot* policy_ = nullptr;
    port_set* ports_ = nullptr;
    worker_set* workers_ = nullptr;
    uint32_t* generation_ = nullptr;
    std::vector<subscriber> subs_;
    uint64_t events_sent_ = 0, events_unsent_ = 0, requests_ = 0, errors_ = 0;
};

// The policy to run: the state dir's when it holds one (then `generation` becomes its
// generation), else the configuration's files (as `generation`). `from` names the source
// for the log. Used at start and on SIGHUP. Main thread; touches no device.
policy_build_result load_startup_policy(const fastpath_config& cfg, uint32_t& generation,
                                        std::string& from);

} // namespace sluice
