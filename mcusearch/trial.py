"""One trial: knob values -> model -> C -> firmware -> measurement -> figures with provenance.

Entry point: :func:`run_trial`. Result: :class:`TrialResult`. Every stage failure surfaces as a
:class:`~mcusearch.errors.StageError` naming the stage; the study records it and goes on.

Before any training the trial checks that it can succeed at all (:func:`check_feasible`): the
converter must take the model's number format, and the candidate's exact size (parameters that
can be non-zero, the largest activation) must fit the spec's flash and RAM limits even in the best
case. Otherwise it raises :class:`~mcusearch.errors.Infeasible`, which the study records as an
infeasible (pruned) trial, not a failure.
"""
from __future__ import annotations

import contextlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mcusearch.errors import Infeasible, McusearchError, StageError
from mcusearch.figures import Figure, Provenance
from mcusearch.knobs import TrialConfig
from mcusearch.spec import Spec

if TYPE_CHECKING:
    from mcusearch.model import ModelKnobs, ModelResult

log = logging.getLogger("mcusearch.trial")


@dataclass
class TrialResult:
    config: TrialConfig
    figures: dict[str, Figure]
    artifacts: dict[str, str]                       # name -> path (relative to the run folder)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    frame_period_s: float | None = None
    notes: dict[str, str] = field(default_factory=dict)
    # per layer: [name, instructions (emulated) or cycles (measured) per inference], from the markers
    layers: list[list] = field(default_factory=list)
    # catalog part -> this firmware's cycle estimate on the part's own memory system (emulated boards;
    # mcusearch.parts.estimate.part_cycles_for_trial)
    part_cycles: dict[str, dict] = field(default_factory=dict)


@contextmanager
def _stage(name: str, seconds: dict[str, float], on_stage: Callable[[str], None] | None = None):
    if on_stage is not None:
        on_stage(name)
    t0 = time.perf_counter()
    try:
        yield
    except McusearchError:
        raise
    except Exception as e:  # a bug or a library error inside a stage: name the stage, keep going
        raise StageError(name, f"{type(e).__name__}: {e}") from e
    finally:
        seconds[name] = round(time.perf_counter() - t0, 3)


def model_knobs(spec: Spec, config: TrialConfig) -> "ModelKnobs":
    """The model stage's knobs of a trial (settings the config leaves open come from the spec)."""
    from mcusearch.model import ModelKnobs

    by_layer = config.channels_per == "layer"
    return ModelKnobs(
        channels=None if by_layer else config.channels,
        layer_channels=config.channels if by_layer else None,
        keep_ratio=config.keep_ratio, quantization=config.quantization,
        retrain_epochs=(spec.model.retrain_epochs if config.retrain_epochs is None
                        else config.retrain_epochs),
        criterion=config.criterion, sparsity=float(config.sparsity),
        sparsity_epochs=2 if config.sparsity_epochs is None else config.sparsity_epochs)


def check_feasible(spec: Spec, config: TrialConfig, knobs: "ModelKnobs") -> dict[str, str]:
    """Raise :class:`Infeasible` when the trial cannot meet the spec whatever happens next;
    return notes on the lower bounds it checked.

    Needs no training: the converter's formats, and the exact size of the candidate (the
    architecture shrunk by the channel knobs) in the knobs' format and sparsity, compared with
    ``constraints.flash_kb`` / ``ram_kb`` (which limit the whole image, so the model alone
    exceeding one is already too much).
    """
    from mcusearch.convert import available_converters
    from mcusearch.model import QUANT_FORMAT, WEIGHT_BYTES, candidate_footprint

    fmt = QUANT_FORMAT[config.quantization]
    formats = available_converters().get(config.converter, frozenset())
    if fmt not in formats:
        raise Infeasible("converter", f"converter {config.converter!r} takes "
                         f"{', '.join(sorted(formats)) or 'no'} models, not {fmt} "
                         f"(quantization {config.quantization})")
    c = spec.constraints
    if c.flash_kb is None and c.ram_kb is None:
        return {}
    fp = candidate_footprint(spec.base_model_config(), knobs, spec.cache_dir)
    flash_kb, ram_kb = fp.flash_bytes / 1024, fp.activation_bytes / 1024
    if c.flash_kb is not None and flash_kb > c.flash_kb:
        raise Infeasible("flash_kb", f"the model alone needs at least {flash_kb:.1f} kB of flash "
                         f"({fp.nonzero_params:,} kernel weights that stay non-zero x "
                         f"{WEIGHT_BYTES[fmt]} B, {fmt}{_sparse(fp)}); constraints.flash_kb is "
                         f"{c.flash_kb:g} kB for the whole image")
    if c.ram_kb is not None and ram_kb > c.ram_kb:
        raise Infeasible("ram_kb", f"the model alone needs at least {ram_kb:.1f} kB of RAM (the "
                         f"output of {fp.largest_activation}, {fmt}); constraints.ram_kb is "
                         f"{c.ram_kb:g} kB for the whole image")
    return {"lower_bounds": f"{fp.describe()}; limits flash {c.flash_kb} kB, RAM {c.ram_kb} kB"}


def _sparse(fp) -> str:
    return f", {fp.sparsity:g} magnitude sparsity" if fp.sparsity else ""


STDERR_LOG = "stderr.log"  # in a trial's folder: what libraries printed to stderr (C++ included)


@contextmanager
def _to_trial_log(trial_dir: Path, stage: str):
    """Keep what a stage's libraries print on file descriptor 2 (TensorFlow's C++, the TFLite
    converter's ``fully_quantize:`` lines) off the terminal, appended to the trial's log."""
    from mcusearch.log import capture_fd2

    out = None
    try:
        with capture_fd2() as out:
            yield
    finally:
        if out is not None and out.text.strip():
            with open(trial_dir / STDERR_LOG, "a") as f:
                f.write(f"--- {stage} ---\n{out.text}")


def _one_at_a_time(board):
    """A real board runs one firmware at a time across this machine's workers (emulators run
    side by side)."""
    if board.kind == "real":
        from mcusearch.proc import board_lock
        return board_lock(board.name)
    return contextlib.nullcontext()


def run_trial(spec: Spec, config: TrialConfig, trial_dir: Path,
              on_stage: Callable[[str], None] | None = None) -> TrialResult:
    """Run one trial's stages in order; ``on_stage(name)`` is told when each stage starts."""
    from mcusearch.build import build
    from mcusearch.convert import convert
    from mcusearch.estimate import estimate_cycles
    from mcusearch.parts.estimate import part_cycles_for_trial
    from mcusearch.measure import measure
    from mcusearch.model import build_model

    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    run_dir = spec.run_dir.resolve()
    seconds: dict[str, float] = {}

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        p = Path(p).resolve()
        return str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)

    knobs = model_knobs(spec, config)
    with _stage("feasibility", seconds, on_stage):
        bounds = check_feasible(spec, config, knobs)
    with _stage("model", seconds, on_stage), _to_trial_log(trial_dir, "model"):
        model = build_model(spec.base_model_config(), knobs, spec.cache_dir, out_dir=trial_dir / "model")
    with _stage("convert", seconds, on_stage), _to_trial_log(trial_dir, "convert"):
        conv = convert(model, config.converter, trial_dir / "c")
    board = spec.board(config.board)
    with _stage("build", seconds, on_stage):
        fw = build(conv, board, config.opt_level, trial_dir / "build", cache_dir=spec.cache_dir / "firmware")
    with _stage("measure", seconds, on_stage), _one_at_a_time(board):
        meas = measure(fw, conv, board, timeout_s=spec.target.timeout_s)
    latency, cycles, part_cycles = meas.est_latency_ms, None, {}
    if board.kind == "emulated":  # cycles: the class mix of this very firmware x the core's cycle model
        with _stage("estimate", seconds, on_stage):
            est = estimate_cycles(fw.elf, board, meas.per_inference.value, trial_dir / "profile",
                                  timeout_s=3 * spec.target.timeout_s)
            latency, cycles = est.latency_ms, est.cycles
        with _stage("parts", seconds, on_stage):
            part_cycles = part_cycles_for_trial(
                fw.elf, board, spec.parts(), meas.per_inference.value,
                trial_dir / "profile" / "parts", timeout_s=3 * spec.target.timeout_s,
                flash_kb=fw.flash_bytes / 1024, ram_kb=fw.ram_bytes / 1024, margin=spec.catalog.margin)
    else:  # a real board's counter counts cycles
        cycles = meas.per_inference

    kb = 1024.0
    elf = f"arm-none-eabi ELF sections ({board.name}, {config.opt_level})"
    acc_method = model.extra.get("accuracy_figure", {}).get("method") or (
        f"TFLite interpreter, {model.quantization}" if model.tflite_path else "Keras, float32")
    figures = {
        "flash_kb": Figure(fw.flash_bytes / kb, "kB", Provenance.STATIC, f"text+data of the image; {elf}"),
        "ram_kb": Figure(fw.ram_bytes / kb, "kB", Provenance.STATIC, f"data+bss of the image; {elf}"),
        "model_flash_kb": Figure(fw.model_flash_bytes / kb, "kB", Provenance.STATIC,
                                 "image minus the same harness built without the model"),
        "model_ram_kb": Figure(fw.model_ram_bytes / kb, "kB", Provenance.STATIC,
                               "image minus the same harness built without the model"),
        "instructions": meas.per_inference,
        "latency_ms": latency,
        **({"cycles": cycles} if cycles is not None else {}),
        **quality_figures(model, acc_method),
        "params": Figure(model.params, "parameters", Provenance.HOST, "counted from the model"),
        "macs": Figure(model.macs, "MACs", Provenance.HOST, "multiply-accumulates per inference"),
        **model_figures(model),
    }
    artifacts = {
        "keras": rel(model.keras_path),
        "tflite": rel(model.tflite_path),
        "c_dir": rel(trial_dir / "c"),
        "elf": rel(fw.elf),
        "map": rel(fw.map_file),
    }
    layers = [[name, round(float(count), 1)] for name, count in getattr(meas, "layer_counts", [])]
    notes = {
        "output_check": (f"{len(meas.counts)} probe inputs, max |firmware - host| = {meas.max_abs_error:g} "
                         f"({conv.output_meaning})" + (f", top-1 agreement {meas.argmax_agreement:.0%}"
                                                       if model.class_names else "")
                         + (f"; {meas.check_note}" if meas.check_note else "")),
        "model_cache_key": model.cache_key,
        **({"model_cache": model.extra["cache"]} if "cache" in model.extra else {}),
        **bounds,
        **model_notes(model),
    }
    return TrialResult(config, figures, artifacts, seconds,
                       frame_period_s=model.extra.get("frame_period_s"), notes=notes, layers=layers,
                       part_cycles=part_cycles)


def quality_figures(model: "ModelResult", method: str) -> dict[str, Figure]:
    """A figure for every quality metric the model stage computed (mcusearch.model.metrics),
    each with its unit and how it was computed; ``method`` says which model ran on which data."""
    from mcusearch.model.metrics import REGISTRY

    values = dict(model.extra.get("metrics") or {})
    task = values.get("task", "classification")
    if task == "classification":  # also variants cached before the metric plug-ins
        values.setdefault("accuracy", model.accuracy)
        values.setdefault("balanced_accuracy", model.balanced_accuracy)
    n = model.extra.get("n_test", "?")
    return {name: Figure(float(values[name]), m.unit, Provenance.HOST,
                         f"{m.description}; held-out test set ({n} samples), {method}")
            for name, m in REGISTRY.items() if name in values and task in m.tasks}


def model_figures(model: "ModelResult") -> dict[str, Figure]:
    """The model stage's sparsity figures: zeros of the float kernels and of the quantised
    weights (the study's setup 6: does magnitude sparsity survive int8?)."""
    out = {}
    ws = model.extra.get("weight_sparsity")
    if ws:
        out["weight_sparsity"] = Figure(ws["sparsity"], "fraction", Provenance.HOST,
                                        "exact zeros in the conv/dense kernels of the float model")
    tw = model.extra.get("tflite_weights")
    if tw:
        out["quantized_zero_fraction"] = Figure(
            tw["zero_fraction"], "fraction", Provenance.HOST,
            f"exact zeros in the {model.quantization} weight tensors of the TFLite model")
    return out


def _fmt_map(d: dict, fmt: str = "{:.4f}") -> str:
    return ", ".join(f"{k} {fmt.format(v)}" for k, v in d.items())


def model_notes(model: "ModelResult") -> dict[str, str]:
    """What the model stage did, in words (stored with the trial)."""
    ex = model.extra
    notes = {}
    if model.per_class_accuracy:
        notes["per_class_accuracy"] = _fmt_map(dict(zip(model.class_names,
                                                        model.per_class_accuracy)))
    fm = ex.get("float_metrics")
    if fm and model.tflite_path is not None:
        from mcusearch.model.metrics import REGISTRY
        notes["float_metrics"] = ", ".join(f"{REGISTRY[k].label} {fm[k]:.4g}" for k in REGISTRY
                                           if k in fm) + " before quantisation (Keras, float32)"
    pr = ex.get("pruning") or {}
    if pr.get("pruned"):
        kn = ex.get("knobs", {})
        notes["channel_pruning"] = (
            f"filters kept {_fmt_map(dict(kn.get('keep', [])), '{}')}; criterion "
            f"{kn.get('criterion')}; re-training {kn.get('retrain_epochs')} epochs; surgery "
            f"{pr.get('engine') or 'not recorded'}" + (f"; {'; '.join(ex['adjusted'])}"
                                                 if ex.get("adjusted") else ""))
    mag = ex.get("magnitude")
    if mag:
        s = mag["schedule"]
        notes["magnitude_pruning"] = (
            f"target {mag['target']:g}, {mag['epochs']} epochs, PolynomialDecay begin "
            f"{s['begin_step']} end {s['end_step']} frequency {s['frequency']}"
            + (f" ({s['note']})" if s.get("note") else ""))
    ws = ex.get("weight_sparsity")
    if ws and ws.get("kernel_zeros"):
        notes["sparsity_per_layer"] = _fmt_map({k: v["sparsity"] for k, v in
                                                ws["layers"].items()})
    tw = ex.get("tflite_weights")
    if tw:
        notes["quantized_zeros_per_layer"] = ", ".join(
            f"{l.get('layer', l['tensor'])} {l['zero_fraction']:.4f}" for l in tw["layers"])
    if ex.get("quantization_method"):
        notes["quantization"] = ex["quantization_method"]
    return notes
