"""Boards: where firmware runs. One interface (:class:`Board`), one registry (:data:`BOARDS`).

A board knows its core and compiler flags, its board-support sources under firmware/boards/,
how to run an ELF and read back the harness's result block, and what its timer counts.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
    from mcusearch.boards import qemu  # noqa: F401  (registers the emulated boards)


def available_boards() -> dict[str, type[Board]]:
    _load_plugins()
    return dict(BOARDS)


def get_board(name: str) -> Board:
    _load_plugins()
    return BOARDS[name]()
