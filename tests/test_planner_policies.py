"""The row planner's schedule policies (mcusearch/convert/planner.py) on branching graphs:
"downstream" (the most downstream ready layer) and "pull" (the producer of the row the output
lacks). Both must give schedules whose every read finds its row (check_plan) on random DAGs
of row layers; on an Inception-like block "pull" advances the branches together, so the arena
is smaller, and plan_min picks it and says so. No compiler is needed: the planner is pure Python.
"""
from __future__ import annotations

import pytest

from mcusearch.convert.planner import (POLICIES, PlanLayer, PlanTensor, check_plan, peak, plan,
                                       plan_min, schedule)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _same(r):
    return (r, r)


def _window(h: int):
    """A 3 x 3 'same' window over h rows."""
    return lambda r: (max(r - 1, 0), min(r + 1, h - 1))


def _pool(h: int):
    """A 2 x 2 stride-2 pool over h rows."""
    return lambda r: (2 * r, min(2 * r + 1, h - 1))


@st.composite
def dags(draw):
    """A backbone chain (layer j reads tensor j) in which a layer may also read an earlier tensor
    of the same height (a concatenation or a residual add), with 3 x 3 windows (some in place,
    one slot behind their input), row-wise reads (element-wise ones in place) and 2 x 2 pools;
    row sizes vary so that the arena depends on the schedule."""
    h0 = draw(st.integers(4, 12))
    tensors = [PlanTensor(h0, draw(st.integers(1, 64)))]
    layers: list[PlanLayer] = []
    for j in range(draw(st.integers(2, 9))):
        h = tensors[j].rows
        kind = draw(st.sampled_from(["window", "same", "pool", "join"]))
        if kind == "pool" and h >= 4:
            out_h, needs, ins = h // 2, [_pool(h)], [j]
        elif kind == "join":
            peers = [t for t in range(j) if tensors[t].rows == h]
            other = draw(st.sampled_from(peers)) if peers else None
            ins = [j] if other is None else [j, other]
            out_h = h
            rowwise = draw(st.booleans())
            needs = [_same] * len(ins) if rowwise else [_window(h)] * len(ins)
        else:
            out_h, needs, ins = h, [_window(h) if kind == "window" else _same], [j]
        # a row-wise layer may be element-wise (an Add, a Clamp: in place on a single-reader input
        # of the same row size)
        elementwise = all(nd is _same for nd in needs) and draw(st.booleans())
        # a 3 x 3 window may overwrite its input's rows one slot behind (in-place depthwise)
        overwrite = kind == "window" and draw(st.booleans())
        size = tensors[j].row_bytes if elementwise or overwrite else draw(st.integers(1, 64))
        layers.append(PlanLayer(f"l{j}", out_h, needs, ins, elementwise=elementwise,
                                scratch=draw(st.booleans()), overwrite_top=1 if overwrite else None))
        tensors.append(PlanTensor(out_h, size))
    return layers, tensors


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.integers(0, 100))
def test_both_policies_give_valid_plans_on_dags(dag, scratch):
    layers, tensors = dag
    for policy in POLICIES:
        steps = schedule(layers, tensors, policy)
        # every output row once; a row no reader needs (a pool's dropped last row) is skipped
        assert steps.count(len(layers) - 1) == layers[-1].out_rows
        assert all(steps.count(j) <= lay.out_rows for j, lay in enumerate(layers))
        check_plan(layers, tensors, plan(layers, tensors, scratch, policy=policy))
    planned, p = plan_min(layers, tensors, scratch)
    check_plan(planned, tensors, p)
    for j, lay in enumerate(layers[:-1]):          # in place: an element-wise layer's output
        if lay.elementwise and any(p.buffer_of[j + 1] == p.buffer_of[t] for t in lay.inputs):
            assert p.offsets[j + 1] is not None        # lives in an input's arena buffer
    assert p.arena_bytes <= min(plan(layers, tensors, scratch, policy=pol).arena_bytes
                                for pol in POLICIES)
    # a seeded search (a boundary to start from as well) is valid, never worse, and when it wins
    # its plan keeps the seed tensor whole
    seed = frozenset({len(layers) // 2}) if len(layers) > 1 else frozenset()
    if seed and tensors[len(layers) // 2].rows > 1:
        seeded_layers, seeded = plan_min(layers, tensors, scratch, seeds=(seed,))
        check_plan(seeded_layers, tensors, seeded)
        assert seeded.arena_bytes <= p.arena_bytes
        if seeded.arena_bytes < p.arena_bytes:
            (t,) = seed
            assert seeded.ring_rows[t] >= tensors[t].rows     # whole (+ a slot of lag)


def inception(h: int = 8, row: int = 64):
    """input -> 1x1 conv, 3x3 conv, 3x3 pool -> 1x1 conv; concat of the three; a 3x3 conv."""
    t = [PlanTensor(h, row)] + [PlanTensor(h, row) for _ in range(6)]
    layers = [PlanLayer("b1x1", h, [_same], [0]),
              PlanLayer("b3x3", h, [_window(h)], [0]),
              PlanLayer("bpool", h, [_window(h)], [0]),
              PlanLayer("bpool_1x1", h, [_same], [3]),
              PlanLayer("concat", h, [_same] * 3, [1, 2, 4]),
              PlanLayer("conv", h, [_window(h)], [5])]
    return layers, t


def test_pull_streams_the_branches_of_an_inception_block():
    layers, tensors = inception()
    down = plan(layers, tensors, 0, policy="downstream")
    pull = plan(layers, tensors, 0, policy="pull")
    check_plan(layers, tensors, down)
    check_plan(layers, tensors, pull)
    # "downstream" runs the last-listed branch (pool, its 1x1) to its end, then the 3x3 one,
    # before the first 1x1 row: the outputs of both are whole
    assert down.ring_rows[4] == 8 and down.ring_rows[2] == 8
    # "pull" alternates the branches: every branch output is a line buffer of one or two rows
    assert max(pull.ring_rows[1:5]) <= 2 and pull.arena_bytes < down.arena_bytes / 2
    planned, best = plan_min(layers, tensors, 0)
    assert best.schedule == pull.schedule and best.notes[0].startswith("schedule policy pull")


def test_chains_plan_alike_and_keep_the_downstream_notes():
    """On a chain both policies give the same schedule: plan_min plans it once, no policy note."""
    h = 10
    tensors = [PlanTensor(h, 16) for _ in range(4)]
    layers = [PlanLayer(f"c{j}", h, [_window(h)], [j]) for j in range(3)]
    assert schedule(layers, tensors, "pull") == schedule(layers, tensors, "downstream")
    _, p = plan_min(layers, tensors, 0)
    assert not any(n.startswith("schedule policy") for n in p.notes)
    with pytest.raises(ValueError):
        schedule(layers, tensors, "breadth")


def test_pull_early_and_deep_keep_an_unrolled_recurrence_small():
    """An unrolled recurrent layer: per step t a projection P_t of the input, then the cell
    C_t = f(P_t, C_t-1), listed P_0, C_0, P_1, C_1, ... Both "downstream" (every P_t is ready at
    once) and "pull" (C_t's first input is P_t) compute all projections before the cells hold
    them; "pull-early" and "pull-deep" follow the state chain first, so each P_t lives for one
    cell."""
    steps = 12
    tensors = [PlanTensor(1, 8)]
    layers: list[PlanLayer] = []
    for t in range(steps):
        layers.append(PlanLayer(f"P{t}", 1, [_same], [0]))
        p_out = len(layers)
        ins = [p_out] + ([p_out - 1] if t else [])
        layers.append(PlanLayer(f"C{t}", 1, [_same] * len(ins), ins))
        tensors += [PlanTensor(1, 64), PlanTensor(1, 16)]
    arenas = {}
    for pol in POLICIES:
        p = plan(layers, tensors, 0, policy=pol)
        check_plan(layers, tensors, p)
        arenas[pol] = p.arena_bytes
    assert arenas["pull-early"] <= 2 * 64 + 2 * 16 and arenas["pull-deep"] <= 2 * 64 + 2 * 16
    assert arenas["downstream"] >= steps * 64 and arenas["pull"] >= steps * 64
    _, best = plan_min(layers, tensors, 0)
    assert best.arena_bytes == min(arenas.values())
    assert best.notes[0].startswith("schedule policy pull-")


def test_pull_deep_when_the_deep_input_is_listed_later():
    """The same recurrence with the projections listed first (P_0..P_n-1, then the cells, as
    TensorFlow's converter orders some unrolled layers): "pull-early" now also reaches for the
    projections first (their index is smaller); "pull-deep" still follows the state chain."""
    steps = 10
    tensors = [PlanTensor(1, 8)] + [PlanTensor(1, 64) for _ in range(steps)]
    layers = [PlanLayer(f"P{t}", 1, [_same], [0]) for t in range(steps)]
    for t in range(steps):
        ins = [t + 1] + ([steps + t] if t else [])
        layers.append(PlanLayer(f"C{t}", 1, [_same] * len(ins), ins))
        tensors.append(PlanTensor(1, 16))
    arenas = {pol: plan(layers, tensors, 0, policy=pol).arena_bytes for pol in POLICIES}
    assert arenas["pull-deep"] <= 2 * 64 + 2 * 16 < steps * 64 <= arenas["pull-early"]
    _, best = plan_min(layers, tensors, 0)
    assert best.notes[0].startswith("schedule policy pull-deep")


def squeeze_excite(h: int = 12, row: int = 96, later_reader: bool = False):
    """conv (3 x 3, uses the scratch area) -> global pool (reads all of it) -> Dense -> Mul of the
    conv's map by the Dense vector (element-wise, a whole reference kernel) -> 2 x 2 pool
    (-> with ``later_reader`` an Add of that pool's rows and the conv's, after the Mul)."""
    whole = lambda r: (0, h - 1)  # noqa: E731
    t = [PlanTensor(h, row), PlanTensor(h, row), PlanTensor(1, 8), PlanTensor(1, 8),
         PlanTensor(h, row), PlanTensor(h // 2, row // 2)]
    layers = [PlanLayer("conv", h, [_window(h)], [0], scratch=True),
              PlanLayer("squeeze", 1, [whole], [1], whole=True),
              PlanLayer("expand", 1, [lambda r: (0, 0)], [2], whole=True),
              PlanLayer("excite", 1, [whole, lambda r: (0, 0)], [1, 3], whole=True, elementwise=True),
              PlanLayer("pool", h // 2, [_pool(h)], [4])]
    if later_reader:
        t.append(PlanTensor(h // 2, row // 2))
        layers.append(PlanLayer("late", h // 2, [_same, _pool(h)], [5, 1]))
    return layers, t


def test_excite_overwrites_the_map_its_pool_read_and_scratch_dies_with_the_conv():
    """The Mul works in place on the conv's map (the global pool, its other reader, has finished
    with it), and the scratch area lives only during the conv's calls: the peak is the map plus
    the scratch while the conv runs, not the map twice plus the scratch."""
    layers, tensors = squeeze_excite()
    p = plan(layers, tensors, 200)
    check_plan(layers, tensors, p)
    assert p.buffer_of[4] == p.buffer_of[1]
    conv_steps = [s for s, j in enumerate(p.schedule) if j == 0]
    assert p.scratch_life == (conv_steps[0], conv_steps[-1])
    assert p.arena_bytes == 12 * 96 + 200
    assert peak(p, [lay.name for lay in layers]) == (12 * 96 + 200, ["conv: 1152", "scratch: 200"])
    # without a user the scratch area is live throughout (callers that do not say)
    for lay in layers:
        lay.scratch = False
    assert plan(layers, tensors, 200).scratch_life[0] == 0


def test_no_in_place_over_a_tensor_read_after_the_layer_starts():
    layers, tensors = squeeze_excite(later_reader=True)
    p = plan(layers, tensors, 0)
    check_plan(layers, tensors, p)
    assert p.buffer_of[4] != p.buffer_of[1]
