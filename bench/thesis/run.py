"""Reproduce the 2020 study with one command (`make thesis`; issue 15).

Runs a free search over the union of the study's knobs under its constraints (free.yaml) and the
study's experiments as grid searches on the emulated Cortex-M7 (bench/thesis/*.yaml: magnitude
pruning, converters x compiler flags, channel pruning), and writes
``<out>/thesis.html``: the study's tables and figures side by side with ours (bench/thesis/render.py).

    .venv/bin/python bench/thesis/run.py              # everything, into reports/thesis/
    .venv/bin/python bench/thesis/run.py --quick      # a small subset, into reports/thesis-quick/
    .venv/bin/python bench/thesis/run.py --report-only  # rewrite thesis.html from the studies so far
    .venv/bin/python bench/thesis/run.py --study-timeout 15   # each study at most 15 min, then the next
    .venv/bin/python bench/thesis/run.py --only free          # continue one study; report them all

Resumable: every study lives in ``<out>/<experiment>/study.db``; running again continues each one
where it stopped (a finished study only reports). All studies share one model cache
(``<out>/cache``): the base model trains once.

``--quick`` keeps the specs' structure but shrinks them (1,200 training and 400 test frames,
2 training epochs, 1 re-training and magnitude epoch, 16 channels removed, 90 % sparsity, -O3,
float32 where int8 adds no table, no aidge, 2 free-search trials on qemu-m7, trials in this process): the pipeline end
to end, not the study's numbers.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

log = logging.getLogger("thesis")

# Spec file stems, run in this order: the free search's answer first, the long channel sweep last.
EXPERIMENTS = ("free", "magnitude", "toolchain", "channels")
ACCURACY_TOLERANCE = 0.015   # the study's own: within 1.5 points of the unpruned model
NOCACHE_MODEL = "cortex-m7:stm32f7-216mhz-nocache"  # the study's F722 with ART and L1 caches off
NOCACHE_FILE = "thesis-nocache.json"                # per trial folder: the uncached estimate

# --quick: per experiment, the knob domains that replace the spec's (the structure stays).
QUICK_KNOBS = {
    "channels": {"channels": {"values": [16], "retrain_epochs": [0, 1]}},
    "magnitude": {"magnitude": {"sparsity": [0.9], "epochs": [1]}, "quantization": ["float32"]},
    "toolchain": {"opt_level": ["-O3"], "quantization": ["float32"], "converter": ["mcusearch", "mcusearch-ref"]},
    "free": {"channels": {"values": [16, 32], "retrain_epochs": [1]},
             "magnitude": {"sparsity": [0, 0.9], "epochs": [1]}},
}
QUICK_TRIALS = {"free": 2}
QUICK_BOARDS = ["qemu-m7"]  # the free search's other cores cost minutes each in CI


@dataclass
class Experiment:
    """One study of the reproduction: its spec (with this run's overrides) and its summary."""

    key: str
    spec: object            # mcusearch.spec.Spec
    summary: object = None  # mcusearch.study.StudySummary once run or loaded
    seconds: float = 0.0    # wall time of this invocation's run of the study


def _update(obj, changes: dict):
    """A pydantic model with some fields replaced (nested models given as dicts are merged)."""
    new = {}
    for k, v in changes.items():
        cur = getattr(obj, k)
        new[k] = _update(cur, v) if isinstance(v, dict) and hasattr(cur, "model_copy") else v
    return obj.model_copy(update=new)


def load_experiment(key: str, out: Path, quick: bool):
    """The spec of experiment ``key`` with its run folder and the shared cache under ``out``
    (and, with ``quick``, the small subset)."""
    from mcusearch.spec import load_spec

    spec = load_spec(HERE / f"{key}.yaml")
    search = {"run_dir": (out / key).resolve(), "cache_dir": (out / "cache").resolve()}
    if not quick:
        return _update(spec, {"search": search})
    search["n_trials"] = QUICK_TRIALS.get(key, spec.search.n_trials)
    search["isolate"] = False  # TensorFlow imported once for all quick studies
    knobs = QUICK_KNOBS[key]
    return _update(spec, {"search": search, "knobs": knobs, "target": {"boards": QUICK_BOARDS},
                          "dataset": {"max_train": 1200, "max_test": 400, "probe_per_class": 2},
                          "model": {"train": {"epochs": 2}, "retrain_epochs": 1}})


def base_accuracy(spec) -> float:
    """The unpruned float32 model's accuracy (host, held-out test set): the base model every
    study shares through the model cache (trained here if no study has trained it yet)."""
    from mcusearch.model import ModelKnobs, build_model

    knobs = ModelKnobs(retrain_epochs=spec.model.retrain_epochs)  # as a trial's unpruned float32 model
    return float(build_model(spec.base_model_config(), knobs, spec.cache_dir).accuracy)


def run_experiment(exp: Experiment, run: bool, timeout_s: float | None = None) -> None:
    """Run (or resume) one study, or only load it; ``exp.summary`` is set either way.
    ``timeout_s``: start no trial after that long (the next invocation resumes the study)."""
    from mcusearch.study import load_summary, run_study

    if not run:
        if (exp.spec.run_dir / "study.db").is_file():
            exp.summary = load_summary(exp.spec.run_dir)
        return
    t0 = time.monotonic()
    log.info("study %s: %s", exp.key, exp.spec.run_dir)
    exp.summary = run_study(exp.spec, timeout_s=timeout_s, progress=True)
    exp.seconds = time.monotonic() - t0


@dataclass
class _Board:
    """What :func:`mcusearch.estimate.estimate_cycles` needs of a board: QEMU machine and cycle model."""

    name: str
    machine: str
    clock_hz: int
    cycle_model: str


def uncached_estimates(summary, timeout_s: float = 900) -> dict[int, dict]:
    """Per completed trial on qemu-m7: cycles and ms with the F722's caches off (the study's
    uncached configuration), profiled from the trial's own ELF once and kept in its folder."""
    from mcusearch.boards import get_board
    from mcusearch.estimate import estimate_cycles

    m7 = get_board("qemu-m7")
    board = _Board("qemu-m7", m7.machine, m7.clock_hz, NOCACHE_MODEL)
    out = {}
    for r in summary.records:
        elf = r.artifacts.get("elf")
        if r.status != "ok" or not elf or r.config.get("board") != "qemu-m7" or "instructions" not in r.figures:
            continue
        elf_path = summary.run_dir / elf
        cache = elf_path.parent.parent / NOCACHE_FILE
        if cache.is_file():
            out[r.number] = json.loads(cache.read_text())
            continue
        if not elf_path.is_file():
            continue
        est = estimate_cycles(elf_path, board, r.figures["instructions"].value,
                              elf_path.parent.parent / "profile-nocache", timeout_s=timeout_s)
        rec = {"cycles": est.cycles.to_dict(), "latency_ms": est.latency_ms.to_dict(), "config": est.config}
        cache.write_text(json.dumps(rec))
        out[r.number] = rec
    return out


F722 = "STM32F722ZE"  # the study's part


def part_price(spec, name: str) -> float | None:
    """The catalog price (USD) of part ``name``, None when the catalog has none."""
    for p in spec.parts():
        if p.part == name or p.part.startswith(name + " "):
            return p.price_usd
    return None


def recommendation(exp: Experiment):
    """(the recommendation, why none) of the free search, by the tool's own selection."""
    from mcusearch.study import recommendation as rec_of

    return rec_of(exp.spec, exp.summary)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small subset (CI): minutes, not hours")
    ap.add_argument("--out", type=Path, help="output folder (default reports/thesis, or "
                                             "reports/thesis-quick with --quick)")
    ap.add_argument("--report-only", action="store_true", help="run nothing; rewrite the report")
    ap.add_argument("--study-timeout", type=float, metavar="MINUTES",
                    help="start no trial of a study after this long, then go to the next one "
                         "(every study gets its share; run again to continue them)")
    ap.add_argument("--only", metavar="STUDY", action="append", choices=EXPERIMENTS,
                    help="run only this study (repeatable); the others are only read for the report")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = (args.out or ROOT / "reports" / ("thesis-quick" if args.quick else "thesis")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    from mcusearch.errors import McusearchError

    started = time.monotonic()
    exps: dict[str, Experiment] = {}
    try:
        for key in EXPERIMENTS:
            spec = load_experiment(key, out, args.quick)
            if key == "free":
                base = base_accuracy(spec)
                log.info("unpruned float32 accuracy %.4f: the free search's floor is %.4f",
                         base, base - ACCURACY_TOLERANCE)
                spec = _update(spec, {"constraints": {"accuracy_min": round(base - ACCURACY_TOLERANCE, 6)}})
            exps[key] = Experiment(key, spec)
            run_experiment(exps[key], run=not args.report_only and (not args.only or key in args.only),
                           timeout_s=args.study_timeout * 60 if args.study_timeout else None)
    except McusearchError as e:
        print(f"thesis: {e}", file=sys.stderr)
        return 2
    uncached = {k: uncached_estimates(e.summary) for k, e in exps.items() if e.summary is not None}
    free = exps["free"]
    rec, why_none = recommendation(free) if free.summary is not None else (None, "not run")
    free_report = None
    if free.summary is not None:  # the tool's own report of the free search: answer card, runners-up
        from mcusearch.report import write_report
        free_report = write_report(free.summary, recommendation=rec, why_none=why_none, spec=free.spec).name
    timing = {"wall_s": time.monotonic() - started, "per_study_s": {k: e.seconds for k, e in exps.items()},
              "quick": args.quick}
    from render import write_thesis_report

    path = write_thesis_report(out / "thesis.html", exps, uncached, rec, why_none, timing,
                               f722_price=part_price(free.spec, F722), free_report=free_report)
    _write_timing(out, exps, timing)
    print(f"thesis report: {path}")
    print(rec if rec else f"No recommendation: {why_none}")
    return 0


def _write_timing(out: Path, exps: dict[str, Experiment], timing: dict) -> None:
    """Append this invocation's wall times (and per-trial stage times) to ``<out>/timing.jsonl``."""
    per_trial = {}
    for k, e in exps.items():
        if e.summary is not None:
            secs = [sum(r.seconds.values()) for r in e.summary.records if r.status == "ok" and r.seconds]
            per_trial[k] = {"trials": len(secs), "mean_s": sum(secs) / len(secs) if secs else None}
    with open(out / "timing.jsonl", "a") as f:
        f.write(json.dumps({**timing, "per_trial": per_trial, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                  time.gmtime())}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
