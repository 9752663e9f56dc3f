"""Emulated boards: QEMU system emulation with an exact instruction count.

QEMU runs with ``-icount shift=7``: the virtual clock advances 2^7 = 128 ns per executed guest
instruction, so a timer at 25 MHz (40 ns per tick) counts ticks = instructions x 128 / 40, exactly,
independent of the host's load. The firmware is started halted (``-S``) with a gdbstub on a unix
socket in a private temporary folder (no fixed ports, any number of runs at once); the host sets a
breakpoint on the harness's ``mcus_done()``, continues, and reads ``mcus_result`` by its ELF symbol.

Boards: qemu-m7 (mps2-an500), qemu-m4 (mps2-an386), qemu-m3 (mps2-an385, soft float) and qemu-m33
(mps2-an505, whose TIMER0 runs at 20 MHz: ticks = instructions x 128 / 50).

An instruction count is not a cycle count: QEMU models no pipeline, caches or flash wait states.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import time
from pathlib import Path
from dataclasses import dataclass
from typing import ClassVar

from elftools.common.exceptions import ELFError

from mcusearch.boards import FIRMWARE_DIR, Board, RunResult, register
from mcusearch.boards.gdb import GdbClient, GdbError
from mcusearch.boards.pyocd_board import COMMON_DIR, materialise
# Re-exported: these lived here before the GDB run loop was shared with the real boards.
from mcusearch.boards.remote import (  # noqa: F401
    EXCEPTION_NAMES, FAULT_INFO, RESULT_HEADER, RESULT_MAGIC, HarnessImage, decode_result, describe_fault,
    run_to_done,
)
from mcusearch.build import elf as elfinfo
from mcusearch.proc import die_with_parent, make_temp
from mcusearch.errors import StageError
from mcusearch.figures import Provenance

CONNECT_TIMEOUT_S = 20.0


class QemuBoard(Board):
    """A board QEMU emulates. Subclasses set the machine and the Board class attributes."""

    kind: ClassVar[str] = "emulated"
    counter: ClassVar[Provenance] = Provenance.EMULATED
    machine: ClassVar[str]
    qemu_binary: ClassVar[str] = "qemu-system-arm"
    icount_shift: ClassVar[int] = 7
    timer_hz: ClassVar[int] = 25_000_000   # TIMER0's clock on the MPS2 images
    # Cycles per emulated instruction that est_latency_ms assumes. 1.0 is a placeholder, not a
    # model: QEMU counts instructions, not cycles. Real Cortex-M7 code can be below 1 (dual issue)
    # or several cycles per instruction (flash wait states, cache misses); see checked-here.md.
    est_cpi: ClassVar[float] = 1.0
    count_unit: ClassVar[str] = "instructions"
    timer: ClassVar[str] = "TIMER0 under -icount"
    timer_source: ClassVar[str] = "timer_cmsdk.c"   # under firmware/boards/cortex-m

    @property
    def count_method(self) -> str:
        ns = 1 << self.icount_shift
        tick_ns = 1e9 / self.timer_hz
        return (f"TIMER0 (CMSDK APB timer, {self.timer_hz / 1e6:g} MHz) ticks x {tick_ns:g}/{ns} under QEMU "
                f"-icount shift={self.icount_shift} ({self.machine}), rounded: exact executed-instruction "
                "count, including the harness's timer reads and the call (21-23 instructions at -O2/-O3, "
                "~52 at -O0)")

    def support_files(self) -> dict[str, str]:
        """The board-support folder's files: the Cortex-M startup, board_cm.h and the CMSDK timer
        shared with the other boards (firmware/boards/cortex-m), and what the board's own folder
        firmware/boards/<support_dir> holds (board_config.h, link.ld)."""
        src = {"startup.c": COMMON_DIR / "startup.c", "board_cm.h": COMMON_DIR / "board_cm.h",
               "timer.c": COMMON_DIR / self.timer_source}
        src.update((p.name, p) for p in sorted((FIRMWARE_DIR / "boards" / self.support_dir).iterdir())
                   if p.is_file())
        return {name: path.read_text() for name, path in src.items()}

    @property
    def support_path(self) -> Path:
        return materialise(self.support_dir, self.support_files())

    def ticks_to_count(self, ticks: int) -> float:
        """Instructions = ticks x 40/128, rounded to the integer it must be.

        A difference of two timer readings is off by less than one tick from the true elapsed time,
        i.e. by less than 40/128 = 0.31 instruction, so the nearest integer is the exact count.
        """
        tick_ns = 1e9 / self.timer_hz
        insn_ns = float(1 << self.icount_shift)
        count = ticks * tick_ns / insn_ns
        return float(round(count)) if 2 * tick_ns < insn_ns else count

    def qemu_command(self, elf: Path, gdb_socket: Path | None) -> list[str]:
        cmd = [
            self.qemu_binary, "-M", self.machine, "-nographic",
            "-icount", f"shift={self.icount_shift}",
            "-kernel", str(elf),
            "-semihosting-config", "enable=on,target=native",
            "-monitor", "none", "-serial", "none",
        ]
        if gdb_socket is not None:
            cmd += ["-chardev", f"socket,id=mcusgdb,path={gdb_socket},server=on,wait=off",
                    "-gdb", "chardev:mcusgdb", "-S"]
        return cmd

    def run(self, elf: Path, timeout_s: float) -> RunResult:
        image = HarnessImage.read(elf)
        elf = image.elf
        tmp = make_temp("mcus-qemu-")  # removed below, or by the next run if this one is killed
        if len(str(tmp)) > 90:  # unix socket paths are limited to ~107 bytes
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = make_temp("mcus-qemu-", short=True)
        sock_path = tmp / "gdb.sock"
        log_path = tmp / "qemu.log"
        cmd = self.qemu_command(elf, sock_path)
        proc: subprocess.Popen | None = None
        client: GdbClient | None = None
        killed = False
        try:
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent,  # no orphan after kill -9
                                            process_group=0)  # Ctrl-C is the run's to handle
                except FileNotFoundError:
                    raise StageError("measure", f"{self.qemu_binary} not found (install qemu-system-arm)") from None
            client = self._connect(proc, sock_path, log_path)
            client.handshake()
            readout = run_to_done(client, image, timeout_s, stub="QEMU", log=lambda: _read_log(log_path),
                                  dead_log=lambda: self._exit_log(proc, log_path))
            profile_raw = read_profile(client, elf)
            client.kill()
            killed = True
        except GdbError as e:
            raise StageError("measure", f"GDB link to QEMU failed: {e}",
                             log=self._exit_log(proc, log_path) if proc else None) from None
        finally:
            if client is not None:
                client.close()
            if proc is not None:
                _stop_process(proc, grace_s=0.5 if killed else 0.0)
            log_text = _read_log(log_path)
            shutil.rmtree(tmp, ignore_errors=True)

        result = readout.decode(log_text, elf)
        result.layer_profile = decode_profile(profile_raw)   # type: ignore[attr-defined]
        return result

    # -- helpers -------------------------------------------------------------------------------

    def _connect(self, proc: subprocess.Popen, sock_path: Path, log_path: Path) -> GdbClient:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        delay = 0.005
        while True:
            if proc.poll() is not None:
                raise StageError("measure", f"QEMU exited with status {proc.returncode} before the debugger "
                                 f"connected: {_read_log(log_path).strip()[-500:]}", log=_read_log(log_path))
            if sock_path.exists():
                try:
                    return GdbClient.connect_unix(sock_path, timeout_s=10.0)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise StageError("measure", f"QEMU's gdbstub did not come up within {CONNECT_TIMEOUT_S:g} s",
                                 log=_read_log(log_path))
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _exit_log(self, proc: subprocess.Popen | None, log_path: Path) -> str:
        if proc is not None:
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        status = f"QEMU exit status: {proc.returncode}\n" if proc is not None else ""
        return status + _read_log(log_path)


# ---- per-layer profile (harness.h: mcus_profile) --------------------------------------------------

PROFILE_MAGIC = 0x464F5250  # 'PROF'
PROFILE_HEADER = struct.Struct("<4I3Q")  # magic, n_layers, enabled, reserved, empty, pair, inside


@dataclass
class LayerProfile:
    """The harness's per-layer marker sums (raw timer ticks, over all inputs and calls)."""

    enabled: bool
    empty_ticks: int           # two back-to-back timer readings
    pair_ticks: int            # the same around one empty marker pair
    inside_ticks: int          # what an empty marker pair measures itself
    layer_ticks: list[int]
    layer_calls: list[int]


def read_profile(client, elf: Path) -> bytes | None:
    """The raw ``mcus_profile`` block, if the image has one (models with MCUS_N_LAYERS > 0)."""
    try:
        sym = elfinfo.symbols(elf, {"mcus_profile"}).get("mcus_profile")
    except (ELFError, OSError):
        return None
    if sym is None or sym.size < PROFILE_HEADER.size:
        return None
    return client.read_memory(sym.address, sym.size)


def decode_profile(raw: bytes | None) -> LayerProfile | None:
    if not raw or len(raw) < PROFILE_HEADER.size:
        return None
    magic, n, enabled, _, empty, pair, inside = PROFILE_HEADER.unpack_from(raw)
    if magic != PROFILE_MAGIC or len(raw) < PROFILE_HEADER.size + 12 * n:
        return None
    ticks = list(struct.unpack_from(f"<{n}Q", raw, PROFILE_HEADER.size))
    calls = list(struct.unpack_from(f"<{n}I", raw, PROFILE_HEADER.size + 8 * n))
    return LayerProfile(bool(enabled), empty, pair, inside, ticks, calls)


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _stop_process(proc: subprocess.Popen, grace_s: float) -> None:
    """End the QEMU process we started (by its pid): let it exit after 'k', else SIGTERM, SIGKILL."""
    if proc.poll() is None:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# The MPS2 FPGA images AN385 (Cortex-M3), AN386 (Cortex-M4) and AN500 (Cortex-M7) share one memory
# map (4 MB "flash" SSRAM1 at 0x0, 4 MB RAM at 0x20000000) and TIMER0 (CMSDK APB timer at 0x40000000,
# IRQ 8, 25 MHz); QEMU's mps2.c builds all three from one model. So they share the board folder
# mps2-an500 (link.ld, board_config.h; the startup enables the FPU only when compiled for one).
# AN505 (Cortex-M33 in an SSE-200) has its own map and timer address and IRQ (mps2-an505).
# clock_hz is only what est_latency_ms assumes: a typical part with that core (named).


@register
class QemuM7(QemuBoard):
    name = "qemu-m7"
    core = "cortex-m7"
    fpu = "single"
    cflags = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
    support_dir = "mps2-an500"
    machine = "mps2-an500"
    clock_hz = 216_000_000   # the study's STM32F722 clock; only used for estimated times
    description = ("QEMU mps2-an500 (Cortex-M7, single-precision FPU), exact instruction counts; "
                   "times are estimates at 216 MHz")


@register
class QemuM4(QemuBoard):
    name = "qemu-m4"
    core = "cortex-m4"
    fpu = "single"
    cflags = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
    support_dir = "mps2-an500"   # same map and timer as AN500 (see above)
    machine = "mps2-an386"
    clock_hz = 80_000_000    # e.g. STM32L475VG
    description = ("QEMU mps2-an386 (Cortex-M4, single-precision FPU), exact instruction counts; "
                   "times are estimates at 80 MHz (STM32L475VG)")


@register
class QemuM3(QemuBoard):
    name = "qemu-m3"
    core = "cortex-m3"
    fpu = "none"
    cflags = ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")   # float in software (libgcc)
    support_dir = "mps2-an500"   # same map and timer as AN500 (see above)
    machine = "mps2-an385"
    clock_hz = 24_000_000    # e.g. STM32F100RB
    description = ("QEMU mps2-an385 (Cortex-M3, no FPU: soft float), exact instruction counts; "
                   "times are estimates at 24 MHz (STM32F100RB)")


@register
class QemuM33(QemuBoard):
    name = "qemu-m33"
    core = "cortex-m33"
    fpu = "single"
    cflags = ("-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
    support_dir = "mps2-an505"
    machine = "mps2-an505"
    timer_hz = 20_000_000    # the SSE-200's TIMER0 runs on the 20 MHz MAINCLK in QEMU's mps2-tz
    clock_hz = 160_000_000   # e.g. STM32U575ZI-Q
    description = ("QEMU mps2-an505 (Cortex-M33 in secure state, single-precision FPU), exact "
                   "instruction counts; times are estimates at 160 MHz (STM32U575ZI-Q)")
