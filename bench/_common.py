"""What the benchmarks share: a ModelResult for a Keras model, one convert -> build -> measure
run, and the model's flash split from the ELF's symbols.

bench/ is not a package: a script puts the repository root on sys.path, then
``from _common import ...`` finds this file beside it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

# The generators' array names: l<NN>_<layer>_<part> (mcusearch: _w weights, _e/_v/_d/_n sparse
# entries / values / deltas / counts, _b bias, _m/_s multipliers/shifts, _p the layer's parameter
# struct; mcusearch-ref: _mult/_shift); Aidge's export: <node>_weights_output_0, _biases_output_0.
_PARTS = {"w": "weights", "e": "weights", "v": "weights", "d": "weights", "n": "weights",
          "b": "biases", "m": "requant", "s": "requant", "mult": "requant", "shift": "requant"}
STAGES = ("quantize", "convert", "build", "measure", "estimate")


def _stage(name: str, fn, *args, **kwargs):
    """Run one stage; an exception leaves with ``bench_stage`` set to the stage's name."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if not hasattr(e, "bench_stage"):
            e.bench_stage = name
        raise


def model_result(model, d: Path, quant: str, probes: np.ndarray, rep: np.ndarray, *,
                 input_shape: tuple[int, ...], class_names: tuple[str, ...], macs: int):
    """The model stage's result for a ready Keras model: saved as .h5 under ``d`` and, for
    int8, quantised with ``rep`` as the representative data set (both reused when present)."""
    from mcusearch.model import ModelResult
    from mcusearch.model.quantize import to_int8_tflite
    from mcusearch.model.stage import save_keras
    d.mkdir(parents=True, exist_ok=True)
    keras_path = d / "model.h5"
    if not keras_path.exists():
        save_keras(model, keras_path)
    tfl = None
    if quant == "int8":
        tfl = d / "model_int8.tflite"
        if not tfl.exists():
            from mcusearch.log import capture_fd2
            with capture_fd2():          # the converter's C++ "fully_quantize:" lines
                _stage("quantize", to_int8_tflite, model, rep, tfl)
    return ModelResult(keras_path=keras_path, tflite_path=tfl, quantization=quant,
                       accuracy=float("nan"), params=model.count_params(), macs=macs,
                       input_shape=tuple(input_shape), class_names=tuple(class_names),
                       probe_inputs=probes, probe_labels=np.zeros(len(probes), int),
                       cache_key="bench")


def run_one(mr, converter: str, board_name: str, d: Path, cache: Path, macs: int,
            cycles: bool = False) -> dict:
    """Convert, build at -O3 and measure ``mr`` on ``board_name``: one record of figures
    (instructions from the board's counter, sizes from the ELF; with ``cycles``, the board's
    cycle-model estimate too). An exception carries the failing stage as ``bench_stage``."""
    from mcusearch.boards import get_board
    from mcusearch.build import build
    from mcusearch.convert import convert
    from mcusearch.estimate import estimate_cycles
    from mcusearch.measure import measure
    t0 = time.perf_counter()
    conv = _stage("convert", convert, mr, converter, d / "c")
    board = get_board(board_name)
    fw = _stage("build", build, conv, board, "-O3", d / "build", cache_dir=cache)
    m = _stage("measure", measure, fw, conv, board, timeout_s=600)
    rec = {
        "instructions": m.per_inference.value,
        "instructions_per_mac": m.per_inference.value / macs,
        "flash_bytes": fw.model_flash_bytes,
        "flash_split": flash_split(fw.elf, fw.baseline_elf),
        "ram_bytes": fw.model_ram_bytes,
        "arena_bytes": conv.arena_bytes,
        "layers": [[n, round(c)] for n, c in m.layer_counts],
        "marker_overhead": m.marker_overhead,
        "max_abs_error": m.max_abs_error,
    }
    if cycles:
        est = _stage("estimate", estimate_cycles, fw.elf, board, m.per_inference.value, d / "profile",
                     timeout_s=600)
        rec.update(est_cycles=est.cycles.value, est_config=est.config)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    plan = d / "c" / "plan.json"
    if plan.exists():
        info = json.loads(plan.read_text())
        rec["variants"] = {la["name"]: la["variant"] for la in info["layers"] if la["variant"] != "-"}
        rec["weight_bytes"] = sum(la["weight_bytes"] for la in info["layers"])
        rec["dense_weight_bytes"] = sum(la["dense_weight_bytes"] for la in info["layers"])
        if "peak" in info:
            rec["peak_bytes"], rec["peak_buffers"] = info["peak"]["bytes"], info["peak"]["buffers"]
    return rec


def flash_split(elf: Path, baseline_elf: Path) -> dict[str, int]:
    """Where the model's flash goes, from the symbols the image has and its baseline has not:
    weights, biases, requantisation constants, code (functions) and other (parameter structs,
    schedules, tables). Sums to the symbols' sizes, not to the alignment padding between them."""
    from mcusearch.build import elf as elfinfo
    base = set(elfinfo.symbols(baseline_elf))
    split = dict.fromkeys(("weights", "biases", "requant", "code", "other"), 0)
    for name, sym in elfinfo.symbols(elf).items():
        if name in base or sym.size == 0 or sym.address >= 0x20000000:   # RAM (arena, buffers)
            continue
        m = re.fullmatch(r"l\d+_\w+?_(w|e|v|d|n|b|m|s|mult|shift)", name)
        a = re.fullmatch(r"\w+_(weights|biases)_output_\d+", name)
        part = (_PARTS[m.group(1)] if m else a.group(1) if a
                else "code" if sym.kind == "STT_FUNC" else "other")
        split[part] += sym.size
    return split


def failure(e: BaseException) -> str:
    """One line: the stage that failed and why (a StageError's own stage and message; else
    the stage the bench was in and the exception's type and first line)."""
    if isinstance(getattr(e, "stage", None), str) and getattr(e, "message", None):
        return f"{e.stage}: {str(e.message).strip().splitlines()[0]}"
    stage = getattr(e, "bench_stage", None)
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    reason = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return f"{stage}: {reason}" if stage else reason
