// policy_api: the messages of Sluice's netlink-style policy API (framing: netlink.hpp;
// the bytes, for clients in other languages: control/API.md). One table of names, used
// by sluice-control (the server clients talk to), sluice-fastpath (the data-plane agent
// sluice-control talks to) and sluicectl.
//
// A message type is (family << 8) | command, as nfnetlink does. Every request carries
// NLM_F_REQUEST; NLM_F_ACK asks for an NLMSG_ERROR(0) on success; NLM_F_DUMP asks for a
// multipart reply (NLM_F_MULTI messages ended by NLMSG_DONE). Changes may be grouped in
// a batch: BATCH_BEGIN (optionally with GENERATION: the generation the writer last saw;
// a stale one is refused with ESTALE) … BATCH_END; the batch is applied all-or-nothing
// when BATCH_END arrives, as one new generation.
//
// Thread safety: constants and pure functions only.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::api {

// Families (high byte of the message type).
enum family : uint8_t {
    fam_batch = 0x10,
    fam_rule = 0x11,
    fam_chain = 0x12,
    fam_table = 0x13, // whole iptables-save / ipset-save texts
    fam_set = 0x14,
    fam_ct = 0x15,
    fam_stats = 0x16,
    fam_mode = 0x17,
    fam_gen = 0x18,
    fam_fastpath = 0x19, // sluice-control <-> sluice-fastpath only
};

constexpr uint16_t msg(family f, uint8_t cmd) noexcept { return uint16_t((f << 8) | cmd); }

// Commands. The comments give the attributes a request takes ([optional]) and the reply.
enum message : uint16_t {
    // BATCH: [GENERATION]; END applies everything since BEGIN. ACK carries GENERATION.
    batch_begin = msg(fam_batch, 1),
    batch_end = msg(fam_batch, 2),
    batch_abort = msg(fam_batch, 3),

    // RULE_NEW: FAMILY CHAIN SPEC [POSITION: 1-based, insert before; absent: append]
    // RULE_DEL: FAMILY CHAIN (POSITION | SPEC)
    // RULE_GET (dump): [FAMILY] [CHAIN] -> RULE messages FAMILY CHAIN POSITION SPEC PACKETS BYTES
    // RULE_FLUSH: [FAMILY] [CHAIN]
    rule_new = msg(fam_rule, 1),
    rule_del = msg(fam_rule, 2),
    rule_get = msg(fam_rule, 3),
    rule_flush = msg(fam_rule, 4),

    // CHAIN_NEW: FAMILY CHAIN; CHAIN_DEL: FAMILY CHAIN (empty, unreferenced user chain);
    // CHAIN_POLICY: FAMILY CHAIN POLICY ("ACCEPT"|"DROP", built-in chains);
    // CHAIN_GET (dump): [FAMILY] -> FAMILY CHAIN [POLICY] RULES(u32) PACKETS BYTES
    chain_new = msg(fam_chain, 1),
    chain_del = msg(fam_chain, 2),
    chain_policy = msg(fam_chain, 3),
    chain_get = msg(fam_chain, 4),

    // TABLE_RESTORE: (RULES4 | RULES6 | SETS) text, replaced atomically (one generation);
    // TABLE_SAVE: -> RULES4 RULES6 SETS texts (iptables-save / ipset save formats)
    table_restore = msg(fam_table, 1),
    table_save = msg(fam_table, 2),

    // SET_CREATE: SET TYPE [OPTIONS: "family inet hashsize 1024 ..."]
    // SET_DESTROY: [SET] (absent: every unreferenced set); SET_FLUSH: [SET]
    // SET_SWAP: SET SET2; SET_ADD/SET_DEL: SET ELEM [EXIST]; SET_TEST: SET ELEM -> ACK or ENOENT
    // SET_GET (dump): [SET] -> per set: SET TYPE OPTIONS ELEMENTS(u32) REFERENCES, then
    //   its elements as SET_ELEMS messages: SET ELEM...
    set_create = msg(fam_set, 1),
    set_destroy = msg(fam_set, 2),
    set_flush = msg(fam_set, 3),
    set_swap = msg(fam_set, 4),
    set_add = msg(fam_set, 5),
    set_del = msg(fam_set, 6),
    set_test = msg(fam_set, 7),
    set_get = msg(fam_set, 8),
    set_elems = msg(fam_set, 9),

    // CT_GET (dump): [CT_FILTER] -> CT_FLOW messages; CT_COUNT: [CT_FILTER] -> COUNT;
    // CT_DELETE: CT_FILTER -> COUNT (deleted); CT_FLUSH -> COUNT;
    // CT_SUBSCRIBE: [EVENTS mask: 1 new, 2 destroy] -> ACK, then CT_EVENT messages
    //   (CT_FLOW + EVENT) on this socket until it closes.
    ct_get = msg(fam_ct, 1),
    ct_count = msg(fam_ct, 2),
    ct_delete = msg(fam_ct, 3),
    ct_flush = msg(fam_ct, 4),
    ct_subscribe = msg(fam_ct, 5),
    ct_event = msg(fam_ct, 6),

    // STATS_GET (dump) -> SECTION messages: KIND NAME COUNTER{NAME VALUE}...
    stats_get = msg(fam_stats, 1),

    // MODE_SET: MODE ("enforce"|"monitor"|"bypass"); MODE_GET -> MODE
    mode_set = msg(fam_mode, 1),
    mode_get = msg(fam_mode, 2),

    // GEN_GET -> GENERATION
    gen_get = msg(fam_gen, 1),

    // sluice-control -> sluice-fastpath (the fastpath's agent socket):
    // FP_POLICY: GENERATION MODE RULES4 RULES6 SETS -> ACK (compiled and published)
    // FP_SETS: GENERATION SETS (ipset restore lines: add/del/flush/swap only; applied to
    //   the live sets without recompiling rules) -> ACK
    // GEN_GET, STATS_GET, RULE_GET (counters), CT_* are served by the fastpath as above.
    fp_policy = msg(fam_fastpath, 1),
    fp_sets = msg(fam_fastpath, 2),
};

// Attributes (one number space for all messages).
enum attribute : uint16_t {
    a_unspec = 0,
    a_generation = 1, // u32
    a_family = 2,     // u8: 4 or 6
    a_chain = 3,      // string
    a_spec = 4,       // string: a rule specification in iptables syntax (after -A CHAIN)
    a_position = 5,   // u32, 1-based
    a_packets = 6,    // u64
    a_bytes = 7,      // u64
    a_policy = 8,     // string: ACCEPT | DROP
    a_rules = 9,      // u32: number of rules
    a_rules4 = 10,    // string: iptables-save text
    a_rules6 = 11,    // string: ip6tables-save text
    a_sets = 12,      // string: ipset save text
    a_set = 13,       // string: set name
    a_set2 = 14,      // string
    a_type = 15,      // string: "hash:ip", ...
    a_options = 16,   // string: create options as ipset writes them
    a_elem = 17,      // string: an element as ipset writes it ("192.0.2.0/24,tcp:80 nomatch")
    a_exist = 18,     // flag (empty): -exist
    a_elements = 19,  // u32
    a_references = 20, // u32
    a_ct_filter = 21, // nested: FLOW attributes that must match
    a_ct_flow = 22,   // nested flow
    a_count = 23,     // u64
    a_events = 24,    // u32 mask
    a_event = 25,     // u8: 1 new, 2 destroy
    a_section = 26,   // nested (stats)
    a_kind = 27,      // string: "port", "worker", "drops", "conntrack", "policy", ...
    a_name = 28,      // string
    a_counter = 29,   // nested: NAME VALUE
    a_value = 30,     // u64
    a_mode = 31,      // string
    // flow (inside a_ct_flow / a_ct_filter)
    a_l3 = 40,        // u8: 4 or 6
    a_proto = 41,     // u8
    a_src = 42,       // string address (filter: address or CIDR)
    a_dst = 43,       // string
    a_sport = 44,     // u16
    a_dport = 45,     // u16
    a_state = 46,     // string: conntrack state ("ESTABLISHED") or TCP state ("SYN_SENT")
    a_zone = 47,      // u16
    a_timeout = 48,   // u32 seconds left
    a_worker = 49,    // u32
    a_orig_packets = 50, a_orig_bytes = 51, a_reply_packets = 52, a_reply_bytes = 53, // u64
    a_tcp_state = 54, // string
    a_assured = 55,   // u8
};

// Whether a request of this type is always answered, even without NLM_F_ACK: by a message
// of its own (GEN_GET, MODE_GET, TABLE_SAVE, CT_COUNT, CT_DELETE, CT_FLUSH) or by an
// NLMSG_ERROR that is the answer (SET_TEST, CT_SUBSCRIBE, FP_POLICY, FP_SETS). Changes are
// not: without NLM_F_ACK only their failure is reported. Pure.
bool has_answer(uint16_t type) noexcept;

// Name of a message type, for logs and errors ("RULE_NEW"); "" if unknown. Pure.
std::string_view message_name(uint16_t type) noexcept;

} // namespace sluice::api
