/*
 * qemu-plugin.h -- a minimal declaration of QEMU's TCG plugin API, version 1.
 *
 * Written for mcusearch by hand, not copied: it declares only the types and functions that
 * insn_classes.c uses, with the signatures and enum values of the API that QEMU 7.2 exports
 * (QEMU_PLUGIN_VERSION 1; public documentation: docs/devel/tcg-plugins.rst and the API
 * reference generated from QEMU's include/qemu/qemu-plugin.h). Debian 12 ships
 * qemu-system-arm 7.2 without the plugin header, and the real header includes glib; this one
 * needs only the C standard headers.
 *
 * The functions are resolved at load time from the QEMU executable (they are exported:
 * `nm -D /usr/bin/qemu-system-arm | grep qemu_plugin_`), so the plugin links with no library.
 * If QEMU's plugin ABI changes (API version 2 arrived with QEMU 8.x/9.0 and changed e.g.
 * qemu_plugin_insn_data), QEMU refuses to load a plugin whose qemu_plugin_version it does not
 * accept, rather than calling it wrongly.
 */
#ifndef MCUSEARCH_QEMU_PLUGIN_H
#define MCUSEARCH_QEMU_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
#define QEMU_PLUGIN_VERSION 1

/* Every plugin must export this, set to QEMU_PLUGIN_VERSION. */
extern QEMU_PLUGIN_EXPORT int qemu_plugin_version;

typedef uint64_t qemu_plugin_id_t;

typedef struct qemu_info_t {
    const char *target_name;        /* e.g. "arm" */
    struct {
        int min;                    /* oldest API version QEMU accepts */
        int cur;                    /* API version QEMU implements */
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

/* Entry point QEMU calls once, with the plugin's "key=value" arguments. Return 0 on success. */
QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv);

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS,
};

enum qemu_plugin_mem_rw {
    QEMU_PLUGIN_MEM_R = 1,
    QEMU_PLUGIN_MEM_W,
    QEMU_PLUGIN_MEM_RW,
};

enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64,
};

typedef uint32_t qemu_plugin_meminfo_t;

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);

/* Translation time: called once per translated block. */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

/* Execution time instrumentation, registered from the translation callback. */
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *userdata);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

/* Lifetime and output. */
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string); /* to QEMU's log: shown with -d plugin */

#ifdef __cplusplus
}
#endif

#endif /* MCUSEARCH_QEMU_PLUGIN_H */
