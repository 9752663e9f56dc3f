"""Build stage: generated C + harness + board support -> a firmware ELF, and its sizes.

Entry point: :func:`build`. Result: :class:`BuildResult`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BuildResult:
    elf: Path
    baseline_elf: Path        # the same harness and inputs with an empty model
    flash_bytes: int          # text + data of the whole image
    ram_bytes: int            # data + bss of the whole image
    model_flash_bytes: int    # flash_bytes minus the baseline's
    model_ram_bytes: int      # ram_bytes minus the baseline's
    cflags: list[str] = field(default_factory=list)
    map_file: Path | None = None
