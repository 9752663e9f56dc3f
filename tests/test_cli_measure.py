"""`mcusearch measure`: one model on one board without a search, through the real stages."""
from __future__ import annotations

import subprocess
import sys

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow loads)


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mcusearch", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_measure_a_keras_file_on_two_boards(tmp_path):
    from mcusearch.model.architectures import study_cnn

    model = study_cnn((12, 8, 1), 3, filters=4, dense_units=8)
    model.save(tmp_path / "m.h5")
    for board in ("qemu-m7", "qemu-m3"):
        r = _run("measure", "m.h5", "--board", board, "-O2", "--inputs", "2",
                 "--out", f"out-{board}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"{board} (emulated" in r.stdout
        assert "instructions (emulated)" in r.stdout and "per MAC" in r.stdout
        assert "e+0" not in r.stdout                      # counts in full: 1,234,567, not 1.23e+06
        assert "ms (" in r.stdout and "cycle/instruction at" in r.stdout   # how the latency was got
        assert "top-1 agreement 100%" in r.stdout
        assert "live at the peak:" in r.stdout            # the memory plan (plan.json)
        assert (tmp_path / f"out-{board}" / "build" / "firmware.elf").is_file()


def test_measure_bad_arguments(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    r = _run("measure", "m.onnx", cwd=tmp_path)
    assert r.returncode == 2 and "MODEL" in r.stderr and ".tflite" in r.stderr
    (tmp_path / "m.h5").write_bytes(b"")
    r = _run("measure", "m.h5", "--board", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "--board" in r.stderr and "qemu-m7" in r.stderr
    r = _run("measure", "m.h5", "-O9", "--out", "out", cwd=tmp_path)       # before any output
    assert r.returncode == 2 and "--opt-level" in r.stderr and "-Os" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    (tmp_path / "m.tflite").write_bytes(b"")                # e.g. a converter that crashed
    r = _run("measure", "m.tflite", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2 and "MODEL" in r.stderr and "empty" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    (tmp_path / "m.tflite").write_bytes(b"TFL3 not a flatbuffer")
    r = _run("measure", "m.tflite", cwd=tmp_path)
    assert r.returncode == 2 and "not a readable .tflite model" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
