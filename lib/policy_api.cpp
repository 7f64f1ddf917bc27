// See policy_api.hpp.
#include "policy_api.hpp"

namespace sluice::api {

bool has_answer(uint16_t type) noexcept {
    switch (type) {
    case gen_get: case mode_get: case table_save: case ct_count: case ct_delete: case ct_flush:
    case set_test: case ct_subscribe: case fp_policy: case fp_sets:
        return true;
    default: return false;
    }
}

std::string_view message_name(uint16_t type) noexcept {
    switch (type) {
    case batch_begin: return "BATCH_BEGIN";
    case batch_end: return "BATCH_END";
    case batch_abort: return "BATCH_ABORT";
    case rule_new: return "RULE_NEW";
    case rule_del: return "RULE_DEL";
    case rule_get: return "RULE_GET";
    case rule_flush: return "RULE_FLUSH";
    case chain_new: return "CHAIN_NEW";
    case chain_del: return "CHAIN_DEL";
    case chain_policy: return "CHAIN_POLICY";
    case chain_get: return "CHAIN_GET";
    case table_restore: return "TABLE_RESTORE";
    case table_save: return "TABLE_SAVE";
    case set_create: return "SET_CREATE";
    case set_destroy: return "SET_DESTROY";
    case set_flush: return "SET_FLUSH";
    case set_swap: return "SET_SWAP";
    case set_add: return "SET_ADD";
    case set_del: return "SET_DEL";
    case set_test: return "SET_TEST";
    case set_get: return "SET_GET";
    case set_elems: return "SET_ELEMS";
    case ct_get: return "CT_GET";
    case ct_count: return "CT_COUNT";
    case ct_delete: return "CT_DELETE";
    case ct_flush: return "CT_FLUSH";
    case ct_subscribe: return "CT_SUBSCRIBE";
    case ct_event: return "CT_EVENT";
    case stats_get: return "STATS_GET";
    case mode_set: return "MODE_SET";
    case mode_get: return "MODE_GET";
    case gen_get: return "GEN_GET";
    case fp_policy: return "FP_POLICY";
    case fp_sets: return "FP_SETS";
    }
    return "";
}

} // namespace sluice::api
