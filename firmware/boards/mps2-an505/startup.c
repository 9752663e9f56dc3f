/* Startup for QEMU mps2-an505 (Cortex-M33 in the SSE-200 subsystem), running in secure state:
 * vector table, reset handler, fault handlers.
 *
 * The core resets secure with VTOR_S = 0x10000000 (SSE-200 INITSVTOR0), the secure alias of SSRAM1,
 * where the linker script puts this table. Everything (code, data, TIMER0) is used through its
 * secure alias; no TrustZone partitioning is set up: the benchmark never leaves secure state. */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
extern void (*__preinit_array_start[])(void), (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void TIMER0_Handler(void); /* timer.c */

#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)

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
    for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) {
        (*f)();
    }
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) {
        (*f)();
    }
    board_exit(main());
}

/* Naked: nothing may touch the FPU before CPACR grants access to it. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
#if defined(__ARM_FP)
        "ldr r0, =0xE000ED88      \n" /* CPACR (secure): full access to CP10 and CP11 (the FPU) */
        "ldr r1, [r0]             \n"
        "orr r1, r1, #(0xF << 20) \n"
        "str r1, [r0]             \n"
        "dsb                      \n"
        "isb                      \n"
#endif
        "b mcus_reset_c           \n");
}

__attribute__((used, noinline)) void mcus_fault_c(const uint32_t *frame, uint32_t ipsr)
{
    uint32_t pc = frame ? frame[6] : 0;
    mcus_fault(ipsr & 0x1FFu, pc, SCB_CFSR, SCB_HFSR);
}

/* Every fault and unexpected interrupt: pass the stacked frame and the exception number on. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4     \n"
        "ite eq         \n"
        "mrseq r0, msp  \n"
        "mrsne r0, psp  \n"
        "mrs r1, ipsr   \n"
        "b mcus_fault_c \n");
}

#define N_IRQ 32

__attribute__((section(".vectors"), used)) void (*const mcus_vectors[16 + N_IRQ])(void) = {
    [0] = (void (*)(void))(&__stack_top__),
    [1] = Reset_Handler,
    [2] = Fault_Handler,  /* NMI */
    [3] = Fault_Handler,  /* HardFault */
    [4] = Fault_Handler,  /* MemManage */
    [5] = Fault_Handler,  /* BusFault */
    [6] = Fault_Handler,  /* UsageFault */
    [7] = Fault_Handler,  /* SecureFault (Armv8-M) */
    [8 ... 10] = 0,
    [11] = Fault_Handler, /* SVCall */
    [12] = Fault_Handler, /* DebugMonitor */
    [13] = 0,
    [14] = Fault_Handler, /* PendSV */
    [15] = Fault_Handler, /* SysTick */
    [16 ... 16 + 2] = Fault_Handler,
    [16 + 3] = TIMER0_Handler, /* SSE-200 TIMER0: IRQ 3 */
    [16 + 4 ... 16 + N_IRQ - 1] = Fault_Handler,
};
