"""search.yaml: the schema of a search, its validation, and the commented template.

Entry point: :func:`load_spec` (path -> :class:`Spec`). Every error is a
:class:`~mcusearch.errors.SpecError` that names the key path (``knobs.channels.values``) and what
was expected; nothing is written while a spec is being checked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from mcusearch.errors import SpecError
from mcusearch.model import QUANT_FORMAT
from mcusearch.model.metrics import REGISTRY as QUALITY_METRICS

METRICS = {
    "flash_kb": "flash of the whole firmware image (text + data), kB, from the ELF",
    "ram_kb": "static RAM of the whole firmware image (data + bss), kB, from the ELF",
    "model_flash_kb": "flash of the model alone (image minus a baseline build without it), kB",
    "model_ram_kb": "RAM of the model alone (image minus the baseline build), kB",
    "instructions": "instructions per inference (exact, emulated) or cycles (measured on a board)",
    "cycles": "cycles per inference (estimated by the cycle model on emulated boards, measured on real ones)",
    "latency_ms": "time per inference at the board's clock (estimated for emulated boards)",
    "energy_uj": "energy per inference, uJ, estimated on the trial's lowest-energy fitting catalog "
                 "part (run current x supply voltage x latency); 1e9: no fitting part has a figure",
    # quality metrics (mcusearch.model.metrics), on the held-out test set: Keras for float32, the
    # TFLite interpreter for int8 / int16x8
    **{name: f"{m.description} ({m.direction}; tasks: {', '.join(sorted(m.tasks))})"
       for name, m in QUALITY_METRICS.items()},
    "params": "parameters of the model",
    "macs": "multiply-accumulates per inference",
    "mcu_cost": ("price in USD of the cheapest catalog part the whole firmware fits "
                 "(values >= 1000 are not dollars: no fitting part has a known price; 1e6: none fits)"),
}
SAMPLERS = ("nsga2", "tpe", "random", "grid")
QUANTIZATIONS = tuple(QUANT_FORMAT)  # knob values; QUANT_FORMAT maps them to a converter's formats
ACCURACY_METRICS = ("accuracy", "balanced_accuracy")  # what accuracy_min can limit
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Ofast")
DATASETS = ("watch", "fashion_mnist", "npz", "images", "csv")


SEED_MAX = 2**32 - 1          # numpy's and TensorFlow's seeds are 32-bit
DAY_S = 86_400.0
MAX_COUNT = 10**9             # a bound for counts (steps, samples) that no real spec reaches


class _Strict(BaseModel):
    # allow_inf_nan=False: .inf / .nan are refused in every float field (they pass comparisons
    # like gt=0 and then break every trial)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrainSpec(_Strict):
    epochs: int = Field(10, ge=0, le=1000)  # 0: a model file used as given (see ModelSpec)
    batch_size: int = Field(64, ge=1, le=65_536)
    learning_rate: float = Field(1e-3, gt=0, le=10)
    seed: int = Field(0, ge=0, le=SEED_MAX)


class MagnitudeScheduleSpec(_Strict):
    """tfmot PolynomialDecay of magnitude pruning; defaults: the 2020 study's."""
    frequency: int = Field(50, ge=1, le=MAX_COUNT)
    begin_step: int = Field(0, ge=0, le=MAX_COUNT)
    initial_sparsity: float = Field(0.0, ge=0, lt=1)


class ModelSpec(_Strict):
    """The base model: a built-in ``architecture`` trained on the data (``train``), or the
    user's model file ``path`` (Keras 3 .keras, tf-keras .h5 / .keras, a SavedModel folder, or
    a .tflite used as it is), taken as trained: it is trained further only for the
    ``train.epochs`` the spec gives explicitly (0 when not given). ``trust_code: true`` allows a
    file whose loading runs Python code stored in it (Lambda layers, serialised functions)."""
    architecture: str | None = "study_cnn"
    path: Path | None = None
    trust_code: bool = False                       # load Lambda layers etc. of model.path
    params: dict[str, int | float] = Field(default_factory=dict)
    train: TrainSpec = TrainSpec()
    retrain_epochs: int = Field(2, ge=0, le=100)   # default of knobs.channels.retrain_epochs
    representative_samples: int = Field(200, ge=1, le=100_000)  # calibration set of int8 / int16x8 PTQ
    qat_epochs: int = Field(2, ge=1, le=100)        # fine-tuning of quantization int8-qat
    magnitude_schedule: MagnitudeScheduleSpec = MagnitudeScheduleSpec()  # of knobs.magnitude

    @model_validator(mode="before")
    @classmethod
    def _file_as_given(cls, data):
        """A model file is not trained further unless model.train.epochs is given."""
        if isinstance(data, dict) and data.get("path") is not None:
            train = data.get("train")
            if train is None:
                return {**data, "train": {"epochs": 0}}
            if isinstance(train, dict) and "epochs" not in train:
                return {**data, "train": {**train, "epochs": 0}}
        return data

    @model_validator(mode="after")
    def _one_source(self):
        if self.path is not None and self.architecture not in (None, "study_cnn"):
            raise ValueError("give either `architecture` or `path`, not both")
        if self.path is None and self.train.epochs < 1:
            raise ValueError("train.epochs: a built-in architecture is trained at least 1 epoch")
        return self


class DatasetSpec(_Strict):
    """The data: a built-in set, or the user's .npz, image folder or CSV of windows (layouts in
    :mod:`mcusearch.model.datasets`), the task, and an optional int8 calibration set."""
    name: Literal["watch", "fashion_mnist", "npz", "images", "csv"] = "watch"
    path: Path | None = None
    task: Literal["classification", "regression", "autoencoder"] = "classification"
    classes: list[str] | None = Field(None, min_length=2)  # keep these (at least 2); None: all
    max_train: int | None = Field(None, ge=10, le=MAX_COUNT)
    max_test: int | None = Field(None, ge=4, le=MAX_COUNT)
    probe_per_class: int = Field(5, ge=1, le=100)  # regression: this many test inputs in all
    calibration: Path | None = None               # .npz with `x`: int8 / int16x8 calibration inputs
    image_size: list[int] | None = Field(None, min_length=2, max_length=2)  # images: [height, width]
    color_mode: Literal["grayscale", "rgb", "rgba"] = "grayscale"            # images
    rescale: float = Field(1 / 255, gt=0, le=1e6)                            # images: pixel x this
    shape: list[int] | None = Field(None, min_length=1)  # csv: the shape of one window
    label_column: str = "label"                          # csv
    test_split: float | None = Field(None, gt=0, lt=1)   # images / csv without a split of their own
    split_seed: int = Field(0, ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _options_fit_the_source(self):
        user = ("npz", "images", "csv")
        if self.name in user and self.path is None:
            raise ValueError(f"dataset `{self.name}` needs `path` ({_DATA_PATHS[self.name]})")
        if self.name not in user and self.path is not None:
            raise ValueError(f"`path` is only for datasets {', '.join(user)}; `{self.name}` is built in")
        if self.task != "classification" and self.name != "npz":
            raise ValueError(f"task {self.task}: its data come as an .npz (name: npz)")
        for key, only in (("image_size", "images"), ("shape", "csv")):
            if getattr(self, key) is not None and self.name != only:
                raise ValueError(f"`{key}` is only for dataset `{only}`")
        if any(not 1 <= v <= 65_536 for v in (self.image_size or []) + (self.shape or [])):
            raise ValueError("image_size and shape take sizes from 1 to 65536")
        if self.name == "csv" and self.shape is None:
            raise ValueError("dataset `csv` needs `shape`: the shape of one window, e.g. [128, 3]")
        return self

    def check_files(self, resolve, source: str) -> None:
        """The files the data set names exist and have the expected kind."""
        for key, p, kind in (("dataset.path", self.path, _DATA_PATHS.get(self.name)),
                             ("dataset.calibration", self.calibration, "an .npz file with x")):
            if p is None:
                continue
            p = resolve(p)
            folder = self.name == "images" and key == "dataset.path"
            if not (p.is_dir() if folder else p.is_file()):
                raise SpecError(key, f"{'folder' if folder else 'file'} not found: {p}", source)
            want = {"dataset.calibration": ".npz", "dataset.path": {"npz": ".npz", "csv": ".csv"}
                    .get(self.name)}[key]
            if want and p.suffix.lower() != want:
                raise SpecError(key, f"expected {kind}, got {p.name}", source)

    def config(self, resolve):
        """The model stage's :class:`~mcusearch.model.DatasetConfig`, paths resolved. The
        source options (task, calibration, image and CSV layout, split) are passed when the spec
        sets them (DatasetConfig's defaults are the spec's)."""
        from mcusearch.model import DatasetConfig

        options = {"task": self.task,
                   "calibration": resolve(self.calibration) if self.calibration else None,
                   "image_size": tuple(self.image_size) if self.image_size else None,
                   "color_mode": self.color_mode, "rescale": self.rescale,
                   "shape": tuple(self.shape) if self.shape else None,
                   "label_column": self.label_column, "test_split": self.test_split,
                   "split_seed": self.split_seed}
        defaults = {k: DatasetSpec.model_fields[k].default for k in options}
        return DatasetConfig(
            name=self.name, path=resolve(self.path) if self.path else None,
            classes=tuple(self.classes) if self.classes else None, max_train=self.max_train,
            max_test=self.max_test, **{k: v for k, v in options.items() if v != defaults[k]})


_DATA_PATHS = {"npz": "an .npz file with x_train, y_train, x_test, y_test",
               "images": "a folder of class sub-folders, or of train/ and test/ holding them",
               "csv": "a .csv file, one window per row"}


class BoardDefinition(_Strict):
    """A real board for any pyOCD target (the generic entry): `mcusearch boards` then lists it."""

    name: str
    pyocd_target: str                  # `pyocd list --targets`; a CMSIS-pack part needs `pack`
    core: str                          # cortex-m0plus | cortex-m3 | cortex-m4 | cortex-m7 | cortex-m33 ...
    fpu: Literal["none", "single", "double"] = "none"
    flash_kb: int = Field(gt=0, le=4 * 1024 * 1024)
    ram_kb: int = Field(gt=0, le=4 * 1024 * 1024)
    clock_mhz: float = Field(gt=0, le=10_000)  # the clock out of reset (the firmware does not change it)
    flash_origin: int = Field(0x0800_0000, ge=0, le=2**32 - 1)
    ram_origin: int = Field(0x2000_0000, ge=0, le=2**32 - 1)
    timer: Literal["dwt", "systick"] | None = None
    pack: Path | None = None
    part: str = ""


class BoardOptions(_Strict):
    probe: str | None = None           # the probe's unique ID (`pyocd list`), if several are connected
    pack: Path | None = None           # a CMSIS pack file (e.g. for nucleo-f722ze)
    frequency: int | None = Field(None, gt=0, le=10**9)  # SWD clock, Hz


class TargetSpec(_Strict):
    define: list[BoardDefinition] = Field(default_factory=list)
    boards: list[str] = Field(default_factory=lambda: ["qemu-m7"], min_length=1)
    board_options: dict[str, BoardOptions] = Field(default_factory=dict)
    timeout_s: float = Field(300, gt=0, le=DAY_S)  # wall-clock limit for one firmware run (a hang fails the trial)

    @field_validator("define")
    @classmethod
    def _register(cls, v: list[BoardDefinition]) -> list[BoardDefinition]:
        from mcusearch.boards import define_board

        for d in v:
            attrs = d.model_dump(exclude={"name", "pyocd_target", "clock_mhz"})
            attrs["pack"] = str(d.pack) if d.pack else None
            try:
                define_board(d.name, target=d.pyocd_target, clock_hz=int(d.clock_mhz * 1e6), **attrs)
            except ValueError as e:
                raise ValueError(f"board {d.name!r}: {e}") from None
        return v

    @model_validator(mode="after")
    def _options_for_listed_boards(self):
        for name in self.board_options:
            if name not in self.boards:
                raise ValueError(f"board_options.{name}: {name!r} is not in target.boards")
        return self

    @field_validator("boards")
    @classmethod
    def _known_boards(cls, v: list[str]) -> list[str]:
        from mcusearch.boards import available_boards

        known = available_boards()
        for b in v:
            if b not in known:
                raise ValueError(f"unknown board {b!r}; available: {', '.join(sorted(known))}")
        return v


class MetricBound(_Strict):
    """A bound on a quality metric: ``min`` (a floor) for a maximised metric, ``max`` (a
    ceiling) for a minimised one."""
    min: float | None = Field(None, gt=0, le=1e12)
    max: float | None = Field(None, gt=0, le=1e12)


class ConstraintsSpec(_Strict):
    flash_kb: float | None = Field(None, gt=0, le=1e9)
    ram_kb: float | None = Field(None, gt=0, le=1e9)
    # auto: one inference per input frame; a number: milliseconds, > 0 (0 or less would invert)
    deadline_ms: Annotated[float, Field(gt=0, le=1e9)] | Literal["auto"] | None = "auto"
    accuracy_min: float | None = Field(None, gt=0, le=1)  # 0 would be no floor: leave it out
    accuracy_metric: Literal["accuracy", "balanced_accuracy"] = "accuracy"  # what accuracy_min limits
    metrics: dict[str, MetricBound] = Field(default_factory=dict)  # e.g. {f1_macro: {min: 0.8}}
    # energy per inference on a catalog part, µJ (estimated: run current x supply voltage x latency),
    # judged per part like the deadline
    energy_uj: float | None = Field(None, gt=0, le=1e9)

    @field_validator("metrics")
    @classmethod
    def _bound_per_direction(cls, v: dict[str, MetricBound]) -> dict[str, MetricBound]:
        for name, b in v.items():
            if name not in QUALITY_METRICS:
                raise ValueError(f"{name}: unknown quality metric; one of: {', '.join(QUALITY_METRICS)}")
            m = QUALITY_METRICS[name]
            want, other = ("min", "max") if m.direction == "maximize" else ("max", "min")
            if getattr(b, other) is not None or getattr(b, want) is None:
                raise ValueError(f"{name}: {m.label} is {m.direction}d, so it takes a "
                                 f"{'floor' if want == 'min' else 'ceiling'}: {{{want}: value}}")
        return v

    @model_validator(mode="after")
    def _accuracy_once(self):
        if self.accuracy_min is not None and self.accuracy_metric in self.metrics:
            raise ValueError(f"metrics.{self.accuracy_metric}: also bounded by accuracy_min; "
                             "give the bound once")
        return self

    def bounds(self) -> dict[str, tuple[str, str, float | str]]:
        """Every constraint given: key (as stored with a trial) -> (metric it limits, ``max`` for
        an upper limit or ``min`` for a floor, the limit; ``deadline_ms`` may be ``"auto"``)."""
        out: dict[str, tuple[str, str, float | str]] = {}
        for key, metric in (("flash_kb", "flash_kb"), ("ram_kb", "ram_kb"),
                            ("deadline_ms", "latency_ms"), ("energy_uj", "energy_uj")):
            if getattr(self, key) is not None:
                out[key] = (metric, "max", getattr(self, key))
        if self.accuracy_min is not None:
            out["accuracy_min"] = (self.accuracy_metric, "min", self.accuracy_min)
        for name, b in self.metrics.items():
            kind = "min" if b.min is not None else "max"
            out[f"{name}_{kind}"] = (name, kind, getattr(b, kind))
        return out


class ChannelsKnob(_Strict):
    """Channel pruning. ``per``: pair or group (one count per conv group), layer (one per conv),
    global (one count for every conv), ratio (one fraction of every conv's filters)."""
    per: Literal["global", "pair", "group", "layer", "ratio"] = "pair"
    values: list[int | float] = Field(min_length=1)
    criterion: list[Literal["l1", "l2", "random", "bn"]] = Field(["l1"], min_length=1)
    retrain_epochs: list[int] | None = Field(None, min_length=1)  # default: [model.retrain_epochs]

    @field_validator("values")
    @classmethod
    def _counts_or_ratios(cls, v: list, info: ValidationInfo) -> list:
        if info.data.get("per") == "ratio":
            if any(isinstance(x, bool) or not 0 < x <= 1 for x in v):
                raise ValueError("keep ratios must be in (0, 1]")
            return sorted({float(x) for x in v})
        if any(isinstance(x, bool) or x != int(x) for x in v):
            raise ValueError("channel counts must be integers (or use `per: ratio`)")
        if any(x < 1 for x in v):
            raise ValueError("channel counts must be >= 1")
        return sorted({int(x) for x in v})

    @field_validator("criterion")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("retrain_epochs")
    @classmethod
    def _epochs(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not 0 <= x <= 100 for x in v):
            raise ValueError("re-training epochs must be between 0 (no re-training) and 100")
        return None if v is None else sorted(set(v))


class MagnitudeKnob(_Strict):
    """Magnitude pruning (tfmot prune_low_magnitude): final sparsity (0 = off) and fine-tuning
    epochs; the schedule's settings are model.magnitude_schedule."""
    sparsity: list[float] = Field(min_length=1)
    epochs: list[int] = Field([2], min_length=1)

    @field_validator("sparsity")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 <= x <= 0.99 for x in v):
            raise ValueError("sparsity must be between 0 (off) and 0.99")
        return sorted(set(v))

    @field_validator("epochs")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(not 1 <= x <= 100 for x in v):
            raise ValueError("fine-tuning epochs must be between 1 and 100")
        return sorted(set(v))


class KnobsSpec(_Strict):
    channels: ChannelsKnob | None = None
    magnitude: MagnitudeKnob | None = None
    quantization: list[Literal["float32", "int8", "int16x8", "int8-qat"]] = Field(["float32"], min_length=1)
    opt_level: list[Literal["-O0", "-O1", "-O2", "-O3", "-Os", "-Ofast"]] = Field(["-O3"], min_length=1)
    converter: list[str] = Field(["mcusearch"], min_length=1)

    @field_validator("converter")
    @classmethod
    def _known_converters(cls, v: list[str]) -> list[str]:
        from mcusearch.convert import available_converters

        known = available_converters()
        for c in v:
            if c not in known:
                raise ValueError(f"unknown converter {c!r}; available: {', '.join(sorted(known))}")
        return v

    @model_validator(mode="after")
    def _feasible(self):
        from mcusearch.convert import available_converters

        known = available_converters()
        formats = {QUANT_FORMAT[q] for q in self.quantization}
        for c in self.converter:
            if not formats & set(known[c]):
                raise ValueError(
                    f"converter {c!r} supports {sorted(known[c])}, none of quantization "
                    f"{list(self.quantization)}: add one of those or drop the converter")
        return self


class CatalogSpec(_Strict):
    margin: float = Field(0.1, ge=0, lt=1)  # fraction of a part's flash and RAM kept free
    path: Path | None = None                # a catalog file replacing the built-in one
    parts: list[dict] = Field(default_factory=list)  # add parts or override fields (e.g. a price)


class Objective(_Strict):
    """A figure to optimise. A quality metric has its own direction (``direction`` may be left
    out, and must agree when given); the others need one."""
    metric: str
    direction: Literal["minimize", "maximize"]

    @model_validator(mode="before")
    @classmethod
    def _quality_direction(cls, data):
        if isinstance(data, dict) and data.get("metric") in QUALITY_METRICS and "direction" not in data:
            return {**data, "direction": QUALITY_METRICS[data["metric"]].direction}
        return data

    @model_validator(mode="after")
    def _agrees(self):
        m = QUALITY_METRICS.get(self.metric)
        if m is not None and self.direction != m.direction:
            raise ValueError(f"{m.name} ({m.label}) is {m.direction}d; direction "
                             f"{self.direction!r} would search for the worst model")
        return self

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; one of: {', '.join(METRICS)}")
        return v


class SearchSpec(_Strict):
    sampler: Literal["nsga2", "tpe", "random", "grid"] = "tpe"  # bench/overnight.py: the most efficient
    n_trials: int = Field(20, ge=1, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0, le=366 * DAY_S)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    storage: str | None = None       # default: sqlite:///<run_dir>/study.db
    study_name: str = "mcusearch"
    run_dir: Path = Path("reports/search")
    cache_dir: Path = Path("reports/cache")
    population_size: int = Field(8, ge=2, le=100_000)  # NSGA-II
    # fault isolation (mcusearch.isolate): each trial's stages in a child process, so a crash,
    # a hang or running out of memory fails that trial only
    isolate: bool = True
    stage_timeout_s: float | None = Field(7200, gt=0, le=7 * DAY_S)  # per stage; null: no limit
    memory_limit_mb: float | None = Field(None, gt=0, le=1e7)  # resident memory of a trial's process


def _default_objectives() -> list[Objective]:
    return [Objective(metric="model_flash_kb", direction="minimize"),
            Objective(metric="model_ram_kb", direction="minimize"),
            Objective(metric="instructions", direction="minimize"),
            Objective(metric="accuracy", direction="maximize")]


class Spec(_Strict):
    name: str = "search"
    model: ModelSpec = ModelSpec()
    dataset: DatasetSpec = DatasetSpec()
    target: TargetSpec = TargetSpec()
    constraints: ConstraintsSpec = ConstraintsSpec()
    knobs: KnobsSpec = KnobsSpec()
    objectives: list[Objective] = Field(default_factory=_default_objectives, min_length=1)
    search: SearchSpec = SearchSpec()
    catalog: CatalogSpec = CatalogSpec()

    # Set by load_spec: the folder relative paths in the spec are resolved against.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _checks(self):
        seen = set()
        for i, o in enumerate(self.objectives):
            if o.metric in seen:
                raise ValueError(f"objectives[{i}]: metric {o.metric!r} is listed twice")
            seen.add(o.metric)
        if self.search.sampler == "grid" and self.search.timeout_s is None and self.search.n_trials > 10_000:
            raise ValueError("search.n_trials: a grid search needs a bounded number of trials")
        return self

    # ---- derived -----------------------------------------------------------------------------
    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def run_dir(self) -> Path:
        return self.resolve(self.search.run_dir)

    @property
    def cache_dir(self) -> Path:
        return self.resolve(self.search.cache_dir)

    @property
    def storage_url(self) -> str:
        return self.search.storage or f"sqlite:///{(self.run_dir / 'study.db').resolve()}"

    def resolved_yaml(self) -> str:
        """The spec as YAML with every path absolute (saved in the run folder by `run`)."""
        d = self.model_dump(mode="json")
        for section, key in (("model", "path"), ("dataset", "path"), ("dataset", "calibration"),
                             ("search", "run_dir"),
                             ("search", "cache_dir"), ("catalog", "path")):
            if d[section][key] is not None:
                d[section][key] = str(self.resolve(Path(d[section][key])).resolve())
        return "# The spec this run was started with (paths made absolute).\n" + yaml.safe_dump(d, sort_keys=False)

    def board(self, name: str):
        """An instance of board ``name`` with the spec's options (probe, pack) for it."""
        from mcusearch.boards import get_board

        opts = self.target.board_options.get(name)
        kw = {} if opts is None else {k: v for k, v in opts.model_dump().items() if v is not None}
        if "pack" in kw:
            kw["pack"] = str(self.resolve(Path(kw["pack"])))
        return get_board(name, **kw)

    def parts(self, source: str | None = None):
        """The MCU catalog: built-in (or catalog.path) plus the spec's additions and overrides."""
        from mcusearch.catalog import load_catalog

        path = self.resolve(self.catalog.path) if self.catalog.path else None
        return load_catalog(self.catalog.parts or None, path, source=source)

    def base_model_config(self):
        from mcusearch.model import (ArchitectureConfig, BaseModelConfig, MagnitudeSchedule,
                                     TrainConfig)

        d = self.dataset
        m = self.model
        return BaseModelConfig(
            dataset=d.config(self.resolve),
            architecture=ArchitectureConfig(
                name=None if m.path else m.architecture,
                params=tuple(sorted(m.params.items())),
                path=self.resolve(m.path) if m.path else None),
            train=TrainConfig(**m.train.model_dump()),
            probe_per_class=d.probe_per_class,
            representative_samples=m.representative_samples,
            magnitude=MagnitudeSchedule(**m.magnitude_schedule.model_dump()),
            qat_epochs=m.qat_epochs, trust_code=m.trust_code)


def _where(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]" if parts else f"[{p}]"]
        elif p in ("function-after", "literal_error") or str(p).startswith(("function-", "literal[", "constrained-")):
            continue
        else:
            parts.append(str(p))
    return ".".join(parts)


def _message(err: dict) -> str:
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        return "unknown key (check the spelling; `mcusearch init` writes a commented template)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err.get("type") == "missing":
        return "required key is missing"
    inp = err.get("input")
    if err.get("type") not in ("value_error",) and not isinstance(inp, (dict, list)):
        got = repr(inp)
        msg = f"{msg} (got {got if len(got) <= 60 else got[:40] + f'... ({len(got)} characters)'})"
    return msg


def parse_spec(data: object, source: str = "search.yaml", base_dir: Path = Path(".")) -> Spec:
    """Validate an already-parsed YAML document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError("", f"the top level must be a mapping of keys, got {type(data).__name__}", source)
    try:
        spec = Spec.model_validate({**data, "base_dir": base_dir})
    except ValidationError as e:
        err = e.errors()[0]
        raise SpecError(_where(err["loc"]), _message(err), source) from None
    _check_files(spec, source)
    return spec


def _check_files(spec: Spec, source: str) -> None:
    if spec.catalog.path is not None and not spec.resolve(spec.catalog.path).is_file():
        raise SpecError("catalog.path", f"file not found: {spec.resolve(spec.catalog.path)}", source)
    spec.parts(source)  # validates catalog overrides (errors name catalog.parts[i].field)
    if spec.model.path is not None:
        from mcusearch.model.load import model_format
        model_format(spec.resolve(spec.model.path))  # a file or SavedModel folder of a known format
    spec.dataset.check_files(spec.resolve, source)
    _check_knobs(spec, source)


def _check_knobs(spec: Spec, source: str) -> None:
    """The knob checks that need the converters or the model's conv layers."""
    ch = spec.knobs.channels
    if spec.model.path is not None and spec.model.path.suffix == ".tflite":
        return      # a .tflite base: preflight says which knobs it drops and checks the converters
    full = int(spec.model.params.get("filters", 32))
    if ch is not None and ch.per != "ratio":
        if spec.model.path is None and max(ch.values) > full:
            raise SpecError("knobs.channels.values",
                            f"{max(ch.values)} channels asked, but the model has {full} filters per conv", source)
        if spec.model.path is not None:
            from mcusearch.model.layout import file_layout
            try:
                layout = file_layout(spec.resolve(spec.model.path))
            except ValueError as e:
                raise SpecError("knobs.channels.per", f"{e}; `per: ratio` needs no layer names", source) from None
            if not layout.convs:
                raise SpecError("knobs.channels", "the model has no Conv2D layer to prune", source)
            if max(ch.values) > max(layout.filters):
                raise SpecError("knobs.channels.values", f"{max(ch.values)} channels asked, but the "
                                f"widest conv has {max(layout.filters)} filters", source)
    from mcusearch.convert import available_converters

    known = available_converters()
    for i, q in enumerate(spec.knobs.quantization):
        fmt = QUANT_FORMAT[q]
        if not any(fmt in known[c] for c in spec.knobs.converter):
            have = "; ".join(f"{c} supports {', '.join(sorted(known[c]))}" for c in spec.knobs.converter)
            raise SpecError(f"knobs.quantization[{i}]", f"{q} gives {fmt} models and no converter in "
                            f"knobs.converter takes them ({have}): drop {q} or add a converter with {fmt}",
                            source)


MAX_SPEC_BYTES = 1 << 20     # a spec is a page of YAML: 1 MiB is far beyond any real one
MAX_DEPTH = 50               # nesting of mappings and lists (search.yaml needs 4)
MAX_NODES = 100_000          # values in the document, aliases expanded (no "billion laughs")


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: a key given twice in one mapping is an error (PyYAML keeps
    the last silently), nesting deeper than :data:`MAX_DEPTH` is refused before the recursive
    composer overflows Python's stack, and an integer too long for Python to read names its line."""

    def compose_node(self, parent, index):  # noqa: D102 (PyYAML's hook)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(_at(mark, f"nested more than {MAX_DEPTH} levels deep"))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: D102
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
            if duplicate:
                raise yaml.YAMLError(_at(key_node.start_mark, f"key {key!r} is given twice "
                                                              "(each key once per mapping)"))
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):  # noqa: D102
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.YAMLError(_at(node.start_mark, f"number with {len(node.value)} digits is "
                                                      "too long")) from None


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)


def _at(mark, message: str) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: {message}" if mark else message


def _count_nodes(data: object, limit: int = MAX_NODES) -> int:
    """Values in ``data`` with shared (aliased) parts counted each time they appear; stops
    counting at ``limit`` + 1."""
    n, stack = 0, [data]
    while stack and n <= limit:
        item = stack.pop()
        n += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return n


def read_spec_text(path: Path) -> str:
    """The spec file as text: UTF-8 (a UTF-8 byte-order mark is allowed), not empty, not huge."""
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError("", f"{path.stat().st_size:,} bytes is not a spec (at most "
                            f"{MAX_SPEC_BYTES:,}); is this the right file?", str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError("", f"not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); save the "
                            "spec as UTF-8", str(path)) from None
    if "\x00" in text:
        raise SpecError("", "not a text file (it holds NUL bytes)", str(path))
    return text


def load_spec(path: str | Path) -> Spec:
    """Read, parse and validate a spec file; every problem is one :class:`SpecError`."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("", f"spec file not found: {path} (create one with `mcusearch init {path}`)")
    text = read_spec_text(path)
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(where, f"not valid YAML: {getattr(e, 'problem', None) or e}", str(path)) from None
    if data is None:
        raise SpecError("", "the spec is empty (no keys); `mcusearch init` writes a template",
                        str(path))
    if _count_nodes(data) > MAX_NODES:
        raise SpecError("", f"more than {MAX_NODES:,} values once aliases are expanded; "
                            "a spec needs far fewer", str(path))
    return parse_spec(data, str(path), path.resolve().parent)


TEMPLATE = """\
# mcusearch search spec. Validate with `mcusearch validate FILE`, run with `mcusearch run FILE`.
name: my-search

model:
  architecture: study_cnn        # built-in: the 2020 study's CNN (6 conv 3x3, 3 max-pools, dense 100)
  # path: my_model.keras         # or your own trained model instead of `architecture`: Keras 3 .keras,
                                 # tf-keras .h5 / SavedModel folder, or a .tflite (used as it is: only
                                 # converter, opt_level and boards apply). Used as trained: it is trained
                                 # further only if you give train.epochs (omit it for a model file)
  # trust_code: false            # true: load a file you trust whose layers run stored code (Lambda)
  params: {filters: 32, dense_units: 100}
  train: {epochs: 10, batch_size: 64, learning_rate: 0.001, seed: 0}
  retrain_epochs: 2              # fine-tuning after channel pruning (default of knobs.channels.retrain_epochs)
  representative_samples: 200    # calibration samples of int8 / int16x8 post-training quantization
  qat_epochs: 2                  # fine-tuning epochs of quantization-aware training (int8-qat)
  magnitude_schedule: {frequency: 50, begin_step: 0, initial_sparsity: 0.0}  # tfmot PolynomialDecay

dataset:
  name: watch                    # watch (smartwatch IMU, built in) | fashion_mnist | npz
  # path: data.npz               # npz: x_train, y_train, x_test, y_test (mcusearch.model.datasets)
  # task: classification        # or regression (y_* float targets) | autoencoder (targets = inputs;
                                 # anomaly_test 0/1 in the .npz gives the anomaly AUC); npz only
  # name: images                 # path: folder/<class>/*.png|jpg|bmp (or folder/train/<class>, folder/test/<class>)
  # image_size: [32, 32]         # height, width (bilinear resize); color_mode: grayscale | rgb | rgba
  # rescale: 0.00392156862745098 # pixel values x this (1/255)
  # name: csv                    # path: windows.csv: header; one window per row; a label column,
  # shape: [128, 3]              # the other columns the window flattened row-major; label_column: label
  # test_split: 0.2              # images / csv without train/test folders or a `split` column
  # calibration: calib.npz       # array x: the int8 calibration inputs (default: training samples)
  classes: [PEN, ABD, FEL, IR]   # keep only these classes
  probe_per_class: 5             # test inputs the firmware runs and checks, per class

target:
  boards: [qemu-m7]              # `mcusearch boards` lists them
  timeout_s: 300                 # a firmware run longer than this fails the trial

constraints:                     # omit any you do not need
  flash_kb: 512                  # whole firmware image
  ram_kb: 256
  deadline_ms: auto              # auto: one inference per input frame of the data set
  accuracy_min: 0.7
  accuracy_metric: accuracy      # what accuracy_min limits: accuracy | balanced_accuracy
  # metrics:                     # any quality metric: a floor for one maximised, a ceiling for one minimised
  #   f1_macro: {min: 0.8}       # classification: accuracy, balanced_accuracy, f1_macro, auc (two classes)
  #   mse: {max: 0.01}           # regression / autoencoder: mse, mae; anomaly_auc with anomaly labels

knobs:
  channels: {per: pair, values: [8, 16, 24, 32]}   # filters kept per conv pair (L1-norm pruning)
  # channels:                    # the full form:
  #   per: pair                  # pair|group: per conv group; layer: per conv; global: one count; ratio: keep ratio
  #   values: [8, 16, 24, 32]    # counts (ratios in (0, 1] for per: ratio); the full width = not pruned
  #   criterion: [l1]            # l1 | l2 | random | bn (BatchNorm scale): which filters go (several values: a search dimension)
  #   retrain_epochs: [2]        # re-training after removal; 0 = none (default: model.retrain_epochs)
  # magnitude: {sparsity: [0, 0.5, 0.9], epochs: [2]}   # tfmot magnitude pruning; 0 = off
  quantization: [float32, int8]  # also int16x8 (16-bit activations) and int8-qat (quantization-aware
                                 # training); the converters must take the format (mcusearch: float32, int8)
  opt_level: [-O2, -O3, -Os]
  converter: [mcusearch]         # mcusearch | mcusearch-lowmem (1-D models streamed: less RAM, more
                                 # instructions) | mcusearch-ref (reference kernels) | aidge (float32)

objectives:
  - {metric: model_flash_kb, direction: minimize}
  - {metric: model_ram_kb, direction: minimize}
  - {metric: instructions, direction: minimize}
  - {metric: accuracy, direction: maximize}

catalog:                         # the MCUs a result is matched against (`mcusearch boards` for boards)
  margin: 0.1                    # keep 10 % of flash and RAM free
  # parts: [{part: STM32F446RE, price_usd: 2.5, price_source: "my distributor quote, 2026-11"}]

search:
  sampler: tpe                   # tpe | nsga2 | random | grid (tpe found 95 % of a grid's front
                                 # hypervolume in a median 27 trials, NSGA-II in 52: bench/overnight.py)
  n_trials: 20
  # timeout_s: 28800             # stop after 8 hours (or `mcusearch run --timeout 8h`)
  # isolate: true                # each trial in a watched child process: a crash, a hang or too
  # stage_timeout_s: 7200        #   much memory fails that trial only (its log: trials/*/child.log)
  # memory_limit_mb: 4000        #   resident memory of a trial's process (default: no limit)
  seed: 0
  run_dir: reports/my-search     # study.db, trial artifacts, report.html
"""
