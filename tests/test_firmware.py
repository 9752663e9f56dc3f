"""Firmware harness, build stage, QEMU board, GDB client and measure stage — with the real
cross-compiler and real QEMU, on hand-written tiny C "models"."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from mcusearch.boards import get_board
from mcusearch.boards.gdb import GdbClient, decode_payload
from mcusearch.boards.qemu import QemuBoard
from mcusearch.build import OPT_LEVELS, build
from mcusearch.build import elf as elfinfo
from mcusearch.convert import ConvertResult
from mcusearch.errors import StageError
from mcusearch.figures import Provenance
from mcusearch.measure import measure

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)

N_IN, N_OUT = 16, 4

MODEL_H = """\
#include <stdint.h>
#define MCUS_INPUT_LEN {in_len}
#define MCUS_OUTPUT_LEN {out_len}
typedef {in_t} mcus_input_t;
typedef {out_t} mcus_output_t;
void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);
"""

# output[j] = (sum of inputs) * w[j]; weights in a converter-style .nn_data section, a RAM arena.
FLOAT_MODEL = """\
#include "model.h"
__attribute__((section(".nn_data_dtype.float32"))) const float model_w[MCUS_OUTPUT_LEN] = {1.0f, 2.0f, 3.0f, 4.0f};
static float model_arena[MCUS_INPUT_LEN];
void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)
{
    for (int i = 0; i < MCUS_INPUT_LEN; i++) model_arena[i] = input[i];
    float s = 0.0f;
    for (int i = 0; i < MCUS_INPUT_LEN; i++) s += model_arena[i];
    const float *w = model_w;
    __asm__("" : "+r"(w));  /* keep the weights in memory: no constant folding */
    for (int j = 0; j < MCUS_OUTPUT_LEN; j++) output[j] = s * w[j];
}
"""

INT8_MODEL = """\
#include "model.h"
void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)
{
    int32_t acc = 0;
    for (int i = 0; i < MCUS_INPUT_LEN; i++) acc += input[i];
    for (int j = 0; j < MCUS_OUTPUT_LEN; j++) {
        int32_t v = (acc * (j + 1)) >> 3;
        output[j] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }
}
"""

# K = input[0] iterations of a recurrence GCC cannot fold; output: the final state.
LOOP_MODEL = """\
#include "model.h"
void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)
{
    uint32_t k = (uint32_t)input[0], x = 12345u;
    for (uint32_t i = 0; i < k; i++) x = x * 1664525u + 1013904223u;
    output[0] = (int32_t)x;
}
"""

# Input 0 runs; input 1 hangs (HANG) or faults (TRAP).
BAD_MODEL = """\
#include "model.h"
void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)
{
    if (input[0] > 0.5f) {
#ifdef TRAP
        __builtin_trap();
#else
        for (;;) __asm__ volatile("");
#endif
    }
    for (int j = 0; j < MCUS_OUTPUT_LEN; j++) output[j] = 0.0f;
}
"""

C_TYPES = {"float32": "float", "int8": "int8_t", "int32": "int32_t"}


def make_conv(d: Path, source: str, inputs: np.ndarray, expected: np.ndarray, in_dtype: str, out_dtype: str,
              atol: float = 0.0, rtol: float = 0.0) -> ConvertResult:
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text(MODEL_H.format(in_len=inputs.shape[1], out_len=expected.shape[1],
                                              in_t=C_TYPES[in_dtype], out_t=C_TYPES[out_dtype]))
    (d / "model.c").write_text(source)
    return ConvertResult(converter="hand", sources=[d / "model.c"], include_dirs=[d], input_dtype=in_dtype,
                         output_dtype=out_dtype, inputs=inputs, expected=expected, atol=atol, rtol=rtol,
                         arena_bytes=0, output_meaning="test values")


def float_conv(d: Path) -> ConvertResult:
    x = np.random.default_rng(0).normal(size=(4, N_IN)).astype(np.float32)
    s = np.array([np.cumsum(r, dtype=np.float32)[-1] for r in x], dtype=np.float32)   # C's order
    expected = (s[:, None] * np.arange(1, N_OUT + 1, dtype=np.float32)).astype(np.float32)
    return make_conv(d, FLOAT_MODEL, x, expected, "float32", "float32", atol=1e-5, rtol=1e-5)


def loop_conv(d: Path, ks: list[int]) -> ConvertResult:
    x = np.array([[k] for k in ks], dtype=np.float32)
    out = []
    for k in ks:
        v = 12345
        for _ in range(k):
            v = (v * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append([v - (1 << 32) if v >= 1 << 31 else v])
    return make_conv(d, LOOP_MODEL, x, np.array(out, dtype=np.int32), "float32", "int32")


@pytest.fixture(scope="module")
def board() -> QemuBoard:
    return get_board("qemu-m7")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fw")


@pytest.fixture(scope="module")
def float_build(board, workdir):
    conv = float_conv(workdir / "float_model")
    return conv, build(conv, board, "-O2", workdir / "float_O2", cache_dir=workdir / "cache")


LOOP_KS = [0, 1, 2, 80, 160, 800]


@pytest.fixture(scope="module")
def loop_build(board, workdir):
    conv = loop_conv(workdir / "loop_model", LOOP_KS)
    return conv, build(conv, board, "-O2", workdir / "loop_O2", cache_dir=workdir / "cache")


# ------------------------------------------------------------------------------------------------


def test_board_registered(board):
    assert board.name == "qemu-m7" and board.kind == "emulated" and board.core == "cortex-m7"
    assert board.counter is Provenance.EMULATED
    assert "-mfloat-abi=hard" in board.cflags and board.support_path.is_dir()
    assert board.ticks_to_count(128) == 40.0
    assert board.ticks_to_count(109) == 34.0 and board.ticks_to_count(108) == 34.0  # 34 insns = 108.8 ticks


def test_float_build_sizes_and_outputs(board, float_build):
    conv, b = float_build
    assert b.elf.exists() and b.baseline_elf.exists() and b.map_file.exists()
    assert 500 < b.flash_bytes < 64_000 and 0 < b.ram_bytes < 64_000
    assert b.model_flash_bytes > 16           # code + 4 float weights
    assert 64 <= b.model_ram_bytes < 128      # the 16-float arena
    weights = elfinfo.symbol(b.elf, "model_w")
    assert weights.address < 0x2000_0000 and weights.size == 16   # .nn_data* is in flash
    assert elfinfo.symbol(b.elf, "mcus_inputs").address < 0x2000_0000

    m = measure(b, conv, board, timeout_s=20)
    np.testing.assert_allclose(m.outputs, conv.expected, rtol=1e-6)
    assert m.max_abs_error <= 1e-5 and m.argmax_agreement == 1.0
    assert len(m.counts) == 4 and len(set(m.counts)) == 1   # no data-dependent work
    assert m.per_inference.provenance is Provenance.EMULATED and m.per_inference.unit == "instructions"
    assert "-icount shift=7" in m.per_inference.method
    assert m.est_latency_ms.provenance is Provenance.ESTIMATED and "216 MHz" in m.est_latency_ms.method
    assert m.est_latency_ms.value == pytest.approx(m.per_inference.value * board.est_cpi / 216e6 * 1e3)


def test_int8_bit_exact(board, workdir):
    x = np.random.default_rng(1).integers(-128, 128, size=(5, N_IN)).astype(np.int8)
    acc = x.astype(np.int32).sum(axis=1)
    expected = np.clip((acc[:, None] * np.arange(1, N_OUT + 1)) >> 3, -128, 127).astype(np.int8)
    conv = make_conv(workdir / "int8_model", INT8_MODEL, x, expected, "int8", "int8")
    b = build(conv, board, "-O3", workdir / "int8_O3", cache_dir=workdir / "cache")
    m = measure(b, conv, board, timeout_s=20)
    assert m.outputs.dtype == np.int8
    np.testing.assert_array_equal(m.outputs, expected)
    assert m.max_abs_error == 0.0


@pytest.mark.parametrize("opt", [o for o in OPT_LEVELS if o not in ("-O2", "-O1", "-Og")])
def test_opt_levels(board, workdir, opt):
    conv = float_conv(workdir / "float_model")
    b = build(conv, board, opt, workdir / f"float{opt}", cache_dir=workdir / "cache")
    assert opt in b.cflags and b.model_flash_bytes > 0
    m = measure(b, conv, board, timeout_s=20)
    assert m.max_abs_error <= 1e-5


def test_counts_exact_repeatable_and_linear(board, loop_build):
    conv, b = loop_build
    m1 = measure(b, conv, board, timeout_s=20)
    m2 = measure(b, conv, board, timeout_s=20)
    assert m1.counts == m2.counts                       # deterministic to the instruction
    assert all(c == int(c) for c in m1.counts)
    c = dict(zip(LOOP_KS, m1.counts))
    slope = (c[800] - c[1]) / 799
    assert slope == int(slope) and 3 <= slope <= 8     # a few instructions per iteration
    for k in LOOP_KS[1:]:
        assert c[k] == c[1] + slope * (k - 1)          # exactly linear in the work, from K = 1
    assert 5 <= c[0] < 60                              # harness overhead + an empty call


def test_timer_wraps_are_counted(board, workdir, loop_build):
    """With a 65,536-tick timer period (20,480 instructions), long inferences wrap it many times;
    the 64-bit count must still match the unwrapped one up to the wrap interrupts' own work."""
    ks = [0, 20_000, 50_000, 100_000]
    conv = loop_conv(workdir / "loop_model_long", ks)
    normal = build(conv, board, "-O2", workdir / "loop_long", cache_dir=workdir / "cache")
    small = build(conv, board, "-O2", workdir / "loop_long_wrap", ["-DMCUS_TIMER_RELOAD=0xFFFF"],
                  cache_dir=workdir / "cache")
    a = measure(normal, conv, board, timeout_s=20).counts
    b = measure(small, conv, board, timeout_s=20).counts
    for k, ca, cb in zip(ks, a, b):
        wraps = ca / 20_480
        # Off by a period would be 20,480 instructions; each wrap interrupt costs ~10-30.
        assert 0 <= cb - ca <= 40 * (wraps + 1), (k, ca, cb)
    assert b[-1] - a[-1] > 0                           # wraps happened and were counted


def test_hang_is_killed(board, workdir):
    conv = make_conv(workdir / "hang_model", BAD_MODEL, np.array([[0.0], [1.0]], np.float32),
                     np.zeros((2, 1), np.float32), "float32", "float32")
    b = build(conv, board, "-O2", workdir / "hang", cache_dir=workdir / "cache")
    t0 = time.monotonic()
    with pytest.raises(StageError) as e:
        measure(b, conv, board, timeout_s=1.0)
    assert time.monotonic() - t0 < 6
    assert e.value.stage == "measure"
    assert "did not reach mcus_done within 1 s (hang?)" in e.value.message
    assert "in mcus_model_run()" in e.value.message          # where it was stuck


def test_fault_is_reported(board, workdir):
    conv = make_conv(workdir / "trap_model", BAD_MODEL, np.array([[0.0], [1.0]], np.float32),
                     np.zeros((2, 1), np.float32), "float32", "float32")
    b = build(conv, board, "-O2", workdir / "trap", ["-DTRAP"], cache_dir=workdir / "cache")
    with pytest.raises(StageError) as e:
        measure(b, conv, board, timeout_s=10)
    assert e.value.stage == "measure"
    assert "HardFault" in e.value.message and "input 1" in e.value.message
    assert "UNDEFINSTR" in e.value.message and "in mcus_model_run()" in e.value.message
    # Without a debugger the firmware still ends, through semihosting, with status 2.
    proc = subprocess.run(board.qemu_command(b.elf, None), capture_output=True, timeout=20)
    assert proc.returncode == 2


def test_plain_qemu_run_exits_cleanly(board, float_build):
    _, b = float_build
    proc = subprocess.run(board.qemu_command(b.elf, None), capture_output=True, timeout=20)
    assert proc.returncode == 0


def test_wrong_outputs_are_caught(board, float_build):
    conv, b = float_build
    wrong = ConvertResult(**{**conv.__dict__, "expected": conv.expected + np.float32(0.5)})
    with pytest.raises(StageError) as e:
        measure(b, wrong, board, timeout_s=20)
    assert e.value.stage == "measure"
    assert "differ from the host model" in e.value.message and "max |diff| 0.5" in e.value.message


def test_compile_error(board, workdir):
    conv = float_conv(workdir / "broken_model")
    (workdir / "broken_model" / "model.c").write_text('#include "model.h"\nvoid mcus_model_run(x) { int y = ; }\n')
    with pytest.raises(StageError) as e:
        build(conv, board, "-O2", workdir / "broken", cache_dir=workdir / "cache")
    assert e.value.stage == "build"
    assert "model.c" in e.value.message and "error" in e.value.message
    assert e.value.log and "arm-none-eabi-gcc" in e.value.log


def test_contract_mismatch_is_a_build_error(board, workdir):
    conv = float_conv(workdir / "mismatch_model")
    (workdir / "mismatch_model" / "model.h").write_text(
        MODEL_H.format(in_len=N_IN + 1, out_len=N_OUT, in_t="float", out_t="float"))
    with pytest.raises(StageError) as e:
        build(conv, board, "-O2", workdir / "mismatch", cache_dir=workdir / "cache")
    assert e.value.stage == "build" and "MCUS_INPUT_LEN" in e.value.message


def test_baseline_is_cached(board, workdir, float_build):
    conv, first = float_build
    mtime = first.baseline_elf.stat().st_mtime_ns
    again = build(conv, board, "-O2", workdir / "float_O2_again", cache_dir=workdir / "cache")
    assert again.baseline_elf == first.baseline_elf and again.baseline_elf.stat().st_mtime_ns == mtime
    assert (again.flash_bytes, again.model_flash_bytes) == (first.flash_bytes, first.model_flash_bytes)


def test_gdb_client_reads_memory(board, float_build, tmp_path):
    conv, b = float_build
    sock = tmp_path / "gdb.sock"
    proc = subprocess.Popen(board.qemu_command(b.elf, sock), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = GdbClient.connect_unix(sock)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        with client:
            client.handshake()
            assert client.stop_reason().kind in "ST"
            reset = elfinfo.symbol(b.elf, "Reset_Handler").address
            assert client.core_registers()[15] == reset                # halted at the reset vector
            assert "arm" in client.target_xml()
            assert int.from_bytes(client.read_register(15), "little") == reset

            # Flash contents vs the ELF's loadable segments, across many packets.
            with open(b.elf, "rb") as f:
                seg = next(s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD" and s["p_paddr"] == 0)
                image = seg.data()
            assert len(image) > 1000
            assert client.read_memory(0, len(image)) == image
            inputs = elfinfo.symbol(b.elf, "mcus_inputs")
            assert client.read_memory(inputs.address, inputs.size) == conv.inputs.astype("<f4").tobytes()

            # RAM write/read round trip, then run to mcus_done and read the result block.
            result = elfinfo.symbol(b.elf, "mcus_result")
            client.write_memory(result.address, b"\xAA" * 8)
            assert client.read_memory(result.address, 8) == b"\xAA" * 8
            done = elfinfo.symbol(b.elf, "mcus_done").address
            client.set_breakpoint(done)
            client.cont()
            stop = client.wait_stop(10)
            assert stop.kind == "T" and client.core_registers()[15] == done
            raw = client.read_memory(result.address, result.size)
            assert raw[:4] == b"MCUS" and int.from_bytes(raw[4:8], "little") == 1
            client.kill()
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gdb_payload_decoding():
    assert decode_payload(b"0* ") == b"0" * 4          # run length: ' ' = 32 -> 3 more
    assert decode_payload(b"a}\x03b") == b"a#b"         # escaped '#'


def test_no_leftover_qemu(board, float_build):
    """run() cleans up its process also when it fails."""
    conv, b = float_build
    before = _qemu_children()
    with pytest.raises(StageError):
        board.run(b.elf.with_name("missing.elf"), 5)
    board.run(b.elf, 20)
    assert _qemu_children() == before


def _qemu_children() -> set[int]:
    import os
    me = os.getpid()
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == me and "qemu" in stat:
                out.add(int(p.name))
    return out
