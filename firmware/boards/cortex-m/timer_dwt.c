/* Cycle counter for real Cortex-M3/M4/M7/M33 boards: DWT CYCCNT, extended to 64 bits.
 *
 * CYCCNT (ARMv7-M ARM C1.8.8; ARMv8-M likewise) counts core clock cycles in 32 bits: it wraps
 * every 2^32 cycles (19.9 s at 216 MHz). A SysTick interrupt every 2^24 cycles samples it, and
 * every read (interrupts masked) counts a wrap when the count went backwards since the last
 * sample, so no wrap goes unseen however long an inference runs. The only non-model work counted
 * is that interrupt: some 20-40 cycles per 16.8 M cycles (about 2 ppm).
 *
 * Enabling: DEMCR.TRCENA (C1.6.5) powers the DWT; on the Cortex-M7 the DWT's software lock
 * (LAR, CoreSight lock access register) must be opened with 0xC5ACCE55 before CYCCNT can be
 * written; on cores without the lock the write is ignored. DWT_CTRL.NOCYCCNT (bit 25) says the
 * counter is absent: then board_ticks() stays 0 and the host reports it. QEMU reads CYCCNT as 0.
 * The interrupt masking around a read is board_cm.h's, shared with the SysTick and CMSDK timers. */
#include <stdint.h>

#include "board.h"
#include "board_cm.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint32_t cyc_last; /* CYCCNT at the last sample */
static volatile uint32_t cyc_high; /* wraps seen: the upper 32 bits */

/* Call with interrupts masked (or from the SysTick handler, which nothing else preempts here). */
static uint64_t sample(void)
{
    uint32_t now = DWT_CYCCNT;
    if (now < cyc_last) {
        cyc_high++;
    }
    cyc_last = now;
    return ((uint64_t)cyc_high << 32) | now;
}

void SysTick_Handler(void)
{
    (void)sample();
}

void board_timer_init(void)
{
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0u;
    cyc_last = 0u;
    cyc_high = 0u;
    DWT_CTRL |= 1u; /* CYCCNTENA */

    SYST_RVR = 0x00FFFFFFu; /* period 2^24 cycles */
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* CLKSOURCE = core clock, TICKINT, ENABLE (ARMv7-M ARM B3.3.3) */
    __asm__ volatile("cpsie i" ::: "memory");
}

uint64_t board_ticks(void)
{
    uint32_t primask;
    MCUS_IRQ_SAVE(primask);
    uint64_t t = sample();
    MCUS_IRQ_RESTORE(primask);
    return t;
}
