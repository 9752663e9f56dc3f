/* Board support shared by the real (pyOCD) boards: what startup.c, the clock set-up (clock.c of
 * the board's family: stm32f7, stm32h7, generic) and the timer (timer_dwt.c or timer_systick.c)
 * provide to one another. board_config.h is generated per board by mcusearch (boards/pyocd_board.py). */
#ifndef MCUS_BOARD_CM_H
#define MCUS_BOARD_CM_H

#include <stdint.h>

#include "board_config.h" /* MCUS_CLOCK_HZ: the core clock the board is meant to run at */

/* Read by the host at mcus_done (boards/remote.py): the clock the set-up reached, and from what. */
enum {
    MCUS_CLOCK_RESET_DEFAULT = 0, /* left as the core came out of reset */
    MCUS_CLOCK_HSI = 1,           /* internal RC oscillator (through the PLL) */
    MCUS_CLOCK_HSE = 2,           /* external clock (through the PLL) */
    MCUS_CLOCK_HSE_FAILED = 3,    /* HSE did not start: internal RC through the PLL instead */
};
extern volatile uint32_t mcus_clock_hz;
extern volatile uint32_t mcus_clock_source;

/* clock.c: raise the core clock (PLL, regulator, flash wait states) and turn on caches. */
void board_clock_init(void);
/* timer_*.c: start the 64-bit cycle count board_ticks() reads, and its SysTick interrupt. */
void board_timer_init(void);
void SysTick_Handler(void);

/* Cortex-M7 L1 caches (Arm Cortex-M7 TRM and ARMv7-M ARM B2.2.7 "Cache maintenance operations"):
 * invalidate, then enable; in startup.c, used by clock.c of M7 families. */
void board_enable_caches(void);

/* Loops that wait for hardware give up after this many polls (a few ms at reset clocks). */
#define MCUS_POLL_LIMIT 1000000u

#endif
