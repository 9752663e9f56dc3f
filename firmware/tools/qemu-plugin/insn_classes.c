/*
 * insn_classes.c -- a QEMU TCG plugin (API version 1, QEMU 7.2) that counts the Thumb/Thumb-2
 * instructions a Cortex-M guest executes, by timing class, and its data-memory accesses, by
 * address region. mcusearch weights these counts with documented per-class timings
 * (mcusearch/boards/cyclemodel.py) to estimate cycles; the counts themselves are exact.
 *
 * Build:  gcc -shared -fPIC -O2 -o insn_classes.so insn_classes.c   (no glib needed)
 * Use:    qemu-system-arm ... -plugin ./insn_classes.so,out=counts.json,region=flash:0x0:0x400000
 *                              -d plugin
 *
 * Arguments (each "key=value"; QEMU passes them through unchanged):
 *   out=PATH                  write the counts as JSON to PATH at exit (required)
 *   region=NAME:START:END[:c] an address range [START, END) (hex or decimal) whose instruction
 *                             fetches and data accesses are counted under NAME; up to 8; ":c"
 *                             marks it cacheable (simulated by icache=/dcache= below). Accesses
 *                             outside every region are counted under "other".
 *   start=ADDR, stop=ADDR     count a window too: from each execution of the instruction at
 *                             START (included) to the next execution of the instruction at STOP
 *                             (excluded); windows add up. Addresses of Thumb functions may carry
 *                             bit 0; it is ignored.
 *   dcache=SIZE:LINE:WAYS     simulate an LRU, write-allocate data cache over cacheable regions
 *   icache=SIZE:LINE:WAYS     simulate an LRU instruction cache over cacheable regions, at
 *                             translation-block granularity (each executed block touches the
 *                             lines its instructions occupy, when it starts; a block that starts
 *                             outside the window and runs into a marker is not split)
 *   steps=PATH, skip=N        also count each window into its layer: PATH holds whitespace-
 *                             separated layer numbers, one per step of a schedule that repeats;
 *                             window k (counted from 0, the first N skipped) is step
 *                             (k - N) mod steps; output "layers": one count set per layer
 *   (always)                  per region, without any cache: fetch_lines_W, the W-byte lines
 *                             (W = 4, 8, 16, 32) each executed straight-line run (block) spans,
 *                             a run that falls through from the previous one not counting the
 *                             line they share; jump_lines_W, the runs entered by a jump whose
 *                             first line is not the line the previous run ended in
 *   dump=PATH                 also write "ADDRESS SIZE CLASS" for every instruction translated
 *                             (for checking the decoder; a block translated twice appears twice)
 *
 * How counting works: each instruction is decoded once, when QEMU translates it, into a class
 * and a few overlay facts (registers in a load-multiple, whether it may pipeline with the load
 * before it, ...). The counters for those are bumped by inline adds that QEMU emits in front of
 * the instruction (no call per executed instruction). Three things need a call at run time:
 * memory accesses (the address decides the region), whether a conditional branch was taken
 * (decided by the address of the next block executed) and the window markers (the marker
 * instructions do their counting inside their callback, so that a window snapshot is exact).
 * Instructions that fail their condition inside an IT block are counted: the core spends an
 * issue slot on them too.
 *
 * Limits (documented, not hidden): adjacency facts (ldst_pipelined, agu_stall) and the IT state
 * look at the previous instruction of the same translation block, or of the block translated
 * just before when that one ends where this one starts (QEMU splits straight-line code at 1 KB
 * page boundaries); taken/not-taken is attributed wrongly if
 * an interrupt is taken right after a conditional branch; only one vCPU is supported.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* ---- counters ------------------------------------------------------------------------- */

/* Classes: every executed instruction is counted in exactly one. */
enum {
    C_ALU, C_IT, C_MUL, C_MLA, C_MULL, C_MLAL, C_DSP_MUL, C_DSP, C_DIV,
    C_LOAD, C_STORE, C_LOAD_PAIR, C_STORE_PAIR, C_LDM, C_STM,
    C_BRANCH, C_BRANCH_COND, C_TABLE_BRANCH,
    C_VFP_ALU, C_VFP_MAC, C_VFP_DIV, C_VFP_LOAD, C_VFP_STORE, C_VFP_LDM, C_VFP_STM,
    C_VFP_MOV, C_VFP_MISC,
    C_NOP, C_BARRIER, C_SYSTEM, C_OTHER,
    N_CLASSES
};
static const char *class_names[N_CLASSES] = {
    "alu", "it", "mul", "mla", "mull", "mlal", "dsp_mul", "dsp", "div",
    "load", "store", "load_pair", "store_pair", "ldm", "stm",
    "branch", "branch_cond", "table_branch",
    "vfp_alu", "vfp_mac", "vfp_div", "vfp_load", "vfp_store", "vfp_ldm", "vfp_stm",
    "vfp_mov", "vfp_misc",
    "nop", "barrier", "system", "other",
};

/* Overlays: extra facts about some of the instructions above (not a partition). */
enum {
    X_INSN16, X_INSN32,
    X_LDM_REGS, X_STM_REGS, X_VFP_LDM_WORDS, X_VFP_STM_WORDS, X_VFP_LDST64,
    X_BRANCH_COND_TAKEN, X_LOAD_PC, X_LDM_PC, X_LOAD_LITERAL,
    X_STORE_IMM, X_LDST_PIPELINED, X_AGU_STALL,
    N_EXTRAS
};
static const char *extra_names[N_EXTRAS] = {
    "insn16", "insn32",
    "ldm_regs", "stm_regs", "vfp_ldm_words", "vfp_stm_words", "vfp_ldst64",
    "branch_cond_taken", "load_pc", "ldm_pc", "load_literal",
    "store_imm", "ldst_pipelined", "agu_stall",
};

/* Per region (the last one is "other"). Executed instructions are counted per region and size
 * (R_FETCH16/R_FETCH32: one inline add per instruction); the output's fetch_insns, fetch_bytes and
 * the insn16/insn32 overlays are derived from them. */
enum {
    R_FETCH16, R_FETCH32, R_READS, R_WRITES, R_READ_BYTES, R_WRITE_BYTES,
    R_READ_MISSES, R_WRITE_MISSES, R_ILINE_REFS, R_ILINE_MISSES,
    R_LINES4, R_LINES8, R_LINES16, R_LINES32,
    R_JUMP_LINES4, R_JUMP_LINES8, R_JUMP_LINES16, R_JUMP_LINES32,
    N_RFIELDS
};
static const char *rfield_names[N_RFIELDS] = {
    "fetch_insns", "fetch_bytes", "reads", "writes", "read_bytes", "write_bytes",
    "read_misses", "write_misses", "iline_refs", "iline_misses",
    "fetch_lines_4", "fetch_lines_8", "fetch_lines_16", "fetch_lines_32",
    "jump_lines_4", "jump_lines_8", "jump_lines_16", "jump_lines_32",
};
/* Fetch-line widths counted without a cache (R_LINES<w>, R_JUMP_LINES<w>): log2 of 4, 8, 16, 32. */
#define N_LINE_WIDTHS 4
static const unsigned line_shifts[N_LINE_WIDTHS] = {2, 3, 4, 5};

#define MAX_REGIONS 8
#define IDX_CLASS(c) (c)
#define IDX_EXTRA(x) (N_CLASSES + (x))
#define IDX_REGION(r, f) (N_CLASSES + N_EXTRAS + (r) * N_RFIELDS + (f))
#define N_COUNTERS (N_CLASSES + N_EXTRAS + (MAX_REGIONS + 1) * N_RFIELDS)

static uint64_t cnt[N_COUNTERS];     /* since start of execution */
static uint64_t snap[N_COUNTERS];    /* at the last window start */
static uint64_t win[N_COUNTERS];     /* sum over closed windows */
static int win_active;
static uint64_t win_count;

/* ---- configuration ------------------------------------------------------------------- */

typedef struct {
    char name[32];
    uint64_t start, end;
    int cacheable;
} region_t;

static region_t regions[MAX_REGIONS];
static int n_regions;
static char *out_path;
static FILE *dump_file;
static uint64_t marker_start = UINT64_MAX, marker_stop = UINT64_MAX;

typedef struct {
    uint32_t sets, ways, line_shift;
    uint64_t *tags;   /* sets * ways; 0 = empty, else (line address + 1) */
    uint64_t *stamp;  /* LRU timestamps */
    uint64_t clock;
    uint32_t size, line;
} cache_t;

static cache_t dcache, icache;
static int have_dcache, have_icache;

/* steps=PATH, skip=N: the layer each window belongs to. Window k (k >= skip) is step
 * (k - skip) mod n_steps of a schedule that repeats per inference; steps[] holds its layer. */
#define MAX_STEPS 1000000
#define MAX_LAYERS 4096
static uint32_t *steps;
static uint64_t n_steps, steps_skip;
static uint32_t n_layers;
static uint64_t *layer_win;   /* n_layers * N_COUNTERS */

static int region_of(uint64_t a)
{
    for (int i = 0; i < n_regions; i++) {
        if (a >= regions[i].start && a < regions[i].end) {
            return i;
        }
    }
    return n_regions; /* "other" */
}

/* Returns 1 on a hit. On a miss the line is allocated if `allocate`. */
static int cache_access(cache_t *c, uint64_t addr, int allocate)
{
    uint64_t line = addr >> c->line_shift;
    uint32_t set = (uint32_t)(line % c->sets);
    uint64_t *tags = c->tags + (size_t)set * c->ways;
    uint64_t *stamp = c->stamp + (size_t)set * c->ways;
    uint32_t victim = 0;
    c->clock++;
    for (uint32_t w = 0; w < c->ways; w++) {
        if (tags[w] == line + 1) {
            stamp[w] = c->clock;
            return 1;
        }
        if (stamp[w] < stamp[victim]) {
            victim = w;
        }
    }
    if (allocate) {
        tags[victim] = line + 1;
        stamp[victim] = c->clock;
    }
    return 0;
}

/* ---- decoding ----------------------------------------------------------------------- */

typedef struct {
    int cls;
    int size;            /* 2 or 4 bytes */
    int nregs;           /* LDM/STM registers, VLDM/VSTM words */
    int cond_branch;     /* needs taken/not-taken tracking */
    int single_ld;       /* single load (LDR/LDRB/LDRH/LDRSB/LDRSH/LDREX*) */
    int single_st;       /* single store */
    int writeback;       /* base register updated */
    int rt, rn, rm;      /* -1 if none */
    int store_imm;       /* STR Rt, [Rn, #imm] without writeback */
    int load_pc, ldm_pc, load_literal, vfp64;
    int dest, dest2;     /* registers written by a data-processing instruction, -1 if none */
    int it_len;          /* IT: instructions in the block */
    int mem;             /* may access data memory */
} dec_t;

static void dec_init(dec_t *d, int size)
{
    memset(d, 0, sizeof(*d));
    d->size = size;
    d->rt = d->rn = d->rm = d->dest = d->dest2 = -1;
    d->cls = C_OTHER;
}

static void dec16(uint16_t h, dec_t *d)
{
    if ((h & 0xC000) == 0x0000) {
        /* 00xxxx: shift (immediate), add, subtract, move, compare */
        unsigned o5 = h >> 11;
        d->cls = C_ALU;
        if (o5 == 5) {
            d->dest = -1;                 /* CMP Rn, #imm8 */
        } else if (o5 >= 4) {
            d->dest = (h >> 8) & 7;       /* MOV/ADD/SUB Rd, #imm8 */
        } else {
            d->dest = h & 7;
        }
    } else if ((h & 0xFC00) == 0x4000) {
        /* 010000: data processing */
        unsigned o = (h >> 6) & 0xF;
        d->cls = (o == 0xD) ? C_MUL : C_ALU;
        d->dest = (o == 0x8 || o == 0xA || o == 0xB) ? -1 : (h & 7); /* TST, CMP, CMN */
    } else if ((h & 0xFC00) == 0x4400) {
        /* 010001: special data processing, branch and exchange */
        unsigned o = (h >> 8) & 3;
        int rd = ((h >> 4) & 8) | (h & 7);
        if (o == 3) {
            d->cls = C_BRANCH;            /* BX, BLX */
        } else if (o == 1) {
            d->cls = C_ALU;               /* CMP (high registers) */
        } else if (rd == 15) {
            d->cls = C_BRANCH;            /* ADD PC, Rm / MOV PC, Rm */
        } else {
            d->cls = C_ALU;
            d->dest = rd;
        }
    } else if ((h & 0xF800) == 0x4800) {
        /* LDR Rt, [PC, #imm8] */
        d->cls = C_LOAD;
        d->single_ld = 1;
        d->rt = (h >> 8) & 7;
        d->rn = 15;
        d->load_literal = 1;
        d->mem = 1;
    } else if ((h & 0xF000) == 0x5000) {
        /* 0101: load/store, register offset */
        unsigned ob = (h >> 9) & 7;
        d->rm = (h >> 6) & 7;
        d->rn = (h >> 3) & 7;
        d->rt = h & 7;
        d->mem = 1;
        if (ob < 3) {
            d->cls = C_STORE;
            d->single_st = 1;
        } else {
            d->cls = C_LOAD;
            d->single_ld = 1;
        }
    } else if ((h & 0xE000) == 0x6000 || (h & 0xF000) == 0x8000) {
        /* 011xx: LDR/STR(B) immediate; 1000x: LDRH/STRH immediate */
        int load = (h >> 11) & 1;
        d->rn = (h >> 3) & 7;
        d->rt = h & 7;
        d->mem = 1;
        if (load) {
            d->cls = C_LOAD;
            d->single_ld = 1;
        } else {
            d->cls = C_STORE;
            d->single_st = 1;
            d->store_imm = 1;
        }
    } else if ((h & 0xF000) == 0x9000) {
        /* 1001x: LDR/STR Rt, [SP, #imm8] */
        int load = (h >> 11) & 1;
        d->rn = 13;
        d->rt = (h >> 8) & 7;
        d->mem = 1;
        if (load) {
            d->cls = C_LOAD;
            d->single_ld = 1;
        } else {
            d->cls = C_STORE;
            d->single_st = 1;
            d->store_imm = 1;
        }
    } else if ((h & 0xF000) == 0xA000) {
        /* ADR Rd, label / ADD Rd, SP, #imm8 */
        d->cls = C_ALU;
        d->dest = (h >> 8) & 7;
    } else if ((h & 0xF000) == 0xB000) {
        /* 1011: miscellaneous */
        if ((h & 0xFF00) == 0xB000) {
            d->cls = C_ALU;               /* ADD/SUB SP, SP, #imm7 */
            d->dest = 13;
        } else if ((h & 0xF500) == 0xB100) {
            d->cls = C_BRANCH_COND;       /* CBZ, CBNZ */
            d->cond_branch = 1;
        } else if ((h & 0xFF00) == 0xB200 || (h & 0xFF00) == 0xBA00) {
            d->cls = C_ALU;               /* SXTH/SXTB/UXTH/UXTB, REV/REV16/REVSH */
            d->dest = h & 7;
        } else if ((h & 0xFE00) == 0xB400) {
            d->cls = C_STM;               /* PUSH */
            d->nregs = __builtin_popcount(h & 0xFF) + ((h >> 8) & 1);
            d->rn = 13;
            d->mem = 1;
        } else if ((h & 0xFE00) == 0xBC00) {
            d->cls = C_LDM;               /* POP */
            d->nregs = __builtin_popcount(h & 0xFF) + ((h >> 8) & 1);
            d->ldm_pc = (h >> 8) & 1;
            d->rn = 13;
            d->mem = 1;
        } else if ((h & 0xFFE0) == 0xB660) {
            d->cls = C_SYSTEM;            /* CPS */
        } else if ((h & 0xFF00) == 0xBE00) {
            d->cls = C_SYSTEM;            /* BKPT */
        } else if ((h & 0xFF00) == 0xBF00) {
            if (h & 0xF) {
                d->cls = C_IT;
                d->it_len = 4 - __builtin_ctz(h & 0xF);
            } else {
                d->cls = C_NOP;           /* NOP, YIELD, WFE, WFI, SEV */
            }
        }
    } else if ((h & 0xF000) == 0xC000) {
        /* STM / LDM Rn!, {list} */
        int load = (h >> 11) & 1;
        d->cls = load ? C_LDM : C_STM;
        d->nregs = __builtin_popcount(h & 0xFF);
        d->rn = (h >> 8) & 7;
        d->mem = 1;
    } else if ((h & 0xF000) == 0xD000) {
        unsigned cond = (h >> 8) & 0xF;
        if (cond >= 0xE) {
            d->cls = C_SYSTEM;            /* UDF, SVC */
        } else {
            d->cls = C_BRANCH_COND;       /* B<c> */
            d->cond_branch = 1;
        }
    } else if ((h & 0xF800) == 0xE000) {
        d->cls = C_BRANCH;                /* B */
    }
}

static void dec_vfp(uint16_t h1, uint16_t h2, dec_t *d)
{
    unsigned op1 = (h1 >> 4) & 0x3F;
    unsigned cp = (h2 >> 8) & 0xF;
    if ((h1 & 0xF000) != 0xE000 || (cp != 10 && cp != 11)) {
        d->cls = C_OTHER;
        return;
    }
    if ((op1 & 0x3E) == 0x04) {
        d->cls = C_VFP_MOV;               /* VMOV between two core registers and D / two S */
    } else if ((op1 & 0x20) == 0) {
        /* extension register load/store */
        int load = op1 & 1, p = (op1 >> 4) & 1, w = (op1 >> 1) & 1;
        unsigned imm8 = h2 & 0xFF;
        d->rn = h1 & 0xF;
        d->mem = 1;
        if (p && !w) {
            d->cls = load ? C_VFP_LOAD : C_VFP_STORE; /* VLDR / VSTR */
            d->vfp64 = (cp == 11);
            d->nregs = (cp == 11) ? 2 : 1;
        } else {
            d->cls = load ? C_VFP_LDM : C_VFP_STM;    /* VLDM/VPOP, VSTM/VPUSH */
            d->nregs = (cp == 11) ? (int)(imm8 & ~1u) : (int)imm8;
        }
    } else if ((op1 & 0x30) == 0x20) {
        if (((h2 >> 4) & 1) == 0) {
            unsigned o = (((h1 >> 7) & 1) << 2) | ((h1 >> 4) & 3);
            switch (o) {
            case 0: case 1: case 5: case 6:
                d->cls = C_VFP_MAC;       /* VMLA/VMLS, VNMLA/VNMLS, VFNMA/VFNMS, VFMA/VFMS */
                break;
            case 2: case 3:
                d->cls = C_VFP_ALU;       /* VMUL/VNMUL, VADD/VSUB */
                break;
            case 4:
                d->cls = C_VFP_DIV;       /* VDIV */
                break;
            default:
                /* VMOV imm/reg, VABS, VNEG, VSQRT, VCVT, VCMP */
                d->cls = ((h1 & 0xF) == 1 && ((h2 >> 6) & 3) == 3) ? C_VFP_DIV : C_VFP_ALU;
                break;
            }
        } else if (cp == 10 && ((h1 >> 5) & 7) == 0) {
            d->cls = C_VFP_MOV;           /* VMOV core register <-> S */
        } else {
            d->cls = C_VFP_MISC;          /* VMRS, VMSR, VMOV core register <-> half of D */
        }
    }
}

static void dec32(uint16_t h1, uint16_t h2, dec_t *d)
{
    unsigned op1 = (h1 >> 11) & 3;
    unsigned op2 = (h1 >> 4) & 0x7F;
    unsigned op = h2 >> 15;

    if (op1 == 1) {
        if ((op2 & 0x64) == 0x00) {
            /* load/store multiple */
            int load = (h1 >> 4) & 1;
            d->cls = load ? C_LDM : C_STM;
            d->nregs = __builtin_popcount(h2);
            d->ldm_pc = load && (h2 & 0x8000);
            d->rn = h1 & 0xF;
            d->writeback = (h1 >> 5) & 1;
            d->mem = 1;
        } else if ((op2 & 0x64) == 0x04) {
            /* load/store dual or exclusive, table branch */
            unsigned o1 = (h1 >> 7) & 3, o2 = (h1 >> 4) & 3, o3 = (h2 >> 4) & 0xF;
            d->rn = h1 & 0xF;
            d->mem = 1;
            if (o1 == 0 && o2 == 0) {
                d->cls = C_STORE;         /* STREX */
                d->single_st = 1;
                d->rt = h2 >> 12;
            } else if (o1 == 0 && o2 == 1) {
                d->cls = C_LOAD;          /* LDREX */
                d->single_ld = 1;
                d->rt = h2 >> 12;
            } else if (((o1 & 2) == 0 && o2 == 2) || ((o1 & 2) && (o2 & 1) == 0)) {
                d->cls = C_STORE_PAIR;    /* STRD */
                d->writeback = (h1 >> 5) & 1;
            } else if (((o1 & 2) == 0 && o2 == 3) || ((o1 & 2) && (o2 & 1))) {
                d->cls = C_LOAD_PAIR;     /* LDRD */
                d->writeback = (h1 >> 5) & 1;
                d->load_literal = (d->rn == 15);
            } else if (o1 == 1 && o2 == 0) {
                d->cls = C_STORE;         /* STREXB, STREXH */
                d->single_st = 1;
                d->rt = h2 >> 12;
            } else if (o1 == 1 && o2 == 1 && (o3 == 0 || o3 == 1)) {
                d->cls = C_TABLE_BRANCH;  /* TBB, TBH */
                d->rm = h2 & 0xF;
            } else if (o1 == 1 && o2 == 1) {
                d->cls = C_LOAD;          /* LDREXB, LDREXH */
                d->single_ld = 1;
                d->rt = h2 >> 12;
            }
        } else if ((op2 & 0x60) == 0x20) {
            /* data processing (shifted register) */
            unsigned opc = (h1 >> 5) & 0xF, s = (h1 >> 4) & 1, rd = (h2 >> 8) & 0xF;
            d->cls = C_ALU;
            if (rd == 15 && s && (opc == 0 || opc == 4 || opc == 8 || opc == 13)) {
                d->dest = -1;             /* TST, TEQ, CMN, CMP */
            } else {
                d->dest = rd;
            }
        } else if (op2 & 0x40) {
            dec_vfp(h1, h2, d);
        }
    } else if (op1 == 2) {
        if (op == 0) {
            /* data processing (modified or plain binary immediate) */
            unsigned rd = (h2 >> 8) & 0xF;
            d->cls = C_ALU;
            d->dest = rd;
            if ((h1 & 0x0200) == 0) {
                unsigned opc = (h1 >> 5) & 0xF, s = (h1 >> 4) & 1;
                if (rd == 15 && s && (opc == 0 || opc == 4 || opc == 8 || opc == 13)) {
                    d->dest = -1;
                }
            } else {
                unsigned o = (h1 >> 4) & 0x1F;
                /* SSAT16 / USAT16: the saturate forms with no shift */
                if ((o == 0x12 || o == 0x1A) && (h2 & 0x70C0) == 0) {
                    d->cls = C_DSP;
                }
            }
        } else {
            /* branches and miscellaneous control */
            unsigned o1 = (h2 >> 12) & 7;
            if ((o1 & 5) == 0) {
                if (((h1 >> 7) & 7) != 7) {
                    d->cls = C_BRANCH_COND; /* B<c>.W */
                    d->cond_branch = 1;
                } else {
                    unsigned o = (h1 >> 4) & 0x7F;
                    if (o == 0x3A) {
                        d->cls = C_NOP;   /* hints */
                    } else if (o == 0x3B) {
                        unsigned m = (h2 >> 4) & 0xF;
                        d->cls = (m >= 4 && m <= 6) ? C_BARRIER : C_SYSTEM; /* DSB DMB ISB */
                    } else {
                        d->cls = C_SYSTEM; /* MSR, MRS, UDF */
                    }
                }
            } else if ((o1 & 5) == 1 || (o1 & 5) == 5) {
                d->cls = C_BRANCH;        /* B.W, BL */
            }
        }
    } else if (op1 == 3) {
        if ((op2 & 0x71) == 0x00) {
            /* store single data item */
            unsigned o = (h1 >> 5) & 7;
            d->cls = C_STORE;
            d->single_st = 1;
            d->rn = h1 & 0xF;
            d->rt = h2 >> 12;
            d->mem = 1;
            if (o & 4) {
                d->store_imm = 1;         /* imm12 */
            } else if (h2 & 0x800) {
                int p = (h2 >> 10) & 1, w = (h2 >> 8) & 1;
                if (p && !w) {
                    d->store_imm = 1;     /* negative imm8 offset, or STRT */
                } else {
                    d->writeback = 1;
                }
            } else {
                d->rm = h2 & 0xF;         /* register offset */
            }
        } else if ((op2 & 0x67) == 0x01 || (op2 & 0x67) == 0x03 || (op2 & 0x67) == 0x05) {
            /* load byte / halfword / word, memory hints */
            int word = (op2 & 0x67) == 0x05;
            int rt = h2 >> 12, rn = h1 & 0xF;
            if (rt == 15 && !word) {
                d->cls = C_NOP;           /* PLD, PLI */
                return;
            }
            d->cls = C_LOAD;
            d->single_ld = 1;
            d->rt = rt;
            d->rn = rn;
            d->mem = 1;
            d->load_pc = (rt == 15);
            if (rn == 15) {
                d->load_literal = 1;
            } else if (h1 & 0x80) {
                /* imm12 */
            } else if (h2 & 0x800) {
                d->writeback = (h2 >> 8) & 1;
            } else {
                d->rm = h2 & 0xF;
            }
        } else if ((op2 & 0x70) == 0x20) {
            /* data processing (register) */
            unsigned o1 = (h1 >> 4) & 0xF, o2 = (h2 >> 4) & 0xF;
            d->dest = (h2 >> 8) & 0xF;
            if ((o1 & 8) == 0 && o2 == 0) {
                d->cls = C_ALU;           /* LSL/LSR/ASR/ROR (register) */
            } else if ((o1 & 8) == 0 && (o2 & 8)) {
                /* SXTAB16/SXTB16 (0010), UXTAB16/UXTB16 (0011) are SIMD; the rest extend */
                d->cls = (o1 == 2 || o1 == 3) ? C_DSP : C_ALU;
            } else if ((o1 & 8) && (o2 & 8) == 0) {
                d->cls = C_DSP;           /* parallel add/subtract, signed and unsigned */
            } else if ((o1 & 0xC) == 8 && (o2 & 0xC) == 8) {
                unsigned m = o1 & 3;
                if (m == 0) {
                    d->cls = C_DSP;       /* QADD, QDADD, QSUB, QDSUB */
                } else if (m == 1) {
                    d->cls = C_ALU;       /* REV, REV16, RBIT, REVSH */
                } else if (m == 2) {
                    d->cls = C_DSP;       /* SEL */
                } else {
                    d->cls = C_ALU;       /* CLZ */
                }
            } else {
                d->cls = C_OTHER;
                d->dest = -1;
            }
        } else if ((op2 & 0x78) == 0x30) {
            /* multiply, multiply accumulate, absolute difference */
            unsigned o1 = (h1 >> 4) & 7, o2 = (h2 >> 4) & 3, ra = h2 >> 12;
            d->dest = (h2 >> 8) & 0xF;
            if (o1 == 0) {
                d->cls = (o2 == 0 && ra == 15) ? C_MUL : C_MLA; /* MUL ; MLA, MLS */
            } else if (o1 == 7) {
                d->cls = C_DSP;           /* USAD8, USADA8 */
            } else {
                d->cls = C_DSP_MUL;       /* SMLA<x><y>, SMLAD, SMLAW, SMLSD, SMMLA, SMMLS ... */
            }
        } else if ((op2 & 0x78) == 0x38) {
            /* long multiply, long multiply accumulate, divide */
            unsigned o1 = (h1 >> 4) & 7, o2 = (h2 >> 4) & 0xF;
            d->dest = h2 >> 12;
            d->dest2 = (h2 >> 8) & 0xF;
            if ((o1 == 0 || o1 == 2) && o2 == 0) {
                d->cls = C_MULL;          /* SMULL, UMULL */
            } else if ((o1 == 1 || o1 == 3) && o2 == 0xF) {
                d->cls = C_DIV;           /* SDIV, UDIV */
                d->dest = (h2 >> 8) & 0xF;
                d->dest2 = -1;
            } else if ((o1 == 4 && o2 == 0) || (o1 == 6 && (o2 == 0 || o2 == 6))) {
                d->cls = C_MLAL;          /* SMLAL, UMLAL, UMAAL */
            } else if ((o1 == 4 && ((o2 & 0xC) == 8 || (o2 & 0xE) == 0xC)) ||
                       (o1 == 5 && (o2 & 0xE) == 0xC)) {
                d->cls = C_DSP_MUL;       /* SMLAL<x><y>, SMLALD, SMLSLD */
            } else {
                d->cls = C_OTHER;
                d->dest = d->dest2 = -1;
            }
        } else if (op2 & 0x40) {
            dec_vfp(h1, h2, d);
        }
    }
}

static int is_data_processing(int cls)
{
    switch (cls) {
    case C_ALU: case C_MUL: case C_MLA: case C_MULL: case C_MLAL:
    case C_DSP_MUL: case C_DSP: case C_DIV:
        return 1;
    default:
        return 0;
    }
}

/* ---- run time ------------------------------------------------------------------------ */

#define MAX_ADDS 16
typedef struct {
    int n;
    int idx[MAX_ADDS];
    uint64_t amount[MAX_ADDS];
    uint64_t fallthrough;   /* cond branches: address of the next instruction, else 0 */
    int marker;             /* 0, 1 = window start, 2 = window stop */
} insn_info_t;

typedef struct {
    uint64_t vaddr;
    uint32_t bytes;
    int region;
    int first_marker;       /* the block's first instruction is the window start (1) / stop (2) */
} tb_info_t;

static uint64_t pending_fallthrough; /* set by a conditional branch, checked by the next block */
static uint64_t last_run_end;        /* address after the last executed block */

static void apply_adds(const insn_info_t *ii)
{
    for (int i = 0; i < ii->n; i++) {
        cnt[ii->idx[i]] += ii->amount[i];
    }
}

static void window_open(void)
{
    if (!win_active) {
        memcpy(snap, cnt, sizeof(cnt));
        win_active = 1;
    }
}

static void window_close(void)
{
    if (win_active) {
        uint64_t *layer = NULL;
        if (n_steps && win_count >= steps_skip) {
            layer = layer_win + (size_t)steps[(win_count - steps_skip) % n_steps] * N_COUNTERS;
        }
        for (int i = 0; i < N_COUNTERS; i++) {
            win[i] += cnt[i] - snap[i];
            if (layer) {
                layer[i] += cnt[i] - snap[i];
            }
        }
        win_active = 0;
        win_count++;
    }
}

static void vcpu_tb_exec(unsigned int vcpu_index, void *udata)
{
    const tb_info_t *tb = udata;
    (void)vcpu_index;
    /* The outcome of the branch that led here belongs to the branch's side of a marker ... */
    if (pending_fallthrough) {
        if (tb->vaddr != pending_fallthrough) {
            cnt[IDX_EXTRA(X_BRANCH_COND_TAKEN)]++;
        }
        pending_fallthrough = 0;
    }
    /* ... and this block's instruction-cache lines to the marker's side (block callbacks run
     * before the first instruction's callback, so a marker heading a block acts here). */
    if (tb->first_marker == 1) {
        window_open();
    } else if (tb->first_marker == 2) {
        window_close();
    }
    /* Uncached instruction fetch: the distinct W-byte lines this straight-line run spans (each
     * fetched once per run), and whether its first line was reached by a jump (not by falling
     * through from the previous run) into a line other than the one the previous run ended in. */
    if (tb->bytes) {
        int jumped = tb->vaddr != last_run_end;
        for (int w = 0; w < N_LINE_WIDTHS; w++) {
            uint64_t first = tb->vaddr >> line_shifts[w];
            uint64_t last = (tb->vaddr + tb->bytes - 1) >> line_shifts[w];
            /* a run that falls through from the previous one within the same line does not
             * fetch that line again */
            int same = !jumped && first == ((last_run_end - 1) >> line_shifts[w]);
            cnt[IDX_REGION(tb->region, R_LINES4 + w)] += last - first + 1 - (uint64_t)same;
            if (jumped && first != ((last_run_end - 1) >> line_shifts[w])) {
                cnt[IDX_REGION(tb->region, R_JUMP_LINES4 + w)]++;
            }
        }
        last_run_end = tb->vaddr + tb->bytes;
    }
    if (have_icache && tb->region < n_regions && regions[tb->region].cacheable && tb->bytes) {
        uint64_t first = tb->vaddr >> icache.line_shift;
        uint64_t last = (tb->vaddr + tb->bytes - 1) >> icache.line_shift;
        for (uint64_t l = first; l <= last; l++) {
            cnt[IDX_REGION(tb->region, R_ILINE_REFS)]++;
            if (!cache_access(&icache, l << icache.line_shift, 1)) {
                cnt[IDX_REGION(tb->region, R_ILINE_MISSES)]++;
            }
        }
    }
}

static void vcpu_cond_branch(unsigned int vcpu_index, void *udata)
{
    (void)vcpu_index;
    pending_fallthrough = (uint64_t)(uintptr_t)udata;
}

static void vcpu_marker(unsigned int vcpu_index, void *udata)
{
    const insn_info_t *ii = udata;
    (void)vcpu_index;
    if (ii->marker == 1) {
        window_open();
    } else {
        window_close();
    }
    apply_adds(ii);
    if (ii->fallthrough) {
        pending_fallthrough = ii->fallthrough;
    }
}

static void vcpu_mem(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                     void *udata)
{
    (void)vcpu_index;
    (void)udata;
    int r = region_of(vaddr);
    int store = qemu_plugin_mem_is_store(info);
    uint64_t bytes = 1ull << qemu_plugin_mem_size_shift(info);
    cnt[IDX_REGION(r, store ? R_WRITES : R_READS)]++;
    cnt[IDX_REGION(r, store ? R_WRITE_BYTES : R_READ_BYTES)] += bytes;
    if (have_dcache && r < n_regions && regions[r].cacheable) {
        if (!cache_access(&dcache, vaddr, 1)) {
            cnt[IDX_REGION(r, store ? R_WRITE_MISSES : R_READ_MISSES)]++;
        }
    }
}

static void add(insn_info_t *ii, int idx, uint64_t amount)
{
    if (amount && ii->n < MAX_ADDS) {
        ii->idx[ii->n] = idx;
        ii->amount[ii->n] = amount;
        ii->n++;
    }
}

/* Translation-time state handed from one block to the next when they are contiguous. */
static int carry_valid;
static uint64_t carry_next;
static dec_t carry_prev;
static int carry_it_left;

static void vcpu_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    tb_info_t *tbi = calloc(1, sizeof(*tbi));
    dec_t prev;
    dec_init(&prev, 2);
    int have_prev = 0;
    int it_left = 0;

    tbi->vaddr = qemu_plugin_tb_vaddr(tb);
    tbi->region = region_of(tbi->vaddr);
    if (carry_valid && carry_next == tbi->vaddr) {
        /* This block continues the straight-line code of the block translated just before
         * (QEMU split it at a page boundary or an instruction budget): keep the IT state and
         * the previous instruction. */
        prev = carry_prev;
        have_prev = 1;
        it_left = carry_it_left;
    }
    carry_valid = 0;

    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint8_t *p = qemu_plugin_insn_data(insn);
        size_t qsize = qemu_plugin_insn_size(insn);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        dec_t d;
        uint16_t h1 = (uint16_t)(p[0] | (p[1] << 8));
        /* The size comes from the first halfword, not from qemu_plugin_insn_size(): QEMU 7.2's
         * Thumb translator peeks at the next halfword near the end of a (1 KB) page to see
         * whether an instruction crosses it, and that peek is appended to the plugin's copy of
         * a 16-bit instruction's bytes. */
        size_t size = ((h1 >> 11) >= 0x1D) ? 4 : 2;

        if (size == 4 && qsize >= 4) {
            uint16_t h2 = (uint16_t)(p[2] | (p[3] << 8));
            dec_init(&d, 4);
            dec32(h1, h2, &d);
        } else if (size == 4) {
            dec_init(&d, 4);      /* bytes missing: cannot decode */
        } else {
            dec_init(&d, 2);
            dec16(h1, &d);
        }
        tbi->bytes += (uint32_t)size;

        /* Inside an IT block every branch is conditional. */
        if (it_left > 0) {
            if (d.cls == C_BRANCH) {
                d.cls = C_BRANCH_COND;
                d.cond_branch = 1;
            }
            it_left--;
        }
        if (d.cls == C_IT) {
            it_left = d.it_len;
        }
        if (dump_file) {
            fprintf(dump_file, "0x%08" PRIx64 " %zu %s\n", va, size, class_names[d.cls]);
        }

        insn_info_t *ii = calloc(1, sizeof(*ii));
        int r = region_of(va);
        add(ii, IDX_CLASS(d.cls), 1);
        add(ii, IDX_REGION(r, size >= 4 ? R_FETCH32 : R_FETCH16), 1);
        if (d.cls == C_LDM) {
            add(ii, IDX_EXTRA(X_LDM_REGS), d.nregs);
            add(ii, IDX_EXTRA(X_LDM_PC), d.ldm_pc);
        } else if (d.cls == C_STM) {
            add(ii, IDX_EXTRA(X_STM_REGS), d.nregs);
        } else if (d.cls == C_VFP_LDM) {
            add(ii, IDX_EXTRA(X_VFP_LDM_WORDS), d.nregs);
        } else if (d.cls == C_VFP_STM) {
            add(ii, IDX_EXTRA(X_VFP_STM_WORDS), d.nregs);
        }
        add(ii, IDX_EXTRA(X_VFP_LDST64), d.vfp64);
        add(ii, IDX_EXTRA(X_LOAD_PC), d.load_pc);
        add(ii, IDX_EXTRA(X_LOAD_LITERAL), d.load_literal);
        add(ii, IDX_EXTRA(X_STORE_IMM), d.store_imm);
        if (have_prev) {
            /* Cortex-M3/M4 TRM "Load/store timings": a single LDR (no base update, not to PC)
             * pipelines with a following LDR/STR whose address does not use its result. */
            if (prev.single_ld && !prev.writeback && !prev.load_pc &&
                (d.single_ld || d.single_st) && !d.store_imm &&
                d.rn != prev.rt && d.rm != prev.rt) {
                add(ii, IDX_EXTRA(X_LDST_PIPELINED), 1);
            }
            /* ... and an address computed from the result of the preceding data-processing
             * instruction stalls one cycle (no forwarding path). */
            if (d.mem && is_data_processing(prev.cls) && prev.dest >= 0 &&
                (d.rn == prev.dest || d.rm == prev.dest ||
                 (prev.dest2 >= 0 && (d.rn == prev.dest2 || d.rm == prev.dest2)))) {
                add(ii, IDX_EXTRA(X_AGU_STALL), 1);
            }
        }
        if (d.cond_branch) {
            ii->fallthrough = va + size;
        }

        uint64_t va_even = va & ~1ull;
        if (va_even == marker_start || va_even == marker_stop) {
            ii->marker = (va_even == marker_start) ? 1 : 2;
            if (i == 0) {
                tbi->first_marker = ii->marker;
            }
            qemu_plugin_register_vcpu_insn_exec_cb(insn, vcpu_marker, QEMU_PLUGIN_CB_NO_REGS, ii);
            ii = NULL; /* kept by the callback */
        } else {
            for (int k = 0; k < ii->n; k++) {
                qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                           &cnt[ii->idx[k]], ii->amount[k]);
            }
            if (d.cond_branch) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, vcpu_cond_branch,
                                                       QEMU_PLUGIN_CB_NO_REGS,
                                                       (void *)(uintptr_t)ii->fallthrough);
            }
            free(ii);
        }
        if (d.mem || d.cls == C_OTHER || d.cls == C_SYSTEM) {
            qemu_plugin_register_vcpu_mem_cb(insn, vcpu_mem, QEMU_PLUGIN_CB_NO_REGS,
                                             QEMU_PLUGIN_MEM_RW, NULL);
        }
        prev = d;
        have_prev = 1;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, vcpu_tb_exec, QEMU_PLUGIN_CB_NO_REGS, tbi);
    if (have_prev) {
        carry_valid = 1;
        carry_next = tbi->vaddr + tbi->bytes;
        carry_prev = prev;
        carry_it_left = it_left;
    }
}

/* ---- output ------------------------------------------------------------------------- */

static void json_scope(FILE *f, const uint64_t *c)
{
    uint64_t insns = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        insns += c[IDX_CLASS(i)];
    }
    fprintf(f, "{\"insns\": %" PRIu64 ", \"classes\": {", insns);
    for (int i = 0; i < N_CLASSES; i++) {
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", class_names[i], c[IDX_CLASS(i)]);
    }
    uint64_t n16 = 0, n32 = 0;
    for (int r = 0; r <= n_regions; r++) {
        n16 += c[IDX_REGION(r, R_FETCH16)];
        n32 += c[IDX_REGION(r, R_FETCH32)];
    }
    fprintf(f, "}, \"extras\": {");
    for (int i = 0; i < N_EXTRAS; i++) {
        uint64_t v = (i == X_INSN16) ? n16 : (i == X_INSN32) ? n32 : c[IDX_EXTRA(i)];
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", extra_names[i], v);
    }
    fprintf(f, "}, \"regions\": {");
    for (int r = 0; r <= n_regions; r++) {
        fprintf(f, "%s\"%s\": {", r ? ", " : "", r < n_regions ? regions[r].name : "other");
        uint64_t f16 = c[IDX_REGION(r, R_FETCH16)], f32 = c[IDX_REGION(r, R_FETCH32)];
        for (int k = 0; k < N_RFIELDS; k++) {
            uint64_t v = (k == R_FETCH16) ? f16 + f32                     /* fetch_insns */
                       : (k == R_FETCH32) ? 2 * f16 + 4 * f32             /* fetch_bytes */
                       : c[IDX_REGION(r, k)];
            fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", rfield_names[k], v);
        }
        fprintf(f, "}");
    }
    fprintf(f, "}}");
}

static void json_cache(FILE *f, const char *name, int have, const cache_t *c)
{
    if (have) {
        fprintf(f, "\"%s\": {\"size\": %u, \"line\": %u, \"ways\": %u}", name, c->size, c->line,
                c->ways);
    } else {
        fprintf(f, "\"%s\": null", name);
    }
}

static void plugin_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    int open_window = win_active;
    if (win_active) {
        /* a window still open at exit is closed here and flagged */
        for (int i = 0; i < N_COUNTERS; i++) {
            win[i] += cnt[i] - snap[i];
        }
        win_active = 0;
    }
    if (dump_file) {
        fclose(dump_file);
        dump_file = NULL;
    }
    FILE *f = fopen(out_path, "w");
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof(msg), "insn_classes: cannot write %s\n", out_path);
        qemu_plugin_outs(msg);
        return;
    }
    fprintf(f, "{\"format\": \"mcusearch-insn-classes/1\",\n \"regions\": [");
    for (int r = 0; r < n_regions; r++) {
        fprintf(f, "%s{\"name\": \"%s\", \"start\": %" PRIu64 ", \"end\": %" PRIu64
                ", \"cacheable\": %s}", r ? ", " : "", regions[r].name, regions[r].start,
                regions[r].end, regions[r].cacheable ? "true" : "false");
    }
    fprintf(f, "],\n ");
    json_cache(f, "dcache", have_dcache, &dcache);
    fprintf(f, ", ");
    json_cache(f, "icache", have_icache, &icache);
    fprintf(f, ",\n \"total\": ");
    json_scope(f, cnt);
    if (marker_start != UINT64_MAX) {
        fprintf(f, ",\n \"window\": {\"start\": %" PRIu64 ", \"stop\": %" PRIu64
                ", \"intervals\": %" PRIu64 ", \"open_at_exit\": %s, \"counts\": ",
                marker_start, marker_stop, win_count, open_window ? "true" : "false");
        json_scope(f, win);
        fprintf(f, "}");
    } else {
        fprintf(f, ",\n \"window\": null");
    }
    if (n_steps) {
        fprintf(f, ",\n \"layers\": {\"steps\": %" PRIu64 ", \"skip\": %" PRIu64 ", \"counts\": [",
                n_steps, steps_skip);
        for (uint32_t l = 0; l < n_layers; l++) {
            fprintf(f, "%s\n  ", l ? "," : "");
            json_scope(f, layer_win + (size_t)l * N_COUNTERS);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "}\n");
    fclose(f);

    uint64_t insns = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        insns += cnt[i];
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "insn_classes: %" PRIu64 " instructions, %" PRIu64
             " windows, counts in %s\n", insns, win_count, out_path);
    qemu_plugin_outs(msg);
}

/* ---- arguments ---------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (!*s) {
        return -1;
    }
    *v = strtoull(s, &end, 0);
    return (*end == '\0' || *end == ':') ? 0 : -1;
}

static int parse_cache(const char *val, cache_t *c)
{
    unsigned long size, line, ways;
    if (sscanf(val, "%lu:%lu:%lu", &size, &line, &ways) != 3 || !size || !line || !ways ||
        (line & (line - 1)) || size % (line * ways)) {
        return -1;
    }
    c->size = (uint32_t)size;
    c->line = (uint32_t)line;
    c->ways = (uint32_t)ways;
    c->sets = (uint32_t)(size / (line * ways));
    c->line_shift = (uint32_t)__builtin_ctzl(line);
    c->tags = calloc((size_t)c->sets * c->ways, sizeof(uint64_t));
    c->stamp = calloc((size_t)c->sets * c->ways, sizeof(uint64_t));
    return (c->tags && c->stamp) ? 0 : -1;
}

static int parse_steps(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long v;
    if (!f) {
        return -1;
    }
    steps = calloc(MAX_STEPS, sizeof(*steps));
    while (steps && n_steps < MAX_STEPS && fscanf(f, "%lu", &v) == 1) {
        if (v >= MAX_LAYERS) {
            fclose(f);
            return -1;
        }
        steps[n_steps++] = (uint32_t)v;
        if (v + 1 > n_layers) {
            n_layers = (uint32_t)v + 1;
        }
    }
    int bad = !steps || !feof(f) || !n_steps;
    fclose(f);
    if (bad) {
        return -1;
    }
    layer_win = calloc((size_t)n_layers * N_COUNTERS, sizeof(uint64_t));
    return layer_win ? 0 : -1;
}

static int parse_region(const char *val)
{
    /* NAME:START:END[:c] */
    region_t *r = &regions[n_regions];
    const char *c1 = strchr(val, ':');
    if (!c1 || n_regions >= MAX_REGIONS || c1 == val || (size_t)(c1 - val) >= sizeof(r->name)) {
        return -1;
    }
    memcpy(r->name, val, (size_t)(c1 - val));
    r->name[c1 - val] = '\0';
    for (const char *q = r->name; *q; q++) {
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '_' || *q == '-')) {
            return -1;
        }
    }
    if (!strcmp(r->name, "other")) {
        return -1;
    }
    const char *c2 = strchr(c1 + 1, ':');
    if (!c2 || parse_u64(c1 + 1, &r->start) || parse_u64(c2 + 1, &r->end) || r->end <= r->start) {
        return -1;
    }
    const char *c3 = strchr(c2 + 1, ':');
    if (c3) {
        if (strcmp(c3 + 1, "c")) {
            return -1;
        }
        r->cacheable = 1;
    }
    n_regions++;
    return 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    char msg[512];
    if (info->system_emulation && info->system.smp_vcpus > 1) {
        qemu_plugin_outs("insn_classes: only one vCPU is supported\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        int bad = 0;
        if (!eq) {
            bad = 1;
        } else if (!strncmp(a, "out=", 4)) {
            out_path = strdup(eq + 1);
        } else if (!strncmp(a, "region=", 7)) {
            bad = parse_region(eq + 1);
        } else if (!strncmp(a, "start=", 6)) {
            bad = parse_u64(eq + 1, &marker_start);
            marker_start &= ~1ull;
        } else if (!strncmp(a, "stop=", 5)) {
            bad = parse_u64(eq + 1, &marker_stop);
            marker_stop &= ~1ull;
        } else if (!strncmp(a, "dcache=", 7)) {
            bad = parse_cache(eq + 1, &dcache);
            have_dcache = !bad;
        } else if (!strncmp(a, "steps=", 6)) {
            bad = parse_steps(eq + 1);
        } else if (!strncmp(a, "skip=", 5)) {
            bad = parse_u64(eq + 1, &steps_skip);
        } else if (!strncmp(a, "dump=", 5)) {
            dump_file = fopen(eq + 1, "w");
            bad = !dump_file;
        } else if (!strncmp(a, "icache=", 7)) {
            bad = parse_cache(eq + 1, &icache);
            have_icache = !bad;
        } else {
            bad = 1;
        }
        if (bad) {
            snprintf(msg, sizeof(msg), "insn_classes: bad argument '%s'\n", a);
            qemu_plugin_outs(msg);
            return -1;
        }
    }
    if (!out_path) {
        qemu_plugin_outs("insn_classes: out=PATH is required\n");
        return -1;
    }
    if (n_steps && marker_start == UINT64_MAX) {
        qemu_plugin_outs("insn_classes: steps= needs start= and stop=\n");
        return -1;
    }
    if ((marker_start == UINT64_MAX) != (marker_stop == UINT64_MAX) ||
        (marker_start != UINT64_MAX && marker_start == marker_stop)) {
        qemu_plugin_outs("insn_classes: give both start= and stop=, at different addresses\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, vcpu_tb_trans);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
