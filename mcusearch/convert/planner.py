"""Row schedule and static memory plan of the optimised generator (converter ``"mcusearch"``).

Most layers are computed one output row per kernel call (firmware/kernels/fast). A layer's output
row needs a window of rows of each of its inputs (a 3x3 'same' convolution's row r needs input
rows r-1..r+1, a 2x2 pool's row r rows 2r..2r+1, an element-wise Add row r of both inputs, a Dense
all rows). A *whole* layer (a reference kernel run as a per-layer fallback) is one call that reads
all rows of its inputs and writes all rows of its output. :func:`plan` builds

* the **schedule**: the order of (layer, row) calls. Policy ``"downstream"``: always run the most
  downstream layer (by index) whose next row's inputs are all there, else go upstream. This is
  depth-first, patch-like inference: a row flows through as many layers as it can before the next
  input row is computed, so consecutive convolutions and pools keep only a few rows each (line
  buffers), and no full-resolution feature map is materialised unless a consumer needs all of it
  (Dense). On a chain that is also what the policies ``"pull"`` and ``"pull-early"`` do; on
  branches (Inception blocks, a U-Net's skip, a Concat of several producers, the gates of an
  unrolled recurrent cell) "downstream" runs the branch listed last to its end before the others
  start, so every branch's output piles up whole. The pull policies follow demand instead: from
  the model output, go to the producer of an input row the layer still lacks, until a layer can
  run; the branches then advance row by row together. "pull" takes the layer's first missing
  input, "pull-early" the missing input computed earliest in the layer order, "pull-deep" the
  one with the longest chain of layers behind it (the long chain - a recurrent state - before
  the short side branch, which then lives briefly; Sethi-Ullman's order for expression trees).
  :func:`plan_min` plans each and keeps the smallest arena (the calls, hence the instructions,
  are the same);
* the **ring size** of every tensor: the fewest row slots such that, in this schedule, a row is never
  overwritten (row y + R lands in row y's slot) before its last reader has run;
* the **arena**: one static byte array. Each buffer (ring) is live from its first write to its last
  read (schedule step indices); buffers are placed largest first at the lowest offset that does not
  overlap a placed buffer whose lifetime intersects (interval colouring, first fit). An
  element-wise layer (Clamp, Add, Mul, a look-up table, ...; its kernel reads element i before it
  writes element i) works in place on an input of its output's size that no other layer reads
  after the layer starts: its output shares that input's buffer (a squeeze-and-excite's Mul
  overwrites the feature map its global pool read before). The per-call scratch area (im2col
  columns, requantisation constants) is one region shared by the layers that use it
  (``PlanLayer.scratch``), placed like a buffer live from the first call of one of them to the
  last (when no layer says so: live throughout).
  ``arena_bytes`` is the whole activation memory the model needs:
  the model input and output stay in the caller's buffers, and the kernels have no other state.

Tensors are numbered as the generator numbers them: 0 is the model input, j + 1 the output of
layer j; the last layer's output is the model output. Layers come in a topological order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from mcusearch.errors import StageError

ALIGN = 8

Need = Callable[[int], tuple[int, int]]


@dataclass
class PlanLayer:
    """A layer as the planner sees it: for output row r, ``needs[k](r)`` = (first, last) row of
    input tensor ``inputs[k]``. Its output is tensor (its index + 1)."""

    name: str
    out_rows: int
    needs: list[Need]
    inputs: list[int]
    elementwise: bool = False          # output row r from input row r only (may run in place)
    whole: bool = False                # one call writes every row of the output
    scratch: bool = False              # its calls use the scratch area
    # a stride-1 windowed layer whose kernel reads its input window before it writes its output
    # row: output row r may overwrite input row r - top, the window's first (in-place depthwise)
    overwrite_top: int | None = None


@dataclass
class PlanTensor:
    rows: int                          # H (a vector is one row)
    row_bytes: int


@dataclass
class Plan:
    schedule: list[int]                # layer index per step
    ring_rows: list[int]               # per tensor (0: the model input, j + 1: layer j's output)
    offsets: list[int | None]          # per tensor: arena byte offset (None: the caller's buffer)
    buffer_of: list[int]               # per tensor: index of the buffer it lives in
    buffer_bytes: list[int]
    buffer_life: list[tuple[int, int]]
    scratch_offset: int
    scratch_bytes: int
    arena_bytes: int
    scratch_life: tuple[int, int] = (0, 1 << 30)   # steps: from the first to the last user's call
    row_shift: list[int] | None = None  # per tensor: row y lives in slot (y + shift) % ring_rows
    notes: list[str] = field(default_factory=list)

    def slot(self, t: int, y: int) -> int:
        """The ring slot of row ``y`` of tensor ``t``."""
        return (y + (self.row_shift[t] if self.row_shift else 0)) % self.ring_rows[t]

    def describe(self, names: list[str]) -> str:
        lines = []
        for t, (r, off) in enumerate(zip(self.ring_rows, self.offsets)):
            who = "model input" if t == 0 else names[t - 1]
            where = "caller's buffer" if off is None else f"arena +{off}"
            lines.append(f"  t{t} ({who}): {r} row slot(s), {where}")
        lines.append(f"  scratch: arena +{self.scratch_offset}, {self.scratch_bytes} bytes")
        return "\n".join(lines)


def _pad(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def _rows_read(lay: PlanLayer, k: int, r: int, h: int) -> range:
    lo, hi = lay.needs[k](r)
    return range(max(lo, 0), min(hi, h - 1) + 1)


POLICIES = ("downstream", "pull", "pull-early", "pull-deep")


def schedule(layers: list[PlanLayer], tensors: list[PlanTensor], policy: str = "downstream") -> list[int]:
    """The step order under ``policy`` (see the module docstring): the most downstream ready
    layer first, or the layer the output's next row pulls on (through the first missing input,
    the earliest computed one, or the deepest)."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}; one of {POLICIES}")
    n = len(layers)
    done = [0] * n
    avail = [tensors[0].rows] + [0] * n     # rows of tensor t written so far
    steps: list[int] = []
    last = n - 1
    limit = sum(lay.out_rows for lay in layers)

    def wants(j: int) -> list[tuple[int, int]]:
        """(tensor, last row needed) of layer j's next row; [] once it has computed every row."""
        lay = layers[j]
        if done[j] >= lay.out_rows:
            return [(0, 1 << 30)]
        return [(t, lay.needs[k](done[j])[1]) for k, t in enumerate(lay.inputs)]
    need = [wants(j) for j in range(n)]          # cached: changes only when layer j runs
    depth = [0] * (n + 1)                        # longest chain of layers behind tensor t
    for j, lay in enumerate(layers):
        depth[j + 1] = 1 + max(depth[t] for t in lay.inputs)
    while done[last] < layers[last].out_rows:
        j = last
        hops = 0
        while not all(hi < avail[t] for t, hi in need[j]):
            if policy == "downstream":
                j -= 1
            else:                                 # the producer of a missing input
                missing = [t for t, hi in need[j] if hi >= avail[t]]
                j = (missing[0] if policy == "pull" else min(missing) if policy == "pull-early"
                     else max(missing, key=lambda t: (depth[t], -t))) - 1
            hops += 1
            if j < 0 or hops > n:
                raise StageError("convert", "row schedule: no layer can run (inconsistent windows)")
        steps.append(j)
        done[j] += 1
        need[j] = wants(j)
        avail[j + 1] = tensors[j + 1].rows if layers[j].whole else done[j]
        if len(steps) > limit:
            raise StageError("convert", "row schedule did not terminate")
    return steps


def plan(layers: list[PlanLayer], tensors: list[PlanTensor], scratch_bytes: int,
         inplace: bool = True, policy: str = "downstream") -> Plan:
    """Schedule ``layers`` (tensor j + 1 is layer j's output; layer j reads ``inputs``) under
    ``policy`` and lay out the arena."""
    n = len(layers)
    if len(tensors) != n + 1:
        raise ValueError("need one tensor more than layers")
    steps = schedule(layers, tensors, policy)
    readers: dict[int, set[int]] = {}
    for j, lay in enumerate(layers):
        for t in lay.inputs:
            readers.setdefault(t, set()).add(j)

    # Buffers: a tensor written by an element-wise layer in place shares the buffer of one of its
    # inputs (the first with the output's rows that every other reader has finished with before
    # the layer's first call: a squeeze-and-excite's Mul overwrites the feature map its global
    # pool read earlier).
    buffer_of = list(range(n + 1))
    shift = [0] * (n + 1)
    if inplace:
        first_step: dict[int, int] = {}
        last_read_by: dict[tuple[int, int], int] = {}      # (tensor, reader) -> its last step
        for s, j in enumerate(steps):
            first_step.setdefault(j, s)
            for t in layers[j].inputs:
                last_read_by[(t, j)] = s
        for j, lay in enumerate(layers):      # in layer order: chains of in-place layers compose
            t_out = j + 1
            if t_out == n:
                continue
            if lay.elementwise:
                for k_in, t_in in enumerate(lay.inputs):
                    if (t_in != 0 and (lay.whole or _row_wise(lay, k_in))
                            and all(last_read_by[(t_in, k)] < first_step[j]
                                    for k in readers[t_in] - {j})
                            and tensors[t_in].row_bytes == tensors[t_out].row_bytes
                            and tensors[t_in].rows == tensors[t_out].rows):
                        buffer_of[t_out] = buffer_of[t_in]
                        shift[t_out] = shift[t_in]
                        break
            elif lay.overwrite_top is not None:   # an in-place depthwise, one slot behind
                t_in = lay.inputs[0]
                if (t_in != 0 and readers[t_in] == {j} and _window_slides(lay, lay.overwrite_top)
                        and tensors[t_in].row_bytes == tensors[t_out].row_bytes
                        and tensors[t_in].rows == tensors[t_out].rows):
                    buffer_of[t_out] = buffer_of[t_in]
                    shift[t_out] = shift[t_in] - lay.overwrite_top

    # When is every row of every tensor written, and when is it read for the last time?
    write = [[-1] * tensors[t].rows for t in range(n + 1)]
    last_read = [[-1] * tensors[t].rows for t in range(n + 1)]
    row_of = [0] * n
    for s, j in enumerate(steps):
        r = row_of[j]
        row_of[j] += 1
        lay = layers[j]
        for k, t in enumerate(lay.inputs):
            for y in _rows_read(lay, k, r, tensors[t].rows):
                last_read[t][y] = max(last_read[t][y], s)
        for y in (range(tensors[j + 1].rows) if lay.whole else (r,)):
            write[j + 1][y] = s

    # Ring sizes per buffer: rows of all its tensors share the slots (same row, same slot).
    groups: dict[int, list[int]] = {}
    for t in range(n + 1):
        groups.setdefault(buffer_of[t], []).append(t)
    ring_rows = [tensors[t].rows for t in range(n + 1)]
    for b, members in groups.items():
        if 0 in members or n in members:
            continue                        # the caller's buffers hold every row
        # Virtual row v = y + shift of each member's row y: the rows that share a slot in turn
        # (an element-wise layer's output row y, an in-place depthwise's output row y + top). A
        # later occupant is written in the step its predecessor is last read, or after.
        start: dict[int, int] = {}
        end: dict[int, int] = {}
        for t in members:
            for y in range(tensors[t].rows):
                if write[t][y] >= 0:
                    v = y + shift[t]
                    start[v] = min(start.get(v, write[t][y]), write[t][y])
                    end[v] = max(end.get(v, -1), last_read[t][y])
        span = max(start) - min(start) + 1 if start else 1
        rr = 1
        while rr < span and any(v + rr in start and start[v + rr] <= end[v] for v in start):
            rr += 1
        for t in members:
            ring_rows[t] = rr

    # Lifetimes (steps) and sizes of the arena buffers.
    buf_ids = sorted(b for b, m in groups.items() if 0 not in m and n not in m)
    sizes, lives = {}, {}
    for b in buf_ids:
        members = groups[b]
        t0 = members[0]
        sizes[b] = _pad(ring_rows[t0] * tensors[t0].row_bytes)
        first = min((s for s in write[t0] if s >= 0), default=0)
        last = max(max(last_read[t]) for t in members)
        lives[b] = (first, max(last, first))

    # The scratch area: buffer id -1, live over its users' calls, placed with the buffers; or on
    # top of them, whichever arena is smaller (first fit is a heuristic: a long-lived scratch area
    # among the buffers can fragment a deep pipeline's arena).
    users = [s for s, j in enumerate(steps) if layers[j].scratch]
    scratch_life = (users[0], users[-1]) if users else (0, len(steps))
    offsets_b, arena = _place(buf_ids, sizes, lives)
    scratch_off = arena
    if scratch_bytes:
        arena += _pad(scratch_bytes)
        sizes[-1], lives[-1] = _pad(scratch_bytes), scratch_life
        among, arena_among = _place(buf_ids + [-1], sizes, lives)
        if arena_among < arena:
            offsets_b, arena = among, arena_among
            scratch_off = offsets_b.pop(-1)

    offsets: list[int | None] = []
    for t in range(n + 1):
        b = buffer_of[t]
        offsets.append(offsets_b.get(b) if b in offsets_b else None)
    return Plan(schedule=steps, ring_rows=ring_rows, offsets=offsets, buffer_of=buffer_of,
                buffer_bytes=[sizes.get(buffer_of[t], 0) for t in range(n + 1)],
                buffer_life=[lives.get(buffer_of[t], (0, 0)) for t in range(n + 1)],
                scratch_offset=scratch_off, scratch_bytes=_pad(scratch_bytes) if scratch_bytes else 0,
                arena_bytes=arena, scratch_life=scratch_life, row_shift=shift)


def _row_wise(lay: PlanLayer, k: int) -> bool:
    """Whether output row r reads row r of input ``k`` alone (not when a stage boundary made the
    layer read that input whole)."""
    return all(lay.needs[k](r) == (r, r) for r in range(lay.out_rows))


def _window_slides(lay: PlanLayer, top: int) -> bool:
    """Whether output row r is the last to read input row r - top (the window moves down a row
    a row; not when a stage boundary made the layer read its input whole)."""
    return all(lay.needs[0](r + 1)[0] >= r - top + 1 for r in range(lay.out_rows - 1))


def _place(buf_ids: list[int], sizes: dict[int, int],
           lives: dict[int, tuple[int, int]]) -> tuple[dict[int, int], int]:
    """Offsets of the buffers, largest first at the lowest offset that overlaps no placed buffer
    live at the same time (interval colouring, first fit), and the bytes they span."""
    placed: list[tuple[int, int, tuple[int, int]]] = []     # (offset, size, life)
    offsets: dict[int, int] = {}
    for b in sorted(buf_ids, key=lambda b: (-sizes[b], lives[b][0])):
        life = lives[b]
        clashes = sorted((o, sz) for o, sz, lf in placed
                         if not (lf[1] < life[0] or life[1] < lf[0]))
        off = 0
        for o, sz in clashes:
            if off + sizes[b] <= o:
                break
            off = max(off, o + sz)
        offsets[b] = off
        placed.append((off, sizes[b], life))
    return offsets, max((o + sz for o, sz, _ in placed), default=0)


def _whole_reads(layers: list[PlanLayer], tensors: list[PlanTensor], cuts: set[int]) -> list[PlanLayer]:
    """``layers`` with every read of a tensor in ``cuts`` widened to all its rows: such a tensor is
    computed completely before its first reader runs (a stage boundary), so the layers before and
    after it no longer keep their line buffers alive at the same time."""
    out = []
    for lay in layers:
        if not cuts.intersection(lay.inputs):
            out.append(lay)
            continue
        needs = [(lambda r, h=tensors[t].rows: (0, h - 1)) if t in cuts else need
                 for need, t in zip(lay.needs, lay.inputs)]
        out.append(dataclasses.replace(lay, needs=needs))
    return out


def plan_min(layers: list[PlanLayer], tensors: list[PlanTensor], scratch_bytes: int,
             max_cuts: int = 4, seeds: tuple[frozenset[int], ...] = ()
             ) -> tuple[list[PlanLayer], Plan]:
    """:func:`plan`, then stage boundaries where they lower the arena: the depth-first schedule
    keeps a line buffer of every layer alive at once, which on a long chain of small layers adds
    up to more than a few whole tensors. Greedily (up to ``max_cuts`` times) materialise the one
    tensor that lowers ``arena_bytes`` most; the kernels and their calls are unchanged (same
    instructions), only the schedule and the buffers differ. Done for each schedule policy
    (:data:`POLICIES`): "downstream", and the pull policy with the smallest arena without cuts
    when that is smaller than downstream's (on chains they are all the same); the smaller arena
    wins ("downstream" on a tie). Returns the layers as planned
    (their reads widened at the cuts; check_plan needs them) and the plan, whose notes name the
    policy when it is not "downstream" and the cuts.

    The greedy search can stop in a local minimum; ``seeds`` are sets of boundaries to start it
    from as well (the caller's natural ones: the input of a streamed global pool, which used to be
    whole), each with its own ``max_cuts`` more; the smallest arena of all wins."""
    first = {pol: plan(layers, tensors, scratch_bytes, policy=pol) for pol in POLICIES}
    other = min(POLICIES[1:], key=lambda pol: first[pol].arena_bytes)
    tried = [POLICIES[0]] + ([other] if first[other].arena_bytes < first[POLICIES[0]].arena_bytes
                             else [])
    results = [(pol, *_plan_cuts(layers, tensors, scratch_bytes, max_cuts, pol, first[pol], seed))
               for pol in tried for seed in (frozenset(), *seeds)]
    pol, best_layers, best = min(results, key=lambda r: r[2].arena_bytes)
    if pol != POLICIES[0]:
        best.notes.insert(0, f"schedule policy {pol}: arena {results[0][2].arena_bytes:,} -> "
                             f"{best.arena_bytes:,} bytes")
    return best_layers, best


def _plan_cuts(layers: list[PlanLayer], tensors: list[PlanTensor], scratch_bytes: int,
               max_cuts: int, policy: str, start: Plan, seed: frozenset[int] = frozenset()
               ) -> tuple[list[PlanLayer], Plan]:
    """plan_min's greedy stage boundaries under one schedule policy, from its plan ``start``
    without cuts, or from the boundaries ``seed``."""
    best_layers, best = layers, start
    cuts: set[int] = set(seed)
    n = len(layers)
    if seed:
        best_layers = _whole_reads(layers, tensors, cuts)
        best = plan(best_layers, tensors, scratch_bytes, policy=policy)
        best.notes = [f"stage boundary at t{t} (layer {t - 1} of {n} computed whole first)"
                      for t in sorted(seed)]
        best.notes[-1] += f": arena {start.arena_bytes:,} -> {best.arena_bytes:,} bytes"
    candidates = [j + 1 for j, lay in enumerate(layers[:-1])
                  if not lay.whole and tensors[j + 1].rows > 1]
    for _ in range(max_cuts):
        trial_best = None
        for t in candidates:
            if t in cuts:
                continue
            ls = _whole_reads(layers, tensors, cuts | {t})
            p = plan(ls, tensors, scratch_bytes, policy=policy)
            if p.arena_bytes < (trial_best[2].arena_bytes if trial_best else best.arena_bytes):
                trial_best = (t, ls, p)
        if trial_best is None:
            break
        t, best_layers, p = trial_best
        p.notes = best.notes + [f"stage boundary at t{t} (layer {t - 1} of {n} computed whole "
                                f"first): arena {best.arena_bytes:,} -> {p.arena_bytes:,} bytes"]
        cuts.add(t)
        best = p
    return best_layers, best


def peak(p: Plan, names: list[str]) -> tuple[int, list[str]]:
    """The largest sum of live arena buffers at one schedule step (the scratch area included
    where live) and what makes it: '<tensor name>: <bytes>' per live buffer, largest first, then
    the scratch area's when it is live there."""
    best, who = 0, []
    seen = {}
    for t, b in enumerate(p.buffer_of):
        if p.offsets[t] is not None and b not in seen:
            seen[b] = t
    for s in range(len(p.schedule)):
        live = [(p.buffer_bytes[t], t) for b, t in seen.items()
                if p.buffer_life[t][0] <= s <= p.buffer_life[t][1]]
        scratch = p.scratch_bytes if p.scratch_life[0] <= s <= p.scratch_life[1] else 0
        total = sum(sz for sz, _ in live) + scratch
        if total > best:
            best = total
            who = [f"{'model input' if t == 0 else names[t - 1]}: {sz}" for sz, t in sorted(live, reverse=True)]
            who += [f"scratch: {scratch}"] if scratch else []
    return best, who


def check_plan(layers: list[PlanLayer], tensors: list[PlanTensor], p: Plan) -> None:
    """Replay the schedule on row identities: every read finds the row it expects in its slot,
    no two live buffers (the scratch area among them) overlap in the arena, and every call of a
    layer that uses the scratch area falls in its life. Raises AssertionError otherwise."""
    n = len(layers)
    slots: dict[tuple[int, int], tuple[int, int]] = {}    # (buffer, slot) -> (tensor, row)
    row_of = [0] * n
    for j in p.schedule:
        r = row_of[j]
        row_of[j] += 1
        lay = layers[j]
        for k, t in enumerate(lay.inputs):
            if t == 0:
                continue
            for y in _rows_read(lay, k, r, tensors[t].rows):
                got = slots.get((p.buffer_of[t], p.slot(t, y)))
                assert got is not None and got[1] == y and p.buffer_of[got[0]] == p.buffer_of[t], \
                    f"layer {j} row {r} needs row {y} of t{t}, slot holds {got}"
        if j + 1 != n:
            for y in (range(tensors[j + 1].rows) if lay.whole else (r,)):
                slots[(p.buffer_of[j + 1], p.slot(j + 1, y))] = (j + 1, y)
    assert row_of[-1] == layers[-1].out_rows, "schedule does not compute every output row"
    assert all(p.scratch_life[0] <= s <= p.scratch_life[1] for s, j in enumerate(p.schedule)
               if layers[j].scratch), "a layer uses the scratch area outside its life"
    assert all(r <= lay.out_rows for r, lay in zip(row_of, layers))
    live = [(p.offsets[t], p.buffer_bytes[t], p.buffer_life[t], p.buffer_of[t])
            for t in range(n + 1) if p.offsets[t] is not None]
    uniq = {b: (o, sz, lf) for o, sz, lf, b in live}
    if p.scratch_bytes:
        uniq["scratch"] = (p.scratch_offset, p.scratch_bytes, p.scratch_life)
    items = list(uniq.items())
    for i, (b1, (o1, s1, l1)) in enumerate(items):
        assert o1 + s1 <= p.arena_bytes, f"buffer {b1} ends past the arena"
        for b2, (o2, s2, l2) in items[i + 1:]:
            if not (l1[1] < l2[0] or l2[1] < l1[0]):
                assert o1 + s1 <= o2 or o2 + s2 <= o1, f"buffers {b1} and {b2} overlap while live"
