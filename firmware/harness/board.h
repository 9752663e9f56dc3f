/* The board-support interface the harness uses (implemented by firmware/boards/cortex-m/ with
 * each board folder's board_config.h; see firmware/boards/README.md),
 * and the one hook the board's fault handlers call back into the harness. */
#ifndef MCUS_BOARD_H
#define MCUS_BOARD_H

#include <stdint.h>

/* Start the board's benchmark timer (and anything else the harness needs). */
void board_init(void);

/* Monotonic 64-bit tick count of the benchmark timer, wrap-safe. */
uint64_t board_ticks(void);

/* End the program (semihosting exit on emulated boards; park the core on real ones). */
void board_exit(int code) __attribute__((noreturn));

/* Harness side: record a fault (exception number, faulting PC, two board-specific status words,
 * e.g. CFSR and HFSR), set the result block's status to 2 and stop at mcus_done(). */
void mcus_fault(uint32_t exception, uint32_t pc, uint32_t info0, uint32_t info1)
    __attribute__((noreturn));

#endif
