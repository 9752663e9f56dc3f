"""Boards: where firmware runs. One interface (:class:`Board`), one registry (:data:`BOARDS`).

A board knows its core and compiler flags, its board-support sources under firmware/boards/,
how to run an ELF and read back the harness's result block, and what its timer counts.

Emulated boards (QEMU, :mod:`mcusearch.boards.qemu`) and real ones (through pyOCD,
:mod:`mcusearch.boards.pyocd_board`) read results the same way: the harness's result block in RAM,
over the GDB remote protocol (:mod:`mcusearch.boards.remote`). :func:`board_table` lists them all
for ``mcusearch boards``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from mcusearch.figures import Provenance

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"


@dataclass
class RunResult:
    """What the harness's result block (``mcus_result`` in RAM) held when the firmware finished."""

    ticks: list[int]        # timer ticks per inference, as the board's timer counts them
    outputs: bytes          # N * MCUS_OUTPUT_LEN * sizeof(mcus_output_t), raw little-endian
    status: int             # 1 = done, 2 = fault
    log: str = ""


class Board(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]              # "emulated" | "real"
    core: ClassVar[str]              # "cortex-m7", "cortex-m4", ...
    cflags: ClassVar[tuple[str, ...]]  # -mcpu / -mthumb / -mfpu / -mfloat-abi
    support_dir: ClassVar[str]       # folder under firmware/boards/ with startup, linker script, timer
    clock_hz: ClassVar[int]          # the clock an estimated time assumes
    counter: ClassVar[Provenance]    # what ticks are: EMULATED instructions or MEASURED cycles
    description: ClassVar[str] = ""
    fpu: ClassVar[str] = "none"      # "none" | "single" | "double": what the cflags use
    timer: ClassVar[str] = ""        # what counts, e.g. "DWT CYCCNT", "TIMER0 under -icount"

    @property
    def has_fpu(self) -> bool:
        return self.fpu != "none"

    @classmethod
    def probe_status(cls) -> str:
        """For real boards: whether a debug probe for it is connected. "-" for emulated boards."""
        return "-"

    @property
    def support_path(self) -> Path:
        return FIRMWARE_DIR / "boards" / self.support_dir

    @abstractmethod
    def run(self, elf: Path, timeout_s: float) -> RunResult:
        """Load ``elf``, run it to the harness's ``mcus_done()``, read ``mcus_result``.

        Raises StageError("measure", ...) on a hang (after ``timeout_s``), a fault or a tool error.
        """

    @abstractmethod
    def ticks_to_count(self, ticks: int) -> float:
        """Convert timer ticks into instructions (emulated) or cycles (real)."""


BOARDS: dict[str, type[Board]] = {}


def register(cls: type[Board]) -> type[Board]:
    BOARDS[cls.name] = cls
    return cls


def _load_plugins() -> None:
    from mcusearch.boards import pyocd_board  # noqa: F401  (registers the real boards)
    from mcusearch.boards import qemu  # noqa: F401  (registers the emulated boards)
    from mcusearch.boards import qemu_m0plus  # noqa: F401  (ARMv6-M code on mps2-an385)
    from mcusearch.boards import qemu_m55  # noqa: F401  (the Cortex-M55 on mps3-an547)


def available_boards() -> dict[str, type[Board]]:
    _load_plugins()
    return dict(BOARDS)


def get_board(name: str, **options: Any) -> Board:
    """An instance of the board ``name``. ``options`` go to real boards' constructors, e.g.
    ``probe="0670FF..."`` (a probe's unique ID) or ``pack="Keil.STM32F7xx_DFP.2.16.0.pack"``."""
    _load_plugins()
    return BOARDS[name](**options)


def define_board(name: str, **attrs: Any) -> type[Board]:
    """Register a real board from a pyOCD target name, memory sizes and clock (the generic entry);
    see :func:`mcusearch.boards.pyocd_board.define_board` for the attributes."""
    from mcusearch.boards import pyocd_board

    return pyocd_board.define_board(name, **attrs)


class BoardRow(NamedTuple):
    name: str
    kind: str        # emulated | real
    core: str
    fpu: str         # none | single | double
    probe: str       # "-" (emulated), "connected (uid)", "not connected", ...
    description: str


def board_table(check_probes: bool = True) -> list[BoardRow]:
    """One row per registered board, sorted emulated first, then by name. With ``check_probes``,
    real boards say whether a probe for them is connected (asks pyOCD once, a second or two)."""
    _load_plugins()
    if check_probes:
        from mcusearch.boards import pyocd_board

        pyocd_board.refresh_probe_cache()
    rows = []
    for name, cls in BOARDS.items():
        probe = cls.probe_status() if check_probes or cls.kind != "real" else "not checked"
        rows.append(BoardRow(name, cls.kind, cls.core, getattr(cls, "fpu", "none"), probe, cls.description))
    return sorted(rows, key=lambda r: (r.kind != "emulated", r.name))
