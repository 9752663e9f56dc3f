/* QEMU mps2-an500 (Cortex-M7), and mps2-an385 (M3) and mps2-an386 (M4), which QEMU builds from the
 * same model with the same memory map and timer (boards/qemu.py: qemu-m7, qemu-m4, qemu-m3): what
 * the shared Cortex-M support (firmware/boards/cortex-m, see board_cm.h) needs to know. */
#ifndef MCUS_BOARD_CONFIG_H
#define MCUS_BOARD_CONFIG_H

#define MCUS_BOARD_NAME "mps2-an500"
#define MCUS_EMULATED 1 /* no clock set-up; board_exit() ends QEMU by semihosting */

/* The board timer: CMSDK APB TIMER0 at 0x40000000, IRQ 8, 25 MHz (timer_cmsdk.c). */
#define MCUS_CMSDK_TIMER_BASE 0x40000000u
#define MCUS_TIMER_IRQ 8

#endif
