"""Real boards through pyOCD: flash the ELF, reset, run to ``mcus_done()``, read the result block.

One result channel for all boards: ``pyocd gdbserver`` speaks the GDB remote protocol like QEMU's
gdbstub, so a real board runs the same code (:mod:`mcusearch.boards.remote`) as an emulated one.
A run, step by step (each step with a timeout, each failure a StageError("measure") that fails
the trial and never hangs the study):

1. choose the probe: ``pyocd json --probes`` lists the connected ones; with ``probe=UID`` that one,
   else the only one that can be this board (a probe whose board pyOCD knows to be another part is
   a target mismatch). None connected, several, or none with that UID: an error naming them.
2. lock it: a per-probe file lock (fcntl), so one board runs one trial at a time; another trial
   waits for it (``lock_timeout_s``), then fails with "board busy". (Without ``probe=UID`` a lock
   on the board's name is taken before step 1, so two trials never list a probe the other holds.)
3. start ``pyocd gdbserver`` for the board's target on that probe, on a free port (``-p 0``: pyOCD
   picks one and logs it), with its own log; ``-W`` makes it fail at once when the probe is gone.
   Probe busy (held by another program), unknown target or a dead link: an error from its log.
4. connect the same :class:`~mcusearch.boards.gdb.GdbClient` QEMU uses, over TCP, and check the
   core (CPUID) and the part (its device ID register): a target mismatch stops here.
5. program flash with ``vFlashWrite``/``vFlashDone`` packets (pyOCD's flash algorithm for the
   target erases and programs; what GDB's ``load`` does), then read the image back to verify.
6. ``monitor reset halt``, hardware breakpoint on ``mcus_done``, continue, wait (a hang is halted
   and located), read ``mcus_result`` and the clock the firmware reached; detach; pyOCD exits and
   releases the probe (else it is interrupted, then killed). The lock is released in any case.

Steps 4-6 (:meth:`PyocdBoard.session`) and the process handling run in CI against QEMU through a
stand-in for pyocd (tests/test_boards.py); what only hardware can show is pyOCD's own side (the
USB probe, the flash algorithm, reset) and the board-support code (clock tree, caches, DWT),
which compiles and links in CI but has not run on a board here.

The firmware of a real board: firmware/boards/cortex-m (startup, board_cm.h, DWT or SysTick cycle
counter; shared with the QEMU boards) plus the family's clock set-up (stm32f7, stm32h7, generic) and
a board_config.h and linker script generated from the board's definition (:func:`linker_script`);
:attr:`PyocdBoard.support_path` writes them to a content-addressed folder (:func:`materialise`) the
build stage compiles like any board-support folder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mcusearch.boards import BOARDS, FIRMWARE_DIR, Board, RunResult, register
from mcusearch.boards.gdb import GdbClient, GdbError
from mcusearch.boards.remote import (
    CLOCK_SOURCES,
    HarnessImage,
    Readout,
    check_core,
    check_device_id,
    monitor,
    program_flash,
    run_to_done,
)
from mcusearch.errors import StageError
from mcusearch.proc import die_with_parent
from mcusearch.figures import Provenance

PYOCD_REQUIREMENT = "pyocd==0.46.0"
COMMON_DIR = FIRMWARE_DIR / "boards" / "cortex-m"   # board support shared by every Cortex-M board
TIMER_SOURCES = {"dwt": "timer_dwt.c", "systick": "timer_systick.c"}
TIMER_NAMES = {"dwt": "DWT CYCCNT", "systick": "SysTick"}
# Cores with a DWT cycle counter (Armv7-M, Armv8-M Mainline); the others count with SysTick.
DWT_CORES = ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
CORES = ("cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m23", "cortex-m33")
FPUS = {  # (core, fpu) -> -mfpu; cores not listed with an FPU have none
    ("cortex-m4", "single"): "fpv4-sp-d16",
    ("cortex-m7", "single"): "fpv5-sp-d16",
    ("cortex-m7", "double"): "fpv5-d16",
    ("cortex-m33", "single"): "fpv5-sp-d16",
}


def cflags_for(core: str, fpu: str = "none") -> tuple[str, ...]:
    """-mcpu/-mthumb/-mfpu/-mfloat-abi for a core and its FPU ("none", "single", "double")."""
    if core not in CORES:
        raise ValueError(f"unknown core {core!r} (one of {', '.join(CORES)})")
    if fpu == "none":
        nofp = "+nofp" if core in ("cortex-m4", "cortex-m7", "cortex-m33") else ""
        return (f"-mcpu={core}{nofp}", "-mthumb", "-mfloat-abi=soft")
    if (core, fpu) not in FPUS:
        raise ValueError(f"{core} has no {fpu}-precision FPU")
    return (f"-mcpu={core}", "-mthumb", f"-mfpu={FPUS[core, fpu]}", "-mfloat-abi=hard")


# ----------------------------------------------------------------------------------------------
# memory map and linker script


@dataclass(frozen=True)
class Region:
    origin: int
    size: int

    @property
    def end(self) -> int:
        return self.origin + self.size

    def holds(self, address: int, length: int) -> bool:
        return self.origin <= address and address + length <= self.end


def linker_script(flash: Region, ram: Region, result_ram: Region | None = None, title: str = "",
                  min_stack: int = 2048) -> str:
    """A linker script for the harness: code and constants in ``flash``, .data/.bss and the stack in
    ``ram``, and the result block (``.bss.mcus_result`` and the other words the host reads) first in
    ``result_ram`` if given, else first in ``ram``: on STM32F7/H7 that is DTCM, which the data cache
    does not hold, so the debugger reads what the core wrote."""
    result_region = "RESULT" if result_ram is not None else "RAM"
    memory = [f"    FLASH  (rx)  : ORIGIN = {flash.origin:#010x}, LENGTH = {flash.size:#x}",
              f"    RAM    (rwx) : ORIGIN = {ram.origin:#010x}, LENGTH = {ram.size:#x}"]
    if result_ram is not None:
        memory.append(f"    RESULT (rw)  : ORIGIN = {result_ram.origin:#010x}, LENGTH = {result_ram.size:#x}")
    return f"""/* Generated by mcusearch (boards/pyocd_board.py){': ' + title if title else ''}. Do not edit. */
MEMORY
{{
{chr(10).join(memory)}
}}

ENTRY(Reset_Handler)

SECTIONS
{{
    .text :
    {{
        KEEP(*(.vectors))
        *(.text .text.*)
        KEEP(*(.init))
        KEEP(*(.fini))
        *(.rodata .rodata.*)
        *(.nn_data .nn_data*)           /* weights some converters put in their own sections */
        . = ALIGN(4);
    }} > FLASH

    .ARM.extab : {{ *(.ARM.extab* .gnu.linkonce.armextab.*) }} > FLASH
    .ARM.exidx :
    {{
        __exidx_start = .;
        *(.ARM.exidx* .gnu.linkonce.armexidx.*)
        __exidx_end = .;
    }} > FLASH

    .init_array :
    {{
        . = ALIGN(4);
        __preinit_array_start = .;
        KEEP(*(.preinit_array))
        __preinit_array_end = .;
        __init_array_start = .;
        KEEP(*(SORT(.init_array.*)))
        KEEP(*(.init_array))
        __init_array_end = .;
    }} > FLASH

    /* What the host reads at mcus_done; zeroed by the reset handler. */
    .mcus_result (NOLOAD) :
    {{
        . = ALIGN(8);
        __result_start__ = .;
        *(.bss.mcus_result)
        *(.bss.mcus_fault_info)
        *(.bss.mcus_clock_hz)
        *(.bss.mcus_clock_source)
        . = ALIGN(8);
        __result_end__ = .;
    }} > {result_region}

    .data :
    {{
        . = ALIGN(4);
        __data_start__ = .;
        *(.data .data.*)
        . = ALIGN(4);
        __data_end__ = .;
    }} > RAM AT > FLASH
    __data_load__ = LOADADDR(.data);

    .bss (NOLOAD) :
    {{
        . = ALIGN(8);
        __bss_start__ = .;
        *(.bss .bss.*)
        *(COMMON)
        . = ALIGN(8);
        __bss_end__ = .;
    }} > RAM

    end = .;            /* heap start for newlib's _sbrk (libnosys) */
    _end = .;
    __stack_top__ = ORIGIN(RAM) + LENGTH(RAM);  /* the stack grows down from the top of RAM */
    ASSERT(end + {min_stack:#x} <= __stack_top__,
           "RAM overflowed: data + bss leave less than {min_stack} bytes for the stack")
}}
"""


def _support_root() -> Path:
    env = os.environ.get("MCUSEARCH_BOARD_SUPPORT_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"mcusearch-board-support-{os.getuid()}"


def materialise(name: str, files: dict[str, str]) -> Path:
    """Write ``files`` to a folder named by their content (created once, atomically); return it."""
    h = hashlib.sha256()
    for fname in sorted(files):
        h.update(fname.encode() + b"\0" + files[fname].encode() + b"\0")
    root = _support_root()
    final = root / f"{name}-{h.hexdigest()[:16]}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():   # else a concurrent writer won the race: same content
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------------------------
# pyocd: finding it, listing probes


def pyocd_command() -> list[str] | None:
    """How to run pyocd: $MCUSEARCH_PYOCD, else this Python's pyocd module, else one on PATH."""
    env = os.environ.get("MCUSEARCH_PYOCD")
    if env:
        return shlex.split(env)
    if importlib.util.find_spec("pyocd") is not None:
        return [sys.executable, "-m", "pyocd"]
    found = shutil.which("pyocd")
    return [found] if found else None


def _need_pyocd() -> list[str]:
    cmd = pyocd_command()
    if cmd is None:
        raise StageError("measure", f"pyocd is not installed: real boards need it (pip install {PYOCD_REQUIREMENT}), "
                         "or set MCUSEARCH_PYOCD to a pyocd command")
    return cmd


@dataclass(frozen=True)
class Probe:
    unique_id: str
    info: str = ""
    board_name: str = ""
    target: str = ""          # pyOCD's target for the board the probe is on; "cortex_m" = unknown
    vendor_name: str = ""
    product_name: str = ""

    def describe(self) -> str:
        what = self.info or f"{self.vendor_name} {self.product_name}".strip()
        target = f", target {self.target}" if self.target and self.target != "cortex_m" else ""
        return f"{self.unique_id} ({what}{target})"


LIST_TIMEOUT_S = 60.0


def list_probes(timeout_s: float = LIST_TIMEOUT_S) -> list[Probe]:
    """The connected debug probes, from ``pyocd json --probes``. StageError if pyocd fails."""
    cmd = [*_need_pyocd(), "json", "--probes"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise StageError("measure", f"{cmd[0]} not found (pip install {PYOCD_REQUIREMENT})") from None
    except subprocess.TimeoutExpired:
        raise StageError("measure", f"'pyocd json --probes' did not answer within {timeout_s:g} s "
                         "(a probe's USB link hung?)") from None
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise StageError("measure", f"'pyocd json --probes' failed (exit {proc.returncode}): "
                         f"{_tail(proc.stderr or proc.stdout)}", log=proc.stdout + proc.stderr) from None
    if data.get("status", 0) != 0:
        raise StageError("measure", f"pyocd could not list probes: {data.get('error', 'unknown error')}",
                         log=proc.stdout + proc.stderr)
    probes = []
    for b in data.get("boards", []):
        probes.append(Probe(str(b.get("unique_id", "")), str(b.get("info") or ""), str(b.get("board_name") or ""),
                            str(b.get("target") or ""), str(b.get("vendor_name") or ""),
                            str(b.get("product_name") or "")))
    return probes


# (time listed, probes or None, error) for probe_status(): board_table() lists once for all rows.
_probe_cache: tuple[float, list[Probe] | None, str | None] | None = None
PROBE_CACHE_S = 2.0


def refresh_probe_cache() -> None:
    global _probe_cache
    if pyocd_command() is None:
        _probe_cache = (time.monotonic(), None, "pyocd not installed")
        return
    try:
        _probe_cache = (time.monotonic(), list_probes(), None)
    except StageError as e:
        _probe_cache = (time.monotonic(), None, f"pyocd error: {e.message.splitlines()[0][:80]}")


def _tail(text: str, n: int = 6) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


# ----------------------------------------------------------------------------------------------
# one trial at a time per probe


class ProbeLock:
    """An exclusive fcntl lock on a file named after the probe: one trial per board at a time.

    Waits up to ``timeout_s`` for a trial (in any process of this machine) that holds it; then
    StageError("measure", "board ... busy"). The lock goes with the process: a crashed trial
    cannot leave a board locked."""

    def __init__(self, key: str, timeout_s: float, board: str = ""):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key) or "default"
        root = os.environ.get("MCUSEARCH_LOCK_DIR") or \
            Path(tempfile.gettempdir()) / f"mcusearch-probe-locks-{os.getuid()}"
        self.path = Path(root) / f"{safe}.lock"
        self.key, self.timeout_s, self.board = key, timeout_s, board
        self._file = None

    def __enter__(self) -> "ProbeLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    f.close()
                    raise StageError("measure", f"cannot lock {self.path}: {e}") from None
            if time.monotonic() >= deadline:
                f.seek(0)
                holder = f.read().strip()
                f.close()
                what = "it" if self.key == f"board-{self.board}" else f"probe {self.key}"
                raise StageError("measure", f"board {self.board or self.key} busy: {what} is used by "
                                 f"another trial ({holder or 'unknown process'}) and was not free within "
                                 f"{self.timeout_s:g} s")
            time.sleep(0.1)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            try:
                self._file.seek(0)
                self._file.truncate()
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


# ----------------------------------------------------------------------------------------------
# the boards


LISTENING_RE = re.compile(r"GDB server listening on port (\d+)")
# pyOCD's messages -> what a person should read first (checked against pyOCD 0.46's sources).
_PYOCD_ERRORS = (
    (re.compile(r"No connected debug probe matches unique ID|No connected debug probes|"
                r"No available debug probes|No probe selected", re.I),
     "probe missing: pyOCD found no such debug probe (unplugged?)"),
    (re.compile(r"busy|LIBUSB_ERROR_ACCESS|Access denied|Errno 16|Errno 13|could not open|Unable to open",
                re.I),
     "probe busy: another program holds it (an IDE, st-util, OpenOCD, another pyOCD?)"),
    (re.compile(r"Target type .* not recognized|is not recognized|Unknown target", re.I),
     "target unknown to pyOCD (a part that needs a CMSIS pack: give pack=PATH)"),
    (re.compile(r"No ACK|communication failure|TransferError|TransferFault|Memory transfer fault|"
                r"Failed to connect|No cores were discovered", re.I),
     "cannot talk to the target through the probe (board powered? target mismatch? held in reset?)"),
)


def classify_pyocd_failure(log: str) -> str:
    for pattern, meaning in _PYOCD_ERRORS:
        if pattern.search(log):
            return meaning
    return "pyocd gdbserver failed"


class PyocdBoard(Board):
    """A board behind a debug probe that pyOCD drives. Subclasses set the part's attributes."""

    kind: ClassVar[str] = "real"
    counter: ClassVar[Provenance] = Provenance.MEASURED
    count_unit: ClassVar[str] = "cycles"
    part: ClassVar[str] = ""                          # e.g. "STM32F767ZI"
    pyocd_target: ClassVar[str | None] = None         # pyOCD target name (builtin or from a pack)
    part_prefixes: ClassVar[tuple[str, ...]] = ()     # pyOCD board-database targets that are this part
    family: ClassVar[str] = "generic"                 # folder with clock.c under firmware/boards/
    timer_kind: ClassVar[str] = "dwt"                 # "dwt" | "systick"
    flash: ClassVar[Region | None] = None
    ram: ClassVar[Region | None] = None
    result_ram: ClassVar[Region | None] = None        # uncached RAM for the result block (DTCM)
    device_id: ClassVar[tuple[int, int, tuple[int, ...]] | None] = None  # (address, mask, IDs)
    needs_pack: ClassVar[bool] = False
    pack: ClassVar[str | None] = None
    support_dir: ClassVar[str] = "cortex-m"           # see support_path: generated from these
    clock_tolerance: ClassVar[float] = 0.0            # relative; the firmware reports exact values
    connect_timeout_s: ClassVar[float] = 30.0
    flash_timeout_s: ClassVar[float] = 300.0
    command_timeout_s: ClassVar[float] = 30.0
    lock_timeout_s: ClassVar[float] = 900.0
    verify: ClassVar[bool] = True

    def __init__(self, probe: str | None = None, pack: str | os.PathLike | None = None,
                 frequency: int | str | None = None, lock_timeout_s: float | None = None,
                 verify: bool | None = None):
        self.probe = probe
        self.pack_path = Path(pack) if pack is not None else (Path(self.pack) if self.pack else None)
        self.frequency = frequency
        if lock_timeout_s is not None:
            self.lock_timeout_s = float(lock_timeout_s)
        if verify is not None:
            self.verify = bool(verify)

    # -- what it is ------------------------------------------------------------------------------

    @property
    def timer(self) -> str:  # type: ignore[override]
        return TIMER_NAMES[self.timer_kind]

    @property
    def count_method(self) -> str:
        how = ("DWT CYCCNT, extended to 64 bits by SysTick sampling" if self.timer_kind == "dwt"
               else "SysTick at the core clock, wraps counted by its interrupt")
        return (f"{how}: measured core clock cycles on {self.part or self.name} at {self.clock_hz / 1e6:g} MHz, "
                "including the harness's timer reads and the call")

    def ticks_to_count(self, ticks: int) -> float:
        return float(ticks)   # the timer counts core clock cycles

    def _check_configured(self, stage: str) -> None:
        missing = [k for k in ("pyocd_target", "flash", "ram") if getattr(self, k) is None]
        if missing or not self.clock_hz:
            raise StageError(stage, f"board {self.name} is not configured ({', '.join(missing or ['clock_hz'])} "
                             "missing): define one with mcusearch.boards.define_board(name, target=..., "
                             "core=..., flash_kb=..., ram_kb=..., clock_hz=...)")

    # -- firmware --------------------------------------------------------------------------------

    def support_files(self) -> dict[str, str]:
        """The board-support folder's files: shared startup and timer, the family's clock.c,
        a generated board_config.h and linker script."""
        self._check_configured("build")
        src = {
            "startup.c": COMMON_DIR / "startup.c",
            "board_cm.h": COMMON_DIR / "board_cm.h",
            "timer.c": COMMON_DIR / TIMER_SOURCES[self.timer_kind],
            "clock.c": FIRMWARE_DIR / "boards" / self.family / "clock.c",
        }
        files = {name: path.read_text() for name, path in src.items()}
        files["board_config.h"] = (
            f"/* Generated by mcusearch for board {self.name} ({self.part or self.pyocd_target}). */\n"
            "#ifndef MCUS_BOARD_CONFIG_H\n#define MCUS_BOARD_CONFIG_H\n"
            f'#define MCUS_BOARD_NAME "{self.name}"\n'
            "#define MCUS_EMULATED 0 /* a real board: clock set-up, clock recorded (see board_cm.h) */\n"
            f"#define MCUS_CLOCK_HZ {int(self.clock_hz)}u\n"
            "#endif\n")
        files["link.ld"] = linker_script(self.flash, self.ram, self.result_ram,
                                         f"{self.name}, {self.part or self.pyocd_target}")
        return files

    @property
    def support_path(self) -> Path:
        return materialise(self.name, self.support_files())

    # -- listing ---------------------------------------------------------------------------------

    @classmethod
    def probe_matches(cls, probe: Probe) -> bool | None:
        """True: pyOCD says the probe's board is this part; False: another part; None: unknown."""
        target = (probe.target or "").lower()
        if not target or target == "cortex_m":
            return None
        if cls.pyocd_target and target == cls.pyocd_target.lower():
            return True
        if cls.part_prefixes:
            return any(target.startswith(p) for p in cls.part_prefixes)
        return None

    @classmethod
    def probe_status(cls) -> str:
        if cls.pyocd_target is None:
            return "not configured"
        if _probe_cache is None or time.monotonic() - _probe_cache[0] > PROBE_CACHE_S:
            refresh_probe_cache()
        _, probes, error = _probe_cache
        if probes is None:
            return error or "unknown"
        mine = [p.unique_id for p in probes if cls.probe_matches(p)]
        if mine:
            return "connected (" + ", ".join(mine) + ")"
        unknown = [p.unique_id for p in probes if cls.probe_matches(p) is None]
        if unknown:
            return "probe of unknown board (" + ", ".join(unknown) + ")"
        return "not connected"

    # -- running ---------------------------------------------------------------------------------

    def select_probe(self, probes: list[Probe]) -> Probe:
        names = "; ".join(p.describe() for p in probes) or "none"
        if self.probe:
            chosen = [p for p in probes if p.unique_id == self.probe] or \
                     [p for p in probes if p.unique_id.startswith(self.probe)]
            if not chosen:
                raise StageError("measure", f"probe missing: no debug probe with unique ID {self.probe} is "
                                 f"connected (connected: {names})")
            if len(chosen) > 1:
                raise StageError("measure", f"probe ID {self.probe} matches several probes: {names}")
        else:
            if not probes:
                raise StageError("measure", f"probe missing: no debug probe is connected for {self.name} "
                                 "('pyocd json --probes' lists none; plugged in? udev rules?)")
            chosen = [p for p in probes if self.probe_matches(p) is not False]
            if not chosen:
                raise StageError("measure", f"target mismatch: no connected probe is on a {self.part or self.name} "
                                 f"(connected: {names})")
            if len(chosen) > 1:
                known = [p for p in chosen if self.probe_matches(p)]
                if len(known) == 1:
                    chosen = known
                else:
                    raise StageError("measure", f"several probes could be {self.name}: {names}; choose one "
                                     "with probe=UID")
        probe = chosen[0]
        if self.probe_matches(probe) is False:
            raise StageError("measure", f"target mismatch: probe {probe.describe()} is on another board, "
                             f"not a {self.part or self.name}")
        return probe

    def gdbserver_command(self, pyocd: list[str], probe: Probe) -> list[str]:
        cmd = [*pyocd, "gdbserver", "--no-config", "-W", "-t", str(self.pyocd_target), "-u", probe.unique_id,
               "-p", "0", "-O", "semihost_console_type=off", "-O", "rtos.enable=false",
               "-O", "persist=false", "-O", "resume_on_disconnect=false"]
        if self.pack_path is not None:
            cmd += ["--pack", str(self.pack_path)]
        if self.frequency is not None:
            cmd += ["-f", str(self.frequency)]
        return cmd

    def run(self, elf: Path, timeout_s: float) -> RunResult:
        self._check_configured("measure")
        image = HarnessImage.read(elf)
        segments = image.load_segments()
        for address, data in segments:
            if not self.flash.holds(address, len(data)):
                raise StageError("measure", f"{image.elf.name}: {len(data)} bytes at {address:#x} lie outside "
                                 f"{self.name}'s flash ({self.flash.origin:#x}..{self.flash.end:#x}); built for "
                                 "another board?")
        pyocd = _need_pyocd()
        if self.needs_pack and self.pack_path is None:
            raise StageError("measure", f"{self.name}: pyOCD has no builtin target for the {self.part}; give its "
                             "CMSIS device family pack file as pack=PATH (Keil.STM32F7xx_DFP.<version>.pack)")
        if self.pack_path is not None and not self.pack_path.is_file():
            raise StageError("measure", f"{self.name}: CMSIS pack {self.pack_path} not found")
        # Lock before listing too: a probe another trial holds open may be missing from the list.
        first_key = self.probe or f"board-{self.name}"
        with contextlib.ExitStack() as locks:
            locks.enter_context(ProbeLock(first_key, self.lock_timeout_s, self.name))
            probe = self.select_probe(list_probes())
            if probe.unique_id != first_key:
                locks.enter_context(ProbeLock(probe.unique_id, self.lock_timeout_s, self.name))
            readout, log_text = self._run_locked(pyocd, probe, image, segments, timeout_s)
        return self.finish(readout, image, log_text)

    def _run_locked(self, pyocd: list[str], probe: Probe, image: HarnessImage,
                    segments: list[tuple[int, bytes]], timeout_s: float) -> tuple[Readout, str]:
        tmp = Path(tempfile.mkdtemp(prefix="mcus-pyocd-"))
        log_path = tmp / "gdbserver.log"
        proc: subprocess.Popen | None = None
        client: GdbClient | None = None
        detached = False
        try:
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(self.gdbserver_command(pyocd, probe), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                                            preexec_fn=die_with_parent)  # no orphan after kill -9
                except FileNotFoundError:
                    raise StageError("measure", f"{pyocd[0]} not found (pip install {PYOCD_REQUIREMENT})") from None
            client = self._connect(proc, log_path)
            readout = self.session(client, image, segments, timeout_s, log=lambda: _read_log(log_path))
            detached = _detach(client)
            return readout, _read_log(log_path)
        except GdbError as e:
            raise StageError("measure", f"GDB link to pyocd gdbserver failed: {e}",
                             log=_read_log(log_path)) from None
        finally:
            if client is not None:
                client.close()
            if proc is not None:
                stop_process(proc, grace_s=5.0 if detached else 3.0)
            shutil.rmtree(tmp, ignore_errors=True)

    def _connect(self, proc: subprocess.Popen, log_path: Path) -> GdbClient:
        """Wait for 'GDB server listening on port N' in pyocd's log, then connect over TCP."""
        deadline = time.monotonic() + self.connect_timeout_s
        delay = 0.02
        while True:
            text = _read_log(log_path)
            if proc.poll() is not None:
                raise StageError("measure", f"{classify_pyocd_failure(text)} (pyocd gdbserver exit status "
                                 f"{proc.returncode}: {_tail(text, 3)})", log=text)
            m = LISTENING_RE.search(text)
            if m:
                try:
                    return GdbClient.connect_tcp("127.0.0.1", int(m.group(1)), timeout_s=self.command_timeout_s)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise StageError("measure", f"pyocd gdbserver did not start within {self.connect_timeout_s:g} s "
                                 f"({classify_pyocd_failure(text)}; {_tail(text, 3)})", log=text)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def session(self, client: GdbClient, image: HarnessImage, segments: list[tuple[int, bytes]],
                timeout_s: float, log=lambda: "") -> Readout:
        """Everything after 'gdbserver is listening': identify, program, verify, reset, run, read.

        Works on any GDB stub that does what pyOCD does (the tests use QEMU behind a stand-in)."""
        client.handshake()
        check_core(client, self.core)
        if self.device_id is not None:
            address, mask, ids = self.device_id
            check_device_id(client, address, mask, ids, self.part or self.name)
        try:
            program_flash(client, segments, timeout_s=self.flash_timeout_s)
        except GdbError as e:
            raise StageError("measure", f"flash programming failed: {e}", log=log()) from None
        if self.verify:
            for address, data in segments:
                back = client.read_memory(address, len(data))
                if back != data:
                    bad = next(i for i, (a, b) in enumerate(zip(back, data)) if a != b)
                    raise StageError("measure", f"flash verify failed: byte at {address + bad:#x} reads "
                                     f"{back[bad]:#04x}, the image has {data[bad]:#04x}", log=log())
        try:
            out = monitor(client, "reset halt", timeout_s=self.command_timeout_s)
        except GdbError as e:
            raise StageError("measure", f"reset and halt failed: {e}", log=log()) from None
        if re.search(r"fail|error", out, re.I):
            raise StageError("measure", f"reset and halt failed: {out.strip()}", log=log())
        return run_to_done(client, image, timeout_s, stub="pyocd gdbserver", hardware_breakpoint=True, log=log)

    def finish(self, readout: Readout, image: HarnessImage, log_text: str = "") -> RunResult:
        """Decode the result block; StageError on a fault, a clock the firmware did not reach, or a
        cycle counter that did not count."""
        result = readout.decode(log_text, image.elf)
        source = CLOCK_SOURCES.get(readout.clock_source, f"source {readout.clock_source}")
        if readout.clock_hz is not None:
            want = int(self.clock_hz)
            if abs(readout.clock_hz - want) > self.clock_tolerance * want:
                raise StageError("measure", f"clock set-up failed: the core runs at {readout.clock_hz / 1e6:g} MHz "
                                 f"({source}), not {want / 1e6:g} MHz; cycles would not match the board's "
                                 "stated clock", log=log_text)
            result.log += f"\ncore clock {readout.clock_hz} Hz ({source})"
        if result.ticks and not any(result.ticks):
            raise StageError("measure", f"the cycle counter ({self.timer}) did not count: every inference took "
                             "0 ticks (no DWT CYCCNT on this core? try timer='systick')", log=log_text)
        return result


def _detach(client: GdbClient) -> bool:
    """'D': pyOCD leaves the core halted (resume_on_disconnect=false) and, with no client left, exits."""
    try:
        client.request(b"D", timeout_s=5.0)
        return True
    except GdbError:
        return False


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen, grace_s: float) -> None:
    """End a process we started, by its pid: wait ``grace_s``, then SIGINT (pyOCD closes the probe on
    KeyboardInterrupt), SIGTERM, SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((None, grace_s), (signal.SIGINT, 3.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ----------------------------------------------------------------------------------------------
# the boards


KB = 1024
STM32_FLASH = 0x0800_0000


@register
class NucleoF767ZI(PyocdBoard):
    name = "nucleo-f767zi"
    part = "STM32F767ZI"
    core = "cortex-m7"
    fpu = "double"
    cflags = cflags_for("cortex-m7", "double")
    pyocd_target = "stm32f767zi"                  # builtin
    part_prefixes = ("stm32f767",)                # pyOCD's board database says stm32f767zitx
    family = "stm32f7"
    timer_kind = "dwt"
    clock_hz = 216_000_000
    flash = Region(STM32_FLASH, 2048 * KB)
    ram = Region(0x2000_0000, 512 * KB)           # DTCM 128 KB + SRAM1 368 KB + SRAM2 16 KB, contiguous
    device_id = (0xE004_2000, 0xFFF, (0x451,))    # DBGMCU_IDCODE.DEV_ID, RM0410: STM32F76x/77x
    description = ("NUCLEO-F767ZI through pyOCD (STM32F767ZI, Cortex-M7, double-precision FPU): "
                   "216 MHz, 7 flash wait states, ART and L1 caches on; measured cycles (DWT)")


@register
class NucleoF722ZE(PyocdBoard):
    name = "nucleo-f722ze"
    part = "STM32F722ZE"
    core = "cortex-m7"
    fpu = "single"
    cflags = cflags_for("cortex-m7", "single")
    pyocd_target = "stm32f722zetx"                # from the pack (STM32F7xx_DFP); name as pyOCD's board DB has it
    part_prefixes = ("stm32f722",)
    needs_pack = True
    family = "stm32f7"
    timer_kind = "dwt"
    clock_hz = 216_000_000
    flash = Region(STM32_FLASH, 512 * KB)
    ram = Region(0x2000_0000, 256 * KB)           # DTCM 64 KB + SRAM1 176 KB + SRAM2 16 KB, contiguous
    device_id = (0xE004_2000, 0xFFF, (0x452,))    # DBGMCU_IDCODE.DEV_ID, RM0431: STM32F72x/73x
    description = ("NUCLEO-F722ZE through pyOCD (STM32F722ZE, the study's board; Cortex-M7, single-"
                   "precision FPU): 216 MHz, 7 wait states, ART and caches on; needs pack=PATH")


@register
class NucleoH743ZI(PyocdBoard):
    name = "nucleo-h743zi"
    part = "STM32H743ZI"
    core = "cortex-m7"
    fpu = "double"
    cflags = cflags_for("cortex-m7", "double")
    pyocd_target = "stm32h743xx"                  # builtin
    part_prefixes = ("stm32h743",)                # board DB: stm32h743zitx (NUCLEO-H743ZI and -ZI2)
    family = "stm32h7"
    timer_kind = "dwt"
    clock_hz = 400_000_000
    flash = Region(STM32_FLASH, 2048 * KB)
    ram = Region(0x2400_0000, 512 * KB)           # AXI SRAM (D1 domain, cached)
    result_ram = Region(0x2000_0000, 128 * KB)    # DTCM: not cached, read by the debugger directly
    device_id = (0x5C00_1000, 0xFFF, (0x450,))    # DBGMCU_IDC.DEV_ID, RM0433: STM32H742/743/750/753
    description = ("NUCLEO-H743ZI through pyOCD (STM32H743ZI, Cortex-M7, double-precision FPU): "
                   "400 MHz (VOS1), 2 flash wait states, L1 caches on; measured cycles (DWT)")


@register
class PyocdGeneric(PyocdBoard):
    """Any part pyOCD knows: its target name, core, memory and clock, given by define_board()."""

    name = "pyocd-generic"
    core = "any"                                  # until define_board() says which
    cflags = ()
    family = "generic"
    clock_hz = 0
    description = ("any pyOCD target: define_board(name, target=, core=, flash_kb=, ram_kb=, clock_hz=); "
                   "clock left at reset, caches off, DWT or SysTick cycles")


def define_board(name: str, *, target: str, core: str, flash_kb: int, ram_kb: int, clock_hz: int,
                 fpu: str = "none", flash_origin: int = STM32_FLASH, ram_origin: int = 0x2000_0000,
                 timer: str | None = None, pack: str | os.PathLike | None = None, part: str = "",
                 description: str = "", **extra: Any) -> type[PyocdBoard]:
    """Register a board for any pyOCD target (the generic entry) and return its class.

    ``target``: the pyOCD target name (``pyocd list --targets``; a pack's part needs ``pack``);
    ``clock_hz``: the clock the core runs at out of reset (the firmware does not change it);
    ``timer``: "dwt" (default on cores with one) or "systick" (Cortex-M0/M0+/M23).
    """
    if core not in CORES:
        raise ValueError(f"unknown core {core!r} (one of {', '.join(CORES)})")
    timer = timer or ("dwt" if core in DWT_CORES else "systick")
    if timer not in TIMER_SOURCES:
        raise ValueError(f"unknown timer {timer!r} (dwt or systick)")
    if timer == "dwt" and core not in DWT_CORES:
        raise ValueError(f"{core} has no DWT cycle counter: use timer='systick'")
    if name in BOARDS and not issubclass(BOARDS[name], PyocdGeneric):
        raise ValueError(f"board {name!r} already exists")
    attrs = dict(
        name=name, part=part or target, core=core, fpu=fpu, cflags=cflags_for(core, fpu), pyocd_target=target,
        family="generic", timer_kind=timer, clock_hz=int(clock_hz),
        flash=Region(int(flash_origin), int(flash_kb) * KB), ram=Region(int(ram_origin), int(ram_kb) * KB),
        pack=str(pack) if pack is not None else None,
        description=description or (f"{part or target} through pyOCD (generic: {core}, clock left at reset "
                                    f"{clock_hz / 1e6:g} MHz, caches off, {TIMER_NAMES[timer]} cycles)"),
        **extra,
    )
    cls = type(f"PyocdBoard_{re.sub(r'[^A-Za-z0-9]', '_', name)}", (PyocdGeneric,), attrs)
    return register(cls)
