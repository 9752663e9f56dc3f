"""Build stage: generated C + harness + board support -> a firmware ELF, and its sizes.

Entry point: :func:`build`. Result: :class:`BuildResult`.

Two images are linked with identical flags, harness, board support and probe inputs: the real one
(with the converter's sources) and a baseline whose ``mcus_model_run`` only writes zeros
(firmware/harness/baseline_model.c). The model's own flash and RAM are the differences.
The baseline is cached by everything that goes into it, so trials with the same board, flags and
input contract link it once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from mcusearch.boards import FIRMWARE_DIR
from mcusearch.build import elf as elfinfo
from mcusearch.errors import StageError

if TYPE_CHECKING:
    from mcusearch.boards import Board
    from mcusearch.convert import ConvertResult

HARNESS_DIR = FIRMWARE_DIR / "harness"
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Ofast", "-Og")
COMMON_FLAGS = ("-g", "-ffunction-sections", "-fdata-sections")
C_FLAGS = ("-std=gnu11",)
CXX_FLAGS = ("-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics")
CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".C")
COMPILE_TIMEOUT_S = 900

# numpy dtype -> (C type the generated model.h must typedef, how to print one value)
_C_TYPES = {
    "float32": "float",
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
}


@dataclass
class BuildResult:
    elf: Path
    baseline_elf: Path        # the same harness and inputs with an empty model
    flash_bytes: int          # text + data of the whole image
    ram_bytes: int            # data + bss of the whole image
    model_flash_bytes: int    # flash_bytes minus the baseline's
    model_ram_bytes: int      # ram_bytes minus the baseline's
    cflags: list[str] = field(default_factory=list)
    map_file: Path | None = None


def normalise_opt_level(opt_level: str) -> str:
    o = str(opt_level).strip()
    if not o.startswith("-"):
        o = "-" + (o if o.startswith("O") else "O" + o)
    if o not in OPT_LEVELS:
        raise StageError("build", f"unknown optimisation level {opt_level!r} (one of {', '.join(OPT_LEVELS)})")
    return o


def opt_level_arg(opt_level: str, key: str = "--opt-level") -> str:
    """:func:`normalise_opt_level` for a value the user typed: a bad one is a SpecError naming
    ``key`` (one line, exit 2), checked before anything is written."""
    from mcusearch.errors import SpecError
    try:
        return normalise_opt_level(opt_level)
    except StageError as e:
        raise SpecError(key, e.message) from None


def fpu_defines(cflags: Sequence[str]) -> list[str]:
    """-DMCUS_FPV5 where the board's FPU is FPv5 (Cortex-M7, M33): the float kernels then clamp
    with VMAXNM/VMINNM. GCC defines the same macros for FPv4 and FPv5, so the flag says it."""
    return ["-DMCUS_FPV5"] if any(f.startswith("-mfpu=fpv5") for f in cflags) else []


def build(
    conv: "ConvertResult",
    board: "Board",
    opt_level: str,
    out_dir: Path,
    extra_cflags: Sequence[str] = (),
    *,
    cache_dir: Path | None = None,
) -> BuildResult:
    """Cross-compile ``conv``'s sources with the harness for ``board``; link it and its baseline.

    ``out_dir`` receives gen/ (inputs.h, inputs.c), obj/, firmware.elf and firmware.map.
    ``cache_dir`` (default ``out_dir``) holds baselines under baseline/<key>/; share it between
    trials to link each baseline once. Compiler or linker errors raise StageError("build", ...).
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = normalise_opt_level(opt_level)
    prefix = getattr(board, "toolchain_prefix", "arm-none-eabi-")
    flags = [*board.cflags, *fpu_defines(board.cflags), opt, *COMMON_FLAGS, *extra_cflags]

    inputs = np.asarray(conv.inputs)
    expected = np.asarray(conv.expected)
    n = int(inputs.shape[0])
    if n < 1:
        raise StageError("build", "no probe inputs to run")
    inputs = inputs.reshape(n, -1)
    out_len = int(expected.reshape(expected.shape[0], -1).shape[1]) if expected.size else 0

    gen = out_dir / "gen"
    gen.mkdir(exist_ok=True)
    inputs_h, inputs_c = _write_inputs(gen, inputs, conv.input_dtype, conv.output_dtype, out_len)

    include_dirs = [gen, *[Path(d).resolve() for d in conv.include_dirs], HARNESS_DIR, board.support_path]
    includes = [f"-I{d}" for d in include_dirs]
    support_sources = sorted(board.support_path.glob("*.c"))
    linker_script = board.support_path / "link.ld"
    if not linker_script.exists():
        raise StageError("build", f"board {board.name}: no linker script at {linker_script}")

    obj = out_dir / "obj"
    shutil.rmtree(obj, ignore_errors=True)
    obj.mkdir()
    tc = _Toolchain(prefix, flags, includes)
    common_objs = [
        tc.compile(src, obj / f"h{i:02d}_{src.stem}.o")
        for i, src in enumerate([HARNESS_DIR / "harness.c", *support_sources, inputs_c])
    ]
    model_sources = [Path(s).resolve() for s in conv.sources]
    if not model_sources:
        raise StageError("build", "the converter produced no C sources")
    model_objs = [tc.compile(src, obj / f"m{i:03d}_{src.stem}.o") for i, src in enumerate(model_sources)]
    is_cxx = any(s.suffix in CXX_SUFFIXES for s in model_sources)

    elf_path = out_dir / "firmware.elf"
    map_path = out_dir / "firmware.map"
    tc.link([*common_objs, *model_objs], linker_script, elf_path, map_path, cxx=is_cxx)

    baseline_elf = _baseline(
        tc, board, flags, common_objs, linker_script, inputs, conv, out_len,
        Path(cache_dir).resolve() if cache_dir is not None else out_dir,
    )

    total = elfinfo.sizes(elf_path)
    base = elfinfo.sizes(baseline_elf)
    return BuildResult(
        elf=elf_path,
        baseline_elf=baseline_elf,
        flash_bytes=total.flash,
        ram_bytes=total.ram,
        model_flash_bytes=total.flash - base.flash,
        model_ram_bytes=total.ram - base.ram,
        cflags=flags,
        map_file=map_path,
    )


# ----------------------------------------------------------------------------------------------
# inputs.h / inputs.c


def _c_literal(value, dtype: str) -> str:
    if dtype == "float32":
        v = float(value)
        if math.isnan(v):
            return '__builtin_nanf("")'
        if math.isinf(v):
            return "__builtin_inff()" if v > 0 else "-__builtin_inff()"
        return v.hex() + "f"   # exact: float32 values are exact in a hex float literal
    return str(int(value))


def _type_check(c_type_macro: str, c_type: str, what: str) -> str:
    return (
        f"_Static_assert(_Generic(({c_type_macro})0, {c_type}: 1, default: 0),\n"
        f'               "model.h: {c_type_macro} is not {c_type} ({what} dtype)");\n'
    )


def _write_inputs(gen: Path, inputs: np.ndarray, in_dtype: str, out_dtype: str, out_len: int) -> tuple[Path, Path]:
    if in_dtype not in _C_TYPES:
        raise StageError("build", f"unsupported input dtype {in_dtype!r} (one of {', '.join(_C_TYPES)})")
    if out_dtype not in _C_TYPES:
        raise StageError("build", f"unsupported output dtype {out_dtype!r} (one of {', '.join(_C_TYPES)})")
    n, in_len = inputs.shape
    values = inputs.astype(np.dtype(in_dtype), copy=False)
    if in_dtype != "float32" and not np.array_equal(values.astype(np.float64), inputs.astype(np.float64)):
        raise StageError("build", f"probe inputs are not representable as {in_dtype}")

    h = gen / "inputs.h"
    h.write_text(
        "/* Generated by mcusearch's build stage: the probe inputs the harness runs. */\n"
        "#ifndef MCUS_INPUTS_H\n#define MCUS_INPUTS_H\n\n"
        '#include "model.h"\n\n'
        f"#define MCUS_N_INPUTS {n}\n\n"
        "extern const mcus_input_t mcus_inputs[MCUS_N_INPUTS][MCUS_INPUT_LEN];\n\n"
        "#endif\n"
    )
    lines = [
        "/* Generated by mcusearch's build stage: the probe inputs the harness runs (in flash). */",
        "#include <stdint.h>",
        '#include "inputs.h"',
        "",
        f'_Static_assert(MCUS_INPUT_LEN == {in_len}, "model.h: MCUS_INPUT_LEN differs from the probe inputs ({in_len})");',
        f'_Static_assert(MCUS_OUTPUT_LEN == {out_len}, "model.h: MCUS_OUTPUT_LEN differs from the host model ({out_len})");',
        _type_check("mcus_input_t", _C_TYPES[in_dtype], "input"),
        _type_check("mcus_output_t", _C_TYPES[out_dtype], "output"),
        "const mcus_input_t mcus_inputs[MCUS_N_INPUTS][MCUS_INPUT_LEN] = {",
    ]
    per_line = 8 if in_dtype == "float32" else 16
    for row in values:
        lines.append("    {")
        lits = [_c_literal(v, in_dtype) for v in row]
        for k in range(0, len(lits), per_line):
            lines.append("        " + ", ".join(lits[k:k + per_line]) + ",")
        lines.append("    },")
    lines.append("};")
    c = gen / "inputs.c"
    c.write_text("\n".join(lines) + "\n")
    return h, c


# ----------------------------------------------------------------------------------------------
# compiler driver

_ERROR_RE = re.compile(r"(error|undefined reference|overflowed|multiple definition|cannot find|No such file)",
                       re.IGNORECASE)


def _summarise(stderr: str, max_lines: int = 8) -> str:
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if _ERROR_RE.search(ln)] or lines[-max_lines:]
    out = []
    for ln in useful[:max_lines]:
        out.append(ln if len(ln) <= 300 else ln[:297] + "...")
    return "\n".join(out) if out else "(no compiler output)"


class _Toolchain:
    def __init__(self, prefix: str, flags: list[str], includes: list[str]):
        self.prefix, self.flags, self.includes = prefix, flags, includes

    def _run(self, cmd: list[str], what: str) -> None:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except FileNotFoundError:
            raise StageError("build", f"{cmd[0]} not found (install gcc-arm-none-eabi and "
                                      "libnewlib-arm-none-eabi)") from None
        except subprocess.TimeoutExpired:
            raise StageError("build", f"{what}: compiler still running after {COMPILE_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            log = " ".join(cmd) + "\n" + proc.stdout + proc.stderr
            hint = ""
            if cmd[0].endswith("g++") and re.search(r"No such file or directory", proc.stderr) and \
                    re.search(r"fatal error: [\w/.]+: No such file", proc.stderr) and not self.has_libstdcxx():
                hint = "\n(C++ headers missing: install libstdc++-arm-none-eabi-newlib)"
            raise StageError("build", f"{what} failed:\n{_summarise(proc.stderr)}{hint}", log=log)

    def compile(self, src: Path, obj: Path) -> Path:
        if not src.exists():
            raise StageError("build", f"source file {src} does not exist")
        cxx = src.suffix in CXX_SUFFIXES
        tool = self.prefix + ("g++" if cxx else "gcc")
        lang = CXX_FLAGS if cxx else C_FLAGS
        self._run([tool, *self.flags, *lang, *self.includes, "-c", str(src), "-o", str(obj)],
                  f"compiling {src.name}")
        return obj

    def has_libstdcxx(self) -> bool:
        """Whether the toolchain has a C++ library for these flags (libstdc++-arm-none-eabi-newlib)."""
        try:
            proc = subprocess.run([self.prefix + "g++", *self.flags, "-print-file-name=libstdc++.a"],
                                  capture_output=True, text=True, timeout=60)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and os.path.isabs(proc.stdout.strip())

    def link(self, objs: Iterable[Path], script: Path, out: Path, map_file: Path, cxx: bool = False) -> Path:
        # C++ objects link with g++ (libstdc++, libsupc++) when the toolchain has them; header-only
        # C++ without exceptions or RTTI usually needs neither, so fall back to the C driver.
        tool = self.prefix + ("g++" if cxx and self.has_libstdcxx() else "gcc")
        cmd = [
            tool, *self.flags, "-nostartfiles", "--specs=nosys.specs", "-T", str(script),
            "-Wl,--gc-sections", f"-Wl,-Map={map_file}",
            *[str(o) for o in objs], "-lm", "-o", str(out),
        ]
        self._run(cmd, f"linking {out.name}")
        return out


# ----------------------------------------------------------------------------------------------
# baseline


def _file_digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _baseline(tc: _Toolchain, board: "Board", flags: list[str], common_objs: list[Path], script: Path,
              inputs: np.ndarray, conv: "ConvertResult", out_len: int, cache_dir: Path) -> Path:
    support_files = sorted(p for p in board.support_path.iterdir() if p.is_file())
    harness_files = sorted(p for p in HARNESS_DIR.iterdir() if p.is_file())
    key_data = {
        "board": board.name,
        "prefix": tc.prefix,
        "flags": flags,
        "input": [conv.input_dtype, int(inputs.shape[1])],
        "output": [conv.output_dtype, out_len],
        "n": int(inputs.shape[0]),
        "inputs": hashlib.sha256(np.ascontiguousarray(inputs).tobytes()).hexdigest(),
        "sources": _file_digest([*harness_files, *support_files]),
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
    root = cache_dir / "baseline"
    final = root / key
    elf_path = final / "baseline.elf"
    if elf_path.exists():
        return elf_path
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        obj = tc.compile(HARNESS_DIR / "baseline_model.c", tmp / "baseline_model.o")
        tc.link([*common_objs, obj], script, tmp / "baseline.elf", tmp / "baseline.map")
        (tmp / "key.json").write_text(json.dumps(key_data, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, final)   # atomic: a concurrent worker may have won the race
        except OSError:
            if not elf_path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return elf_path
