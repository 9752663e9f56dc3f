"""qemu-m0plus: Cortex-M0+ (ARMv6-M) code on QEMU ``mps2-an385``, exact instruction counts.

QEMU 7.2 has no Cortex-M0+ machine with enough memory for these models (its micro:bit is a
Cortex-M0 with 16 KB of RAM). ARMv6-M is a subset of ARMv7-M: firmware compiled with
``-mcpu=cortex-m0plus`` (Thumb-1 plus BL/MRS/MSR/barriers, no DSP, no hardware divide, no 64-bit
multiply: libgcc does those) executes unchanged on the AN385's Cortex-M3, so the executed
instruction stream, and its exact count, is the Cortex-M0+'s. Cycles come from the Cortex-M0+
cycle model (mcusearch.boards.cyclemodel.CORTEX_M0PLUS, the TRM's timings) applied to that
stream, not from the M3's. Memory map, timer and harness are the M3 board's (mps2-an500 support).
"""
from __future__ import annotations

from mcusearch.boards import register
from mcusearch.boards.qemu import QemuBoard


@register
class QemuM0Plus(QemuBoard):
    name = "qemu-m0plus"
    core = "cortex-m0plus"
    fpu = "none"
    cflags = ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft")
    support_dir = "mps2-an500"   # the same map and CMSDK timer as the AN385 (see qemu.py)
    machine = "mps2-an385"
    cycle_model = "cortex-m0plus"
    clock_hz = 64_000_000        # STM32G0B1RE / STM32G030F6 (catalog), the common M0+ clock
    description = ("ARMv6-M (Cortex-M0+) code on QEMU mps2-an385, exact instruction counts, M0+ cycle "
                   "model; times are estimates at 64 MHz (STM32G0)")
