"""Generate the corpus of malformed specs and bad files that `mcusearch validate` and `run` must
refuse with one line naming the key or file, exit 2 and nothing written (tests/test_badinput.py).

``python tests/badinput/make_corpus.py DIR`` writes one folder per case under DIR: ``spec.yaml``
(or the bad file given as the spec) and the files it names. Every case starts from a small valid
spec (:data:`BASE`: an .npz data set of 8x8x1 samples in 3 classes, the built-in CNN) and breaks
one thing: the file's bytes, one key, or one file the spec names.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

SHAPE = (8, 8, 1)
N_CLASSES = 3

BASE: dict = {
    "name": "bad-input",
    "model": {"architecture": "study_cnn", "params": {"filters": 4, "dense_units": 8},
              "train": {"epochs": 1, "batch_size": 16}},
    "dataset": {"name": "npz", "path": "data.npz", "probe_per_class": 1},
    "target": {"boards": ["qemu-m7"], "timeout_s": 60},
    "constraints": {"flash_kb": 1024, "ram_kb": 512, "deadline_ms": 100},
    "knobs": {"quantization": ["int8"], "opt_level": ["-O2"], "converter": ["mcusearch"]},
    "search": {"sampler": "random", "n_trials": 1, "run_dir": "run", "cache_dir": "cache"},
}


@dataclass
class Case:
    """One bad input: ``expect`` is text the error line must hold (the key or the file)."""

    name: str
    expect: str
    spec: dict | None = None            # the spec as data (None: ``raw`` is the spec file)
    raw: bytes | None = None            # the spec file's bytes
    files: dict[str, bytes | Callable[[Path], None]] = field(default_factory=dict)
    spec_name: str = "spec.yaml"        # the path given on the command line


def _with(**changes) -> dict:
    """BASE with dotted keys (``a__b``) set; a value of ``...`` deletes the key."""
    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node, keys = d, dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is ...:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return d


def _yaml(d: dict) -> str:
    return yaml.safe_dump(d, sort_keys=False)


# ---- data files ---------------------------------------------------------------------------------

def _arrays(**changes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = {"x_train": rng.normal(size=(30, *SHAPE)).astype(np.float32),
         "y_train": np.arange(30) % N_CLASSES,
         "x_test": rng.normal(size=(12, *SHAPE)).astype(np.float32),
         "y_test": np.arange(12) % N_CLASSES,
         "class_names": np.array(["a", "b", "c"])}
    for k, v in changes.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    return a


def _npz(**changes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as f:
            np.savez(f, **_arrays(**changes))
    return write


def _nan_x() -> np.ndarray:
    x = _arrays()["x_train"].copy()
    x[2, 1, 1, 0] = np.nan
    return x


def _good_npz_bytes(tmp: Path) -> bytes:
    p = tmp / "good.npz"
    _npz()(p)
    return p.read_bytes()


# ---- model files (tf-keras, built once per corpus) ---------------------------------------------

def _keras_models(out: Path) -> dict[str, Path]:
    """A good tf-keras .h5 for the data, one taking other inputs, one with other outputs."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as k

    def model(shape, classes):
        inp = k.Input(shape)
        x = k.layers.Conv2D(2, 3, padding="same", activation="relu")(inp)
        x = k.layers.GlobalAveragePooling2D()(x)
        return k.Model(inp, k.layers.Dense(classes, activation="softmax")(x))

    paths = {"good": out / "good.h5", "wrong_input": out / "wrong_input.h5",
             "wrong_output": out / "wrong_output.h5"}
    model(SHAPE, N_CLASSES).save(paths["good"])
    model((10, 10, 1), N_CLASSES).save(paths["wrong_input"])
    model(SHAPE, 5).save(paths["wrong_output"])
    return paths


def _file_model(name: str) -> dict:
    return _with(model={"path": name})


# ---- the corpus -----------------------------------------------------------------------------------

def cases(models: dict[str, Path], good_npz: bytes) -> list[Case]:
    """Every case; ``models`` are the tf-keras files of :func:`_keras_models`."""
    good = _yaml(BASE)
    laughs = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
              "knobs: {opt_level: [*d, *d, *d, *d, *d, *d, *d, *d, *d]}\n")
    out = [
        # the spec file itself
        Case("latin1", "spec.yaml", raw=("name: caf\xe9\n" + good).encode("latin-1")),
        Case("utf16", "spec.yaml", raw=good.encode("utf-16")),
        Case("binary", "spec.yaml", raw=bytes(range(256)) * 4),
        Case("nul_bytes", "spec.yaml", raw=good.encode() + b"\x00\x00"),
        Case("nested_list_10000", "spec.yaml", raw=("name: " + "[" * 10_000 + "]" * 10_000).encode()),
        Case("nested_maps_200", "spec.yaml", raw=("{a: " * 200 + "1" + "}" * 200).encode()),
        Case("duplicate_top_key", "spec.yaml", raw=(good + "model: {architecture: study_cnn}\n").encode()),
        Case("duplicate_nested_key", "n_trials", raw=good.replace("n_trials: 1", "n_trials: 1\n  n_trials: 2").encode()),
        Case("empty", "spec.yaml", raw=b""),
        Case("comments_only", "spec.yaml", raw=b"# a spec\n\n# nothing here\n"),
        Case("whitespace_only", "spec.yaml", raw=b"\n   \n\t\n"),
        Case("huge_integer", "spec.yaml", raw=good.replace("n_trials: 1", "n_trials: 1" + "0" * 5000).encode()),
        Case("python_tag", "spec.yaml", raw=b"name: !!python/object/apply:os.system [echo hi]\n"),
        Case("unclosed_bracket", "spec.yaml", raw=b"knobs: {opt_level: [-O2\n"),
        Case("bad_indentation", "spec.yaml", raw=b"search:\n  n_trials: 2\n sampler: tpe\n"),
        Case("top_level_list", "spec.yaml", raw=b"- a\n- b\n"),
        Case("top_level_scalar", "spec.yaml", raw=b"just text\n"),
        Case("alias_bomb", "spec.yaml", raw=laughs.encode()),
        Case("over_1_mib", "spec.yaml", raw=(good + "#" * (1 << 20)).encode()),
        Case("missing_spec", "nope.yaml", spec_name="nope.yaml"),
        Case("spec_is_a_folder", "folder.yaml", spec_name="folder.yaml",
             files={"folder.yaml/x": b""}),
        # keys and values
        Case("unknown_top_key", "searhc", spec={**BASE, "searhc": {}}),
        Case("unknown_nested_key", "search.n_trails", spec=_with(search__n_trails=2)),
        Case("flash_inf", "constraints.flash_kb", spec=_with(constraints__flash_kb=float("inf"))),
        Case("ram_minus_inf", "constraints.ram_kb", spec=_with(constraints__ram_kb=float("-inf"))),
        Case("flash_huge", "constraints.flash_kb", spec=_with(constraints__flash_kb=1e300)),
        Case("deadline_nan", "constraints.deadline_ms", spec=_with(constraints__deadline_ms=float("nan"))),
        Case("deadline_negative", "constraints.deadline_ms", spec=_with(constraints__deadline_ms=-1)),
        Case("deadline_zero", "constraints.deadline_ms", spec=_with(constraints__deadline_ms=0)),
        Case("deadline_word", "constraints.deadline_ms", spec=_with(constraints__deadline_ms="fast")),
        Case("accuracy_min_zero", "constraints.accuracy_min", spec=_with(constraints__accuracy_min=0)),
        Case("accuracy_min_above_1", "constraints.accuracy_min", spec=_with(constraints__accuracy_min=1.5)),
        Case("accuracy_min_nan", "constraints.accuracy_min", spec=_with(constraints__accuracy_min=float("nan"))),
        Case("metric_floor_nan", "constraints.metrics", spec=_with(constraints__metrics={"f1_macro": {"min": float("nan")}})),
        Case("learning_rate_inf", "model.train.learning_rate", spec=_with(model__train__learning_rate=float("inf"))),
        Case("learning_rate_zero", "model.train.learning_rate", spec=_with(model__train__learning_rate=0)),
        Case("search_timeout_1e308", "search.timeout_s", spec=_with(search__timeout_s=1e308)),
        Case("search_timeout_negative", "search.timeout_s", spec=_with(search__timeout_s=-5)),
        Case("target_timeout_inf", "target.timeout_s", spec=_with(target__timeout_s=float("inf"))),
        Case("target_timeout_zero", "target.timeout_s", spec=_with(target__timeout_s=0)),
        Case("search_seed_2_70", "search.seed", spec=_with(search__seed=2**70)),
        Case("search_seed_negative", "search.seed", spec=_with(search__seed=-1)),
        Case("train_seed_2_70", "model.train.seed", spec=_with(model__train__seed=2**70)),
        Case("split_seed_2_40", "dataset.split_seed", spec=_with(dataset__split_seed=2**40)),
        Case("n_trials_zero", "search.n_trials", spec=_with(search__n_trials=0)),
        Case("n_trials_1e12", "search.n_trials", spec=_with(search__n_trials=10**12)),
        Case("n_trials_word", "search.n_trials", spec=_with(search__n_trials="many")),
        Case("batch_size_zero", "model.train.batch_size", spec=_with(model__train__batch_size=0)),
        Case("batch_size_1e12", "model.train.batch_size", spec=_with(model__train__batch_size=10**12)),
        Case("epochs_negative", "model.train.epochs", spec=_with(model__train__epochs=-1)),
        Case("population_one", "search.population_size", spec=_with(search__population_size=1)),
        Case("margin_one", "catalog.margin", spec=_with(catalog={"margin": 1})),
        Case("channels_inf", "knobs.channels", spec=_with(knobs__channels={"per": "pair", "values": [float("inf")]})),
        Case("sparsity_nan", "knobs.magnitude", spec=_with(knobs__magnitude={"sparsity": [float("nan")]})),
        Case("unknown_board", "target.boards", spec=_with(target__boards=["qemu-m99"])),
        Case("unknown_converter", "knobs.converter", spec=_with(knobs__converter=["x-cube"])),
        # the data set
        Case("data_missing", "dataset.path", spec=_with(dataset__path="absent.npz")),
        Case("data_text", "dataset.path", spec=BASE, files={"data.npz": b"x_train,y_train\n1,2\n"}),
        Case("data_truncated", "dataset.path", spec=BASE, files={"data.npz": good_npz[:len(good_npz) // 2]}),
        Case("data_missing_keys", "dataset.path", spec=BASE, files={"data.npz": _npz(x_test=None, y_test=None)}),
        Case("data_xy_length", "dataset.path", spec=BASE, files={"data.npz": _npz(y_train=np.arange(29) % 3)}),
        Case("data_nan", "dataset.path", spec=BASE, files={"data.npz": _npz(x_train=_nan_x())}),
        Case("data_label_high", "dataset.path", spec=BASE, files={"data.npz": _npz(y_test=np.arange(12) % 3 + 1)}),
        Case("data_label_negative", "dataset.path", spec=BASE, files={"data.npz": _npz(y_train=np.arange(30) % 3 - 1)}),
        Case("data_one_class", "dataset.path", spec=BASE, files={"data.npz": _npz(y_train=np.zeros(30, int))}),
        Case("data_string_x", "dataset.path", spec=BASE, files={"data.npz": _npz(x_train=np.array(["a"] * 30))}),
        Case("classes_empty", "dataset.classes", spec=_with(dataset__classes=[])),
        Case("classes_unknown", "dataset.classes", spec=_with(dataset__classes=["a", "zebra"])),
        Case("calibration_missing", "dataset.calibration", spec=_with(dataset__calibration="calib.npz")),
        # the model
        Case("model_missing", "model.path", spec=_file_model("absent.h5")),
        Case("model_text", "model.path", spec=_file_model("model.h5"), files={"model.h5": b"not a model\n" * 10}),
        Case("model_truncated", "model.path", spec=_file_model("model.h5"),
             files={"model.h5": models["good"].read_bytes()[:2000]}),
        Case("model_input_shape", "model.path", spec=_file_model("model.h5"),
             files={"model.h5": models["wrong_input"].read_bytes()}),
        Case("model_output_classes", "model.path", spec=_file_model("model.h5"),
             files={"model.h5": models["wrong_output"].read_bytes()}),
        Case("params_unknown", "model.params", spec=_with(model__params={"filters": 4, "widht": 3})),
        Case("params_huge", "model.params", spec=_with(model__params={"dense_units": 10**12})),
        Case("params_inf", "model.params", spec=_with(model__params={"dropout": float("inf")})),
        Case("architecture_unknown", "model.architecture", spec=_with(model__architecture="resnet999")),
        # run folder, cache, storage
        Case("run_dir_is_a_file", "search.run_dir", spec=BASE, files={"run": b"a file"}),
        Case("run_dir_under_a_file", "search.run_dir", spec=_with(search__run_dir="blocker/run"),
             files={"blocker": b"a file"}),
        Case("cache_dir_is_a_file", "search.cache_dir", spec=BASE, files={"cache": b"a file"}),
        Case("storage_unknown_scheme", "search.storage", spec=_with(search__storage="foo://host/db")),
        Case("storage_not_a_url", "search.storage", spec=_with(search__storage="my study")),
        Case("storage_sqlite_unreachable", "search.storage",
             spec=_with(search__storage="sqlite:////nonexistent-mcusearch-dir/x/study.db")),
    ]
    return out


def write_case(root: Path, case: Case) -> Path:
    """The case's folder: its spec and files (the good data set unless the case replaces it)."""
    d = root / case.name
    d.mkdir(parents=True)
    _npz()(d / "data.npz")
    for rel, content in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_dir():
            continue
        if callable(content):
            content(p)
        else:
            p.write_bytes(content)
    if case.raw is not None:
        (d / case.spec_name).write_bytes(case.raw)
    elif case.spec is not None:
        (d / case.spec_name).write_text(_yaml(case.spec))
    return d


def make_corpus(root: Path) -> list[Case]:
    """Write every case under ``root`` (which must not exist yet) and return them."""
    root.mkdir(parents=True)
    shared = root / "_models"
    shared.mkdir()
    corpus = cases(_keras_models(shared), _good_npz_bytes(shared))
    for case in corpus:
        write_case(root, case)
    (root / "_good").mkdir()
    (root / "_good" / "spec.yaml").write_text(_yaml(BASE))
    _npz()(root / "_good" / "data.npz")
    (root / "cases.json").write_text(json.dumps(
        [{"name": c.name, "expect": c.expect, "spec": c.spec_name} for c in corpus], indent=1))
    return corpus


if __name__ == "__main__":
    made = make_corpus(Path(sys.argv[1]))
    print(f"{len(made)} cases in {sys.argv[1]}")
