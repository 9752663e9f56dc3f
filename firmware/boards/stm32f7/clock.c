/* STM32F7 clock set-up for a measurement: 216 MHz from the PLL, regulator over-drive, 7 flash wait
 * states with the ART accelerator and prefetch on, and the Cortex-M7 L1 instruction and data
 * caches on. Used by nucleo-f767zi (RM0410, STM32F76x/77x) and nucleo-f722ze (RM0431,
 * STM32F72x/73x); the registers and bits used here are the same in both manuals.
 *
 * Clock source: HSE in bypass mode, the 8 MHz MCO of the NUCLEO-144's ST-LINK (board manual UM1974
 * "HSE clock (high-speed external clock)": MCO from ST-LINK, the default). If HSE does not become
 * ready (solder bridges changed), the 16 MHz HSI feeds the PLL instead; the host reads which one
 * was used (mcus_clock_source) and the clock reached (mcus_clock_hz) and fails the trial if it is
 * not 216 MHz. Both give a 2 MHz PLL input (as RM "PLL configuration" recommends for jitter):
 *   HSE 8 MHz / M 4 or HSI 16 MHz / M 8 = 2 MHz; x N 216 = VCO 432 MHz; / P 2 = 216 MHz SYSCLK;
 *   / Q 9 = 48 MHz (USB, unused). AHB /1 = 216 MHz, APB1 /4 = 54 MHz, APB2 /2 = 108 MHz (limits
 *   54 and 108 MHz, RM "Reset and clock control", RCC_CFGR).
 * Sequence: RM "Power control (PWR)", section "Entering Over-drive mode" (voltage scale 1, PLL on,
 * ODEN/ODRDY, ODSWEN/ODSWRDY, flash latency and prescalers, wait PLL lock, switch SYSCLK).
 * Flash: RM "Embedded flash memory", table "Number of wait states according to CPU clock (HCLK)
 * frequency": 2.7-3.6 V, 210 < HCLK <= 216 MHz: 7 WS. FLASH_ACR.ARTEN/PRFTEN enable the ART
 * accelerator and prefetch, which serve flash reads over the ITCM interface (0x00200000); the
 * image here runs from the AXIM alias 0x08000000, where the M7's L1 caches do that work.
 * The steps both STM32 families take (HSE start or fall-back, SYSCLK switch, polling) and the L1
 * cache enable are shared: board_cm.h and startup.c in firmware/boards/cortex-m.
 * Untested on hardware here (no board on this machine); it compiles and links in CI. */
#include <stdint.h>

#include "board_cm.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_APB1ENR REG(RCC_BASE + 0x40u)
#define PWR_BASE 0x40007000u
#define PWR_CR1 REG(PWR_BASE + 0x00u)
#define PWR_CSR1 REG(PWR_BASE + 0x04u)
#define FLASH_ACR REG(0x40023C00u)

#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_APB1ENR_PWREN (1u << 28)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)
#define FLASH_ACR_LATENCY_7WS 7u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
#define FLASH_ACR_ARTRST (1u << 11)

#define PLL_N 216u
#define PLL_Q 9u
#define SYSCLK_HZ 216000000u

void board_clock_init(void)
{
    /* The reset clock (HSI 16 MHz) until the switch below succeeds. */
    mcus_record_clock(16000000u, MCUS_CLOCK_RESET_DEFAULT);

    /* Power interface clock, then regulator voltage scale 1 (only while the PLL is off). */
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR1 = (PWR_CR1 & ~(3u << 14)) | PWR_CR1_VOS_SCALE1;

    /* HSE bypass (external 8 MHz, / M 4), else HSI 16 MHz (/ M 8): PLLSRC 1 = HSE, 0 = HSI. */
    const uint32_t source = mcus_stm32_start_hse_bypass(&RCC_CR);
    const uint32_t pll_src = source == MCUS_CLOCK_HSE ? 1u : 0u;
    const uint32_t pll_m = source == MCUS_CLOCK_HSE ? 4u : 8u;

    /* PLL: M [5:0], N [14:6], P [17:16] = 00 (/2), PLLSRC [22], Q [27:24]; bits 31:28 (PLLR on
     * F76x, reserved on F72x) keep their reset value. */
    RCC_PLLCFGR = (RCC_PLLCFGR & 0xF0000000u) | pll_m | (PLL_N << 6) | (0u << 16) | (pll_src << 22) | (PLL_Q << 24);
    RCC_CR |= RCC_CR_PLLON;

    /* Over-drive, needed above 180 MHz. */
    PWR_CR1 |= PWR_CR1_ODEN;
    int ok = mcus_wait_set(&PWR_CSR1, PWR_CSR1_ODRDY);
    if (ok) {
        PWR_CR1 |= PWR_CR1_ODSWEN;
        ok = mcus_wait_set(&PWR_CSR1, PWR_CSR1_ODSWRDY);
    }

    /* Flash: 7 wait states first (raise latency before the clock), ART reset then enabled. */
    FLASH_ACR = FLASH_ACR_LATENCY_7WS | FLASH_ACR_ARTRST;
    FLASH_ACR = FLASH_ACR_LATENCY_7WS;
    FLASH_ACR = FLASH_ACR_LATENCY_7WS | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    ok = ok && (FLASH_ACR & 0xFu) == FLASH_ACR_LATENCY_7WS;

    /* AHB /1 (HPRE [7:4] = 0), APB1 /4 (PPRE1 [12:10] = 101), APB2 /2 (PPRE2 [15:13] = 100). */
    RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (5u << 10) | (4u << 13);

    if (ok && mcus_wait_set(&RCC_CR, RCC_CR_PLLRDY)) {
        /* SW [1:0] = PLL (2), then wait for SWS [3:2] to say so. */
        mcus_stm32_switch_sysclk(&RCC_CFGR, 2u, 2u, SYSCLK_HZ, source);
    }

    board_enable_caches();
}
