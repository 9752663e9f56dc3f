/* Cycle counter for real boards whose core has no DWT cycle counter (Cortex-M0/M0+/M23), or on
 * request: SysTick at the core clock, extended to 64 bits.
 *
 * SysTick (ARMv6-M ARM B3.3; ARMv7-M ARM B3.3) counts down from RVR to 0 and reloads on the next
 * clock, so a period is RVR + 1 = 2^24 cycles; reaching 0 pends its interrupt, whose handler counts
 * the arrival ("wraps"). board_ticks() combines them wrap-safely, also counting an arrival whose
 * interrupt is still pending (ICSR.PENDSTSET): MCUS_DOWN_COUNTER_BOARD_TICKS in board_cm.h, the
 * logic of the QEMU boards' CMSDK timer too. Counted non-model work: the handler, some 15-30
 * cycles per 2^24. */
#include <stdint.h>

#include "board.h"
#include "board_cm.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

#define RELOAD 0x00FFFFFFu

static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps++;
}

void board_timer_init(void)
{
    systick_wraps = 0u;
    SYST_CSR = 0u;
    SYST_RVR = RELOAD;
    SYST_CVR = 0u; /* any write clears the count; it loads RVR on the next clock */
    SYST_CSR = 7u; /* CLKSOURCE = core clock, TICKINT, ENABLE */
    for (uint32_t n = 0; SYST_CVR == 0u && n < MCUS_POLL_LIMIT; n++) {
        /* until the first reload: a 0 read below means "at the end of a period" */
    }
    __asm__ volatile("cpsie i" ::: "memory");
}

/* uint64_t board_ticks(void): the wrap-safe 64-bit count (board_cm.h). */
MCUS_DOWN_COUNTER_BOARD_TICKS(systick_wraps, SYST_CVR, SCB_ICSR & ICSR_PENDSTSET, RELOAD)
