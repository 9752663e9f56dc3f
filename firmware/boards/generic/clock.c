/* Generic pyOCD board: the clock is left as the part comes out of reset (its internal oscillator),
 * and the caches (if any) stay off, so the same image runs on any part of the declared core. The
 * declared clock (board_config.h, from the board's definition) is only what latencies are computed
 * with: declare the reset clock, or measured cycles turn into wrong milliseconds.
 * A part-specific set-up (PLL, wait states, caches) belongs in a family folder like stm32f7/. */
#include "board_cm.h"

void board_clock_init(void)
{
    /* Nothing to set up: board_init() (startup.c) has recorded MCUS_CLOCK_HZ, "reset default". */
}
