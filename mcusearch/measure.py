"""Measure stage: run the firmware on a board, get counts per inference, check outputs vs host.

Entry point: :func:`measure`. Result: :class:`Measurement`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcusearch.figures import Figure


@dataclass
class Measurement:
    board: str
    counts: list[float]           # instructions (emulated) or cycles (real) per inference
    per_inference: Figure         # mean of counts, with provenance
    est_latency_ms: Figure        # time at the board's clock (estimated unless measured cycles)
    outputs: np.ndarray           # (N, MCUS_OUTPUT_LEN) what the firmware computed
    max_abs_error: float          # vs the host model's outputs
    argmax_agreement: float       # fraction of inputs where the firmware's top class = host's
