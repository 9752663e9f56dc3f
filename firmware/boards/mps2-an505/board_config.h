/* QEMU mps2-an505 (Cortex-M33 in the SSE-200 subsystem, boards/qemu.py: qemu-m33), running in
 * secure state: what the shared Cortex-M support (firmware/boards/cortex-m, see board_cm.h) needs
 * to know.
 *
 * The core resets secure with VTOR_S = 0x10000000 (SSE-200 INITSVTOR0), the secure alias of SSRAM1,
 * where link.ld puts the vector table. Everything (code, data, TIMER0) is used through its secure
 * alias; no TrustZone partitioning is set up: the benchmark never leaves secure state. */
#ifndef MCUS_BOARD_CONFIG_H
#define MCUS_BOARD_CONFIG_H

#define MCUS_BOARD_NAME "mps2-an505"
#define MCUS_EMULATED 1 /* no clock set-up; board_exit() ends QEMU by semihosting */

/* The board timer: the SSE-200's CMSDK APB TIMER0 through its secure alias 0x50000000 (of
 * 0x40000000), IRQ 3, on the 20 MHz MAINCLK in QEMU's mps2-tz (timer_cmsdk.c). */
#define MCUS_CMSDK_TIMER_BASE 0x50000000u
#define MCUS_TIMER_IRQ 3

#endif
