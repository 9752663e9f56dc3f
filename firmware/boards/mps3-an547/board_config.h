/* QEMU mps3-an547 (Cortex-M55 in the SSE-300 subsystem, boards/qemu_m55.py: qemu-m55), running
 * in secure state: what the shared Cortex-M support (firmware/boards/cortex-m, see board_cm.h)
 * needs to know.
 *
 * The core resets secure with its vector table at 0x10000000, the secure alias of the ITCM, where
 * link.ld puts it. No TrustZone partitioning is set up: the benchmark never leaves secure state.
 * The board timer is SysTick at the core clock (timer_systick.c): the image's CMSDK timer is on
 * the 32 kHz S32K clock, too coarse to count instructions. */
#ifndef MCUS_BOARD_CONFIG_H
#define MCUS_BOARD_CONFIG_H

#define MCUS_BOARD_NAME "mps3-an547"
#define MCUS_EMULATED 1 /* no clock set-up; board_exit() ends QEMU by semihosting */

/* timer_systick.c waits for SysTick's first reload at most this many reads (board_cm.h defines
 * it for real boards only). */
#define MCUS_POLL_LIMIT 1000000u

#endif
