"""qemu-m55 (Cortex-M55 on QEMU mps3-an547): a catalog core that now has an emulated board.

A small float32 model runs through the generator, is built for the M55 and checked against the
host; the SysTick-derived instruction count agrees with the counting plugin; the cycle model has a
Cortex-M55 entry whose ranges hold.
"""
from __future__ import annotations

import shutil

import pytest

needs_tools = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc") and shutil.which("gcc")),
    reason="needs qemu-system-arm, arm-none-eabi-gcc and a host gcc")


@pytest.fixture(scope="module")
def m55_elf(tmp_path_factory):
    import mcusearch.boards.qemu_m55  # noqa: F401  (registers qemu-m55)
    from mcusearch.cli import main
    from mcusearch.log import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf
    out = tmp_path_factory.mktemp("m55")
    model = tf.keras.Sequential([tf.keras.layers.Input((12, 10, 1)),
                                 tf.keras.layers.Conv2D(8, 3, activation="relu"),
                                 tf.keras.layers.MaxPooling2D(),
                                 tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(4, activation="softmax")])
    model.save(out / "m.h5")
    # measure: convert, build for qemu-m55, run, and check the outputs against Keras (raises if not)
    assert main(["measure", str(out / "m.h5"), "--board", "qemu-m55", "--out", str(out / "run")]) == 0
    return out / "run" / "build" / "firmware.elf"


@needs_tools
def test_m55_counts_instructions_exactly_with_systick(m55_elf):
    from mcusearch.boards import get_board
    from mcusearch.boards.plugin import run_profile, symbol_address

    board = get_board("qemu-m55")
    run = board.run(m55_elf, timeout_s=60)
    assert len(run.ticks) >= 4
    counts = [board.ticks_to_count(t) for t in run.ticks]
    prof = run_profile(m55_elf, board.machine, m55_elf.parent / "p.json", start=symbol_address(m55_elf, "mcus_model_run"),
                       stop=symbol_address(m55_elf, "mcus_done"), timeout_s=60)
    # the plugin's window spans every input and the harness between them: a little more than the sum
    # (a wrong SysTick clock, e.g. 25 or 40 MHz instead of 32, would be 28 % or 20 % off)
    assert sum(counts) <= prof.insns <= 1.01 * sum(counts) + 500, (counts, prof.insns)


@needs_tools
def test_m55_cycle_estimate(m55_elf):
    from mcusearch.boards import get_board
    from mcusearch.estimate import estimate_cycles

    board = get_board("qemu-m55")
    est = estimate_cycles(m55_elf, board, 1e5, m55_elf.parent / "est")
    assert est.config == "cortex-m55:zero-wait" and "assumed Cortex-M4 timings" in est.cycles.method


def test_m55_model_ranges_hold():
    from mcusearch.boards.cyclemodel import CORTEX_M55

    for t in [*CORTEX_M55.per_class.values(), *CORTEX_M55.per_extra.values()]:
        if t is not None:
            assert t.low <= t.cycles <= t.high and t.source
    assert CORTEX_M55.per_class["other"].low == 0   # DLS/WLS/LE may cost nothing
