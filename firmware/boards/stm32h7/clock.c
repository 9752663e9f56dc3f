/* STM32H743 clock set-up for a measurement (RM0433): 400 MHz core from PLL1 at voltage scale 1,
 * 200 MHz AXI/AHB with 2 flash wait states, and the Cortex-M7 L1 instruction and data caches on.
 *
 * 400 MHz is the highest clock every silicon revision supports at VOS1; 480 MHz needs revision V
 * and VOS0 (SYSCFG over-drive), which is not done here. Used by nucleo-h743zi.
 *
 * Clock source: HSE in bypass mode, the 8 MHz MCO of the NUCLEO-144's ST-LINK (UM2407 "HSE clock",
 * the default), else the 64 MHz HSI; both give a 2 MHz PLL1 input:
 *   HSE 8 MHz / DIVM1 4 or HSI 64 MHz / DIVM1 32 = 2 MHz (PLL1RGE = 2-4 MHz, wide VCO);
 *   x DIVN1 400 = VCO 800 MHz; / DIVP1 2 = 400 MHz SYSCLK; / DIVQ1 4, / DIVR1 2 (unused).
 *   D1CPRE /1 (core 400 MHz), HPRE /2 (AXI/AHB 200 MHz), all APB prescalers /2 (100 MHz).
 * RM0433 sections followed: "Power supply configuration" (PWR_CR3: LDO supply, SCUEN cleared,
 * wait PWR_CSR1.ACTVOSRDY), "Voltage scaling" (PWR_D3CR.VOS = scale 1, wait VOSRDY), RCC "PLL
 * initialization phase" (PLLCKSELR, PLLCFGR, PLL1DIVR, PLL1ON, wait PLL1RDY), Embedded flash
 * "FLASH read latency" table (VOS1, AXI 185-210 MHz: LATENCY 2, WRHIGHFREQ 10), then the SYSCLK
 * switch (RCC_CFGR.SW = PLL1, wait SWS). The host reads mcus_clock_hz and fails the trial if the
 * core is not at 400 MHz.
 * The result block is in DTCM (the linker script), which the debugger reads past the D-cache.
 * The steps both STM32 families take (HSE start or fall-back, SYSCLK switch, polling) and the L1
 * cache enable are shared: board_cm.h and startup.c in firmware/boards/cortex-m.
 * Untested on hardware here (no board on this machine); it compiles and links in CI. */
#include <stdint.h>

#include "board_cm.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define PWR_BASE 0x58024800u
#define PWR_CSR1 REG(PWR_BASE + 0x04u)
#define PWR_CR3 REG(PWR_BASE + 0x0Cu)
#define PWR_D3CR REG(PWR_BASE + 0x18u)
#define RCC_BASE 0x58024400u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_CFGR REG(RCC_BASE + 0x10u)
#define RCC_D1CFGR REG(RCC_BASE + 0x18u)
#define RCC_D2CFGR REG(RCC_BASE + 0x1Cu)
#define RCC_D3CFGR REG(RCC_BASE + 0x20u)
#define RCC_PLLCKSELR REG(RCC_BASE + 0x28u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x2Cu)
#define RCC_PLL1DIVR REG(RCC_BASE + 0x30u)
#define FLASH_ACR REG(0x52002000u)

#define PWR_CR3_BYPASS (1u << 0)
#define PWR_CR3_LDOEN (1u << 1)
#define PWR_CR3_SCUEN (1u << 2)
#define PWR_CSR1_ACTVOSRDY (1u << 13)
#define PWR_D3CR_VOSRDY (1u << 13)
#define RCC_CR_PLL1ON (1u << 24)
#define RCC_CR_PLL1RDY (1u << 25)

#define DIVN1 400u
#define DIVP1 2u
#define DIVQ1 4u
#define DIVR1 2u
#define SYSCLK_HZ 400000000u

void board_clock_init(void)
{
    /* The reset clock (HSI 64 MHz) until the switch below succeeds. */
    mcus_record_clock(64000000u, MCUS_CLOCK_RESET_DEFAULT);

    /* Supply: the LDO (NUCLEO-H743ZI has no SMPS); clearing SCUEN locks the configuration. */
    PWR_CR3 = (PWR_CR3 & ~(PWR_CR3_BYPASS | PWR_CR3_SCUEN)) | PWR_CR3_LDOEN;
    int ok = mcus_wait_set(&PWR_CSR1, PWR_CSR1_ACTVOSRDY);

    /* Voltage scale 1: VOS [15:14] = 11. */
    PWR_D3CR = (PWR_D3CR & ~(3u << 14)) | (3u << 14);
    ok = ok && mcus_wait_set(&PWR_D3CR, PWR_D3CR_VOSRDY);

    /* HSE bypass (external 8 MHz, / DIVM1 4), else HSI 64 MHz (/ DIVM1 32); PLLSRC 2 HSE, 0 HSI. */
    const uint32_t source = mcus_stm32_start_hse_bypass(&RCC_CR);
    const uint32_t pll_src = source == MCUS_CLOCK_HSE ? 2u : 0u;
    const uint32_t divm1 = source == MCUS_CLOCK_HSE ? 4u : 32u;

    /* PLL1 (off at reset): PLLCKSELR.PLLSRC [1:0], DIVM1 [9:4]; PLLCFGR PLL1FRACEN [0] = 0,
     * PLL1VCOSEL [1] = 0 (wide), PLL1RGE [3:2] = 01 (2-4 MHz), DIVP1EN/DIVQ1EN/DIVR1EN [18:16];
     * PLL1DIVR: DIVN1-1 [8:0], DIVP1-1 [15:9], DIVQ1-1 [22:16], DIVR1-1 [30:24]. */
    RCC_PLLCKSELR = (RCC_PLLCKSELR & ~(0x3Fu << 4 | 3u)) | (divm1 << 4) | pll_src;
    RCC_PLLCFGR = (RCC_PLLCFGR & ~0x7000Fu) | (1u << 2) | (7u << 16);
    RCC_PLL1DIVR = (DIVN1 - 1u) | ((DIVP1 - 1u) << 9) | ((DIVQ1 - 1u) << 16) | ((DIVR1 - 1u) << 24);
    RCC_CR |= RCC_CR_PLL1ON;
    ok = ok && mcus_wait_set(&RCC_CR, RCC_CR_PLL1RDY);

    /* Flash: LATENCY [3:0] = 2, WRHIGHFREQ [5:4] = 10, before raising the clock; read back. */
    FLASH_ACR = (FLASH_ACR & ~0x3Fu) | 2u | (2u << 4);
    ok = ok && (FLASH_ACR & 0x3Fu) == (2u | (2u << 4));

    /* D1CPRE [11:8] = /1, D1PPRE [6:4] = /2, HPRE [3:0] = /2; D2PPRE1 [6:4], D2PPRE2 [10:8],
     * D3PPRE [6:4] = /2 (code 100). */
    RCC_D1CFGR = (RCC_D1CFGR & ~0xF7Fu) | (4u << 4) | 8u;
    RCC_D2CFGR = (RCC_D2CFGR & ~0x770u) | (4u << 4) | (4u << 8);
    RCC_D3CFGR = (RCC_D3CFGR & ~0x70u) | (4u << 4);

    if (ok) {
        /* SW [2:0] = PLL1 (3), then wait for SWS [5:3] to say so. */
        mcus_stm32_switch_sysclk(&RCC_CFGR, 3u, 3u, SYSCLK_HZ, source);
    }

    board_enable_caches();
}
