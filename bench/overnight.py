"""Overnight figures for the default search (search.yaml) on this machine (issue 11).

Three parts, each run through the real tool (``python -m mcusearch run``):

* ``workers``: trials per hour with 1 and with 2 workers (two ``mcusearch run`` processes on one
  SQLite storage, as the README's workers section says), the time per stage (the ``seconds``
  every trial stores) and the model-cache hit rate. ``--trials N`` trials per worker (default 3).
* ``grid``: an exhaustive grid on a reduced space of the default search (:data:`GRID_KNOBS`:
  8 filter counts (every conv alike, ``per: global``) x magnitude sparsity {0, 0.9} x
  float32/int8 x -O0/-O3/-Os x mcusearch/mcusearch-ref, qemu-m7 only: 192 configurations) run
  once with ``search.sampler: grid`` and recorded in ``reports/overnight/grid.json`` (reused when
  present). Training as in search.yaml (``--epochs E``: the base model trained E epochs instead,
  said in the output); one firmware test input per class (``--probes``) and cycles estimated for
  the study's part only (STM32F722ZE): emulation time, not objectives.
* ``replay``: NSGA-II, TPE and random, each as the tool builds it
  (:func:`mcusearch.study.make_sampler`), replayed against the recorded grid: each sampler's
  Optuna study runs over the same categorical space and every configuration it suggests gets
  its recorded objectives and constraints (exact: the grid holds every configuration). Over many
  seeds: the hypervolume of the feasible front after N trials as a share of the grid's
  (objectives normalised to [0, 1] over the grid's feasible trials, maximised ones flipped;
  reference point 1.1 on every axis), and the trials needed for 95 % of it against the target of
  15 % of the grid's trials. The table is printed and written to reports/overnight/replay.md.

    .venv/bin/python bench/overnight.py grid [--epochs 3]     # once (about an hour at 10 epochs)
    .venv/bin/python bench/overnight.py replay [--seeds 20]   # seconds to minutes, pure Python
    .venv/bin/python bench/overnight.py workers [--trials 3]   # ten minutes or so
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "overnight"
GRID_JSON = OUT / "grid.json"
PYTHON = [sys.executable, "-m", "mcusearch"]

# The reduced space of the default search: 8 x 2 x 2 x 3 x 2 = 192 configurations on qemu-m7.
GRID_KNOBS: dict = {
    "channels": {"per": "global", "values": [4, 8, 12, 16, 20, 24, 28, 32]},
    "magnitude": {"sparsity": [0, 0.9], "epochs": [2]},
    "quantization": ["float32", "int8"],
    "opt_level": ["-O0", "-O3", "-Os"],
    "converter": ["mcusearch", "mcusearch-ref"],
}
GRID_BOARDS = ["qemu-m7"]
TARGET_SHARE = 0.95      # of the grid's hypervolume ...
TARGET_TRIALS = 0.15     # ... within this share of the grid's trials
REF = 1.1                # the reference point on every normalised (minimised) axis
GRID_BOUND = 10_000      # search.n_trials of the grid run (the most the tool takes for a grid)


# ---- specs and runs through the real tool --------------------------------------------------------

def default_spec() -> dict:
    """search.yaml as data."""
    return yaml.safe_load((ROOT / "search.yaml").read_text())


STUDY_PART = "STM32F722ZE"  # the 2020 study's part (qemu-m7's memory configuration is its)


def study_part_catalog(path: Path) -> Path:
    """A catalog file holding only the study's part, from the built-in catalog: a grid trial then
    estimates one part's cycles instead of every Cortex-M7's (a minute per trial less at -O0)."""
    from mcusearch.catalog import builtin_catalog_text

    parts = [p for p in yaml.safe_load(builtin_catalog_text()) if p.get("part") == STUDY_PART]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(parts, sort_keys=False))
    return path


def grid_spec(run_dir: Path, cache_dir: Path, epochs: int | None = None, probes: int | None = None,
              catalog: Path | None = None) -> dict:
    """The default search on :data:`GRID_KNOBS` and :data:`GRID_BOARDS` with the grid sampler;
    ``epochs``: the base model's training epochs, ``probes``: firmware test inputs per class,
    ``catalog``: a catalog file (None: search.yaml's for each)."""
    d = default_spec()
    d["name"] = "overnight-grid"
    d["knobs"] = copy.deepcopy(GRID_KNOBS)
    d["target"]["boards"] = list(GRID_BOARDS)
    if epochs is not None:
        d["model"]["train"]["epochs"] = epochs
    if probes is not None:
        d["dataset"]["probe_per_class"] = probes
    if catalog is not None:
        d.setdefault("catalog", {})["path"] = str(catalog)
    # the tool runs a grid's every configuration once, up to n_trials
    d["search"].update(sampler="grid", n_trials=GRID_BOUND, run_dir=str(run_dir), cache_dir=str(cache_dir))
    return d


def write_spec(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def snapshot() -> Iterator[tuple[Path, str]]:
    """The committed code (``git archive HEAD``) in a folder of its own under /tmp while the block
    runs, and its commit: a run of an hour must not pick up half-edited kernels from the shared
    working tree."""
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    where = Path(f"/tmp/mcusearch-overnight-{sha[:12]}")
    if not (where / "mcusearch" / "__init__.py").is_file():
        tmp = Path(f"{where}.{os.getpid()}")
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        os.replace(tmp, where)
    try:
        yield where, sha
    finally:
        shutil.rmtree(where, ignore_errors=True)


def start_run(spec_path: Path, log_path: Path, code: Path | None = None, *args: str) -> subprocess.Popen:
    """``mcusearch run SPEC`` at low priority, its terminal output to ``log_path``; ``code``: the
    package's folder to run (a :func:`snapshot`; default: this working tree's)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as f:
        return subprocess.Popen(["nice", "-n", "10", *PYTHON, "run", "--no-progress", *args, str(spec_path)],
                                cwd=code or ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)


def load_study(run_dir: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{run_dir / 'study.db'}")


# ---- the recorded grid ----------------------------------------------------------------------------

@dataclass
class Row:
    """One configuration's recorded outcome: its objective values (None unless the trial
    completed), its constraint values (feasible: all <= 0) and its status (ok, failed,
    infeasible)."""

    values: list[float] | None
    constraints: dict[str, float] = field(default_factory=dict)
    status: str = "ok"

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and self.values is not None and all(
            v <= 0 for v in self.constraints.values())


@dataclass
class Grid:
    """Every configuration of a categorical space with its recorded outcome."""

    space: dict[str, list]
    objectives: list[tuple[str, str]]            # (metric, direction)
    rows: dict[tuple, Row]                       # key: the parameter values in ``space`` order
    info: dict = field(default_factory=dict)     # how the grid was made (settings, times, commit)

    def key(self, params: dict) -> tuple:
        return tuple(params[name] for name in self.space)

    def row(self, params: dict) -> Row:
        """The configuration's recorded row (status "missing" if the grid has none: replayed as
        a failed trial, and counted in :meth:`missing`)."""
        return self.rows.get(self.key(params)) or Row(None, {}, "missing")

    def size(self) -> int:
        """Configurations in the space."""
        return math.prod(len(c) for c in self.space.values())

    def missing(self) -> int:
        """Configurations of the space without a recorded row."""
        return self.size() - len(self.rows)

    def to_json(self) -> dict:
        return {"space": self.space, "objectives": [list(o) for o in self.objectives], "info": self.info,
                "rows": [{"params": dict(zip(self.space, k)), "values": r.values,
                          "constraints": r.constraints, "status": r.status} for k, r in self.rows.items()]}

    @classmethod
    def from_json(cls, d: dict) -> "Grid":
        space = {k: list(v) for k, v in d["space"].items()}
        rows = {tuple(r["params"][n] for n in space): Row(r["values"], dict(r["constraints"]), r["status"])
                for r in d["rows"]}
        return cls(space, [tuple(o) for o in d["objectives"]], rows, d.get("info", {}))


def grid_from_study(study, info: dict | None = None) -> Grid:
    """The grid as the tool recorded it: each configuration's last counted trial (a trial whose
    run was interrupted does not count; its re-run does)."""
    from mcusearch.study import counts

    space = study.user_attrs["space"]
    rows: dict[tuple, Row] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not counts(t) or set(t.params) != set(space):
            continue
        status = t.user_attrs.get("status", "failed")
        rows[tuple(t.params[n] for n in space)] = Row(
            list(t.values) if t.values is not None and status == "ok" else None,
            dict(t.constraints), status)
    return Grid(space, [tuple(o) for o in study.user_attrs["objectives"]], rows, dict(info or {}))


# ---- hypervolume ------------------------------------------------------------------------------------

def nondominated(points: Iterable[Sequence[float]]) -> list[tuple[float, ...]]:
    """The points no other point dominates (all objectives minimised); duplicates once."""
    pts = sorted(set(map(tuple, points)))
    out: list[tuple[float, ...]] = []
    for p in pts:  # lexicographic order: a point can only be dominated by one before it
        if not any(all(a <= b for a, b in zip(q, p)) for q in out):
            out.append(p)
    return out


def hypervolume(points: Iterable[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume dominated by ``points`` (minimised) and bounded by ``ref``: exact, by slicing
    along the last axis (each slab's volume is the hypervolume of the points below it, one
    dimension less)."""
    pts = nondominated(p for p in points if all(x < r for x, r in zip(p, ref)))
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - pts[0][0]
    pts.sort(key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if top > p[-1]:
            total += (top - p[-1]) * hypervolume([q[:-1] for q in pts[:i + 1]], ref[:-1])
    return total


class Normaliser:
    """Objective values -> [0, 1] per axis over a grid's feasible rows, all to be minimised (a
    maximised objective is flipped: its best value maps to 0)."""

    def __init__(self, grid: Grid):
        feasible = [r.values for r in grid.rows.values() if r.feasible]
        if not feasible:
            raise ValueError("the grid has no feasible configuration: no hypervolume to compare with")
        self.lo = [min(v[i] for v in feasible) for i in range(len(grid.objectives))]
        self.hi = [max(v[i] for v in feasible) for i in range(len(grid.objectives))]
        self.maximise = [d == "maximize" for _, d in grid.objectives]

    def __call__(self, values: Sequence[float]) -> tuple[float, ...]:
        out = []
        for v, lo, hi, flip in zip(values, self.lo, self.hi, self.maximise):
            x = (v - lo) / (hi - lo) if hi > lo else 0.0
            out.append(1.0 - x if flip else x)
        return tuple(out)


def grid_hypervolume(grid: Grid, norm: Normaliser | None = None) -> float:
    """The hypervolume of the grid's whole feasible front (normalised, reference :data:`REF`)."""
    norm = norm or Normaliser(grid)
    return hypervolume([norm(r.values) for r in grid.rows.values() if r.feasible], [REF] * len(grid.objectives))


# ---- replay -----------------------------------------------------------------------------------------

SamplerFactory = Callable[[int, dict], "object"]  # (seed, space) -> an Optuna sampler


class _Failed(Exception):
    """A configuration whose recorded trial failed in a stage."""


def replay(grid: Grid, sampler, n_trials: int, stop_at: float | None = None,
           visited: list[tuple] | None = None) -> list[float]:
    """Run ``sampler``'s Optuna study over the grid's space for ``n_trials`` trials, each told
    the recorded outcome of the configuration it suggested, as the tool stores it (objectives
    and constraints; a failed configuration fails, an infeasible one is pruned). Returns the
    hypervolume share (of the grid's) of the feasible front after each trial; ``stop_at``: stop
    once the share reaches it (a grid sampler stops by itself when its grid is done);
    ``visited``: a list the suggested configurations are appended to, in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    norm = Normaliser(grid)
    whole = grid_hypervolume(grid, norm)
    ref = [REF] * len(grid.objectives)
    front: list[tuple[float, ...]] = []
    shares: list[float] = []

    def objective(trial: optuna.Trial) -> list[float]:
        params = {name: trial.suggest_categorical(name, choices) for name, choices in grid.space.items()}
        row = grid.row(params)
        if visited is not None:
            visited.append(grid.key(params))
        for key, value in row.constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("feasible", row.feasible)
        if row.status == "infeasible":
            raise optuna.TrialPruned()
        if row.status != "ok" or row.values is None:
            raise _Failed()
        return row.values

    def after(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        nonlocal front
        share = shares[-1] if shares else 0.0
        if t.user_attrs.get("feasible"):
            p = norm(t.values)
            if not any(all(a <= b for a, b in zip(q, p)) for q in front):
                front = nondominated(front + [p])
                share = hypervolume(front, ref) / whole
        shares.append(share)
        if stop_at is not None and share >= stop_at - 1e-12:
            study.stop()

    study = optuna.create_study(directions=[d for _, d in grid.objectives], sampler=sampler)
    study.optimize(objective, n_trials=n_trials, catch=(_Failed,), callbacks=[after])
    return shares


def trials_to(shares: Sequence[float], target: float) -> int | None:
    """The number of trials after which the share first reaches ``target`` (None: never)."""
    for i, s in enumerate(shares):
        if s >= target - 1e-12:
            return i + 1
    return None


def summarise(name: str, runs: Sequence[Sequence[float]], target: float = TARGET_SHARE,
              n_grid: int = 192, share_trials: float = TARGET_TRIALS) -> dict:
    """One sampler's row over its seeds' replays (each the share after every trial, possibly
    stopped once it reached ``target``): trials to ``target`` (median, min, max; None where a
    seed never reached it within its replay, counted as more than any number), and the median
    share after ``share_trials`` of the grid's trials (a replay stopped before then counts its
    last share, a lower bound). ``met``: the median seed reaches ``target`` in that many trials."""
    at = max(1, round(share_trials * n_grid))
    needed = sorted((trials_to(r, target) for r in runs), key=lambda n: math.inf if n is None else n)
    median = needed[(len(needed) - 1) // 2]  # the lower median: a seed that is really there
    shares = sorted(r[at - 1] if len(r) >= at else r[-1] for r in runs)
    return {"sampler": name, "seeds": len(runs), "reached": sum(n is not None for n in needed),
            "median": median, "min": needed[0], "max": needed[-1], "at": at,
            "share_at": shares[(len(shares) - 1) // 2], "met": median is not None and median <= at}


# ---- the samplers compared ------------------------------------------------------------------------

def tool_sampler(name: str, population_size: int | None = None) -> SamplerFactory:
    """The sampler ``search.sampler: name`` gives in the tool (:func:`mcusearch.study.make_sampler`)."""
    from mcusearch.spec import SearchSpec, Spec
    from mcusearch.study import make_sampler

    def make(seed: int, space: dict):
        extra = {} if population_size is None else {"population_size": population_size}
        return make_sampler(Spec(search=SearchSpec(sampler=name, seed=seed, **extra)), space)
    return make


def tpe_sampler(**settings) -> SamplerFactory:
    """TPE as the tool builds it (seeded per trial, multivariate) with other ``settings``."""
    import optuna

    from mcusearch.study import _seed_each_trial

    def make(seed: int, space: dict):
        return _seed_each_trial(optuna.samplers.TPESampler(seed=seed, **{"multivariate": True, **settings}), seed)
    return make


# name -> (factory, what it is); the first three are the tool's own samplers as search.yaml sets them
SAMPLERS: dict[str, tuple[SamplerFactory, str]] = {
    "nsga2": (tool_sampler("nsga2"), "the tool's NSGA-II (population 8)"),
    "tpe": (tool_sampler("tpe"), "the tool's TPE (multivariate, 10 random start-up trials)"),
    "random": (tool_sampler("random"), "random"),
}
SETTINGS: dict[str, tuple[SamplerFactory, str]] = {
    "nsga2 pop 4": (tool_sampler("nsga2", 4), "NSGA-II, population 4"),
    "nsga2 pop 16": (tool_sampler("nsga2", 16), "NSGA-II, population 16"),
    "tpe start 3": (tpe_sampler(n_startup_trials=3), "TPE, 3 start-up trials"),
    "tpe start 5": (tpe_sampler(n_startup_trials=5), "TPE, 5 start-up trials"),
    "tpe start 5, 96 cand.": (tpe_sampler(n_startup_trials=5, n_ei_candidates=96),
                              "TPE, 5 start-up trials, 96 candidates per trial"),
    "tpe start 20": (tpe_sampler(n_startup_trials=20), "TPE, 20 start-up trials"),
    "tpe independent": (tpe_sampler(multivariate=False), "TPE, one parameter at a time"),
}


def compare(grid: Grid, samplers: dict[str, tuple[SamplerFactory, str]], seeds: int,
            budget: int | None = None, target: float = TARGET_SHARE) -> list[dict]:
    """Each sampler replayed with seeds 0 .. seeds-1 for up to ``budget`` trials (default: as many
    as the grid has configurations), stopped at ``target``; one :func:`summarise` row each."""
    n = grid.size()
    budget = budget or n
    rows = []
    for name, (make, what) in samplers.items():
        t0 = time.perf_counter()
        runs, distinct = [], []
        for seed in range(seeds):
            visited: list[tuple] = []
            runs.append(replay(grid, make(seed, grid.space), budget, stop_at=target, visited=visited))
            distinct.append(len(set(visited[:max(1, round(TARGET_TRIALS * n))])))
        row = summarise(name, runs, target, n)
        row.update(what=what, budget=budget, seconds=round(time.perf_counter() - t0, 1),
                   distinct=sorted(distinct)[(len(distinct) - 1) // 2])
        rows.append(row)
    return rows


def greedy_front_subset(grid: Grid, target: float = TARGET_SHARE) -> tuple[list[tuple], int]:
    """The configurations of the grid's feasible front that, picked greedily (each time the one
    adding most hypervolume), reach ``target`` of its hypervolume (roughly the fewest trials any
    sampler needs, knowing the answer), and how many configurations the front holds."""
    norm = Normaliser(grid)
    points: dict[tuple[float, ...], tuple] = {}
    for key, r in grid.rows.items():
        if r.feasible:
            points.setdefault(norm(r.values), key)
    front = nondominated(points)
    ref = [REF] * len(grid.objectives)
    whole = hypervolume(front, ref)
    chosen: list[tuple[float, ...]] = []
    while hypervolume(chosen, ref) < target * whole - 1e-12:
        chosen.append(max((p for p in front if p not in chosen), key=lambda p: hypervolume(chosen + [p], ref)))
    return [points[p] for p in chosen], len(front)


def _n(v: int | None, budget: int) -> str:
    return f">{budget}" if v is None else str(v)


def table(rows: list[dict], n_grid: int, target: float = TARGET_SHARE) -> str:
    """The comparison as a Markdown table."""
    at = rows[0]["at"] if rows else max(1, round(TARGET_TRIALS * n_grid))
    lines = [f"| sampler | trials to {target:.0%} of the grid's HV: median | min - max | seeds there "
             f"| HV share after {at} trials (median) | distinct configurations in {at} | target met |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        b = r["budget"]
        lines.append(f"| {r['sampler']} ({r['what']}) | {_n(r['median'], b)} | {_n(r['min'], b)} - "
                     f"{_n(r['max'], b)} | {r['reached']}/{r['seeds']} | {r['share_at']:.1%} | "
                     f"{r.get('distinct', '')} | {'yes' if r['met'] else 'no'} |")
    return "\n".join(lines)


# ---- the parts of the benchmark -----------------------------------------------------------------

def _stage_seconds(trials) -> dict[str, float]:
    """Median seconds per stage over trials that ran their stages (not reused ones)."""
    per: dict[str, list[float]] = {}
    for t in trials:
        if t.user_attrs.get("reused_from") is None:
            for stage, s in (t.user_attrs.get("seconds") or {}).items():
                per.setdefault(stage, []).append(float(s))
    return {k: sorted(v)[(len(v) - 1) // 2] for k, v in per.items()}


def cache_hits(trials, before: set[str]) -> tuple[int, int]:
    """(hits, trials that ran the model stage): a trial's model was a cache hit when its
    ``model_cache_key`` was in the cache before the run or an earlier-started trial made it
    (a trial that waited for another worker building the same model counts as a hit too, as the
    tool's own model stage reports it)."""
    seen, hits, n = set(before), 0, 0
    for t in sorted(trials, key=lambda t: t.datetime_start or 0):
        key = (t.user_attrs.get("notes") or {}).get("model_cache_key")
        if key is None or t.user_attrs.get("reused_from") is not None:
            continue
        n += 1
        hits += key in seen
        seen.add(key)
    return hits, n


def cached_models(cache_dir: Path) -> set[str]:
    """Keys of the complete model-cache variants (what a trial's model stage looks up)."""
    d = cache_dir / "model" / "variant"
    return {e.name for e in d.iterdir() if (e / "entry.json").is_file()} if d.is_dir() else set()


def _grid_done(run_dir: Path) -> bool:
    """Whether the grid run holds every configuration."""
    from mcusearch.study import finished

    if not (run_dir / "study.db").is_file():
        return False
    study = load_study(run_dir)
    return finished(study) >= math.prod(len(c) for c in study.user_attrs["space"].values())


def grid_record(run_dir: Path, spec: dict, sha: str) -> Grid:
    """The finished grid run as a :class:`Grid`, with how it was made (its wall time: first
    trial started to last trial finished)."""
    from mcusearch.study import counts

    study = load_study(run_dir)
    trials = [t for t in study.get_trials(deepcopy=False) if counts(t)]
    first = min(t.datetime_start for t in trials)
    seconds = (max(t.datetime_complete for t in trials) - first).total_seconds()
    info = {"commit": sha, "epochs": spec["model"]["train"]["epochs"],
            "retrain_epochs": spec["model"].get("retrain_epochs"),
            "probe_per_class": spec["dataset"].get("probe_per_class"),
            "catalog": STUDY_PART if spec.get("catalog", {}).get("path") else "built-in",
            "boards": spec["target"]["boards"], "constraints": spec["constraints"],
            "trials": len(trials), "wall_s": seconds,
            "stage_median_s": _stage_seconds(trials),
            "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return grid_from_study(study, info)


def run_grid(args) -> Grid:
    """Record the grid (or read the recorded one)."""
    if GRID_JSON.is_file() and not args.again:
        grid = Grid.from_json(json.loads(GRID_JSON.read_text()))
        print(f"grid: {GRID_JSON} (recorded {grid.info.get('made')}; --again to run it again)")
        return grid
    run_dir = OUT / "grid-run"
    commit = run_dir / "commit"  # the code the grid ran (a snapshot of this commit)
    catalog = study_part_catalog(OUT / "study-part.yaml")
    spec = grid_spec(run_dir, OUT / "cache", epochs=args.epochs, probes=args.probes, catalog=catalog)
    if args.again or not _grid_done(run_dir):
        with snapshot() as (code, sha):
            spec_path = write_spec(spec, OUT / "grid.yaml")
            run_dir.mkdir(parents=True, exist_ok=True)
            commit.write_text(sha)
            run = start_run(spec_path, OUT / "grid-run.log", code)
            t0 = time.perf_counter()
            while run.poll() is None:
                time.sleep(30)
                _grid_eta(run_dir, t0)
        if run.returncode not in (0, 1):
            raise SystemExit(f"the grid run failed (exit {run.returncode}); see {OUT / 'grid-run.log'}")
    grid = grid_record(run_dir, spec, commit.read_text().strip())
    GRID_JSON.write_text(json.dumps(grid.to_json(), indent=1))
    print(f"grid: recorded {len(grid.rows)} configurations in {GRID_JSON}")
    return grid


def _grid_eta(run_dir: Path, t0: float) -> None:
    from mcusearch.study import finished

    try:
        study = load_study(run_dir)
        done, n = finished(study), math.prod(len(c) for c in study.user_attrs["space"].values())
    except Exception:  # the study is not created yet
        return
    spent = time.perf_counter() - t0
    eta = spent / done * (n - done) if done else float("nan")
    print(f"grid: {done}/{n} trials in {spent / 60:.0f} min, about {eta / 60:.0f} min left", flush=True)


def workers_spec(run_dir: Path, cache_dir: Path, n_trials: int, seed: int) -> dict:
    """search.yaml as it is, in its own run folder and storage, for ``n_trials`` trials."""
    d = default_spec()
    d["search"].update(n_trials=n_trials, seed=seed, run_dir=str(run_dir), cache_dir=str(cache_dir))
    return d


def measure_workers(n_workers: int, trials_each: int, cache_dir: Path, code: Path, seed: int) -> dict:
    """``n_workers`` ``mcusearch run`` processes on one SQLite storage until the study holds
    ``n_workers * trials_each`` trials: wall time, trials per hour, median seconds per stage,
    model-cache hits and reused trials, read back from the storage."""
    from mcusearch.study import counts

    run_dir = OUT / f"workers-{n_workers}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    spec = write_spec(workers_spec(run_dir, cache_dir, n_workers * trials_each, seed),
                      OUT / f"workers-{n_workers}.yaml")
    before = cached_models(cache_dir)
    t0 = time.perf_counter()
    runs = [start_run(spec, OUT / f"workers-{n_workers}.log", code) for _ in range(n_workers)]
    for r in runs:
        r.wait()
    wall = time.perf_counter() - t0
    trials = [t for t in load_study(run_dir).get_trials(deepcopy=False) if counts(t)]
    hits, ran = cache_hits(trials, before)
    statuses = [t.user_attrs.get("status") for t in trials]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return {"workers": n_workers, "trials": len(trials), "wall_s": wall, "span_s": span,
            "per_hour": len(trials) / wall * 3600 if wall else 0.0,
            "per_hour_span": len(trials) / span * 3600 if span else 0.0,
            "ok": statuses.count("ok"), "failed": statuses.count("failed"),
            "infeasible": statuses.count("infeasible"),
            "reused": sum(t.user_attrs.get("reused_from") is not None for t in trials),
            "cache_hits": hits, "model_stages": ran, "stages": _stage_seconds(trials),
            "exit": [r.returncode for r in runs]}


def run_workers(args) -> str:
    """Trials per hour with 1 and 2 workers, time per stage and cache hits (printed and written
    to reports/overnight/workers.md). Both runs share one model cache (the grid's, when it was
    recorded: the base model is then trained already)."""
    cache = OUT / "cache"
    with snapshot() as (code, sha):
        rows = [measure_workers(n, args.trials, cache, code, seed=10 + n) for n in (1, 2)]
    stages = sorted({k for r in rows for k in r["stages"]} - {"total"}, key=lambda k: STAGE_ORDER.index(k)
                    if k in STAGE_ORDER else 99) + ["total"]
    out = [f"Default search (search.yaml: sampler nsga2, both boards, all converters) at commit {sha[:12]}, "
           f"{args.trials} trials per worker, 2 shared cores (other users' jobs running too: load average "
           f"{os.getloadavg()[0]:.1f} at the end); workers are `mcusearch run` processes on one SQLite storage.",
           "",
           "| workers | trials (ok / failed / infeasible) | wall | trials per hour (wall) | trials per hour "
           "(trials only) | model-cache hits | reused trials | " + " | ".join(f"{s} s" for s in stages) + " |",
           "|---:|---|---:|---:|---:|---:|---:|" + "---:|" * len(stages)]
    for r in rows:
        out.append(f"| {r['workers']} | {r['trials']} ({r['ok']} / {r['failed']} / {r['infeasible']}) | "
                   f"{r['wall_s'] / 60:.1f} min | {r['per_hour']:.0f} | {r['per_hour_span']:.0f} | "
                   f"{r['cache_hits']}/{r['model_stages']} | "
                   f"{r['reused']} | " + " | ".join(f"{r['stages'].get(s, float('nan')):.1f}" for s in stages) + " |")
    out += ["", "Stage seconds: the median over the trials that ran their stages (each trial stores them); "
            "a model-cache hit is a trial whose model (its cache key) existed before it started; "
            "wall: first worker started to last worker finished (start-up checks, TensorFlow's import and "
            "the report included); trials only: first trial started to last trial finished."]
    text = "\n".join(out)
    (OUT / "workers.md").write_text(text + "\n")
    return text


STAGE_ORDER = ["feasibility", "model", "convert", "build", "measure", "estimate", "parts"]


def describe_grid(grid: Grid) -> str:
    """How the grid was made, and its front, in a few lines."""
    i = grid.info
    feasible = sum(r.feasible for r in grid.rows.values())
    statuses = [r.status for r in grid.rows.values()]
    norm = Normaliser(grid)
    front = nondominated(norm(r.values) for r in grid.rows.values() if r.feasible)
    reduced = [] if i.get("epochs") in (None, default_spec()["model"]["train"]["epochs"]) else [
        f"base model trained {i['epochs']} epochs instead of search.yaml's "
        f"{default_spec()['model']['train']['epochs']} (to finish in time)"]
    lines = [
        f"Grid: {len(grid.rows)} configurations of {' x '.join(f'{k} {len(v)}' for k, v in grid.space.items())} "
        f"({grid.missing()} missing), {statuses.count('ok')} completed, {statuses.count('failed')} failed, "
        f"{statuses.count('infeasible')} infeasible; {feasible} feasible, {len(front)} on the feasible front.",
        f"Made by `mcusearch run` (sampler grid) at commit {str(i.get('commit'))[:12]} on {i.get('made')}, "
        f"{i.get('wall_s') or 0:.0f} s wall; boards {i.get('boards')}; firmware test inputs "
        f"{i.get('probe_per_class')} per class; parts estimated: {i.get('catalog')}"
        + (f"; {'; '.join(reduced)}" if reduced else "; training as in search.yaml") + ".",
        "Objectives normalised to [0, 1] over the grid's feasible trials (maximised ones flipped), "
        f"reference point {REF} on every axis; hypervolume exact (slicing); grid HV "
        f"{grid_hypervolume(grid, norm):.4f}.",
        "Objectives: " + ", ".join(f"{m} ({d[:3]}, {lo:.4g} .. {hi:.4g})" for (m, d), lo, hi
                                   in zip(grid.objectives, norm.lo, norm.hi)) + ".",
    ]
    return "\n".join(lines)


def run_replay(grid: Grid, args) -> str:
    """The sampler table (and the settings table when the tool's NSGA-II and TPE miss the
    target), printed and written to reports/overnight/replay.md."""
    t0 = time.perf_counter()
    rows = compare(grid, SAMPLERS, args.seeds)
    n = grid.size()
    at = rows[0]["at"]
    picked, front = greedy_front_subset(grid)
    out = [describe_grid(grid), "",
           f"Target: {TARGET_SHARE:.0%} of the grid's hypervolume within {TARGET_TRIALS:.0%} of its "
           f"trials ({at} of {n}). {args.seeds} seeds per sampler, each replay up to {n} trials. "
           f"The feasible front holds {front} configurations; {len(picked)} of them (picked greedily, knowing "
           f"the answer) reach {TARGET_SHARE:.0%} of its hypervolume: "
           + "; ".join(", ".join(f"{k} {v}" for k, v in zip(grid.space, key) if len(grid.space[k]) > 1)
                       + " (" + ", ".join(f"{m} {v:.4g}" for (m, _), v in zip(grid.objectives, grid.rows[key].values))
                       + ")" for key in picked) + ".", "",
           table(rows, n)]
    met = [r["sampler"] for r in rows if r["met"] and r["sampler"] != "random"]
    if met:
        out += ["", f"Target met by: {', '.join(met)}."]
    if not met or args.settings:
        more = compare(grid, SETTINGS, args.seeds)
        out += ["", "Other settings of the same samplers:", "", table(more, n)]
        best = min(rows[:2] + more, key=lambda r: (math.inf if r["median"] is None else r["median"],
                                                   -r["share_at"]))
        if not met:
            out += ["", f"Neither the tool's NSGA-II nor its TPE meets the target; closest: {best['sampler']} "
                    f"(median {_n(best['median'], best['budget'])} trials, {best['share_at']:.1%} of the HV "
                    f"after {at})."]
    out += ["", f"Replay time: {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(out)
    (OUT / "replay.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    g = sub.add_parser("grid", help="record the exhaustive grid (reused when recorded), then replay")
    g.add_argument("--epochs", type=int, help="train the grid's base model this many epochs (default: search.yaml's)")
    g.add_argument("--probes", type=int, default=1,
                   help="firmware test inputs per class in the grid (default 1: emulation time; "
                        "the objectives do not depend on it)")
    g.add_argument("--again", action="store_true", help="run the grid again even if recorded")
    for p in (g, sub.add_parser("replay", help="replay the samplers against the recorded grid")):
        p.add_argument("--seeds", type=int, default=20, help="seeds per sampler (default 20)")
        p.add_argument("--settings", action="store_true",
                       help="also replay other sampler settings when the target is met")
    w = sub.add_parser("workers", help="trials per hour with 1 and 2 workers on the default search")
    w.add_argument("--trials", type=int, default=3, help="trials per worker (default 3)")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "workers":
        print(run_workers(args))
        return 0
    if args.part == "grid":
        grid = run_grid(args)
    else:
        if not GRID_JSON.is_file():
            raise SystemExit(f"no recorded grid ({GRID_JSON}): run `bench/overnight.py grid` first")
        grid = Grid.from_json(json.loads(GRID_JSON.read_text()))
    print(run_replay(grid, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
