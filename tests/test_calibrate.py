"""`mcusearch calibrate`, end to end with QEMU standing in for the board.

A QEMU board given as --board is its own "measured" side (its count is emulated instructions), so
the whole flow runs here: the real converter, compiler, QEMU runs with per-layer markers, the
plugin's per-part profile, the table, the saved correction, and a later estimate that applies it
and says so.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow loads)
from mcusearch.calibrate import Correction, apply_correction, load_corrections
from mcusearch.errors import SpecError

PART = "STM32F722ZE"


def _run(*args, cwd: Path, cal_dir: Path):
    env = {**os.environ, "MCUSEARCH_CALIBRATION_DIR": str(cal_dir)}
    return subprocess.run([sys.executable, "-m", "mcusearch", "calibrate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from mcusearch.model.architectures import study_cnn

    d = tmp_path_factory.mktemp("cal")
    study_cnn((12, 8, 1), 3, filters=4, dense_units=8).save(d / "m.h5")
    r = _run("m.h5", "--board", "qemu-m7", "--part", PART, "--inputs", "1", "--out", "out", "--save",
             cwd=d, cal_dir=d / "corrections")
    assert r.returncode == 0, r.stderr[-3000:]
    return d, r.stdout


def test_the_table_has_every_layer_and_says_how(calibrated):
    d, out = calibrated
    lines = out.splitlines()
    head = lines[0]
    assert "emulated instr" in head and "est. cycles" in head and "stand-in count" in head and "ratio" in head
    rows = {ln.split("  ")[0].strip(): ln.split() for ln in lines[1:] if ln and not ln.startswith("-")
            and ln.split()[-1].replace(".", "").isdigit()}
    for layer in ("conv1", "conv6", "pool3", "fc1", "fc2"):
        assert any(k.startswith(layer) for k in rows), (layer, list(rows))
    total = next(ln for ln in lines if ln.startswith("whole inference")).split()
    instr, est, meas, ratio = (float(x.replace(",", "")) for x in total[2:6])
    assert meas == instr                            # the stand-in's count is its instructions
    assert ratio == pytest.approx(meas / est, abs=5e-4)
    assert est > instr                              # 7 wait states and cache misses: more cycles than instructions
    assert f"part {PART}, memory configuration {PART}:stm32f7-l1:7ws" in out
    assert "a QEMU board stands in for a real one" in out and "not fitted to measurements" in out


def test_the_saved_correction(calibrated):
    d, out = calibrated
    path = d / "corrections" / f"{PART}.yaml"
    assert f"saved: {path}" in out
    raw = yaml.safe_load(path.read_text())
    assert raw["format"] == "mcusearch-calibration/1"
    c = Correction.load(path)
    assert (c.part, c.board, c.emulator, c.core) == (PART, "qemu-m7", "qemu-m7", "cortex-m7")
    assert c.date == dt.date.today().isoformat() and c.label == f"calibrated on qemu-m7, {c.date}"
    assert c.factor == pytest.approx(c.measured_cycles / c.estimated_cycles)
    assert c.measured_provenance == "emulated" and c.model.startswith("m.h5 (sha256 ")
    assert [row["name"].split()[0] for row in c.layers][:2] == ["conv1", "conv2"]
    assert load_corrections(d / "corrections") == {PART: c}


def test_a_later_estimate_applies_the_correction_and_says_so(calibrated, monkeypatch):
    from mcusearch.boards import get_board
    from mcusearch.catalog import find_part, load_catalog
    from mcusearch.parts.estimate import part_cycles_for_trial
    from mcusearch.select import part_latency

    d, _ = calibrated
    c = Correction.load(d / "corrections" / f"{PART}.yaml")
    elf = d / "out" / "build-qemu-m7" / "firmware.elf"
    board, part = get_board("qemu-m7"), find_part(load_catalog(), PART)
    plain = part_cycles_for_trial(elf, board, [part], 1e6, d / "p0", corrections={})[PART]
    monkeypatch.setenv("MCUSEARCH_CALIBRATION_DIR", str(d / "corrections"))
    fixed = part_cycles_for_trial(elf, board, [part], 1e6, d / "p1")[PART]   # reads the saved correction
    for k in ("cycles", "cycles_low", "cycles_high"):
        assert fixed[k] == pytest.approx(plain[k] * c.factor)
    assert fixed["cycles_low"] <= fixed["cycles"] <= fixed["cycles_high"]
    assert fixed["provenance"] == "estimated" and fixed["calibration"] == c.label
    assert f"calibrated on qemu-m7, {c.date}" in fixed["method"] and "stand-in" in fixed["method"]
    lat = part_latency(part, 1e6, 1.0, fixed)
    assert c.label in lat.method and lat.ms == pytest.approx(fixed["cycles"] / 216e3)


def test_a_correction_for_another_memory_configuration_is_not_applied():
    c = Correction(part=PART, board="nucleo-f722ze", date="2026-01-02", memory="other", core="cortex-m7",
                   factor=2.0, estimated_cycles=1.0, measured_cycles=2.0, model="m", emulator="qemu-m7",
                   measured_provenance="measured")
    est = {"cycles": 10.0, "cycles_low": 5.0, "cycles_high": 20.0, "memory": "mine", "method": "m"}
    out = apply_correction(est, c, "cortex-m7")
    assert out["cycles"] == 10.0 and "not applied" in out["calibration"]
    same = apply_correction({**est, "memory": "other"}, c, "cortex-m7")
    assert (same["cycles_low"], same["cycles"], same["cycles_high"]) == (10.0, 20.0, 40.0)
    assert "calibrated on nucleo-f722ze, 2026-01-02" in same["method"] and "stand-in" not in same["method"]


def test_a_bad_correction_file_names_the_file(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("format: mcusearch-calibration/1\npart: X\n")
    with pytest.raises(SpecError, match="x.yaml"):
        load_corrections(tmp_path)
    bad.write_text("just text")
    with pytest.raises(SpecError, match="not a calibration file"):
        Correction.load(bad)


@pytest.mark.parametrize("args, key", [
    (["m.h5", "--board", "nope"], "--board"),
    (["m.h5", "--board", "qemu-m7"], "--part"),                              # a QEMU board stands for no part
    (["m.h5", "--board", "qemu-m7", "--part", "STM32F405RG"], "--part"),     # a Cortex-M4
    (["m.onnx", "--board", "qemu-m7", "--part", PART], "MODEL"),
])
def test_bad_arguments_exit_2_naming_the_option_and_write_nothing(tmp_path, args, key):
    (tmp_path / "m.h5").write_bytes(b"")
    (tmp_path / "m.onnx").write_bytes(b"")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _run(*args, "--save", cwd=tmp_path, cal_dir=tmp_path / "corrections")
    assert r.returncode == 2 and key in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_help_explains(tmp_path):
    r = _run("--help", cwd=tmp_path, cal_dir=tmp_path)
    assert r.returncode == 0
    for words in ("emulated instructions", "measured", "--save", "calibrated on <board>, <date>", "stands in"):
        assert words in " ".join(r.stdout.split()), words


def test_per_layer_windows_add_up_and_follow_the_schedule(calibrated):
    """The plugin's per-layer counts (steps=, skip=): the row schedule read from the ELF is the
    generator's (plan.json), every window falls in one layer, and the layers add up to the whole."""
    import json

    from mcusearch.boards.plugin import read_counts, read_layer_counts
    from mcusearch.calibrate import schedule

    d, _ = calibrated
    out = d / "out"
    plan = json.loads((out / "c" / "plan.json").read_text())
    elf = out / "build-qemu-m7" / "firmware.elf"
    assert schedule(elf, len(plan["layers"])) == plan["schedule"]
    whole = read_counts(out / "profile" / "layers.json")
    layers = read_layer_counts(out / "profile" / "layers.json")
    assert whole.intervals == 1 + 1 * len(plan["schedule"])          # the harness's calibration pair + 1 input
    assert len(layers) == len(plan["layers"]) and all(p.scope == "layer" for p in layers)
    calib = whole.insns - sum(p.insns for p in layers)                 # the one skipped window
    assert 0 < calib < 100
    for cls in ("load", "store", "branch"):
        assert sum(p.classes[cls] for p in layers) <= whole.classes[cls]
    assert max(range(len(layers)), key=lambda i: layers[i].insns) == 1  # conv2 is the costliest layer


def test_a_real_board_gets_the_emulator_of_its_core_and_its_own_part():
    """No probe needed: only the run touches the hardware (calibrate.measure_on_board)."""
    from mcusearch.calibrate import _boards, _part

    board, emulator = _boards("nucleo-f767zi", None)
    assert board.kind != "emulated" and emulator.kind == "emulated" and emulator.core == board.core == "cortex-m7"
    assert _part(board, None).part == "STM32F767ZI"
    with pytest.raises(SpecError, match="--emulator"):
        _boards("nucleo-f767zi", "qemu-m4")
