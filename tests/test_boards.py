"""Boards: every emulated board end to end (QEMU), the real boards' firmware (compiles and links),
and the real-board runner (mcusearch.boards.pyocd_board) against QEMU.

No probe or board is connected here or in CI. The runner's code after "pyocd gdbserver is
listening" talks to QEMU's gdbstub through a stand-in for pyocd: this file, run as a script
(``python tests/test_boards.py json|gdbserver ...``, see :func:`fake_pyocd_main`). It answers
``pyocd json --probes`` from $FAKE_PYOCD_PROBES and, for ``pyocd gdbserver``, starts QEMU without
an image and relays the GDB protocol, doing what pyOCD does for the three things QEMU lacks:
``vFlashWrite``/``vFlashDone`` (written to QEMU's memory), ``monitor reset halt`` (QEMU's
``system_reset``) and pyOCD's log line "GDB server listening on port N". So flashing, verifying,
resetting, the breakpoint, the hang and fault paths, the probe lock and process clean-up all run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_firmware import BAD_MODEL, float_conv, loop_conv, make_conv

from mcusearch.boards import BOARDS, board_table, define_board, get_board
from mcusearch.boards import pyocd_board as pb
from mcusearch.boards.gdb import GdbClient, GdbError
from mcusearch.boards.qemu import QemuBoard
from mcusearch.boards.remote import HarnessImage, Readout, check_core, monitor, program_flash, run_to_done
from mcusearch.build import build
from mcusearch.build import elf as elfinfo
from mcusearch.errors import StageError
from mcusearch.figures import Provenance
from mcusearch.measure import measure

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)

EMULATED = ["qemu-m7", "qemu-m4", "qemu-m3", "qemu-m33", "qemu-m0plus", "qemu-m55"]
REAL = ["nucleo-f767zi", "nucleo-f722ze", "nucleo-h743zi"]
LOOP_KS = [0, 1, 2, 80, 800]
FAKE_UID = "FAKE0001"


# ================================================================================================
# fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("boards")


@pytest.fixture(scope="module", autouse=True)
def private_dirs(tmp_path_factory):
    """Generated board-support folders and probe locks in this test's own folders."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MCUSEARCH_BOARD_SUPPORT_DIR", str(tmp_path_factory.mktemp("support")))
        mp.setenv("MCUSEARCH_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        yield


@pytest.fixture(scope="module")
def convs(workdir):
    return {"float": float_conv(workdir / "float_model"), "loop": loop_conv(workdir / "loop_model", LOOP_KS)}


@pytest.fixture(scope="module")
def builds(workdir, convs):
    """float and loop models at -O2 for every emulated board (built once)."""
    out = {}
    for name in EMULATED:
        board = get_board(name)
        for kind, conv in convs.items():
            out[name, kind] = build(conv, board, "-O2", workdir / f"{name}-{kind}", cache_dir=workdir / "cache")
    return out


@pytest.fixture()
def temp_boards():
    """Boards defined by a test, removed from the registry afterwards."""
    made = []

    def make(name, **attrs):
        made.append(name)
        return define_board(name, **attrs)

    yield make
    for name in made:
        BOARDS.pop(name, None)


@pytest.fixture()
def fake_pyocd(monkeypatch, tmp_path):
    """pyocd -> this file's stand-in; returns a function that sets the probes it reports."""
    marker = f"mcusfake{os.getpid()}x{time.monotonic_ns()}"
    monkeypatch.setenv("MCUSEARCH_PYOCD", f"{sys.executable} {Path(__file__).resolve()}")
    monkeypatch.setenv("FAKE_PYOCD_MARKER", marker)
    monkeypatch.setenv("FAKE_PYOCD_QEMU", "mps2-an500")
    monkeypatch.delenv("FAKE_PYOCD_FAIL", raising=False)

    def set_probes(*probes: dict):
        monkeypatch.setenv("FAKE_PYOCD_PROBES", json.dumps(list(probes)))

    set_probes({"unique_id": FAKE_UID, "info": "Fake ST-LINK", "board_name": "Generic", "target": "cortex_m",
                "vendor_name": "STMicroelectronics", "product_name": "STM32 STLink"})
    set_probes.marker = marker
    yield set_probes
    assert _processes_with(marker) == [], "a QEMU or pyocd stand-in was left running"


def qemu_as_real(temp_boards, name="fake-m7", **over):
    """A generic pyOCD board whose memory map is QEMU mps2-an500's: the real-board firmware
    (cortex-m startup, generic clock, SysTick or DWT timer) runs on QEMU's Cortex-M7."""
    attrs = dict(target="fake_m7", core="cortex-m7", fpu="single", flash_kb=4096, ram_kb=4096,
                 flash_origin=0x0, ram_origin=0x2000_0000, clock_hz=25_000_000, timer="systick")
    attrs.update(over)
    return temp_boards(name, **attrs)


def _processes_with(marker: str) -> list[int]:
    """QEMUs started with ``-name marker``, and stand-ins for pyocd this process started."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                cmdline = (p / "cmdline").read_bytes()
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if marker.encode() in cmdline or (ppid == os.getpid() and b"test_boards.py" in cmdline):
                found.append(int(p.name))
    return found


# ================================================================================================
# emulated boards, end to end


def test_emulated_boards_registered():
    for name in EMULATED:
        b = get_board(name)
        assert isinstance(b, QemuBoard) and b.kind == "emulated" and b.counter is Provenance.EMULATED
        assert b.support_path.is_dir() and (b.support_path / "link.ld").is_file()
        assert any(f.startswith("-mcpu=") for f in b.cflags) and "-mthumb" in b.cflags
    assert get_board("qemu-m3").cflags[-1] == "-mfloat-abi=soft" and not get_board("qemu-m3").has_fpu
    assert "-mfpu=fpv4-sp-d16" in get_board("qemu-m4").cflags
    m33 = get_board("qemu-m33")
    assert m33.machine == "mps2-an505" and m33.ticks_to_count(128) == 50.0   # 20 MHz TIMER0


@pytest.mark.parametrize("name", EMULATED)
def test_emulated_board_end_to_end(name, builds, convs):
    board = get_board(name)
    conv = convs["float"]
    m = measure(builds[name, "float"], conv, board, timeout_s=20)
    np.testing.assert_allclose(m.outputs, conv.expected, rtol=1e-6)
    assert m.max_abs_error <= 1e-5 and m.argmax_agreement == 1.0
    assert m.per_inference.provenance is Provenance.EMULATED and m.per_inference.unit == "instructions"
    assert all(c == int(c) and c > 0 for c in m.counts)

    loop = measure(builds[name, "loop"], convs["loop"], board, timeout_s=20)
    np.testing.assert_array_equal(loop.outputs, convs["loop"].expected)
    c = dict(zip(LOOP_KS, loop.counts))
    slope = (c[800] - c[1]) / 799
    # exact: a whole number per iteration (2 on the M55: ARMv8.1-M's low-overhead loop, LE)
    assert slope == int(slope) and 2 <= slope <= 8
    assert c[80] == c[1] + 79 * slope


def test_m3_soft_float(builds, convs):
    b = builds["qemu-m3", "float"]
    assert "-mfloat-abi=soft" in b.cflags and not any(f.startswith("-mfpu") for f in b.cflags)
    syms = elfinfo.symbols(b.elf)
    assert "__aeabi_fadd" in syms or "__addsf3" in syms        # float arithmetic in libgcc
    m = measure(b, convs["float"], get_board("qemu-m3"), timeout_s=20)
    np.testing.assert_allclose(m.outputs, convs["float"].expected, rtol=1e-6)
    hard = measure(builds["qemu-m4", "float"], convs["float"], get_board("qemu-m4"), timeout_s=20)
    assert min(m.counts) > 2 * max(hard.counts)             # software float costs instructions


def test_m33_timer_wraps_and_faults(workdir, convs):
    """mps2-an505's own timer (IRQ 3, 20 MHz) and vector table: wraps counted, faults reported."""
    board = get_board("qemu-m33")
    ks = [0, 20_000, 60_000]
    conv = loop_conv(workdir / "loop_long", ks)
    normal = build(conv, board, "-O2", workdir / "m33_long", cache_dir=workdir / "cache")
    small = build(conv, board, "-O2", workdir / "m33_wrap", ["-DMCUS_TIMER_RELOAD=0xFFFF"],
                  cache_dir=workdir / "cache")
    a = measure(normal, conv, board, timeout_s=20).counts
    b = measure(small, conv, board, timeout_s=20).counts
    for ca, cb in zip(a, b):
        wraps = ca / (65_536 * 50 / 128)
        assert 0 <= cb - ca <= 40 * (wraps + 1)
    assert b[-1] > a[-1]

    trap = make_conv(workdir / "trap_model", BAD_MODEL, np.array([[0.0], [1.0]], np.float32),
                     np.zeros((2, 1), np.float32), "float32", "float32")
    fw = build(trap, board, "-O2", workdir / "m33_trap", ["-DTRAP"], cache_dir=workdir / "cache")
    with pytest.raises(StageError) as e:
        measure(fw, trap, board, timeout_s=10)
    assert "input 1" in e.value.message and "UNDEFINSTR" in e.value.message


# ================================================================================================
# real boards: firmware compiles and links


@pytest.mark.parametrize("name", REAL)
def test_real_board_firmware_links(name, workdir, convs):
    board = get_board(name)
    assert board.kind == "real" and board.counter is Provenance.MEASURED and board.timer == "DWT CYCCNT"
    fw = build(convs["float"], board, "-O3", workdir / f"{name}-float", cache_dir=workdir / "cache")
    syms = elfinfo.symbols(fw.elf)
    assert syms["mcus_vectors"].address == board.flash.origin == 0x0800_0000
    result_region = board.result_ram or board.ram
    assert result_region.origin == 0x2000_0000                 # DTCM: not cached, read by the debugger
    for s in ("mcus_result", "mcus_fault_info", "mcus_clock_hz"):
        assert result_region.holds(syms[s].address, syms[s].size), s
    assert board.ram.holds(syms["model_arena"].address, syms["model_arena"].size)
    assert "board_clock_init" in syms and "board_enable_caches" in syms and "SysTick_Handler" in syms
    image = HarnessImage.read(fw.elf)
    assert all(board.flash.holds(a, len(d)) for a, d in image.load_segments())
    assert fw.flash_bytes < 64 * 1024 and fw.model_flash_bytes > 0
    fpu = {"single": "-mfpu=fpv5-sp-d16", "double": "-mfpu=fpv5-d16"}[board.fpu]
    assert fpu in fw.cflags and "-mfloat-abi=hard" in fw.cflags
    script = (board.support_path / "link.ld").read_text()
    assert f"LENGTH = {board.flash.size:#x}" in script and f"LENGTH = {board.ram.size:#x}" in script


def test_generic_boards_link(temp_boards, workdir, convs):
    m0 = temp_boards("test-m0plus", target="rp2040", core="cortex-m0plus", flash_kb=2048, ram_kb=256,
                     flash_origin=0x1000_0000, clock_hz=12_000_000)
    m4 = temp_boards("test-l475", target="stm32l475xg", core="cortex-m4", fpu="single", flash_kb=1024,
                     ram_kb=96, clock_hz=4_000_000)
    assert m0.timer_kind == "systick" and m4.timer_kind == "dwt"
    for cls in (m0, m4):
        board = get_board(cls.name)
        fw = build(convs["float"], board, "-O2", workdir / f"{cls.name}-float", cache_dir=workdir / "cache")
        assert elfinfo.symbols(fw.elf)["mcus_vectors"].address == board.flash.origin
        config = (board.support_path / "board_config.h").read_text()
        assert f"#define MCUS_CLOCK_HZ {board.clock_hz}u" in config
    assert get_board("test-m0plus").cflags == ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft")
    with pytest.raises(ValueError):
        temp_boards("test-bad", target="x", core="cortex-m0plus", flash_kb=1, ram_kb=1, clock_hz=1, timer="dwt")
    with pytest.raises(ValueError):
        temp_boards("test-bad2", target="x", core="cortex-m3", fpu="single", flash_kb=1, ram_kb=1, clock_hz=1)


def test_ram_overflow_is_a_build_error(temp_boards, workdir, convs):
    tiny = temp_boards("test-tiny", target="x", core="cortex-m4", flash_kb=64, ram_kb=2, clock_hz=1_000_000)
    with pytest.raises(StageError) as e:
        build(convs["float"], get_board(tiny.name), "-O2", workdir / "tiny", cache_dir=workdir / "cache")
    assert e.value.stage == "build" and "RAM overflowed" in e.value.message


def test_unconfigured_generic_board_is_a_clear_error(workdir, convs):
    board = get_board("pyocd-generic")
    with pytest.raises(StageError) as e:
        build(convs["float"], board, "-O2", workdir / "unconfigured")
    assert e.value.stage == "build" and "define_board" in e.value.message
    with pytest.raises(StageError, match="not configured"):
        board.run(workdir / "none.elf", 1)


def test_support_folder_is_content_addressed(temp_boards):
    a = get_board("nucleo-f767zi").support_path
    assert a == get_board("nucleo-f767zi").support_path
    assert sorted(p.name for p in a.iterdir()) == ["board_cm.h", "board_config.h", "clock.c", "link.ld",
                                                   "startup.c", "timer.c"]
    x = temp_boards("test-clock-a", target="x", core="cortex-m4", flash_kb=64, ram_kb=16, clock_hz=1_000_000)
    y = temp_boards("test-clock-b", target="x", core="cortex-m4", flash_kb=64, ram_kb=16, clock_hz=2_000_000)
    assert x().support_path != y().support_path


def test_cflags_for():
    assert pb.cflags_for("cortex-m7", "double") == ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16",
                                                    "-mfloat-abi=hard")
    assert pb.cflags_for("cortex-m4", "none") == ("-mcpu=cortex-m4+nofp", "-mthumb", "-mfloat-abi=soft")
    assert pb.cflags_for("cortex-m33", "single")[2] == "-mfpu=fpv5-sp-d16"


# ================================================================================================
# the GDB pieces the real-board runner uses, against QEMU's gdbstub directly


def test_gdb_pieces_against_qemu(builds, tmp_path):
    board = get_board("qemu-m7")
    b = builds["qemu-m7", "float"]
    image = HarnessImage.read(b.elf)
    sock = tmp_path / "gdb.sock"
    proc = subprocess.Popen(board.qemu_command(b.elf, sock), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = _connect_unix(sock, proc)
        with client:
            client.handshake()
            assert check_core(client, "cortex-m7") >> 4 & 0xFFF == 0xC27
            with pytest.raises(StageError, match="target mismatch: the board's core is cortex-m7"):
                check_core(client, "cortex-m4")
            with pytest.raises(GdbError):               # QEMU programs no flash: vFlash is pyOCD's
                program_flash(client, image.load_segments())
            assert monitor(client, "system_reset") == ""
            readout = run_to_done(client, image, 10, hardware_breakpoint=True)
            assert readout.clock_hz is None              # emulated-board support sets no clock
            result = readout.decode()
            assert len(result.ticks) == 4 and result.status == 1
            client.kill()
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _connect_unix(sock: Path, proc: subprocess.Popen) -> GdbClient:
    deadline = time.monotonic() + 10
    while True:
        try:
            return GdbClient.connect_unix(sock)
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)


# ================================================================================================
# the real-board runner, end to end against QEMU through the pyocd stand-in


def test_pyocd_board_runs_on_qemu(fake_pyocd, temp_boards, workdir, convs, builds):
    """Flash over vFlash, verify, reset, run, read: outputs right, SysTick cycles = QEMU's count."""
    cls = qemu_as_real(temp_boards)
    board = get_board(cls.name)
    assert board.kind == "real" and board.probe_status() == f"probe of unknown board ({FAKE_UID})"
    conv = convs["loop"]
    fw = build(conv, board, "-O2", workdir / "fake-m7-loop", cache_dir=workdir / "cache")
    t0 = time.monotonic()
    m = measure(fw, conv, board, timeout_s=20)
    assert time.monotonic() - t0 < 30
    np.testing.assert_array_equal(m.outputs, conv.expected)
    assert m.per_inference.provenance is Provenance.MEASURED and m.per_inference.unit == "cycles"
    assert "SysTick" in m.per_inference.method
    # Under -icount shift=7 SysTick (25 MHz) ticks 128/40 per instruction: the model's share of the
    # count must be the emulated board's, exactly (the harness's timer reads differ).
    insns = [round(c * 40 / 128) for c in m.counts]
    ref = measure(builds["qemu-m7", "loop"], conv, get_board("qemu-m7"), timeout_s=20).counts
    assert [i - insns[1] for i in insns] == [r - ref[1] for r in ref]


def test_pyocd_board_dwt_reads_zero_on_qemu(fake_pyocd, temp_boards, workdir, convs):
    cls = qemu_as_real(temp_boards, "fake-m7-dwt", timer="dwt")
    fw = build(convs["float"], get_board(cls.name), "-O2", workdir / "fake-dwt", cache_dir=workdir / "cache")
    with pytest.raises(StageError) as e:
        measure(fw, convs["float"], get_board(cls.name), timeout_s=20)
    assert "did not count" in e.value.message     # QEMU's DWT CYCCNT reads 0: a real board's would not


@pytest.fixture(scope="module")
def fake_float_build(workdir, convs):
    cls = define_board("fake-m7-shared", target="fake_m7", core="cortex-m7", fpu="single", flash_kb=4096,
                       ram_kb=4096, flash_origin=0, ram_origin=0x2000_0000, clock_hz=25_000_000, timer="systick")
    try:
        yield cls, build(convs["float"], get_board(cls.name), "-O2", workdir / "fake-shared",
                         cache_dir=workdir / "cache")
    finally:
        BOARDS.pop(cls.name, None)


def test_pyocd_probe_missing(fake_pyocd, fake_float_build):
    cls, fw = fake_float_build
    fake_pyocd()                                     # no probes
    with pytest.raises(StageError) as e:
        get_board(cls.name).run(fw.elf, 10)
    assert e.value.stage == "measure" and "probe missing: no debug probe is connected" in e.value.message
    assert get_board(cls.name).probe_status() == "not connected"


def test_pyocd_probe_uid_missing(fake_pyocd, fake_float_build):
    cls, fw = fake_float_build
    with pytest.raises(StageError, match="no debug probe with unique ID NOPE"):
        get_board(cls.name, probe="NOPE").run(fw.elf, 10)


def test_pyocd_probe_unplugged_after_listing(fake_pyocd, fake_float_build, monkeypatch):
    """The probe was listed, then pyocd gdbserver cannot find it: its message becomes the error."""
    cls, fw = fake_float_build
    monkeypatch.setenv("FAKE_PYOCD_FAIL", "unplugged")
    with pytest.raises(StageError, match="probe missing: pyOCD found no such debug probe"):
        get_board(cls.name).run(fw.elf, 10)


def test_pyocd_probe_busy(fake_pyocd, fake_float_build, monkeypatch):
    cls, fw = fake_float_build
    monkeypatch.setenv("FAKE_PYOCD_FAIL", "busy")
    with pytest.raises(StageError, match="probe busy: another program holds it"):
        get_board(cls.name).run(fw.elf, 10)


def test_pyocd_board_busy_with_another_trial(fake_pyocd, fake_float_build):
    cls, fw = fake_float_build
    with pb.ProbeLock(FAKE_UID, 1.0):
        t0 = time.monotonic()
        with pytest.raises(StageError, match=f"board {cls.name} busy: probe {FAKE_UID} is used by another trial"):
            get_board(cls.name, lock_timeout_s=0.3).run(fw.elf, 10)
        assert time.monotonic() - t0 < 10
    with pb.ProbeLock(FAKE_UID, 0.1):               # released after the failure
        pass


def test_pyocd_flash_failure(fake_pyocd, fake_float_build, monkeypatch):
    cls, fw = fake_float_build
    monkeypatch.setenv("FAKE_PYOCD_FAIL", "flash")
    with pytest.raises(StageError, match="flash programming failed"):
        get_board(cls.name).run(fw.elf, 10)


def test_pyocd_flash_verify_failure(fake_pyocd, fake_float_build, monkeypatch):
    cls, fw = fake_float_build
    monkeypatch.setenv("FAKE_PYOCD_FAIL", "corrupt")
    with pytest.raises(StageError, match="flash verify failed: byte at 0x"):
        get_board(cls.name).run(fw.elf, 10)


def test_pyocd_target_mismatch(fake_pyocd, fake_float_build, temp_boards, workdir, convs):
    # pyOCD's board database says the probe is on another part: refused before touching it.
    fake_pyocd({"unique_id": "0670FF", "info": "NUCLEO-H743ZI", "board_name": "NUCLEO-H743ZI",
                "target": "stm32h743zitx"})
    elf = fake_float_build[1].elf
    with pytest.raises(StageError, match="target mismatch: no connected probe is on a STM32F767ZI"):
        get_board("nucleo-f767zi").run(_real_build(workdir, convs, "nucleo-f767zi"), 10)
    with pytest.raises(StageError, match=r"target mismatch: probe 0670FF .* is on another board"):
        get_board("nucleo-f767zi", probe="0670FF").run(_real_build(workdir, convs, "nucleo-f767zi"), 10)
    assert get_board("nucleo-h743zi").probe_status() == "connected (0670FF)"
    # The core itself is another one (CPUID): an M4 board on QEMU's M7.
    fake_pyocd({"unique_id": FAKE_UID, "target": "cortex_m"})
    cls = qemu_as_real(temp_boards, "fake-m4", core="cortex-m4", fpu="single")
    fw = build(convs["float"], get_board(cls.name), "-O2", workdir / "fake-m4", cache_dir=workdir / "cache")
    with pytest.raises(StageError, match="target mismatch: the board's core is cortex-m7"):
        get_board(cls.name).run(fw.elf, 10)
    with pytest.raises(StageError, match="outside nucleo-f767zi's flash"):
        get_board("nucleo-f767zi", probe=FAKE_UID).run(elf, 10)   # an image for another memory map


def _real_build(workdir, convs, name) -> Path:
    out = workdir / f"{name}-float"
    if not (out / "firmware.elf").exists():
        build(convs["float"], get_board(name), "-O3", out, cache_dir=workdir / "cache")
    return out / "firmware.elf"


def test_pyocd_hang_is_halted_and_located(fake_pyocd, temp_boards, workdir):
    cls = qemu_as_real(temp_boards, "fake-m7-hang")
    conv = make_conv(workdir / "hang_model", BAD_MODEL, np.array([[0.0], [1.0]], np.float32),
                     np.zeros((2, 1), np.float32), "float32", "float32")
    fw = build(conv, get_board(cls.name), "-O2", workdir / "fake-hang", cache_dir=workdir / "cache")
    t0 = time.monotonic()
    with pytest.raises(StageError) as e:
        measure(fw, conv, get_board(cls.name), timeout_s=1.0)
    assert time.monotonic() - t0 < 15
    assert "did not reach mcus_done within 1 s (hang?)" in e.value.message
    assert "in mcus_model_run()" in e.value.message


def test_pyocd_fault_is_reported(fake_pyocd, temp_boards, workdir):
    cls = qemu_as_real(temp_boards, "fake-m7-trap")
    conv = make_conv(workdir / "trap_model2", BAD_MODEL, np.array([[0.0], [1.0]], np.float32),
                     np.zeros((2, 1), np.float32), "float32", "float32")
    fw = build(conv, get_board(cls.name), "-O2", workdir / "fake-trap", ["-DTRAP"], cache_dir=workdir / "cache")
    with pytest.raises(StageError) as e:
        measure(fw, conv, get_board(cls.name), timeout_s=10)
    assert "HardFault" in e.value.message and "input 1" in e.value.message and "UNDEFINSTR" in e.value.message


def test_clock_mismatch_is_an_error(fake_float_build):
    cls, fw = fake_float_build
    board = get_board("nucleo-f767zi")
    raw = get_board(cls.name)
    image = HarnessImage.read(fw.elf)
    header = (0x5355434D).to_bytes(4, "little") + (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + \
        (4).to_bytes(4, "little")
    block = header + (1000).to_bytes(8, "little") + bytes(4)
    with pytest.raises(StageError, match=r"clock set-up failed: the core runs at 16 MHz \(reset default\), not 216"):
        board.finish(Readout(block, None, 16_000_000, 0), image)
    ok = board.finish(Readout(block, None, 216_000_000, 3), image)
    assert ok.ticks == [1000] and "HSE failed" in ok.log
    assert raw.finish(Readout(block, None, None, None), image).ticks == [1000]


def test_needs_pack_and_pyocd(fake_pyocd, workdir, convs, monkeypatch):
    elf = _real_build(workdir, convs, "nucleo-f722ze")
    with pytest.raises(StageError, match="CMSIS device family pack file as pack=PATH"):
        get_board("nucleo-f722ze").run(elf, 10)
    with pytest.raises(StageError, match="CMSIS pack .* not found"):
        get_board("nucleo-f722ze", pack=workdir / "missing.pack").run(elf, 10)
    cmd = get_board("nucleo-f722ze", pack="/x/Keil.STM32F7xx_DFP.2.16.0.pack", frequency="4m").gdbserver_command(
        ["pyocd"], pb.Probe("UID1"))
    assert cmd[:2] == ["pyocd", "gdbserver"] and "-W" in cmd
    assert cmd[cmd.index("-t") + 1] == "stm32f722zetx" and cmd[cmd.index("-u") + 1] == "UID1"
    assert cmd[cmd.index("-p") + 1] == "0" and cmd[cmd.index("--pack") + 1].endswith(".pack")
    assert "semihost_console_type=off" in cmd and cmd[cmd.index("-f") + 1] == "4m"
    monkeypatch.setattr(pb, "pyocd_command", lambda: None)
    with pytest.raises(StageError, match=r"pyocd is not installed: .*pip install pyocd==0\.46\.0"):
        get_board("nucleo-f767zi").run(_real_build(workdir, convs, "nucleo-f767zi"), 10)


def test_board_table(fake_pyocd):
    fake_pyocd({"unique_id": "0672FF", "info": "NUCLEO-F767ZI", "board_name": "NUCLEO-F767ZI",
                "target": "stm32f767zitx"})
    rows = {r.name: r for r in board_table()}
    for name in EMULATED:
        assert rows[name].kind == "emulated" and rows[name].probe == "-"
    assert (rows["qemu-m3"].core, rows["qemu-m3"].fpu) == ("cortex-m3", "none")
    assert rows["qemu-m33"].core == "cortex-m33"
    assert rows["nucleo-f767zi"].probe == "connected (0672FF)" and rows["nucleo-f767zi"].fpu == "double"
    assert rows["nucleo-h743zi"].probe == "not connected" and rows["nucleo-f722ze"].kind == "real"
    assert rows["pyocd-generic"].probe == "not configured"
    names = [r.name for r in board_table(check_probes=False)]
    assert names[:len(EMULATED)] == sorted(EMULATED) and set(REAL) <= set(names)


@pytest.mark.skipif(pb.pyocd_command() is None, reason="pyocd not installed")
def test_real_pyocd_without_probe(workdir, convs):
    """The real pyocd, where installed: no probe on this machine is a clear error, not a wait."""
    if pb.list_probes():
        pytest.skip("a debug probe is connected")
    t0 = time.monotonic()
    with pytest.raises(StageError, match="probe missing"):
        get_board("nucleo-f767zi").run(_real_build(workdir, convs, "nucleo-f767zi"), 10)
    assert time.monotonic() - t0 < 60


# ================================================================================================
# the pyocd stand-in (run as a script by the runner under test)


def fake_pyocd_main(argv: list[str]) -> int:
    import argparse

    probes = json.loads(os.environ.get("FAKE_PYOCD_PROBES", "[]"))
    if argv[:1] == ["json"]:
        print(json.dumps({"pyocd_version": "0.46.0-fake", "version": {"major": 1, "minor": 1}, "status": 0,
                          "boards": probes}, indent=4))
        return 0
    if argv[:1] != ["gdbserver"]:
        print(f"fake pyocd: unsupported command {argv}", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser()
    p.add_argument("-t", "--target")
    p.add_argument("-u", "--uid")
    p.add_argument("-p", "--port", type=int, default=3333)
    p.add_argument("-O", action="append", default=[])
    p.add_argument("-W", action="store_true")
    p.add_argument("--no-config", action="store_true")
    p.add_argument("--pack")
    p.add_argument("-f")
    args = p.parse_args(argv[1:])
    fail = os.environ.get("FAKE_PYOCD_FAIL", "")
    if fail == "unplugged" or not any(b["unique_id"] == args.uid for b in probes):
        print(f"0000943 E No connected debug probe matches unique ID '{args.uid}' [__main__]", file=sys.stderr)
        return 1
    if fail == "busy":
        print("0000812 C Error: LIBUSB_ERROR_BUSY [Errno 16] Resource busy [__main__]", file=sys.stderr)
        return 1
    return _fake_gdbserver(args.port, fail)


def _fake_gdbserver(port: int, fail: str) -> int:
    import ctypes
    import select
    import signal
    import socket
    import tempfile

    from mcusearch.boards.gdb import GdbClient, GdbTimeout, _checksum, _escape, decode_payload
    from mcusearch.boards.remote import monitor

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    tmp = Path(tempfile.mkdtemp(prefix="fake-pyocd-", dir="/tmp"))
    sock_path = tmp / "qemu.sock"

    def die_with_parent():
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG

    qemu = subprocess.Popen(
        ["qemu-system-arm", "-M", os.environ.get("FAKE_PYOCD_QEMU", "mps2-an500"), "-nographic",
         "-icount", "shift=7", "-monitor", "none", "-serial", "none",
         "-name", os.environ.get("FAKE_PYOCD_MARKER", "fake"),
         "-chardev", f"socket,id=g,path={sock_path},server=on,wait=off", "-gdb", "chardev:g", "-S"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    listener = conn = q = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                q = GdbClient.connect_unix(sock_path)
                break
            except OSError:
                if time.monotonic() > deadline or qemu.poll() is not None:
                    print("fake pyocd: QEMU did not start", file=sys.stderr)
                    return 1
                time.sleep(0.02)
        listener = socket.create_server(("127.0.0.1", port))
        print(f"0000512 I GDB server listening on port {listener.getsockname()[1]} (core 0) [gdbserver]",
              file=sys.stderr, flush=True)
        listener.settimeout(30)
        conn, _ = listener.accept()
        buf = bytearray()

        def send(payload: bytes) -> None:
            esc = _escape(payload)
            conn.sendall(b"$" + esc + b"#" + _checksum(esc))

        def packets():
            while True:
                while buf[:1] in (b"+", b"-", b"\x03"):
                    del buf[0]
                end = buf.find(b"#")
                if buf[:1] == b"$" and end > 0 and len(buf) >= end + 3:
                    body = bytes(buf[1:end])
                    del buf[:end + 3]
                    conn.sendall(b"+")
                    yield decode_payload(body)
                    continue
                data = conn.recv(65536)
                if not data:
                    return
                buf.extend(data)

        for pkt in packets():
            if pkt.startswith(b"vFlashErase"):
                send(b"OK")
            elif pkt.startswith(b"vFlashWrite:"):
                rest = pkt[len(b"vFlashWrite:"):]
                colon = rest.index(b":")
                address, data = int(rest[:colon], 16), bytearray(rest[colon + 1:])
                if fail == "corrupt" and address == 0:
                    data[100] ^= 0xFF
                q.write_memory(address, bytes(data))
                send(b"OK")
            elif pkt == b"vFlashDone":
                send(b"E01" if fail == "flash" else b"OK")
            elif pkt.startswith(b"qRcmd,"):
                command = bytes.fromhex(pkt[6:].decode()).decode()
                if command.strip() == "reset halt":
                    monitor(q, "system_reset")
                    text = "Resetting target with halt\nSuccessfully halted device on reset\n"
                else:
                    text = f"Error: unknown command '{command}'\n"
                send(text.encode().hex().encode())
            elif pkt.startswith(b"qSupported"):
                q.send_packet(pkt)
                send(re.sub(rb"PacketSize=[0-9a-fA-F]+", b"PacketSize=800", q.recv_packet()))  # pyOCD's 2048
            elif pkt[:1] == b"c":
                q.send_packet(pkt)
                while True:
                    try:
                        send(q.recv_packet(0.05))
                        break
                    except GdbTimeout:
                        if select.select([conn], [], [], 0)[0]:
                            data = conn.recv(65536)
                            if not data:
                                return 0
                            if b"\x03" in data:
                                q.interrupt()
                            buf.extend(data.replace(b"\x03", b""))
            elif pkt == b"D":
                send(b"OK")
                return 0
            elif pkt == b"k":
                return 0
            else:
                q.send_packet(pkt)
                send(q.recv_packet())
        return 0
    finally:
        for s in (conn, listener, q):
            if s is not None:
                s.close()
        qemu.kill()
        qemu.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(fake_pyocd_main(sys.argv[1:]))


def test_figures_print_for_people():
    """Counts in full with separators, other values to 4 significant digits, never 1.2e+07."""
    from mcusearch.figures import Figure, Provenance, number
    assert number(11_586_120.25) == "11,586,120" and number(2048.0) == "2,048"
    assert number(53.6394) == "53.64" and number(0.81044) == "0.8104" and number(5867.2) == "5867"
    assert [number(v) for v in (float("inf"), float("nan"))] == ["inf", "nan"]
    assert str(Figure(4.583e6, "instructions", Provenance.EMULATED)) == "4,583,000 instructions (emulated)"
