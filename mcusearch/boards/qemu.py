"""Emulated boards: QEMU system emulation with an exact instruction count.

QEMU runs with ``-icount shift=7``: the virtual clock advances 2^7 = 128 ns per executed guest
instruction, so a timer at 25 MHz (40 ns per tick) counts ticks = instructions x 128 / 40, exactly,
independent of the host's load. The firmware is started halted (``-S``) with a gdbstub on a unix
socket in a private temporary folder (no fixed ports, any number of runs at once); the host sets a
breakpoint on the harness's ``mcus_done()``, continues, and reads ``mcus_result`` by its ELF symbol.

An instruction count is not a cycle count: QEMU models no pipeline, caches or flash wait states.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from elftools.common.exceptions import ELFError

from mcusearch.boards import Board, RunResult, register
from mcusearch.boards.gdb import GdbClient, GdbError, GdbTimeout
from mcusearch.build import elf as elfinfo
from mcusearch.errors import StageError
from mcusearch.figures import Provenance

RESULT_MAGIC = 0x5355434D  # 'MCUS' (harness.h)
RESULT_HEADER = struct.Struct("<4I")  # magic, status, n_inputs, output_bytes
FAULT_INFO = struct.Struct("<5I")     # exception, pc, info0 (CFSR), info1 (HFSR), input_index
EXCEPTION_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage fault", 5: "BusFault", 6: "UsageFault",
                   11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}
CONNECT_TIMEOUT_S = 20.0


def describe_fault(raw: bytes | None, elf: Path | None = None) -> str:
    if not raw or len(raw) < FAULT_INFO.size:
        return "firmware fault (no fault record)"
    exc, pc, cfsr, hfsr, index = FAULT_INFO.unpack_from(raw)
    name = EXCEPTION_NAMES.get(exc, f"interrupt {exc - 16}" if exc >= 16 else f"exception {exc}")
    bits = []
    for bit, what in ((0, "IACCVIOL"), (1, "DACCVIOL"), (8, "IBUSERR"), (9, "PRECISERR"), (10, "IMPRECISERR"),
                      (16, "UNDEFINSTR"), (17, "INVSTATE"), (18, "INVPC"), (19, "NOCP"), (24, "UNALIGNED"),
                      (25, "DIVBYZERO")):
        if cfsr >> bit & 1:
            bits.append(what)
    if hfsr >> 30 & 1:
        bits.append("FORCED")
    detail = f" [{', '.join(bits)}]" if bits else ""
    func = elfinfo.function_at(elf, pc) if elf is not None else None
    at = f"pc {pc:#010x}" + (f" in {func}()" if func else "")
    return (f"firmware fault: {name} at {at} while running input {index} "
            f"(CFSR {cfsr:#010x}, HFSR {hfsr:#010x}){detail}")


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

    @property
    def count_method(self) -> str:
        ns = 1 << self.icount_shift
        tick_ns = 1e9 / self.timer_hz
        return (f"TIMER0 (CMSDK APB timer, {self.timer_hz / 1e6:g} MHz) ticks x {tick_ns:g}/{ns} under QEMU "
                f"-icount shift={self.icount_shift} ({self.machine}), rounded: exact executed-instruction "
                "count, including the harness's timer reads and the call (21-23 instructions at -O2/-O3, "
                "~52 at -O0)")

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
        elf = Path(elf)
        if not elf.is_file():
            raise StageError("measure", f"no firmware image at {elf}")
        try:
            syms = elfinfo.symbols(elf, {"mcus_done", "mcus_result", "mcus_fault_info"})
        except (ELFError, OSError) as e:
            raise StageError("measure", f"cannot read {elf}: {e}") from None
        for name in ("mcus_done", "mcus_result"):
            if name not in syms:
                raise StageError("measure", f"{elf.name} has no symbol {name} (not built with the harness?)")
        done, result = syms["mcus_done"], syms["mcus_result"]
        if result.size < RESULT_HEADER.size:
            raise StageError("measure", f"mcus_result in {elf.name} is only {result.size} bytes")

        tmp = Path(tempfile.mkdtemp(prefix="mcus-qemu-"))
        if len(str(tmp)) > 90:  # unix socket paths are limited to ~107 bytes
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix="mcus-qemu-", dir="/tmp"))
        sock_path = tmp / "gdb.sock"
        log_path = tmp / "qemu.log"
        cmd = self.qemu_command(elf, sock_path)
        proc: subprocess.Popen | None = None
        client: GdbClient | None = None
        killed = False
        try:
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
                except FileNotFoundError:
                    raise StageError("measure", f"{self.qemu_binary} not found (install qemu-system-arm)") from None
            client = self._connect(proc, sock_path, log_path)
            client.handshake()
            client.set_breakpoint(done.address)
            client.cont()
            try:
                stop = client.wait_stop(timeout_s)
            except GdbTimeout:
                where = _where_stuck(client, elf)
                raise StageError("measure", f"firmware did not reach mcus_done within {timeout_s:g} s (hang?)"
                                 f"{where}", log=_read_log(log_path)) from None
            except GdbError as e:
                raise StageError("measure", f"QEMU stopped answering while the firmware ran: {e}",
                                 log=self._exit_log(proc, log_path)) from None
            if stop.exited:
                raise StageError("measure", f"firmware exited before reaching mcus_done (stop reply "
                                 f"{stop.raw.decode(errors='replace')})", log=_read_log(log_path))
            pc = client.core_registers()[15]
            if pc != done.address:
                raise StageError("measure", f"firmware stopped at pc {pc:#x}, not at mcus_done "
                                 f"({done.address:#x}); stop reply {stop.raw.decode(errors='replace')}")
            raw = client.read_memory(result.address, result.size)
            fault_raw = None
            if "mcus_fault_info" in syms:
                fi = syms["mcus_fault_info"]
                fault_raw = client.read_memory(fi.address, fi.size)
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

        return decode_result(raw, fault_raw, log_text, elf)

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


def decode_result(raw: bytes, fault_raw: bytes | None = None, log: str = "", elf: Path | None = None) -> RunResult:
    """Parse the harness's result block; StageError on a fault or a block that was never set up."""
    magic, status, n, out_bytes = RESULT_HEADER.unpack_from(raw)
    if status == 2:
        raise StageError("measure", describe_fault(fault_raw, elf), log=log)
    if magic != RESULT_MAGIC:
        raise StageError("measure", f"result block not initialised (magic {magic:#010x}); "
                         "the firmware stopped before the harness started", log=log)
    if status != 1:
        raise StageError("measure", f"result block status {status} at mcus_done (expected 1 = done)", log=log)
    ticks_end = RESULT_HEADER.size + 8 * n
    if len(raw) < ticks_end + n * out_bytes:
        raise StageError("measure", f"result block is {len(raw)} bytes, too small for {n} inputs "
                         f"x {out_bytes} output bytes", log=log)
    ticks = list(struct.unpack_from(f"<{n}Q", raw, RESULT_HEADER.size))
    outputs = bytes(raw[ticks_end:ticks_end + n * out_bytes])
    return RunResult(ticks=ticks, outputs=outputs, status=status, log=log)


def _where_stuck(client: GdbClient, elf: Path) -> str:
    """Halt a hung target and say where it was (best effort: '' if the stub does not answer)."""
    try:
        client.interrupt()
        client.wait_stop(2.0)
        pc = client.core_registers()[15]
    except GdbError:
        return ""
    func = elfinfo.function_at(elf, pc)
    if pc == 0xEFFFFFFE:
        return "; the core is locked up (a fault inside a fault handler)"
    return f"; halted at pc {pc:#010x}" + (f" in {func}()" if func else "")


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


@register
class QemuM7(QemuBoard):
    name = "qemu-m7"
    core = "cortex-m7"
    cflags = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
    support_dir = "mps2-an500"
    machine = "mps2-an500"
    clock_hz = 216_000_000   # the study's STM32F722 clock; only used for estimated times
    description = ("QEMU mps2-an500 (Cortex-M7, single-precision FPU), exact instruction counts; "
                   "times are estimates at 216 MHz")
