"""Measure stage: run the firmware on a board, get counts per inference, check outputs vs host.

Entry point: :func:`measure`. Result: :class:`Measurement`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mcusearch.errors import StageError
from mcusearch.figures import Figure, Provenance

if TYPE_CHECKING:
    from mcusearch.boards import Board
    from mcusearch.build import BuildResult
    from mcusearch.convert import ConvertResult


@dataclass
class Measurement:
    board: str
    counts: list[float]           # instructions (emulated) or cycles (real) per inference
    per_inference: Figure         # mean of counts, with provenance
    est_latency_ms: Figure        # time at the board's clock (estimated unless measured cycles)
    outputs: np.ndarray           # (N, MCUS_OUTPUT_LEN) what the firmware computed
    max_abs_error: float          # vs the host model's outputs
    argmax_agreement: float       # fraction of inputs where the firmware's top class = host's
    # Per-layer profile (generated code with markers, see firmware/harness/mcus_profile.h):
    # (layer name, instructions or cycles per inference) averaged over the inputs, the markers' own
    # fixed cost taken out. Empty when the firmware has no profile block.
    layer_counts: list[tuple[str, float]] = field(default_factory=list)
    marker_overhead: float = 0.0  # what the markers added to each whole-inference count (removed)
    check_note: str = ""          # non-empty: why the output match proves little (ConvertResult.probe_note)


def measure(build: "BuildResult", conv: "ConvertResult", board: "Board", timeout_s: float = 120) -> Measurement:
    """Run ``build.elf`` on ``board``, check its outputs against the host model, count the work.

    Raises StageError("measure", ...) on a hang, a fault or outputs outside conv.atol/conv.rtol.
    """
    run = board.run(build.elf, timeout_s)
    if run.status != 1:
        raise StageError("measure", f"firmware finished with status {run.status} (expected 1 = done)", log=run.log)

    expected = np.asarray(conv.expected)
    n = expected.shape[0]
    expected = expected.reshape(n, -1)
    out_len = expected.shape[1]
    dtype = np.dtype(conv.output_dtype).newbyteorder("<")
    want_bytes = n * out_len * dtype.itemsize
    if len(run.ticks) != n or len(run.outputs) != want_bytes:
        raise StageError("measure", f"firmware returned {len(run.ticks)} results and {len(run.outputs)} output "
                         f"bytes; expected {n} and {want_bytes}", log=run.log)
    outputs = np.frombuffer(run.outputs, dtype=dtype).reshape(n, out_len).astype(np.dtype(conv.output_dtype))

    got = outputs.astype(np.float64)
    want = expected.astype(np.float64)
    diff = np.abs(got - want)
    diff[~np.isfinite(got) | ~np.isfinite(want)] = np.inf
    diff[(got == want) | (np.isnan(got) & np.isnan(want))] = 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    bad = diff > conv.atol + conv.rtol * np.abs(want)
    if bad.any():
        i, j = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), diff.shape)
        raise StageError(
            "measure",
            f"firmware outputs differ from the host model: max |diff| {max_abs:.6g} at input {i} output {j} "
            f"(firmware {got[i, j]:.6g}, host {want[i, j]:.6g}); {int(bad.sum())} of {bad.size} values outside "
            f"atol={conv.atol:g}, rtol={conv.rtol:g}",
            log=run.log,
        )
    agreement = float(np.mean(np.argmax(got, axis=1) == np.argmax(want, axis=1))) if out_len else 1.0

    counts = [float(board.ticks_to_count(t)) for t in run.ticks]
    layer_counts, overhead = _layer_profile(run, conv, board, n)
    counts = [c - overhead for c in counts]
    mean = float(np.mean(counts))
    emulated = board.counter == Provenance.EMULATED
    unit = getattr(board, "count_unit", "instructions" if emulated else "cycles")
    method = getattr(board, "count_method", None) or (
        "TIMER0 ticks x 40/128 under QEMU -icount shift=7 (exact instruction count)" if emulated
        else "cycle counter")
    if overhead:
        method += (f"; minus {overhead:g} for the per-layer markers (their cost, measured once by the "
                   "harness, times the marker pairs per inference)")
    per_inference = Figure(mean, unit, board.counter, f"mean over {n} probe inputs; {method}")

    if board.counter == Provenance.MEASURED:
        est = Figure(mean / board.clock_hz * 1e3, "ms", Provenance.MEASURED,
                     f"measured cycles / {board.clock_hz / 1e6:g} MHz")
    else:
        cpi = float(getattr(board, "est_cpi", 1.0))
        est = Figure(mean * cpi / board.clock_hz * 1e3, "ms", Provenance.ESTIMATED,
                     f"emulated {unit} x {cpi:g} cycle/instruction at {board.clock_hz / 1e6:g} MHz "
                     "(an assumed CPI; `mcusearch calibrate` gives the cycle model's per-part estimate)")

    return Measurement(
        board=board.name,
        counts=counts,
        per_inference=per_inference,
        est_latency_ms=est,
        outputs=outputs,
        max_abs_error=max_abs,
        argmax_agreement=agreement,
        layer_counts=layer_counts,
        marker_overhead=overhead,
        check_note=conv.probe_note,
    )


def _layer_profile(run, conv: "ConvertResult", board: "Board", n: int) -> tuple[list[tuple[str, float]], float]:
    """-> (per-layer counts per inference, marker cost per inference) from the run's profile block.

    Every marker pair's fixed cost is measured by the harness before the inputs run, with the calls
    the model makes: ``pair`` = what a pair adds to a timed region, ``inside`` = what a pair
    measures around nothing. A layer's count is its summed ticks minus ``inside`` per call; the
    whole-inference count loses ``pair`` per call.
    """
    prof = getattr(run, "layer_profile", None)
    if prof is None or not prof.enabled or not n or not any(prof.layer_calls):
        return [], 0.0          # no profile, or a converter whose code has no layer markers
    names = list(conv.layers) if len(conv.layers) == len(prof.layer_ticks) else \
        [f"layer {i}" for i in range(len(prof.layer_ticks))]
    pair = float(board.ticks_to_count(prof.pair_ticks)) - float(board.ticks_to_count(prof.empty_ticks))
    calls_per_inference = sum(prof.layer_calls) / n
    out = []
    inside = float(board.ticks_to_count(prof.inside_ticks))
    for name, ticks, calls in zip(names, prof.layer_ticks, prof.layer_calls):
        net = max(float(board.ticks_to_count(ticks)) - calls * inside, 0.0)
        out.append((name, net / n))
    return out, calls_per_inference * pair
