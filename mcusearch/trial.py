"""One trial: knob values -> model -> C -> firmware -> measurement -> figures with provenance.

Entry point: :func:`run_trial`. Result: :class:`TrialResult`. Every stage failure surfaces as a
:class:`~mcusearch.errors.StageError` naming the stage; the study records it and goes on.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcusearch.errors import McusearchError, StageError
from mcusearch.figures import Figure, Provenance
from mcusearch.knobs import TrialConfig
from mcusearch.spec import Spec

log = logging.getLogger("mcusearch.trial")


@dataclass
class TrialResult:
    config: TrialConfig
    figures: dict[str, Figure]
    artifacts: dict[str, str]                       # name -> path (relative to the run folder)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    frame_period_s: float | None = None
    notes: dict[str, str] = field(default_factory=dict)


@contextmanager
def _stage(name: str, seconds: dict[str, float]):
    t0 = time.perf_counter()
    try:
        yield
    except McusearchError:
        raise
    except Exception as e:  # a bug or a library error inside a stage: name the stage, keep going
        raise StageError(name, f"{type(e).__name__}: {e}") from e
    finally:
        seconds[name] = round(time.perf_counter() - t0, 3)


def run_trial(spec: Spec, config: TrialConfig, trial_dir: Path) -> TrialResult:
    from mcusearch.build import build
    from mcusearch.convert import convert
    from mcusearch.measure import measure
    from mcusearch.model import ModelKnobs, build_model

    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    run_dir = spec.run_dir.resolve()
    seconds: dict[str, float] = {}

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        p = Path(p).resolve()
        return str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)

    with _stage("model", seconds):
        knobs = ModelKnobs(channels=config.channels, quantization=config.quantization,
                           retrain_epochs=spec.model.retrain_epochs)
        model = build_model(spec.base_model_config(), knobs, spec.cache_dir, out_dir=trial_dir / "model")
    with _stage("convert", seconds):
        conv = convert(model, config.converter, trial_dir / "c")
    board = spec.board(config.board)
    with _stage("build", seconds):
        fw = build(conv, board, config.opt_level, trial_dir / "build")
    with _stage("measure", seconds):
        meas = measure(fw, conv, board, timeout_s=spec.target.timeout_s)

    kb = 1024.0
    elf = f"arm-none-eabi ELF sections ({board.name}, {config.opt_level})"
    acc_method = ("TFLite interpreter, int8" if config.quantization == "int8" else "Keras, float32")
    figures = {
        "flash_kb": Figure(fw.flash_bytes / kb, "kB", Provenance.STATIC, f"text+data of the image; {elf}"),
        "ram_kb": Figure(fw.ram_bytes / kb, "kB", Provenance.STATIC, f"data+bss of the image; {elf}"),
        "model_flash_kb": Figure(fw.model_flash_bytes / kb, "kB", Provenance.STATIC,
                                 "image minus the same harness built without the model"),
        "model_ram_kb": Figure(fw.model_ram_bytes / kb, "kB", Provenance.STATIC,
                               "image minus the same harness built without the model"),
        "instructions": meas.per_inference,
        "latency_ms": meas.est_latency_ms,
        "accuracy": Figure(model.accuracy, "fraction", Provenance.HOST,
                           f"held-out test set ({model.extra.get('n_test', '?')} samples), "
                           f"{acc_method}"),
        "params": Figure(model.params, "parameters", Provenance.HOST, "counted from the model"),
        "macs": Figure(model.macs, "MACs", Provenance.HOST, "multiply-accumulates per inference"),
    }
    artifacts = {
        "keras": rel(model.keras_path),
        "tflite": rel(model.tflite_path),
        "c_dir": rel(trial_dir / "c"),
        "elf": rel(fw.elf),
        "map": rel(fw.map_file),
    }
    notes = {
        "output_check": (f"{len(meas.counts)} probe inputs, max |firmware - host| = {meas.max_abs_error:g} "
                         f"({conv.output_meaning}), top-1 agreement {meas.argmax_agreement:.0%}"),
        "model_cache_key": model.cache_key,
    }
    return TrialResult(config, figures, artifacts, seconds,
                       frame_period_s=model.extra.get("frame_period_s"), notes=notes)
