"""Calibrate the per-part cycle estimate against a board: ``mcusearch calibrate MODEL --board BOARD``.

The same model (the same generated C, compiler and flags) is built for the emulator of the board's
core and for the board. Each build runs with its per-layer markers (firmware/harness/mcus_profile.h),
and one table compares them per layer:

* the emulated instructions (QEMU, exact);
* the estimated cycles for the board's part, on the part's own memory system
  (:func:`mcusearch.parts.estimate.part_cycles_for_trial` for the whole inference). A layer's
  estimate is its instructions × that layer's cycles per instruction (:func:`layer_cpis`): the
  plugin counts every marker window into its layer (the row schedule read from the ELF), and
  each layer's counts are re-weighted with the part's memory configuration;
* the cycles measured on the board (its cycle counter);
* measured / estimated.

``--save`` writes the whole-inference ratio as a per-part correction (:class:`Correction`, a small
YAML file). Later per-part estimates of that part on the same memory configuration are multiplied
by it and labelled "calibrated on <board>, <date>" (:func:`apply_correction`). Corrections are read
from ``$MCUSEARCH_CALIBRATION_DIR``, or else from ``<cache>/calibration`` (the plugin's cache:
``$MCUSEARCH_CACHE`` or ``~/.cache/mcusearch``).

**Hardware.** Only :func:`measure_on_board` touches a real board. It builds for the board and runs
:func:`mcusearch.measure.measure`, which for a pyOCD board flashes the firmware, runs it and reads
the DWT cycle counter. No probe was connected here, so that path has not run on hardware. A QEMU
board given as ``--board`` stands in for a real one: its "measured" count is its own emulated
instruction count, and the table says so. That is how the flow is tested end to end.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mcusearch.errors import SpecError, StageError
from mcusearch.figures import Provenance

FORMAT = "mcusearch-calibration/1"


# ---- the correction file ------------------------------------------------------------------------

@dataclass(frozen=True)
class Correction:
    """measured / estimated cycles of one part, from one board, for one memory configuration."""

    part: str
    board: str
    date: str                 # ISO date of the calibration run
    memory: str               # the part's memory configuration the estimate used
    core: str
    factor: float             # measured cycles / estimated cycles, whole inference
    estimated_cycles: float
    measured_cycles: float
    model: str                # the model file's name and sha256 prefix
    emulator: str
    measured_provenance: str  # "measured" on a real board; "emulated" when a QEMU board stood in
    layers: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"calibrated on {self.board}, {self.date}"

    def describe(self) -> str:
        """How the correction was obtained, for an estimate's method text."""
        stand_in = "" if self.measured_provenance == Provenance.MEASURED.value else \
            f" (a stand-in: {self.board}'s {self.measured_provenance} count, not a cycle counter)"
        return (f"x {self.factor:.4g} {self.label}{stand_in}: measured {self.measured_cycles:,.0f} / estimated "
                f"{self.estimated_cycles:,.0f} cycles per inference of {self.model}")

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump({"format": FORMAT, **asdict(self)}, sort_keys=False))
        os.replace(tmp, path)
        return path

    @staticmethod
    def load(path: Path) -> "Correction":
        """Read one correction file. Raises SpecError naming the file if it is not one."""
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            why = " ".join(str(getattr(e, "problem", None) or e).split())  # YAML's own message spans lines
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise SpecError(str(path), f"cannot read the calibration file{where}: {why}; run `mcusearch "
                                       "calibrate ... --save` again or delete it") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise SpecError(str(path), f"not a calibration file (expected format {FORMAT})")
        raw.pop("format")
        try:
            c = Correction(**raw)
        except TypeError as e:
            raise SpecError(str(path), f"bad calibration file: {e}") from None
        if not (isinstance(c.factor, (int, float)) and np.isfinite(c.factor) and c.factor > 0):
            raise SpecError(str(path), f"factor must be a positive number, got {c.factor!r}")
        return c


def calibration_dir() -> Path:
    """Where corrections are read from (and written to by ``--save`` without a path)."""
    env = os.environ.get("MCUSEARCH_CALIBRATION_DIR")
    if env:
        return Path(env)
    from mcusearch.boards.plugin import default_cache_dir

    return default_cache_dir() / "calibration"


def _file_name(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in part) + ".yaml"


def load_corrections(directory: Path | None = None) -> dict[str, Correction]:
    """Part name -> its correction, from every ``*.yaml`` in ``directory`` (default
    :func:`calibration_dir`). A missing folder means none. A bad file raises SpecError naming it."""
    d = Path(directory) if directory is not None else calibration_dir()
    out: dict[str, Correction] = {}
    if d.is_dir():
        for f in sorted(d.glob("*.yaml")):
            c = Correction.load(f)
            out[c.part] = c
    return out


def apply_correction(estimate: dict, correction: Correction | None, core: str) -> dict:
    """A part's estimate (:meth:`~mcusearch.parts.estimate.PartEstimate.to_dict`) with the correction
    applied: cycles and both bounds × factor, the method and a ``calibration`` entry saying so.
    Unchanged when there is no correction, or when it was made for another memory configuration or core.
    """
    if correction is None or "cycles" not in estimate:
        return estimate
    if correction.memory != estimate.get("memory") or correction.core != core:
        return {**estimate, "calibration": f"not applied: {correction.label} was for {correction.memory} "
                                           f"({correction.core})"}
    f = correction.factor
    return {**estimate, "cycles": estimate["cycles"] * f, "cycles_low": estimate["cycles_low"] * f,
            "cycles_high": estimate["cycles_high"] * f,
            "method": f"{estimate['method']}; {correction.describe()}",
            "calibration": correction.label, "calibration_factor": f}


# ---- the calibration run -------------------------------------------------------------------------

@dataclass
class LayerRow:
    name: str
    instructions: float        # emulated, per inference
    estimated: float           # cycles for the part, per inference
    measured: float            # cycles on the board (or the stand-in's count), per inference

    @property
    def ratio(self) -> float:
        return self.measured / self.estimated if self.estimated else float("nan")


@dataclass
class Calibration:
    part: str
    board: str
    emulator: str
    memory: str
    core: str
    cpi: float                 # the part's estimated cycles per emulated instruction
    total: LayerRow
    layers: list[LayerRow]
    measured_provenance: str
    measured_method: str
    estimate_method: str
    model: str
    date: str

    def correction(self) -> Correction:
        return Correction(part=self.part, board=self.board, date=self.date, memory=self.memory, core=self.core,
                          factor=self.total.ratio, estimated_cycles=self.total.estimated,
                          measured_cycles=self.total.measured, model=self.model, emulator=self.emulator,
                          measured_provenance=self.measured_provenance,
                          layers=[{"name": r.name, "instructions": r.instructions, "estimated_cycles": r.estimated,
                                   "measured_cycles": r.measured, "ratio": r.ratio} for r in self.layers])

    def table(self) -> str:
        """The per-layer table, with how each column was obtained."""
        stand_in = self.measured_provenance != Provenance.MEASURED.value
        meas_head = "stand-in count" if stand_in else "measured cycles"
        rows = [*self.layers, self.total]
        width = max(len("layer"), *(len(r.name) for r in rows))
        lines = [f"{'layer':<{width}}  {'emulated instr':>14}  {'est. cycles':>12}  {meas_head:>15}  {'ratio':>6}"]
        for r in rows:
            if r is self.total:
                lines.append("-" * len(lines[0]))
            lines.append(f"{r.name:<{width}}  {r.instructions:>14,.0f}  {r.estimated:>12,.0f}  {r.measured:>15,.0f}  "
                         f"{r.ratio:>6.3f}")
        notes = [
            f"part {self.part}, memory configuration {self.memory}; emulator {self.emulator}; board {self.board}",
            f"emulated instr: exact QEMU count per inference ({self.emulator}, per-layer markers' cost removed)",
            f"est. cycles: {self.estimate_method}; a layer = its instructions x that layer's cycles per "
            "instruction on the part (the plugin's per-layer windows, marker calls included, re-weighted with "
            f"the same memory configuration; the whole inference: {self.cpi:.3f})",
            f"{meas_head}: {self.measured_method}",
            "ratio: measured / estimated" + (" (a QEMU board stands in for a real one: its count is instructions, "
                                             "not cycles)" if stand_in else ""),
        ]
        return "\n".join(lines + [""] + notes)


def check_model_file(path: Path, converter: str) -> str:
    """The model file's quantization ("int8" for a .tflite, else "float32"), or SpecError naming
    "MODEL" or "--converter"."""
    from mcusearch.convert import available_converters

    if not path.is_file():
        raise SpecError("MODEL", f"file not found: {path}")
    if path.suffix not in (".h5", ".keras", ".tflite"):
        raise SpecError("MODEL", f"expected a Keras .h5/.keras or an int8 .tflite file, got {path.name}")
    quant = "int8" if path.suffix == ".tflite" else "float32"
    if quant not in available_converters().get(converter, ()):
        raise SpecError("--converter", f"{converter!r} cannot convert a {quant} model")
    return quant


def prepare_model(path: Path, converter: str, inputs: int, seed: int, out: Path):
    """A :class:`~mcusearch.model.ModelResult` for a model file (Keras .h5/.keras, or an int8
    .tflite) with seeded random probe inputs; the key "MODEL" or "--converter" names a bad input."""
    from mcusearch.model import ModelResult

    path = Path(path)
    quant = check_model_file(path, converter)
    keras_path, params, macs = path, 0, 0
    if quant == "int8":
        from mcusearch.model.load import describe_tflite

        try:
            base = describe_tflite(path)
        except SpecError as e:  # the loader names the spec key; here the file is an argument
            raise SpecError("MODEL", e.message, e.source) from None
        if base.quantization != "int8":
            raise SpecError("MODEL", f"a {base.quantization} .tflite: give an int8 model (or the "
                                     "Keras .h5/.keras file for float32)", str(path))
        shape = tuple(base.input_shape)
    else:
        from mcusearch.model.evaluate import count_macs, count_params
        from mcusearch.model.load import load_user_model

        try:
            keras_model = load_user_model(path)
        except SpecError as e:  # the loader names the spec key; here the file is an argument
            raise SpecError("MODEL", e.message, e.source) from None
        shape = tuple(int(d) for d in keras_model.input_shape[1:])
        params, macs = count_params(keras_model), count_macs(keras_model)
        if path.suffix != ".h5":  # e.g. Keras 3: the converters read tf-keras
            from mcusearch.model.stage import KERAS_FILE, save_keras

            out.mkdir(parents=True, exist_ok=True)
            keras_path = out / KERAS_FILE
            save_keras(keras_model, keras_path)
    x = np.random.default_rng(seed).normal(size=(inputs, *shape)).astype(np.float32)
    return ModelResult(keras_path=keras_path if quant == "float32" else None,
                       tflite_path=path if quant == "int8" else None, quantization=quant, accuracy=float("nan"),
                       params=params, macs=macs, input_shape=shape, class_names=(), probe_inputs=x,
                       probe_labels=np.zeros(len(x), np.int64), cache_key="")


def _boards(board_name: str, emulator_name: str | None):
    from mcusearch.boards import available_boards, get_board

    names = sorted(available_boards())
    if board_name not in names:
        raise SpecError("--board", f"unknown board {board_name!r}; available: {', '.join(names)}")
    board = get_board(board_name)
    if emulator_name is None:
        if board.kind == "emulated":
            return board, board
        same = [n for n in names if get_board(n).kind == "emulated" and get_board(n).core == board.core]
        if not same:
            raise SpecError("--board", f"no emulated board has {board.name}'s core {board.core}")
        return board, get_board(same[0])
    if emulator_name not in names or get_board(emulator_name).kind != "emulated":
        raise SpecError("--emulator", f"{emulator_name!r} is not an emulated board; "
                                      f"emulated: {', '.join(n for n in names if get_board(n).kind == 'emulated')}")
    emulator = get_board(emulator_name)
    if emulator.core != board.core:
        raise SpecError("--emulator", f"{emulator.name} is a {emulator.core}, {board.name} a {board.core}")
    return board, emulator


def _part(board, part_name: str | None):
    from mcusearch.catalog import find_part, load_catalog

    name = part_name or getattr(board, "part", "") or ""
    if not name:
        raise SpecError("--part", f"{board.name} stands for no particular part: name the catalog part to calibrate")
    part = find_part(load_catalog(), name)
    if part is None:
        raise SpecError("--part", f"{name!r} is not in the MCU catalog (`mcusearch catalog` lists it)")
    if part.core != board.core:
        raise SpecError("--part", f"{part.part} is a {part.core}; {board.name} a {board.core}")
    return part


def measure_on_board(conv, board, opt: str, out: Path, timeout_s: float):
    """Build for ``board`` and run there: the only step that needs the hardware when ``board`` is real
    (pyOCD: flash, run, read the DWT cycle counter and the per-layer ticks). Returns (build, measurement)."""
    from mcusearch.build import build
    from mcusearch.measure import measure

    fw = build(conv, board, opt, out / f"build-{board.name}")
    return fw, measure(fw, conv, board, timeout_s=timeout_s)


def calibrate(model_path: Path, board_name: str, *, part_name: str | None = None, emulator_name: str | None = None,
              converter: str = "mcusearch", opt_level: str = "-O3", inputs: int = 2, seed: int = 0,
              timeout_s: float = 300, out: Path | None = None) -> Calibration:
    """Run the calibration (see the module doc) and return its table; ``out`` holds the generated C,
    the ELFs and the profiles (default: a new temp folder, made once the arguments are checked). Bad
    arguments raise SpecError naming the option, before anything is written; a failed build or run
    raises StageError."""
    import tempfile

    from mcusearch.build import opt_level_arg
    from mcusearch.convert import convert
    from mcusearch.parts.estimate import part_cycles_for_trial

    board, emulator = _boards(board_name, emulator_name)
    part = _part(board, part_name)
    opt = opt_level_arg(opt_level)
    check_model_file(Path(model_path), converter)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mcusearch-calibrate-"))
    model = prepare_model(Path(model_path), converter, inputs, seed, out)
    conv = convert(model, converter, out / "c")
    fw_emu, emu = measure_on_board(conv, emulator, opt, out, timeout_s)
    if board is emulator:
        board_meas = emu
    else:
        _, board_meas = measure_on_board(conv, board, opt, out, timeout_s)
    instructions = emu.per_inference.value
    est = part_cycles_for_trial(fw_emu.elf, emulator, [part], instructions, out / "profile", timeout_s=timeout_s,
                                corrections={})[part.part]
    if "cycles" not in est:
        raise SpecError("--part", f"no cycle estimate for {part.part}: {est.get('reason', 'unknown')}")
    if not emu.layer_counts:
        raise StageError("measure", f"the {converter} firmware has no per-layer markers: nothing to compare per layer")
    cpis = layer_cpis(fw_emu.elf, emulator, part, len(emu.layer_counts), inputs, out / "profile", timeout_s)
    meas_layers = dict(board_meas.layer_counts)
    layers = [LayerRow(name, n, n * cpi, meas_layers.get(name, float("nan")))
              for (name, n), cpi in zip(emu.layer_counts, cpis)]
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:12]
    return Calibration(
        part=part.part, board=board.name, emulator=emulator.name, memory=est["memory"], core=board.core,
        cpi=est["cycles"] / instructions,
        total=LayerRow("whole inference", instructions, est["cycles"], board_meas.per_inference.value),
        layers=layers, measured_provenance=board_meas.per_inference.provenance.value,
        measured_method=board_meas.per_inference.method, estimate_method=est["method"],
        model=f"{Path(model_path).name} (sha256 {digest})", date=_dt.date.today().isoformat())


def schedule(elf: Path, n_layers: int) -> list[int]:
    """The layer of each marker pair per inference: the optimised generator's row schedule (the ELF's
    ``mcus_schedule``: uint8 up to 255 layers, else uint16), or every layer once, in order."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as f:
        ef = ELFFile(f)
        for sec in ef.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for sym in sec.get_symbol_by_name("mcus_schedule") or ():
                if sym["st_shndx"] == "SHN_UNDEF":
                    continue
                data_sec = ef.get_section(sym["st_shndx"])
                at = sym["st_value"] - data_sec["sh_addr"]
                raw = data_sec.data()[at:at + sym["st_size"]]
                return np.frombuffer(raw, "<u1" if n_layers <= 255 else "<u2").astype(int).tolist()
    return list(range(n_layers))


def layer_cpis(elf: Path, emulator, part, n_layers: int, inferences: int, work_dir: Path,
               timeout_s: float) -> list[float]:
    """Each layer's estimated cycles per instruction on ``part``: one QEMU run whose plugin counts
    every marker window (``mcus_layer_begin`` to ``mcus_layer_end``, the call included) into its layer,
    re-weighted with the part's memory configuration. Raises StageError if the windows do not match
    the harness's one calibration pair plus the schedule once per inference."""
    from mcusearch.boards.cyclemodel import EstimateConfig, estimate
    from mcusearch.boards.plugin import board_regions, read_layer_counts, run_profile, symbol_address
    from mcusearch.parts.estimate import profile_plans

    plans, memories = profile_plans([part], emulator.core, board_regions(emulator.machine))
    steps = schedule(elf, n_layers)
    out = Path(work_dir) / "layers.json"
    whole = run_profile(elf, emulator.machine, out, start=symbol_address(elf, "mcus_layer_begin"),
                        stop=symbol_address(elf, "mcus_layer_end"), timeout_s=timeout_s, steps=steps, skip=1,
                        **next(iter(plans.values())))
    if whole.intervals != 1 + inferences * len(steps):
        raise StageError("measure", f"{whole.intervals} marker windows, expected 1 + {inferences} x {len(steps)}: "
                                    "the per-layer profile does not match the firmware's schedule")
    cfg = EstimateConfig(emulator.core, memories[part.part].config)
    profiles = read_layer_counts(out)
    return [estimate(p, cfg).cycles / p.insns if p.insns else float("nan") for p in profiles] + \
        [float("nan")] * (n_layers - len(profiles))


def save_path(save: str | None, part: str) -> Path:
    """``--save`` with no value: ``<calibration_dir>/<part>.yaml``; a ``.yaml`` file: that file;
    anything else is a folder (made if needed): that folder/<part>.yaml (estimates read only
    ``*.yaml`` files)."""
    if save is None or save == "":
        return calibration_dir() / _file_name(part)
    p = Path(save)
    return p if p.suffix == ".yaml" and not p.is_dir() else p / _file_name(part)
