/* A QEMU TCG plugin: counts the guest instructions a qemu user-mode process executes and writes the total to the
 * file named by its `out=` argument at exit. Used by benchmarks/bundle.py to compare aarch64 code paths (BLAS
 * libraries) by work done rather than by emulated time. One vCPU only: the inline add is not atomic.
 *
 * The declarations are the few functions of QEMU 7.2's plugin API (qemu-plugin.h, API version 1) this uses;
 * Debian ships no header. Build: gcc -O2 -shared -fPIC -o libinsn.so qemu_insn.c
 * Run:   qemu-aarch64 -plugin ./libinsn.so,out=COUNT.txt PROGRAM (Debian's qemu-user: the static build has no
 * plugin support). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *), void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;
static uint64_t count;
static char out[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count, qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *p) {
    FILE *f = fopen(out, "w");
    if (f) { fprintf(f, "%llu\n", (unsigned long long)count); fclose(f); }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4)) snprintf(out, sizeof out, "%s", argv[i] + 4);
    if (!out[0]) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
