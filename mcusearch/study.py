"""The study: an Optuna multi-objective search over the knobs, one trial per configuration.

Entry point: :func:`run_study`. Result: :class:`StudySummary`.

Each trial's knobs, figures (with provenance), constraint values, artifact paths and — for a
failed trial — its stage and reason are stored as user attributes in the study's storage
(SQLite in the run folder by default, so ``optuna-dashboard sqlite:///RUN/study.db`` opens it).
``search.n_trials`` is the study's total: re-running the same spec resumes an interrupted study
and runs only the trials still missing, so an overnight search survives a restart.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from mcusearch.errors import Infeasible, McusearchError
from mcusearch.figures import Figure, number
from mcusearch.knobs import config_from_params, knobs_from_spec, search_space
from mcusearch.model import QUANT_FORMAT
from mcusearch.score import resolve_limits, score
from mcusearch.spec import Spec
from mcusearch.trial import run_trial

log = logging.getLogger("mcusearch.study")


@dataclass
class TrialRecord:
    """One trial as stored: what the report and the summary read."""

    number: int
    state: str                        # COMPLETE | FAIL | PRUNED | RUNNING
    status: str                       # ok | failed | infeasible | running
    config: dict
    figures: dict[str, Figure]
    constraints: dict[str, float]
    feasible: bool
    values: list[float] | None
    error: str = ""
    stage: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reused_from: int | None = None
    layers: list[list] = field(default_factory=list)  # [name, count per inference] from the markers
    part_cycles: dict[str, dict] = field(default_factory=dict)  # per-part cycle estimates (emulated)


@dataclass
class StudySummary:
    run_dir: Path
    storage: str
    study_name: str
    objectives: list[tuple[str, str]]           # (metric, direction)
    limits: dict[str, float]
    records: list[TrialRecord]
    title: str = ""                             # the spec's name

    @property
    def pareto(self) -> list[TrialRecord]:
        return pareto_front(self.records, self.objectives)


def make_sampler(spec: Spec, space: dict[str, list]) -> optuna.samplers.BaseSampler:
    s = spec.search
    if s.sampler == "grid":  # grid ids follow the trial numbers: workers never share one
        return optuna.samplers.GridSampler(space, seed=s.seed)
    if s.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(population_size=s.population_size, seed=s.seed)
    elif s.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=s.seed, multivariate=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=s.seed)
    return _seed_each_trial(sampler, s.seed)


def _seed_each_trial(sampler: optuna.samplers.BaseSampler, seed: int) -> optuna.samplers.BaseSampler:
    """Draw each trial's random numbers from (seed, trial number).

    Every worker on a study builds its sampler from the same ``search.seed``: left alone they would
    propose the same sequence and build the same configurations side by side (and a resumed run
    would propose again the first run's first configurations). Trial numbers are unique across
    workers and runs, so this keeps them apart and a study reproducible."""
    from optuna.samplers._lazy_random_state import LazyRandomState  # optuna is pinned

    def states(obj):
        for value in vars(obj).values():
            if isinstance(value, LazyRandomState):
                yield value
            elif isinstance(value, optuna.samplers.BaseSampler):
                yield from states(value)  # e.g. the RandomSampler of TPE's and NSGA-II's first trials

    rngs, before = list(states(sampler)), sampler.before_trial

    def before_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        for r in rngs:
            r.rng.seed([seed & 0xFFFFFFFF, trial.number])
        before(study, trial)

    sampler.before_trial = before_trial
    return sampler


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The study's storage, with a heartbeat: a trial whose worker died (killed, out of memory,
    machine lost) is marked failed by the next trial any worker starts, instead of staying
    RUNNING for ever (MaxTrialsCallback counts it, so the study would end a trial short).

    Workers started together on a new storage race to create Optuna's tables (check-then-create:
    the loser gets "already exists" or a unique violation, on SQLite as on PostgreSQL); the
    schema exists by then, so retry."""
    import warnings

    import sqlalchemy.exc

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)  # failed_trial_callback: until Optuna 6
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=60, grace_period=300,
                    failed_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRIES))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


MAX_RETRIES = 2  # a trial whose worker died is run again this often (then it stays failed)
UNCOUNTED = ("running", "interrupted")  # statuses of a FAIL trial that did not finish its work


def counts(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished trial counts towards ``n_trials``: not one whose run was killed or
    interrupted (it is queued again and its re-run counts)."""
    if not t.state.is_finished():
        return False
    return t.state != optuna.trial.TrialState.FAIL or t.user_attrs.get("status") not in UNCOUNTED


def finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``."""
    return sum(1 for t in study.get_trials(deepcopy=False) if counts(t))


def _requeue(study: optuna.Study, t: optuna.trial.FrozenTrial) -> bool:
    """Queue the knobs of an interrupted trial to run next (at most :data:`MAX_RETRIES` times)."""
    retries = int(t.user_attrs.get("retries", 0))
    if retries >= MAX_RETRIES:
        return False
    study.enqueue_trial(t.params, user_attrs={"retries": retries + 1, "retry_of": t.number},
                        skip_if_exists=False)
    return True


def reap_dead_trials(study: optuna.Study) -> list[int]:
    """Fail at once the RUNNING trials this machine's dead runs left (host and PID are stored on
    every trial: a killed run's PID no longer exists) and queue them again; other machines' dead
    trials are failed by the heartbeat after its grace period."""
    from mcusearch.proc import pid_alive, worker_id

    me = worker_id()
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        if w.get("host") != me["host"] or pid_alive(int(w.get("pid", 0))) and w.get("pid") != me["pid"]:
            continue
        storage = study._storage
        storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
        storage.set_trial_user_attr(t._trial_id, "error", f"its run (pid {w.get('pid')}) died "
                                    f"during stage {t.user_attrs.get('stage_now', '?')}; run again")
        _requeue(study, t)
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        reaped.append(t.number)
    return reaped


def _stop_at_total(target: int):
    """A callback that stops every worker once the study holds ``target`` counted trials
    (finished ones plus those running now)."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        running = optuna.trial.TrialState.RUNNING
        n = sum(1 for t in study.get_trials(deepcopy=False) if counts(t) or t.state == running)
        if n >= target:
            study.stop()
    return callback


def open_study(spec: Spec, create: bool = True) -> optuna.Study:
    directions = [o.direction for o in spec.objectives]
    space = search_space(knobs_from_spec(spec))
    if create:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = spec.run_dir / f".spec.yaml.{os.getpid()}"  # other workers may write it too, or read it
        tmp.write_text(spec.resolved_yaml())
        os.replace(tmp, spec.run_dir / "spec.yaml")
    study = optuna.create_study(storage=open_storage(spec.storage_url), study_name=spec.search.study_name,
                                directions=directions, sampler=make_sampler(spec, space),
                                load_if_exists=True)
    ours = [[o.metric, o.direction] for o in spec.objectives]
    our_space = {name: list(choices) for name, choices in space.items()}
    if study.user_attrs.get("objectives") is None:
        study.set_user_attr("objectives", ours)  # of two workers racing here the first one wins
        study.set_user_attr("space", our_space)
        study.set_user_attr("spec_name", spec.name)
    stored = study.user_attrs.get("objectives")  # re-read: the winner's, when we raced
    where = (f"the study {spec.search.study_name!r} in {spec.storage_url}")
    fix = "use another search.run_dir (or search.study_name), or delete the old run folder"
    if stored != ours:
        raise McusearchError(f"{where} was created with objectives {stored}, the spec now asks for "
                             f"{ours}: {fix}")
    stored_space = study.user_attrs.get("space")
    if stored_space is not None and stored_space != our_space:
        changed = sorted(k for k in set(stored_space) | set(our_space)
                         if stored_space.get(k) != our_space.get(k))
        raise McusearchError(f"{where} was created with other knob choices ({', '.join(changed)} "
                             f"differ; a study keeps its search space): {fix}")
    return study


def board_maps() -> dict[str, dict]:
    """Per board name: its core, assumed cycles per instruction and whether it builds hard-float."""
    from mcusearch.boards import available_boards

    boards = available_boards()
    return {"core_by_board": {n: c.core for n, c in boards.items()},
            "cpi_by_board": {n: float(getattr(c, "est_cpi", 1.0)) for n, c in boards.items()},
            "fpu_by_board": {n: "-mfloat-abi=hard" in c.cflags for n, c in boards.items()}}


def recommendation(spec: Spec, summary: "StudySummary"):
    """The cheapest catalog part and configuration over the study's trials, and why (or why none)."""
    from mcusearch.select import recommend, why_no_recommendation

    args = (summary.records, spec.parts(), spec.catalog.margin, summary.limits.get("deadline_ms"))
    energy = summary.limits.get("energy_uj")
    rec = recommend(*args, energy_uj=energy, **board_maps())
    return rec, (None if rec else why_no_recommendation(*args, energy_uj=energy, **board_maps()))


def _finished_twin(trial: optuna.Trial, params: dict) -> optuna.trial.FrozenTrial | None:
    for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params == params and t.user_attrs.get("status") == "ok":
            return t
    return None


def _run(spec: Spec, config, trial_dir: Path, on_stage):
    """One trial's stages: in a watched child process (``search.isolate``, the default) or here."""
    if not spec.search.isolate:
        return run_trial(spec, config, trial_dir, on_stage=on_stage)
    from mcusearch.isolate import run_isolated

    return run_isolated(spec, config, trial_dir, on_stage, spec.search.stage_timeout_s,
                        spec.search.memory_limit_mb)


TRIAL_LOG = "trial.log"  # in a trial's folder: the full story of a failure


DISK_FULL_WORDS = ("No space left on device", "database or disk is full", "Disk quota exceeded")


def disk_full(e: BaseException) -> str | None:
    """"disk full: ..." when ``e`` (or an exception it was raised from) is a full disk."""
    import errno

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full ({e.strerror}{f': {e.filename}' if e.filename else ''})"
        text = str(e)
        for words in DISK_FULL_WORDS:
            if words in text:
                return f"disk full ({words})"
        e = e.__cause__ or e.__context__
    return None


def _record_failure(trial: optuna.Trial, e: Exception, trial_dir: Path) -> None:
    """Store a failed trial's stage and one-line reason, write the traceback and the stage's own
    log (compiler, emulator) to the trial's log file, and say it in one line."""
    import traceback

    expected = isinstance(e, McusearchError)
    stage = getattr(e, "stage", "") or ("" if expected else "internal")
    reason = str(e) if expected else f"{type(e).__name__}: {e}"
    if stage and reason.startswith(f"{stage}: "):
        reason = reason[len(stage) + 2:]
    reason = disk_full(e) or " ".join(reason.split()) or type(e).__name__
    trial.set_user_attr("status", "failed")
    trial.set_user_attr("stage", stage)
    trial.set_user_attr("error", f"{stage}: {reason}" if stage else reason)
    text = "".join(traceback.format_exception(e))
    if getattr(e, "log", None):
        text += f"\n--- {stage} log ---\n{e.log}"
    where = ""
    try:
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / TRIAL_LOG).write_text(text)
        where = f" (log: {trial_dir / TRIAL_LOG})"
    except OSError:
        pass
    short = reason if len(reason) <= 200 else reason[:197] + "..."
    log.warning("trial %d failed in %s: %s%s", trial.number, stage or "?", short, where)


TWIN_POLL_S = 2.0


def _wait_for_running_twin(trial: optuna.Trial, params: dict) -> None:
    """While another worker runs a trial with the same knobs, wait for it (its result is then
    reused) instead of building the same thing twice. A twin whose worker died is failed by
    the heartbeat (or the reaper), which ends the wait."""
    running = (optuna.trial.TrialState.RUNNING,)
    waited = False
    while True:
        twins = [t for t in trial.study.get_trials(deepcopy=False, states=running)
                 if t.number != trial.number and t.params == params]
        if not twins:
            return
        if not waited:
            log.info("trial %d: same knobs as trial %d, which is running: waiting for it",
                     trial.number, twins[0].number)
            waited = True
        time.sleep(TWIN_POLL_S)


def _objective_factory(spec: Spec, knobs, space):
    from mcusearch.select import cheapest, part_figures, parts_table, trial_fits

    from mcusearch.convert import available_converters

    parts = spec.parts()
    maps = board_maps()
    converters = available_converters()

    def objective(trial: optuna.Trial):
        from mcusearch.proc import worker_id

        trial.set_user_attr("worker", worker_id())  # a resumed run on this host reaps it if we die
        trial.set_user_attr("status", "running")
        try:
            return _objective(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("status", "interrupted")
            trial.set_user_attr("error", "interrupted (Ctrl-C); it runs again on resume")
            _requeue(trial.study, trial.study._storage.get_trial(trial._trial_id))
            raise

    def _objective(trial: optuna.Trial):
        params = {name: trial.suggest_categorical(name, choices) for name, choices in space.items()}
        config = config_from_params(knobs, params)
        trial.set_user_attr("config", {k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in config.__dict__.items()})
        supported = converters[config.converter]
        if QUANT_FORMAT.get(config.quantization, config.quantization) not in supported:
            msg = (f"converter {config.converter} supports {', '.join(sorted(supported))}, "
                   f"not {config.quantization}")
            trial.set_user_attr("status", "infeasible")
            trial.set_user_attr("error", msg)
            raise optuna.TrialPruned(msg)
        _wait_for_running_twin(trial, params)
        same = _finished_twin(trial, params)
        if same is not None:  # samplers over discrete spaces repeat themselves: reuse, don't rebuild
            for key in ("figures", "limits", "artifacts", "notes", "cheapest_part", "seconds", "layers",
                        "part_cycles", "parts"):
                if key in same.user_attrs:
                    trial.set_user_attr(key, same.user_attrs[key])
            for key, value in same.constraints.items():
                trial.set_constraint(key, value)
            trial.set_user_attr("status", "ok")
            trial.set_user_attr("reused_from", same.number)
            log.info("trial %d: same knobs as trial %d, its results reused", trial.number, same.number)
            return list(same.values)
        trial_dir = spec.run_dir / "trials" / f"{trial.number:04d}-{config.key()}"
        log.info("trial %d: %s", trial.number, config.describe())
        t0 = time.perf_counter()
        try:
            result = _run(spec, config, trial_dir,
                          on_stage=lambda stage: trial.set_user_attr("stage_now", stage))
        except Infeasible as e:
            trial.set_user_attr("status", "infeasible")
            trial.set_user_attr("error", str(e))
            raise optuna.TrialPruned(str(e)) from e
        except Exception as e:  # a stage failed (or a bug): record why, never stop the study
            _record_failure(trial, e, trial_dir)
            raise
        limits = resolve_limits(spec, result.frame_period_s)
        fits = trial_fits(trial.user_attrs["config"], result.figures, parts, margin=spec.catalog.margin,
                          deadline_ms=limits.get("deadline_ms"), energy_uj=limits.get("energy_uj"),
                          part_cycles=result.part_cycles, **maps)
        result.figures.update(part_figures(fits))
        trial.set_user_attr("part_cycles", result.part_cycles)
        trial.set_user_attr("parts", parts_table(fits))
        best = cheapest(fits)
        trial.set_user_attr("cheapest_part", best.to_dict() if best else None)
        sc = score(spec, result.figures, result.frame_period_s)
        for key, value in sc.constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("status", "ok")
        trial.set_user_attr("figures", {k: f.to_dict() for k, f in result.figures.items()})
        trial.set_user_attr("limits", sc.limits)
        trial.set_user_attr("artifacts", result.artifacts)
        trial.set_user_attr("notes", result.notes)
        trial.set_user_attr("layers", result.layers)
        trial.set_user_attr("seconds", {**result.seconds, "total": round(time.perf_counter() - t0, 3)})
        if trial.study.user_attrs.get("limits") is None:
            trial.study.set_user_attr("limits", sc.limits)
        log.info("trial %d: %s%s", trial.number,
                 ", ".join(f"{o.metric}={number(v)}" for o, v in zip(spec.objectives, sc.objectives)),
                 "" if sc.feasible else f" (violates {', '.join(sc.violated())})")
        return sc.objectives

    return objective


RUN_LOG = "run.log"  # in the run folder: every run's log lines, appended


@contextmanager
def _run_log(run_dir: Path):
    """Copy mcusearch's log lines to ``<run_dir>/run.log`` while the block runs."""
    handler = logging.FileHandler(Path(run_dir) / RUN_LOG)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("mcusearch")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _tally(spec: Spec, study: optuna.Study, target: int) -> tuple[int, list[str]]:
    """The trials counted so far, and the progress line's parts: done / failed / infeasible of
    ``target``, and the best feasible value of each objective."""
    statuses = [t.user_attrs.get("status", "") for t in study.get_trials(deepcopy=False) if counts(t)]
    n = len(statuses)
    parts = [f"{n}/{target} trials: {statuses.count('ok')} ok, {statuses.count('failed')} failed, "
             f"{statuses.count('infeasible')} infeasible"]
    ok = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
          if t.user_attrs.get("status") == "ok" and all(c <= 0 for c in dict(t.constraints).values())]
    if ok:
        best = []
        for i, o in enumerate(spec.objectives):
            pick = min if o.direction == "minimize" else max
            best.append(f"{o.metric} {number(pick(t.values[i] for t in ok))}")
        parts.append("best feasible: " + ", ".join(best))
    return n, parts


def _time_left(elapsed: float, n: int, done_before: int, target: int, budget_s: float | None) -> float | None:
    """Seconds until ``target`` trials at this session's pace (``n - done_before`` trials in
    ``elapsed`` s), within the time budget; None before this session's first trial or at the end."""
    if n <= done_before or n >= target:
        return None
    left = elapsed / (n - done_before) * (target - n)
    return min(left, max(0.0, budget_s - elapsed)) if budget_s is not None else left


def progress_line(spec: Spec, study: optuna.Study, target: int, started: float, done_before: int,
                  budget_s: float | None) -> str:
    """Done / failed / infeasible of ``target``, the best feasible value of each objective so far
    and the time left (at this session's pace, within the time budget)."""
    n, parts = _tally(spec, study, target)
    left = _time_left(time.monotonic() - started, n, done_before, target, budget_s)
    if left is not None:
        parts.append(f"about {_duration(left)} left")
    return " · ".join(parts)


class _Live:
    """The status line's text on a terminal (:class:`mcusearch.status.StatusLine` calls it every
    second): the progress line as of the last finished trial with its time left counting down,
    and the trials running now (any worker's) with their stage and how long they have run
    (read from the storage every :attr:`POLL_S` seconds)."""

    POLL_S = 3.0

    def __init__(self, spec: Spec, study: optuna.Study, target: int, started: float, done_before: int,
                 budget_s: float | None):
        self.spec, self.study, self.target = spec, study, target
        self.started, self.done_before, self.budget_s = started, done_before, budget_s
        self.running: list[tuple[int, str, float]] = []  # (number, stage, started: time.time())
        self.polled = -math.inf
        self.update()

    def update(self) -> str:
        """Recount after a trial; the progress line (as :func:`progress_line` gives it)."""
        now = time.monotonic()
        self.n, self.parts = _tally(self.spec, self.study, self.target)
        self.left = _time_left(now - self.started, self.n, self.done_before, self.target, self.budget_s)
        self.updated, self.polled = now, -math.inf
        return " · ".join(self.parts + ([f"about {_duration(self.left)} left"] if self.left is not None else []))

    def _poll(self) -> None:
        now = time.monotonic()
        if now - self.polled < self.POLL_S:
            return
        self.polled = now
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        self.running = [(t.number, t.user_attrs.get("stage_now", "starting"),
                         t.datetime_start.timestamp() if t.datetime_start else time.time())
                        for t in running]

    def __call__(self) -> str:
        self._poll()
        parts = list(self.parts)
        if self.left is not None:
            parts.append(f"about {_duration(max(0.0, self.left - (time.monotonic() - self.updated)))} left")
        if self.running:
            now = time.time()
            each = ", ".join(f"#{n} {stage} {_clock(now - t0)}" for n, stage, t0 in self.running[:3])
            parts.append(f"{len(self.running)} running: {each}{', ...' if len(self.running) > 3 else ''}")
        return " · ".join(parts)


def _progress(spec: Spec, target: int, done_before: int, budget_s: float | None, started: float,
              live: _Live | None = None):
    """A callback logging :func:`progress_line` after each trial (never stopping the study); with
    ``live`` (a status line on a terminal) the line goes to the run log only and ``live`` shows it."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from mcusearch.status import STATUS_ONLY

        try:
            if live is None:
                line = progress_line(spec, study, target, started, done_before, budget_s)
            else:
                line = live.update()
            log.info("progress: %s", line, extra={STATUS_ONLY: live is not None})
        except Exception as e:  # a progress line is not worth a run
            log.debug("no progress line: %s", e)
    return callback


@contextmanager
def _status_line(live: _Live | None):
    """:class:`mcusearch.status.StatusLine` showing ``live`` while the block runs (if any)."""
    if live is None:
        yield
        return
    from mcusearch.status import StatusLine

    with StatusLine(live):
        yield


def _clock(s: float) -> str:
    """Elapsed seconds as m:ss (h:mm:ss from an hour)."""
    s = int(max(0.0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _duration(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


def run_study(spec: Spec, n_trials: int | None = None, timeout_s: float | None = None,
              progress: bool = True, report_every: int | None = None) -> StudySummary:
    """Run (or resume) the study until it holds ``n_trials`` finished trials or time runs out;
    log lines also go to ``<run_dir>/run.log``, and (``progress``) a progress line per trial;
    ``report_every``: rewrite the HTML report every that many finished trials."""
    # ERROR: Optuna would log the study's creation and every failed trial with its traceback;
    # we log one line per trial
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    knobs = knobs_from_spec(spec)
    space = search_space(knobs)
    study = open_study(spec)
    with _run_log(spec.run_dir):
        try:
            return _run_study(spec, study, knobs, space, n_trials, timeout_s, progress, report_every)
        finally:
            if spec.search.isolate:
                from mcusearch.isolate import stop_worker
                stop_worker()


def _run_study(spec: Spec, study: optuna.Study, knobs, space, n_trials: int | None,
               timeout_s: float | None, progress: bool, report_every: int | None = None) -> StudySummary:
    from mcusearch.proc import clean_stale_temp

    for d in clean_stale_temp():
        log.info("removed %s (left by a killed run)", d)
    reaped = reap_dead_trials(study)
    if reaped:
        log.info("trial(s) %s were running when their run died: failed, and queued again",
                 ", ".join(map(str, reaped)))
    target = n_trials if n_trials is not None else spec.search.n_trials
    if spec.search.sampler == "grid":
        target = min(target, math.prod(len(v) for v in space.values()))
    done = finished(study)
    remaining = max(0, target - done)
    if remaining:
        log.info("running %d trial(s) (%d already in %s)", remaining, done, spec.storage_url)
        # Other workers may run the same study at once (`mcusearch run` on the same storage from
        # several machines): the callback stops each of them when the study holds `target` trials.
        callbacks = [_stop_at_total(target)]
        budget = timeout_s if timeout_s is not None else spec.search.timeout_s
        live = None
        if progress:  # a status line on a terminal, else a progress line per trial
            from mcusearch.status import is_terminal

            started = time.monotonic()
            live = _Live(spec, study, target, started, done, budget) if is_terminal(sys.stderr) else None
            callbacks.append(_progress(spec, target, done, budget, started, live))
        if report_every:
            from mcusearch.report.live import report_every as live_report
            callbacks.append(live_report(spec, report_every))
        try:
            with _status_line(live):
                study.optimize(_objective_factory(spec, knobs, space), n_trials=remaining,
                               timeout=budget, catch=(Exception,), callbacks=callbacks,
                               show_progress_bar=False, gc_after_trial=True)
        except Exception as e:  # the storage itself failed (a trial's own errors are caught)
            full = disk_full(e)
            if full is None:
                raise
            raise McusearchError(f"{full}: the study in {spec.storage_url} cannot be written; "
                                 "free space and run again to resume") from None
    else:
        log.info("the study already holds %d finished trials; nothing to run", done)
    return summarize(study, spec.run_dir, spec.storage_url)


def load_summary(run_dir: Path, storage: str | None = None, study_name: str | None = None) -> StudySummary:
    run_dir = Path(run_dir)
    storage = storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise McusearchError(f"no study in {run_dir} (expected {run_dir / 'study.db'}); "
                             "run `mcusearch run SPEC` first")
    names = optuna.get_all_study_names(storage)
    if not names:
        raise McusearchError(f"the storage {storage} holds no study")
    name = study_name or (names[0] if len(names) == 1 else "mcusearch")
    study = optuna.load_study(study_name=name, storage=storage)
    return summarize(study, run_dir, storage)


def summarize(study: optuna.Study, run_dir: Path, storage: str) -> StudySummary:
    objectives = [tuple(o) for o in study.user_attrs.get("objectives", [])]
    records = []
    for t in study.trials:
        ua = t.user_attrs
        figures = {k: Figure.from_dict(v) for k, v in ua.get("figures", {}).items()}
        constraints = dict(t.constraints)
        status = ua.get("status", "running" if t.state.name == "RUNNING" else t.state.name.lower())
        records.append(TrialRecord(
            number=t.number, state=t.state.name, status=status, config=ua.get("config", {}),
            figures=figures, constraints=constraints,
            feasible=status == "ok" and all(v <= 0 for v in constraints.values()),
            values=list(t.values) if t.values is not None else None,
            error=ua.get("error", ""), stage=ua.get("stage", ""), artifacts=ua.get("artifacts", {}),
            notes=ua.get("notes", {}), seconds=ua.get("seconds", {}), reused_from=ua.get("reused_from"),
            layers=ua.get("layers", []), part_cycles=ua.get("part_cycles", {})))
    return StudySummary(Path(run_dir), storage, study.study_name, objectives,
                        study.user_attrs.get("limits", {}), records,
                        title=study.user_attrs.get("spec_name", study.study_name))


def pareto_front(records: list[TrialRecord], objectives: list[tuple[str, str]]) -> list[TrialRecord]:
    """The feasible, completed trials that no other feasible trial dominates."""
    pts = [r for r in records if r.feasible and r.values is not None]
    sign = [1.0 if d == "minimize" else -1.0 for _, d in objectives]

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        va = [s * v for s, v in zip(sign, a.values)]
        vb = [s * v for s, v in zip(sign, b.values)]
        return all(x <= y for x, y in zip(va, vb)) and any(x < y for x, y in zip(va, vb))

    front, seen = [], set()
    for r in pts:
        key = repr(sorted(r.config.items()))
        if key in seen or any(dominates(o, r) for o in pts if o is not r):
            continue  # a repeated configuration is listed once (its first trial)
        seen.add(key)
        front.append(r)
    return front
