/* Board timer of the QEMU MPS2 boards: a CMSDK APB timer extended to 64 bits. Which one, from
 * board_config.h: MCUS_CMSDK_TIMER_BASE (TIMER0: 0x40000000 on AN385/386/500; 0x50000000, its
 * secure alias, in AN505's SSE-200) and MCUS_TIMER_IRQ (8 on AN385/386/500, 3 on AN505).
 *
 * The timer counts down from RELOAD; on reaching 0 it raises its interrupt, holds 0 for one tick
 * and then reloads, so a period is RELOAD + 1 ticks. The interrupt handler counts arrivals at 0
 * ("wraps"); board_ticks() combines them with the count wrap-safely, so a reading is never off by a
 * period (MCUS_DOWN_COUNTER_BOARD_TICKS in board_cm.h, shared with timer_systick.c).
 *
 * Under QEMU -icount shift=7 the timer advances 128 ns per executed instruction, so
 * ticks = instructions * 128 / 40 at 25 MHz (AN385/386/500), * 128 / 50 at 20 MHz (AN505; the
 * host's QemuBoard.timer_hz). The wrap interrupt handler executes about a dozen instructions once
 * per 2^32 ticks (1.34 G instructions at 25 MHz), the only non-model work counted.
 *
 * MCUS_TIMER_RELOAD may be overridden (tests use a small period to exercise the wrap logic). */
#include <stdint.h>

#include "board.h"
#include "board_cm.h"

#if !defined(MCUS_CMSDK_TIMER_BASE) || !defined(MCUS_TIMER_IRQ)
#error "board_config.h: the CMSDK timer needs MCUS_CMSDK_TIMER_BASE and MCUS_TIMER_IRQ"
#endif

#ifndef MCUS_TIMER_RELOAD
#define MCUS_TIMER_RELOAD 0xFFFFFFFFu
#endif

#define TIMER_CTRL (*(volatile uint32_t *)(MCUS_CMSDK_TIMER_BASE + 0x0u))
#define TIMER_VALUE (*(volatile uint32_t *)(MCUS_CMSDK_TIMER_BASE + 0x4u))
#define TIMER_RELOAD (*(volatile uint32_t *)(MCUS_CMSDK_TIMER_BASE + 0x8u))
/* INTSTATUS on read, INTCLEAR on write (1: clear). */
#define TIMER_INT (*(volatile uint32_t *)(MCUS_CMSDK_TIMER_BASE + 0xCu))
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)

static volatile uint32_t timer_wraps;

void Timer_IRQHandler(void)
{
    TIMER_INT = 1u;
    timer_wraps++;
}

void board_timer_init(void)
{
    TIMER_CTRL = 0u;
    TIMER_RELOAD = MCUS_TIMER_RELOAD;
    TIMER_VALUE = MCUS_TIMER_RELOAD;
    TIMER_INT = 1u;
    timer_wraps = 0u;
    NVIC_ISER0 = 1u << MCUS_TIMER_IRQ;
    TIMER_CTRL = 1u | 8u; /* enable, interrupt enable */
    __asm__ volatile("cpsie i" ::: "memory");
}

/* uint64_t board_ticks(void): the wrap-safe 64-bit count (board_cm.h). */
MCUS_DOWN_COUNTER_BOARD_TICKS(timer_wraps, TIMER_VALUE, TIMER_INT & 1u, MCUS_TIMER_RELOAD)
