"""bench/overnight.py's sampler replay (issue 11): the hypervolume arithmetic checked by hand on
a toy grid of three knobs, and samplers replayed against a recorded grid (recorded figures only:
nothing of the tool is stood in for)."""
from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from overnight import (REF, Grid, Normaliser, Row, greedy_front_subset,  # noqa: E402
                       grid_hypervolume, hypervolume, nondominated, replay, summarise, trials_to)

# A toy grid: knobs a (3 values) x b (2) x c (2) = 12 configurations; objectives size (minimise)
# and accuracy (maximise); a constraint "ram" (> 0: violated).
SPACE = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0, 1]}
OBJECTIVES = [("size", "minimize"), ("accuracy", "maximize")]


def _toy() -> Grid:
    rows = {}
    for a, b, c in itertools.product(*SPACE.values()):
        size = 10.0 * a + (5.0 if b == "y" else 0.0)          # 10 .. 35
        acc = 0.5 + 0.1 * a + (0.05 if c else 0.0)             # 0.6 .. 0.85
        rows[(a, b, c)] = Row([size, acc], {"ram": -1.0})
    rows[(3, "y", 1)] = Row([35.0, 0.85], {"ram": 2.0})        # infeasible: over the RAM limit
    rows[(3, "x", 0)] = Row(None, {}, "failed")                # failed in a stage
    rows[(1, "y", 0)] = Row(None, {}, "infeasible")            # rejected before it ran
    return Grid(dict(SPACE), list(OBJECTIVES), rows)


def test_hypervolume_by_hand():
    # 2-D staircase: (0, 1), (0.5, 0.5), (1, 0) under (1.1, 1.1):
    # 0.5 * 0.1 + 0.5 * 0.6 + 0.1 * 1.1 = 0.05 + 0.30 + 0.11 = 0.46
    assert hypervolume([(0, 1), (0.5, 0.5), (1, 0)], [1.1, 1.1]) == pytest.approx(0.46)
    # a dominated point, a duplicate and a point beyond the reference change nothing
    assert hypervolume([(0, 1), (0.5, 0.5), (1, 0), (0.6, 0.6), (0.5, 0.5), (1.2, 0)],
                       [1.1, 1.1]) == pytest.approx(0.46)
    # 3-D: one point at the origin fills the cube 1.1^3; two boxes overlapping in 0.6 x 0.6 x 1.1
    assert hypervolume([(0, 0, 0)], [1.1] * 3) == pytest.approx(1.331)
    both = 2 * (1.1 * 0.6 * 1.1) - 0.6 * 0.6 * 1.1  # (0, 0.5, 0) and (0.5, 0, 0): union of two boxes
    assert hypervolume([(0, 0.5, 0), (0.5, 0, 0)], [1.1] * 3) == pytest.approx(both)
    assert hypervolume([], [1.1, 1.1]) == 0.0


def test_hypervolume_agrees_with_optunas_own_in_four_dimensions():
    from optuna._hypervolume import compute_hypervolume  # the pinned Optuna's exact algorithm (WFG)
    import numpy as np

    rng = random.Random(1)
    for _ in range(5):
        pts = [tuple(rng.random() for _ in range(4)) for _ in range(25)]
        ours = hypervolume(pts, [REF] * 4)
        theirs = compute_hypervolume(np.array(pts), np.array([REF] * 4))
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_nondominated_keeps_the_front_once():
    assert nondominated([(1, 2), (2, 1), (2, 2), (1, 2), (3, 0)]) == [(1, 2), (2, 1), (3, 0)]


def test_the_toy_grids_front_and_hypervolume_by_hand():
    g = _toy()
    norm = Normaliser(g)
    # feasible sizes 10 .. 35 (35 is (3, y, 0)), accuracies 0.6 .. 0.85 ((3, x, 1))
    assert norm.lo == pytest.approx([10.0, 0.6]) and norm.hi == pytest.approx([35.0, 0.85])
    assert norm([10.0, 0.85]) == pytest.approx((0.0, 0.0)) and norm([35.0, 0.6]) == pytest.approx((1.0, 1.0))
    # The feasible front (size, accuracy): (10, 0.65) a1 x c1; (20, 0.75) a2 x c1; (30, 0.85) a3 x c1.
    # Normalised: (0, 0.8), (0.4, 0.4), (0.8, 0); under (1.1, 1.1):
    # 0.4 * 0.3 + 0.4 * 0.7 + 0.3 * 1.1 = 0.12 + 0.28 + 0.33 = 0.73
    assert grid_hypervolume(g) == pytest.approx(0.73)
    # Greedy: (0.4, 0.4) alone 0.49; with either end point 0.61; all three 0.73.
    picked, n_front = greedy_front_subset(g, 0.95)  # 0.95 * 0.73 = 0.69 needs all three
    assert n_front == 3 and picked[0] == (2, "x", 1) and sorted(picked[1:]) == [(1, "x", 1), (3, "x", 1)]
    assert len(greedy_front_subset(g, 0.8)[0]) == 2    # 0.584 <= 0.61
    assert greedy_front_subset(g, 0.6)[0] == [(2, "x", 1)]  # 0.438 <= 0.49


def test_replay_tells_each_configuration_its_recorded_outcome():
    g = _toy()
    # The grid sampler visits each configuration once: after all 12 the share is exactly 1.
    visited = []
    shares = replay(g, optuna.samplers.GridSampler(g.space, seed=0), n_trials=12, visited=visited)
    assert len(shares) == 12 and shares[-1] == pytest.approx(1.0)
    assert sorted(visited) == sorted(g.rows)  # every configuration once
    assert all(b >= a for a, b in zip(shares, shares[1:]))  # a front only grows
    assert trials_to(shares, 1.0) <= 12 and trials_to([0.1, 0.5], 0.95) is None
    # Stopping at a share ends the replay there.
    stopped = replay(g, optuna.samplers.GridSampler(g.space, seed=0), n_trials=12, stop_at=0.5)
    assert stopped[-1] >= 0.5 and len(stopped) == trials_to(shares, 0.5)


def test_replay_shares_by_hand_for_a_fixed_order():
    g = _toy()
    order = [{"a": 3, "b": "y", "c": 1},   # infeasible (RAM): no front, share 0
             {"a": 3, "b": "x", "c": 0},   # failed: share 0
             {"a": 2, "b": "x", "c": 1},   # (20, 0.75) -> (0.4, 0.4): 0.7 * 0.7 = 0.49 of 0.73
             {"a": 1, "b": "x", "c": 1},   # (10, 0.65) -> (0, 0.8): + 0.4 * 0.3 = 0.61 of 0.73
             {"a": 3, "b": "x", "c": 1}]   # (30, 0.85) -> (0.8, 0): the whole front
    study_sampler = _FixedOrder(order)
    shares = replay(g, study_sampler, n_trials=len(order))
    assert shares == pytest.approx([0, 0, 0.49 / 0.73, 0.61 / 0.73, 1.0])


class _FixedOrder(optuna.samplers.BaseSampler):
    """Suggests the given configurations in order (a real Optuna sampler, written for the test)."""

    def __init__(self, order: list[dict]):
        self.order = order

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        return self.order[trial.number][name]


def test_summarise_gives_median_and_spread_over_seeds():
    # three seeds, replays stopped once they reach 95 %, a budget of 3 trials
    row = summarise("tpe", [[0.5, 0.96], [0.2, 0.5, 0.97], [0.1, 0.2, 0.3]], target=0.95, n_grid=20)
    assert row["reached"] == 2 and row["seeds"] == 3
    assert row["median"] == 3 and row["min"] == 2 and row["max"] is None  # one seed never got there
    # after 15 % of 20 = 3 trials: 0.96 (reached at 2: at least that), 0.97, 0.3 -> median 0.96
    assert row["at"] == 3 and row["share_at"] == pytest.approx(0.96)
    assert row["met"] is True  # the median seed reaches 95 % within 3 trials


def test_cache_hits_and_stage_seconds_read_from_stored_trials():
    import datetime

    from overnight import _stage_seconds, cache_hits

    def trial(n: int, key: str, seconds: dict, reused: int | None = None):
        attrs = {"notes": {"model_cache_key": key}, "seconds": seconds}
        if reused is not None:
            attrs["reused_from"] = reused
        t = optuna.trial.create_trial(values=[1.0], user_attrs=attrs)
        t.number, t.datetime_start = n, datetime.datetime(2026, 1, 1, 0, 0, n)
        return t

    trials = [trial(2, "b", {"model": 1.0, "total": 3.0}),   # started after 0 made "b": a hit
              trial(0, "b", {"model": 9.0, "total": 12.0}),  # first to need "b": a miss
              trial(1, "a", {"model": 2.0, "total": 4.0}),   # "a" was in the cache before the run
              trial(3, "b", {}, reused=2)]                   # reused a trial's result: no model stage
    assert cache_hits(trials, before={"a"}) == (2, 3)
    assert _stage_seconds(trials) == {"model": 2.0, "total": 4.0}  # medians over the three that ran
