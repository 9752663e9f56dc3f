"""Numbers with provenance: every figure the tool reports says how it was obtained."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum


class Provenance(str, Enum):
    MEASURED = "measured"    # a real board's cycle counter
    EMULATED = "emulated"    # exact instruction count in QEMU (-icount)
    ESTIMATED = "estimated"  # a model (its name is in `method`)
    STATIC = "static"        # read from the linked ELF image (exact, no execution)
    HOST = "host"            # computed on the host (accuracy of the Keras / TFLite model)


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    provenance: Provenance
    method: str = ""  # how exactly, e.g. "TIMER0 ticks x 40/128 under -icount shift=7"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["provenance"] = self.provenance.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Figure":
        return cls(float(d["value"]), d["unit"], Provenance(d["provenance"]), d.get("method", ""))

    def __str__(self) -> str:
        return f"{number(self.value)} {self.unit} ({self.provenance.value})"


def number(v: float) -> str:
    """A figure's value for a person: counts in full with thousands separators (11,586,100, not
    1.15861e+07), other values to 4 significant digits (53.64)."""
    if not math.isfinite(v):
        return f"{v}"
    if abs(v) >= 1e4 or (v == int(v) and abs(v) >= 1000):
        return f"{v:,.0f}"
    return f"{v:.4g}"
