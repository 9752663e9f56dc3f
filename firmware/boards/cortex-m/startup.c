/* Startup for every Cortex-M board, emulated (QEMU MPS2) and real (pyOCD): vector table, reset
 * handler (.data/.bss and result-block init, FPU enable, C++ constructors), fault handlers, and
 * board_init()/board_exit() of the harness's board.h. What differs per board comes from
 * board_config.h (see board_cm.h): whether it is emulated, its clock, its timer's interrupt.
 *
 * The board's linker script (link.ld in firmware/boards/mps2-an50x, or generated per real board by
 * boards/pyocd_board.py) puts code and constants in flash, .data/.bss in RAM, the harness's result
 * block between __result_start__ and __result_end__ (on real boards in a RAM the debugger reads
 * without going through the data cache: DTCM on STM32F7/H7; empty on QEMU boards, where the block
 * is in .bss) and the stack at the top of RAM.
 * Nothing here is specific to a vendor: a real board's clock set-up is in its family's clock.c. */
#include <stdint.h>

#include "board.h"
#include "board_cm.h"

extern uint32_t __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
extern uint32_t __result_start__, __result_end__;
extern uint32_t __stack_top__;
extern void (*__preinit_array_start[])(void), (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
#define MCUS_V6M_LIKE 1 /* Cortex-M0/M0+/M23: no CFSR/HFSR, no IT blocks */
#else
#define MCUS_V6M_LIKE 0
#endif

#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)

#if !MCUS_EMULATED
volatile uint32_t mcus_clock_hz __attribute__((used));
volatile uint32_t mcus_clock_source __attribute__((used));
#endif

/* newlib's exit()/__libc_init_array reference these when linked with -nostartfiles. */
void _init(void) {}
void _fini(void) {}

__attribute__((used, noinline)) void mcus_reset_c(void)
{
    uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0;
    }
    for (uint32_t *dst = &__result_start__; dst < &__result_end__;) {
        *dst++ = 0;
    }
    for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) {
        (*f)();
    }
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) {
        (*f)();
    }
    board_exit(main());
}

/* Naked: nothing may touch the FPU before CPACR grants access to it (ARMv7-M ARM B3.2.20). On
 * Armv8-M in secure state (QEMU mps2-an505) this is the secure CPACR. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
#if defined(__ARM_FP)
        "ldr r0, =0xE000ED88      \n" /* CPACR: full access to CP10 and CP11 (the FPU) */
        "ldr r1, [r0]             \n"
        "orr r1, r1, #(0xF << 20) \n"
        "str r1, [r0]             \n"
        "dsb                      \n"
        "isb                      \n"
#endif
        "ldr r0, =mcus_reset_c    \n"
        "bx r0                    \n");
}

void board_init(void)
{
#if !MCUS_EMULATED
    mcus_record_clock(MCUS_CLOCK_HZ, MCUS_CLOCK_RESET_DEFAULT);
    board_clock_init();
#endif
    board_timer_init();
}

#if MCUS_EMULATED
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
#else
/* The host stops the core at mcus_done() (a breakpoint) before this runs; without a debugger the
 * core waits here for ever. */
void board_exit(int code)
{
    (void)code;
    __asm__ volatile("cpsid i" ::: "memory");
    for (;;) {
        __asm__ volatile("wfi");
    }
}
#endif

#if !MCUS_EMULATED && !MCUS_V6M_LIKE
/* Cortex-M7 L1 caches: ARMv7-M ARM B2.2.7 and the Cortex-M7 TRM, "Initializing and enabling the
 * L1 cache": invalidate the I-cache (ICIALLU) and every D-cache set/way (DCISW, geometry from
 * CCSIDR for CSSELR = 0), then set CCR.IC and CCR.DC. Not called on cores without caches. */
#define SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define SCB_CCSIDR (*(volatile uint32_t *)0xE000ED80u)
#define SCB_CSSELR (*(volatile uint32_t *)0xE000ED84u)
#define SCB_ICIALLU (*(volatile uint32_t *)0xE000EF50u)
#define SCB_DCISW (*(volatile uint32_t *)0xE000EF60u)

void board_enable_caches(void)
{
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_ICIALLU = 0u;
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_CCR |= 1u << 17; /* IC */
    __asm__ volatile("dsb\n isb" ::: "memory");

    SCB_CSSELR = 0u; /* level 1 data cache */
    __asm__ volatile("dsb" ::: "memory");
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = (ccsidr >> 13) & 0x7FFFu;
    do {
        uint32_t ways = (ccsidr >> 3) & 0x3FFu;
        do {
            SCB_DCISW = ((sets & 0x1FFu) << 5) | ((ways & 0x3u) << 30);
        } while (ways-- != 0u);
    } while (sets-- != 0u);
    __asm__ volatile("dsb" ::: "memory");
    SCB_CCR |= 1u << 16; /* DC */
    __asm__ volatile("dsb\n isb" ::: "memory");
}
#endif

__attribute__((used, noinline)) void mcus_fault_c(const uint32_t *frame, uint32_t ipsr)
{
    uint32_t pc = frame ? frame[6] : 0;
#if MCUS_V6M_LIKE
    mcus_fault(ipsr & 0x1FFu, pc, 0u, 0u);
#else
    mcus_fault(ipsr & 0x1FFu, pc, SCB_CFSR, SCB_HFSR);
#endif
}

/* Every fault and unexpected interrupt: pass the stacked frame and the exception number on. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
#if MCUS_V6M_LIKE
        "movs r0, #4         \n"
        "mov r1, lr          \n"
        "tst r0, r1          \n"
        "beq 1f              \n"
        "mrs r0, psp         \n"
        "b 2f                \n"
        "1: mrs r0, msp      \n"
        "2: mrs r1, ipsr     \n"
#else
        "tst lr, #4          \n"
        "ite eq              \n"
        "mrseq r0, msp       \n"
        "mrsne r0, psp       \n"
        "mrs r1, ipsr        \n"
#endif
        "ldr r2, =mcus_fault_c \n"
        "bx r2               \n");
}

/* The timer's wrap interrupt, if the board's timer source defines it; else a fault. */
void SysTick_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void Timer_IRQHandler(void) __attribute__((weak, alias("Fault_Handler")));

/* No other interrupt is enabled; any that fires is reported as a fault. */
#ifndef MCUS_N_IRQ
#define MCUS_N_IRQ 32
#endif
#if defined(MCUS_TIMER_IRQ) && (MCUS_TIMER_IRQ < 0 || MCUS_TIMER_IRQ >= MCUS_N_IRQ)
#error "board_config.h: MCUS_TIMER_IRQ outside the vector table (MCUS_N_IRQ)"
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init" /* the timer's slot overrides the range below */
__attribute__((section(".vectors"), used)) void (*const mcus_vectors[16 + MCUS_N_IRQ])(void) = {
    [0] = (void (*)(void))(&__stack_top__),
    [1] = Reset_Handler,
    [2] = Fault_Handler,  /* NMI */
    [3] = Fault_Handler,  /* HardFault */
    [4] = Fault_Handler,  /* MemManage */
    [5] = Fault_Handler,  /* BusFault */
    [6] = Fault_Handler,  /* UsageFault */
    [7] = Fault_Handler,  /* SecureFault (Armv8-M Mainline; reserved before) */
    [8 ... 10] = 0,
    [11] = Fault_Handler, /* SVCall */
    [12] = Fault_Handler, /* DebugMonitor */
    [13] = 0,
    [14] = Fault_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 16 + MCUS_N_IRQ - 1] = Fault_Handler,
#ifdef MCUS_TIMER_IRQ
    [16 + MCUS_TIMER_IRQ] = Timer_IRQHandler,
#endif
};
#pragma GCC diagnostic pop
