"""qemu-m55: a Cortex-M55 on QEMU ``mps3-an547`` (the SSE-300 FPGA image), exact instruction counts.

The memory map is QEMU 7.2's for AN547 (``info mtree``): the ITCM (512 KB) at 0x0, secure alias
0x10000000, holds code and constants; the DTCM (512 KB) at 0x20000000, secure alias 0x30000000,
holds data and the stack (firmware/boards/mps3-an547/link.ld). The core runs in secure state, as on
qemu-m33.

The counter is SysTick at the core clock (firmware/boards/cortex-m/timer_systick.c): QEMU clocks
the AN547's CPU from its 32 MHz system clock, and under ``-icount shift=7`` each instruction is
128 ns, so ticks = instructions × 128 / 31.25 and the count is exact after rounding. (The image's
CMSDK timer runs on the 32 kHz S32K clock: too coarse.)

The firmware is built without Helium (``+nomve``): the instruction-class plugin and the cycle
model do not decode M-profile vector instructions, so a vectorised build could not be estimated.
Scalar DSP and the FPU are used, as on the Cortex-M4/M33 boards.
"""
from __future__ import annotations

from mcusearch.boards import register
from mcusearch.boards.qemu import QemuBoard


@register
class QemuM55(QemuBoard):
    name = "qemu-m55"
    core = "cortex-m55"
    fpu = "double"
    cflags = ("-mcpu=cortex-m55+nomve", "-mthumb", "-mfpu=auto", "-mfloat-abi=hard")
    support_dir = "mps3-an547"
    machine = "mps3-an547"
    timer_hz = 32_000_000          # SysTick on the core clock: QEMU's AN547 system clock
    timer = "SysTick (core clock) under -icount"
    timer_source = "timer_systick.c"
    cycle_model = "cortex-m55"
    clock_hz = 800_000_000         # STM32N657X0, the catalog's only M55 (its 800 MHz is flagged unverified there)
    description = ("QEMU mps3-an547 (Cortex-M55 in secure state, FPU, no Helium), exact instruction counts; "
                   "times are estimates at 800 MHz (STM32N657X0)")

    @property
    def count_method(self) -> str:
        return (f"SysTick (core clock, {self.timer_hz / 1e6:g} MHz in QEMU's {self.machine}) ticks x "
                f"{1e9 / self.timer_hz:g}/{1 << self.icount_shift} ns under QEMU -icount shift={self.icount_shift}, "
                "rounded: exact executed-instruction count, including the harness's timer reads and the call")
