"""The report's written comparison: where our numbers differ from the 2020 study's and why.

Each paragraph states a difference with our figure (from the studies, provenance named) and the
study's (published.py), then the reason: converter, compiler, data set, emulation vs a board,
what is counted. Nothing is adjusted to match: the figures are the ones in the tables above.
"""
from __future__ import annotations

import html

import published as pub
from render import Point, pick

H = html.escape


def _fmt(v: float | None, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def collapse_point(ch: list[Point], dtype: str = "float32", drop: float = 0.05) -> int | None:
    """The fewest channels removed (without re-training) at which accuracy falls more than
    ``drop`` below the unpruned model's; None if it never does in the trials run."""
    base = pick(ch, removed=0, dtype=dtype)
    if base is None or base.value("accuracy") is None:
        return None
    for p in sorted((p for p in ch if p.dtype == dtype and not p.retrain and p.removed), key=lambda p: p.removed):
        if p.value("accuracy") is not None and p.value("accuracy") < base.value("accuracy") - drop:
            return p.removed
    return None


def weights_biases_kb(kept: int, dtype: str) -> float:
    """The study's flash basis for its CNN with ``kept`` filters per conv: weights and biases only,
    in units of 1000 B (int8: 1-byte weights, 4-byte biases; float32: 4 bytes each)."""
    convs = [(1, kept)] + [(kept, kept)] * 5
    weights = sum(9 * i * o for i, o in convs) + 3 * 2 * kept * 100 + 100 * 4
    biases = 6 * kept + 100 + 4
    return (weights * (1 if dtype == "int8" else 4) + biases * 4) / 1000


def _ratio(tool: list[Point], conv: str, a: str, b: str) -> str:
    """Instructions of ``conv`` float32 at opt level ``a`` over level ``b``, as text."""
    pa, pb = (pick(tool, converter=conv, dtype="float32", opt=o) for o in (a, b))
    if pa is None or pb is None or not pb.value("instructions"):
        return "not run"
    return f"{pa.value('instructions') / pb.value('instructions'):.2f}×"


def comparison_html(ch: list[Point], mag: list[Point], tool: list[Point]) -> str:
    base_f = pick(ch, removed=0, dtype="float32")
    base_i = pick(ch, removed=0, dtype="int8")
    acc = base_f.value("accuracy") if base_f else None
    coll = collapse_point(ch)
    paras = [
        ("Data set",
         f"The study's radar gestures reached 1.000 test accuracy unpruned; our smartwatch IMU frames reach "
         f"{_fmt(acc, '{:.4f}')} (H) with the same network, because they are a different task "
         "(other sensor, other recordings, test subjects unseen in training). Accuracies are "
         "therefore compared as trends, not values: without re-training the study's accuracy collapsed after 8 "
         f"channels removed (0.8869 at 9); ours first falls more than 5 points below the unpruned model at "
         f"{_fmt(coll, '{}')} channels removed (in the trials run). The magnitude-pruning collapse between 90 % "
         "and 94 % in the study depends as much on the data as on the method."),
        ("What flash and RAM count",
         "The study's flash is weights and biases only, in units of 1000 B, and its RAM X-CUBE-AI's activation "
         "buffers. Ours is the model's whole share of the linked image (S, KiB): weights, biases, int8 "
         "requantisation constants, kernel code, layer tables; RAM is the planned arena plus the model's static "
         "data. On the study's basis our unpruned int8 model holds "
         f"{weights_biases_kb(pub.FILTERS, 'int8'):.2f} kB of weights and biases (counted from the shapes), "
         f"against the study's {pub.XCUBE_MEMORY[('int8', 0)][0]} kB; our model flash is {_fmt(base_i.value('model_flash_kb') if base_i else None, '{:.2f}')} "
         "KiB because it also holds the code and constants. Our int8 RAM "
         f"({_fmt(base_i.value('model_ram_kb') if base_i else None, '{:.2f}')} KiB) against X-CUBE-AI's 22.78 kB: "
         "our generator fuses conv + ReLU + max-pool a few rows at a time and plans one arena from tensor "
         "lifetimes, so a whole 30 × 20 × 32 activation is never held twice."),
        ("Converters",
         "We have neither X-CUBE-AI (closed) nor a runnable Keras2C (its C runtime ships in neither its wheel "
         "nor its sdist). `mcusearch` stands in for the vendor library, `mcusearch-ref` (plain reference loops) "
         "for Keras2C and `aidge` is a third open-source export the study did not have. Their ratios are "
         "therefore ours, not the study's: see the speed table. Our int8 and sparse kernels exist because the "
         "study wished for them (quantisation for the open converter, a back end that skips pruned zeros)."),
        ("Compiler",
         "GCC 12.2 (Debian's arm-none-eabi) here, GCC 7.4 in the study. -O0 figures depend most on the "
         f"compiler version. Ours, float32: mcusearch -O0 / -O3 = {_ratio(tool, 'mcusearch', '-O0', '-O3')}, "
         f"-O3 / -Ofast = {_ratio(tool, 'mcusearch', '-O3', '-Ofast')}; mcusearch-ref -O0 / -O3 = "
         f"{_ratio(tool, 'mcusearch-ref', '-O0', '-O3')} (emulated instructions, E)."),
        ("Emulation, not a board",
         "Instruction counts are exact (QEMU -icount, E). Cycles and milliseconds are estimates (~): the "
         "instruction-class mix counted by our QEMU plugin × per-class cycles from Arm's manuals, plus flash "
         "wait states and caches of the named STM32F722 configuration (caches on: ART and L1 caches, 7 flash "
         "wait states at 216 MHz; caches off: every flash access waits). They are not fitted to the study's "
         "measurements; a real NUCLEO-F722ZE would land between the two configurations depending on how its "
         "caches were set. The study measured cycles with DWT CYCCNT over 20 frames on the board; we measure "
         "the same 20 frames' instructions (5 per class)."),
        ("Nothing adjusted",
         "No figure of ours was tuned to the study's: the specs (bench/thesis/*.yaml) use the study's knob "
         "values (channels removed 0-30, 3 re-training epochs, tfmot 15 epochs at frequency 50, sparsities "
         "82-98 %, -O0/-O3/-Ofast) and our default data and training."),
    ]
    return "".join(f"<h3>{H(t)}</h3><p>{H(body)}</p>" for t, body in paras)
