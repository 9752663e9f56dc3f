/* The benchmark loop. See harness.h for the contract with the host. */
#include "harness.h"

#include "board.h"

volatile mcus_result_t mcus_result __attribute__((used));
volatile mcus_fault_info_t mcus_fault_info __attribute__((used));

static volatile uint32_t mcus_current_input;

/* ---- per-layer markers (see harness.h) ----------------------------------------------------- */

#if defined(MCUS_N_LAYERS) && MCUS_N_LAYERS > 0
volatile mcus_profile_t mcus_profile __attribute__((used));
static uint64_t mcus_layer_t0;

__attribute__((noipa, noinline, used)) void mcus_layer_begin(uint32_t layer)
{
    (void)layer;
    mcus_layer_t0 = board_ticks();
}

__attribute__((noipa, noinline, used)) void mcus_layer_end(uint32_t layer)
{
    const uint64_t t = board_ticks();
    if (layer < MCUS_N_LAYERS) {
        mcus_profile.layer_ticks[layer] += t - mcus_layer_t0;
        mcus_profile.layer_calls[layer] += 1u;
    }
}

/* What the markers cost: measured once, with the same calls the model makes. */
static void mcus_profile_calibrate(void)
{
    uint64_t t0, t1;
    __asm__ volatile("" ::: "memory");
    t0 = board_ticks();
    t1 = board_ticks();
    mcus_profile.empty_ticks = t1 - t0;
    __asm__ volatile("" ::: "memory");
    t0 = board_ticks();
    mcus_layer_begin(0u);
    mcus_layer_end(0u);
    t1 = board_ticks();
    __asm__ volatile("" ::: "memory");
    mcus_profile.pair_ticks = t1 - t0;
    mcus_profile.inside_ticks = mcus_profile.layer_ticks[0];
    mcus_profile.layer_ticks[0] = 0u;
    mcus_profile.layer_calls[0] = 0u;
    mcus_profile.n_layers = MCUS_N_LAYERS;
#ifdef MCUS_NO_LAYER_MARKERS
    mcus_profile.enabled = 0u;
#else
    mcus_profile.enabled = 1u;
#endif
    mcus_profile.magic = MCUS_PROFILE_MAGIC;
}
#else
__attribute__((noipa, noinline, used)) void mcus_layer_begin(uint32_t layer)
{
    (void)layer;
}

__attribute__((noipa, noinline, used)) void mcus_layer_end(uint32_t layer)
{
    (void)layer;
}

static void mcus_profile_calibrate(void)
{
}
#endif
static mcus_output_t mcus_output_buf[MCUS_OUTPUT_LEN];

/* The debugger's breakpoint target. noipa keeps GCC from cloning, inlining or dropping it
 * (a clone such as mcus_done.constprop.0 would never hit a breakpoint set on the symbol). */
__attribute__((noipa, noinline, used)) void mcus_done(void)
{
    __asm__ volatile("" ::: "memory");
    board_exit(mcus_result.status == MCUS_STATUS_DONE ? 0 : 2);
}

void mcus_fault(uint32_t exception, uint32_t pc, uint32_t info0, uint32_t info1)
{
    mcus_fault_info.exception = exception;
    mcus_fault_info.pc = pc;
    mcus_fault_info.info0 = info0;
    mcus_fault_info.info1 = info1;
    mcus_fault_info.input_index = mcus_current_input;
    mcus_result.status = MCUS_STATUS_FAULT;
    mcus_done();
    for (;;) {
    }
}

int main(void)
{
    board_init();
    mcus_result.magic = MCUS_MAGIC;
    mcus_result.status = MCUS_STATUS_RUNNING;
    mcus_result.n_inputs = MCUS_N_INPUTS;
    mcus_result.output_bytes = (uint32_t)MCUS_OUTPUT_BYTES;
    mcus_profile_calibrate();

    for (uint32_t i = 0; i < MCUS_N_INPUTS; i++) {
        mcus_current_input = i;
        __asm__ volatile("" ::: "memory");
        uint64_t t0 = board_ticks();
        mcus_model_run(mcus_inputs[i], mcus_output_buf);
        uint64_t t1 = board_ticks();
        __asm__ volatile("" ::: "memory");
        mcus_result.ticks[i] = t1 - t0;
        const uint8_t *src = (const uint8_t *)mcus_output_buf;
        volatile uint8_t *dst = &mcus_result.outputs[i * MCUS_OUTPUT_BYTES];
        for (uint32_t k = 0; k < MCUS_OUTPUT_BYTES; k++) {
            dst[k] = src[k];
        }
    }

    mcus_result.status = MCUS_STATUS_DONE;
    mcus_done();
    return 0;
}
