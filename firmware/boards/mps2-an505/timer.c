/* Board timer for QEMU mps2-an505: the SSE-200's CMSDK APB TIMER0 (20 MHz, secure alias
 * 0x50000000, IRQ 3) extended to 64 bits. Same logic as mps2-an500/timer.c.
 *
 * TIMER0 counts down from RELOAD; on reaching 0 it raises its interrupt, holds 0 for one tick and
 * then reloads, so a period is RELOAD + 1 ticks. The interrupt handler counts arrivals at 0
 * ("wraps"). board_ticks() reads the count with interrupts masked and also counts an arrival whose
 * interrupt is still pending, so a reading is never off by a period, however long an inference.
 *
 * Under QEMU -icount shift=7 the timer advances 128 ns per executed instruction, so
 * ticks = instructions * 128 / 50. The wrap interrupt handler itself executes about a dozen
 * instructions once per 2^32 ticks (1.68 G instructions), the only non-model work counted.
 *
 * MCUS_TIMER_RELOAD may be overridden (tests use a small period to exercise the wrap logic). */
#include <stdint.h>

#include "board.h"

#ifndef MCUS_TIMER_RELOAD
#define MCUS_TIMER_RELOAD 0xFFFFFFFFu
#endif

#define TIMER0_BASE 0x50000000u /* secure alias of 0x40000000 */
#define TIMER0_CTRL (*(volatile uint32_t *)(TIMER0_BASE + 0x0))
#define TIMER0_VALUE (*(volatile uint32_t *)(TIMER0_BASE + 0x4))
#define TIMER0_RELOAD (*(volatile uint32_t *)(TIMER0_BASE + 0x8))
#define TIMER0_INT (*(volatile uint32_t *)(TIMER0_BASE + 0xC)) /* read: status, write 1: clear */
#define TIMER0_IRQ 3u
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)

#define PERIOD ((uint64_t)MCUS_TIMER_RELOAD + 1u)

static volatile uint32_t timer_wraps;

void TIMER0_Handler(void)
{
    TIMER0_INT = 1u;
    timer_wraps++;
}

void board_init(void)
{
    TIMER0_CTRL = 0u;
    TIMER0_RELOAD = MCUS_TIMER_RELOAD;
    TIMER0_VALUE = MCUS_TIMER_RELOAD;
    TIMER0_INT = 1u;
    timer_wraps = 0u;
    NVIC_ISER0 = 1u << TIMER0_IRQ;
    TIMER0_CTRL = 1u | 8u; /* enable, interrupt enable */
    __asm__ volatile("cpsie i" ::: "memory");
}

uint64_t board_ticks(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    uint32_t wraps = timer_wraps;
    uint32_t value = TIMER0_VALUE;
    if (TIMER0_INT & 1u) {
        /* Reached 0 since the handler last ran: count it, and re-read, now surely after it. */
        wraps++;
        value = TIMER0_VALUE;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    /* Ticks since start: 'wraps' arrivals at 0, each one tick before its period ends (0 is held
     * for a tick before the reload), so a 0 reading is the last tick of the previous period. */
    if (value == 0u) {
        return (uint64_t)wraps * PERIOD - 1u;
    }
    return (uint64_t)wraps * PERIOD + (MCUS_TIMER_RELOAD - value);
}

/* Semihosting SYS_EXIT_EXTENDED: QEMU exits with 'code' as its status. */
void board_exit(int code)
{
    static volatile uint32_t block[2];
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
