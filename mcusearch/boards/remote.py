"""The one result channel every board uses: the harness's result block, read over the GDB remote
protocol.

QEMU's gdbstub and ``pyocd gdbserver`` both speak the protocol, so the code here runs the same on
an emulated and on a real board: set a breakpoint on the harness's ``mcus_done()``, continue, wait
for the stop (with a timeout; on a hang, halt the core and say where it was), read ``mcus_result``
(and ``mcus_fault_info``) by their ELF symbols, and decode them. What differs per board (starting
QEMU or pyocd, programming flash, resetting) stays in the board modules.

Also here, for real boards and tested against QEMU: checking the core's identity (CPUID, and an
ID register of the part), programming flash through ``vFlashWrite``/``vFlashDone`` packets, and
``monitor`` commands (``qRcmd``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from mcusearch.boards import RunResult
from mcusearch.boards.gdb import GdbClient, GdbError, GdbTimeout
from mcusearch.build import elf as elfinfo
from mcusearch.build.elf import Symbol
from mcusearch.errors import StageError

RESULT_MAGIC = 0x5355434D  # 'MCUS' (harness.h)
RESULT_HEADER = struct.Struct("<4I")  # magic, status, n_inputs, output_bytes
FAULT_INFO = struct.Struct("<5I")     # exception, pc, info0 (CFSR), info1 (HFSR), input_index
EXCEPTION_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage fault", 5: "BusFault", 6: "UsageFault",
                   7: "SecureFault", 11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}

# SCB CPUID (0xE000ED00) PARTNO field, bits 15:4 (Arm's Technical Reference Manuals).
CPUID_ADDRESS = 0xE000ED00
CPUID_PARTNO = {
    "cortex-m0": 0xC20, "cortex-m0plus": 0xC60, "cortex-m3": 0xC23, "cortex-m4": 0xC24,
    "cortex-m7": 0xC27, "cortex-m23": 0xD20, "cortex-m33": 0xD21, "cortex-m55": 0xD22,
}
PARTNO_CORE = {v: k for k, v in CPUID_PARTNO.items()}

# Real-board support code (firmware/boards/cortex-m) records the clock it set up.
CLOCK_SOURCES = {0: "reset default", 1: "HSI", 2: "HSE", 3: "HSE failed, fell back to HSI"}


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


# ----------------------------------------------------------------------------------------------
# the image


@dataclass(frozen=True)
class HarnessImage:
    """The symbols of a harness ELF the host needs."""

    elf: Path
    done: Symbol
    result: Symbol
    fault_info: Symbol | None = None
    clock_hz: Symbol | None = None      # mcus_clock_hz: the core clock the board code set up
    clock_source: Symbol | None = None  # mcus_clock_source: CLOCK_SOURCES

    @classmethod
    def read(cls, elf: Path) -> "HarnessImage":
        elf = Path(elf)
        if not elf.is_file():
            raise StageError("measure", f"no firmware image at {elf}")
        names = {"mcus_done", "mcus_result", "mcus_fault_info", "mcus_clock_hz", "mcus_clock_source"}
        try:
            syms = elfinfo.symbols(elf, names)
        except (ELFError, OSError) as e:
            raise StageError("measure", f"cannot read {elf}: {e}") from None
        for name in ("mcus_done", "mcus_result"):
            if name not in syms:
                raise StageError("measure", f"{elf.name} has no symbol {name} (not built with the harness?)")
        if syms["mcus_result"].size < RESULT_HEADER.size:
            raise StageError("measure", f"mcus_result in {elf.name} is only {syms['mcus_result'].size} bytes")
        return cls(elf, syms["mcus_done"], syms["mcus_result"], syms.get("mcus_fault_info"),
                   syms.get("mcus_clock_hz"), syms.get("mcus_clock_source"))

    def load_segments(self) -> list[tuple[int, bytes]]:
        """(load address, bytes) of every PT_LOAD segment with file contents: what goes to flash."""
        out = []
        try:
            with open(self.elf, "rb") as f:
                for seg in ELFFile(f).iter_segments():
                    if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0:
                        out.append((seg["p_paddr"], seg.data()[:seg["p_filesz"]]))
        except (ELFError, OSError) as e:
            raise StageError("measure", f"cannot read {self.elf}: {e}") from None
        return sorted(out)


@dataclass
class Readout:
    """What was read from the target at mcus_done."""

    raw: bytes
    fault_raw: bytes | None = None
    clock_hz: int | None = None
    clock_source: int | None = None

    def decode(self, log: str = "", elf: Path | None = None) -> RunResult:
        return decode_result(self.raw, self.fault_raw, log, elf)


# ----------------------------------------------------------------------------------------------
# running


def run_to_done(client: GdbClient, image: HarnessImage, timeout_s: float, *, stub: str = "the GDB stub",
                hardware_breakpoint: bool = False, log: Callable[[], str] | None = None,
                dead_log: Callable[[], str] | None = None) -> Readout:
    """From a halted, reset target: break at mcus_done, continue, wait, read the result block.

    StageError("measure") on a hang (after ``timeout_s``; the core is halted and the message says
    where it was), an exit before mcus_done, a stop elsewhere, or a stub that stops answering while
    the firmware runs. GdbError on a broken link outside the run. ``log`` gives the text attached to
    an error; ``dead_log`` the one when the stub stopped answering (default: ``log``).
    """
    log = log or (lambda: "")
    dead_log = dead_log or log
    client.set_breakpoint(image.done.address, hardware=hardware_breakpoint)
    client.cont()
    try:
        stop = client.wait_stop(timeout_s)
    except GdbTimeout:
        where = where_stuck(client, image.elf)
        raise StageError("measure", f"firmware did not reach mcus_done within {timeout_s:g} s (hang?)"
                         f"{where}", log=log()) from None
    except GdbError as e:
        raise StageError("measure", f"{stub} stopped answering while the firmware ran: {e}",
                         log=dead_log()) from None
    if stop.exited:
        raise StageError("measure", f"firmware exited before reaching mcus_done (stop reply "
                         f"{stop.raw.decode(errors='replace')})", log=log())
    pc = client.core_registers()[15]
    if pc != image.done.address:
        raise StageError("measure", f"firmware stopped at pc {pc:#x}, not at mcus_done "
                         f"({image.done.address:#x}); stop reply {stop.raw.decode(errors='replace')}", log=log())
    out = Readout(raw=client.read_memory(image.result.address, image.result.size))
    if image.fault_info is not None:
        out.fault_raw = client.read_memory(image.fault_info.address, image.fault_info.size)
    if image.clock_hz is not None:
        out.clock_hz = read_u32(client, image.clock_hz.address)
    if image.clock_source is not None:
        out.clock_source = read_u32(client, image.clock_source.address)
    return out


def where_stuck(client: GdbClient, elf: Path) -> str:
    """Halt a hung target and say where it was (best effort: '' if the stub does not answer)."""
    try:
        client.interrupt()
        client.wait_stop(2.0)
        pc = client.core_registers()[15]
    except GdbError:
        return ""
    if pc == 0xEFFFFFFE:
        return "; the core is locked up (a fault inside a fault handler)"
    func = elfinfo.function_at(elf, pc)
    return f"; halted at pc {pc:#010x}" + (f" in {func}()" if func else "")


def read_u32(client: GdbClient, address: int) -> int:
    return int.from_bytes(client.read_memory(address, 4), "little")


# ----------------------------------------------------------------------------------------------
# real-board helpers (tested against QEMU where QEMU can play along)


def check_core(client: GdbClient, core: str) -> int:
    """Read CPUID; StageError("measure") if its PARTNO is not ``core``'s. Returns CPUID."""
    try:
        cpuid = read_u32(client, CPUID_ADDRESS)
    except GdbError as e:
        raise StageError("measure", f"cannot read the core's CPUID register: {e}") from None
    want = CPUID_PARTNO.get(core)
    got = (cpuid >> 4) & 0xFFF
    if want is not None and got != want:
        found = PARTNO_CORE.get(got, f"PARTNO {got:#05x}")
        raise StageError("measure", f"target mismatch: the board's core is {found} (CPUID {cpuid:#010x}), "
                         f"expected {core}; wrong board or wrong pyOCD target?")
    return cpuid


def check_device_id(client: GdbClient, address: int, mask: int, expected: tuple[int, ...], part: str) -> int | None:
    """Read a device ID register (e.g. STM32 DBGMCU_IDCODE); StageError on a mismatch.

    Returns the ID, or None when the register cannot be read (then only the CPUID check stands)."""
    try:
        value = read_u32(client, address) & mask
    except GdbError:
        return None
    if value not in expected:
        want = " or ".join(f"{e:#05x}" for e in expected)
        raise StageError("measure", f"target mismatch: device ID {value:#05x} at {address:#010x}, "
                         f"{part} has {want}; wrong board or wrong pyOCD target?")
    return value


def monitor(client: GdbClient, command: str, timeout_s: float = 30.0) -> str:
    """Run a stub's monitor command (``qRcmd``) and return its text output.

    pyocd answers with one hex-encoded packet; QEMU and GDB-style stubs send ``O<hex>`` packets
    followed by ``OK``. An empty reply means the stub has no monitor: GdbError."""
    client.send_packet(b"qRcmd," + command.encode().hex().encode(), timeout_s)
    text = []
    while True:
        reply = client.recv_packet(timeout_s)
        if reply == b"OK":
            return "".join(text)
        if not reply:
            raise GdbError(f"the GDB stub has no monitor command {command!r}")
        if reply[:1] == b"O" and reply != b"OK":
            text.append(_unhex(reply[1:]))
            continue
        if len(reply) == 3 and reply[:1] == b"E":
            raise GdbError(f"monitor {command!r} failed: {reply.decode(errors='replace')}")
        return "".join(text) + _unhex(reply)


def _unhex(data: bytes) -> str:
    try:
        return bytes.fromhex(data.decode()).decode(errors="replace")
    except ValueError:
        return data.decode(errors="replace")


def program_flash(client: GdbClient, segments: list[tuple[int, bytes]], timeout_s: float = 300.0) -> int:
    """Program ``segments`` with ``vFlashErase``/``vFlashWrite``/``vFlashDone`` (what GDB's ``load``
    sends). pyocd buffers the writes and erases and programs the sectors at ``vFlashDone``.
    Returns the number of bytes written; GdbError if the stub refuses."""
    chunk = max(64, (client.packet_size - 64) // 2)   # worst case: every byte escaped
    total = 0
    for address, data in segments:
        reply = client.request(b"vFlashErase:%x,%x" % (address, len(data)))
        if reply != b"OK":
            raise GdbError(f"vFlashErase at {address:#x} refused: {reply[:40]!r}")
    for address, data in segments:
        for off in range(0, len(data), chunk):
            part = data[off:off + chunk]
            reply = client.request(b"vFlashWrite:%x:" % (address + off) + part)
            if reply != b"OK":
                raise GdbError(f"vFlashWrite at {address + off:#x} refused: {reply[:40]!r}")
            total += len(part)
    reply = client.request(b"vFlashDone", timeout_s=timeout_s)
    if reply != b"OK":
        raise GdbError(f"vFlashDone refused: {reply[:40]!r}")
    return total
