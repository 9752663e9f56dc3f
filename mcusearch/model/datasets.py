"""Data sets: the built-in smartwatch IMU set (default), Fashion-MNIST, and a user's data: an
.npz, a folder of class sub-folders of images, or a CSV of windows.

Every loader returns a :class:`~mcusearch.model.Dataset` with float32 inputs and, by the task,
integer labels (classification) or float targets (regression; an autoencoder's targets are its
inputs), already split into train and test. A separate int8 calibration set (``calibration``:
an .npz with ``x``) rides along. Loading is deterministic: the same
:class:`~mcusearch.model.DatasetConfig` always gives the same arrays.

Layouts of a user's data:

* ``npz``: ``x_train``, ``x_test`` (N, ...) numbers (N, H, W gets a channel axis: NHWC);
  classification: ``y_train``, ``y_test`` integer labels (or one-hot), optional
  ``class_names`` (strings) and ``frame_period_s``; regression: ``y_*`` float targets (N, ...);
  autoencoder: ``y_*`` optional (the targets are the inputs), optional ``anomaly_test``
  (0 normal / 1 anomalous per test sample) for the anomaly-detection AUC.
* ``images``: ``path/train/<class>/*`` and ``path/test/<class>/*``, or ``path/<class>/*`` and
  ``test_split`` (a seeded share of every class goes to the test split). Class names are the
  sorted sub-folder names (Keras ``image_dataset_from_directory``); files ending .png, .jpg,
  .jpeg or .bmp are read with Pillow, converted to ``color_mode`` (grayscale, rgb, rgba),
  resized to ``image_size`` (bilinear, aspect ratio not kept) and scaled by ``rescale``.
* ``csv``: a header row, one row per window: ``label_column`` holds the class (a name, or an
  integer index), every other column one value of the window flattened in row-major (C) order,
  reshaped to ``shape``; an optional ``split`` column (``train`` / ``test``) gives the split,
  otherwise ``test_split`` does, as for images.

This module imports no TensorFlow (it is used on cache hits, which must stay fast).
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.util
import logging
import struct
from pathlib import Path

import numpy as np

from mcusearch.errors import SpecError
from mcusearch.model import Dataset, DatasetConfig

log = logging.getLogger("mcusearch.model")

SUBSAMPLE_SEED = 0  # the stratified subsampling is seeded: max_train/max_test are reproducible

# ---------------------------------------------------------------------------------------------
# "watch": seglearn's smartwatch shoulder-exercise recordings, turned into 30x20 spectrogram frames
# ---------------------------------------------------------------------------------------------

# Sampling rate of the recordings. Sources (all agree, 50 Hz): the docstring of
# seglearn.datasets.load_watch in the installed seglearn 1.2.5 ("sampled at 50 Hz"); seglearn's
# own examples (plot_padtrunc.py: "sampling rate is 50 Hz"; the time-series example: fs = 50);
# and the README of the full data set the file is cut from (dmbee/SPAR-dataset: "6 axis inertial
# data collected at 50 Hz"). Consistent with the data: 20 repetitions per recording of 947-2,618
# samples = 19-52 s at 50 Hz, i.e. 1-2.6 s per shoulder-exercise repetition.
WATCH_RATE_HZ = 50.0
WATCH_WINDOW = 84            # samples per input window (1.68 s)
WATCH_STRIDE = 16            # a new window (= one inference) every 16 samples (0.32 s)
WATCH_FRAME = 8              # samples per FFT frame
WATCH_HOP = 4                # samples between FFT frames
WATCH_FRAMES = 20            # frames per window: (84 - 8) / 4 + 1
WATCH_BINS = 5               # rfft of 8 samples has 5 bins (0 .. Nyquist); all are kept
WATCH_DEFAULT_CLASSES = ("PEN", "ABD", "FEL", "IR")
WATCH_TRAIN_SUBJECTS = (1, 2, 3, 4, 5, 6, 7, 8)
WATCH_TEST_SUBJECTS = (9, 10)
assert (WATCH_WINDOW - WATCH_FRAME) // WATCH_HOP + 1 == WATCH_FRAMES
assert WATCH_STRIDE % WATCH_HOP == 0

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

BUILTIN = ("watch", "fashion_mnist", "npz", "images", "csv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}  # -> Pillow's image mode


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load, split, filter classes, subsample and attach the calibration set as ``cfg`` says."""
    loaders = {"watch": _load_watch, "fashion_mnist": _load_fashion_mnist, "npz": _load_npz,
               "images": _load_images, "csv": _load_csv}
    if cfg.name not in loaders:
        raise SpecError("dataset.name", f"unknown data set {cfg.name!r}; built-ins: "
                        + ", ".join(BUILTIN))
    if _task(cfg) != "classification" and cfg.name != "npz":
        raise SpecError("dataset.task", f"{cfg.task} data come as an .npz (dataset.name npz); "
                        f"{cfg.name} holds classes")
    ds = _subsample(loaders[cfg.name](cfg), cfg.max_train, cfg.max_test)
    if getattr(cfg, "calibration", None) is not None:
        ds = dataclasses.replace(ds, x_calibration=load_calibration(cfg.calibration, ds.input_shape))
    log.info("dataset %s (%s): %d train, %d test, input %s, %d classes", ds.name, _task(ds),
             len(ds.y_train), len(ds.y_test), ds.input_shape, ds.n_classes)
    return ds


def _task(obj) -> str:
    """The task of a DatasetConfig or Dataset (classification for one without the field)."""
    return getattr(obj, "task", "classification")


def load_calibration(path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """The int8 calibration inputs: array ``x`` of an .npz, samples shaped like the data's."""
    arrays = _read_npz(Path(path), "dataset.calibration")
    if "x" not in arrays:
        raise SpecError("dataset.calibration", f"needs an array `x`; it has "
                        f"{', '.join(sorted(arrays)) or 'none'}", source=str(path))
    x = _inputs(arrays["x"], "x", lambda m: SpecError("dataset.calibration", m, source=str(path)))
    if x.shape[1:] != tuple(input_shape):
        raise SpecError("dataset.calibration", f"samples are {x.shape[1:]}, the data set's are "
                        f"{tuple(input_shape)}", source=str(path))
    return x


def calibration_inputs(ds: Dataset, n: int) -> tuple[np.ndarray, str]:
    """The inputs post-training quantisation calibrates on, and how they were chosen: the
    separate calibration set when given (all of it), else ``n`` training samples (stratified by
    class for classification, a seeded draw otherwise)."""
    if ds.x_calibration is not None:
        return ds.x_calibration, f"{len(ds.x_calibration)} samples of the separate calibration set"
    idx = (stratified_indices(ds.y_train, n) if ds.task == "classification"
           else _seeded_indices(len(ds.x_train), n))
    return ds.x_train[idx], f"{len(idx)} training samples"


def watch_data_path() -> Path:
    """The ``watch_dataset.npy`` file inside the installed seglearn (seglearn is never imported)."""
    spec = importlib.util.find_spec("seglearn")
    if spec is None or not spec.submodule_search_locations:
        raise SpecError("dataset.name", "the 'watch' data set needs the seglearn package "
                        "(pip install --no-deps seglearn==1.2.5; only its data file is used)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "watch_dataset.npy"
        if p.is_file():
            return p
    raise SpecError("dataset.name", "seglearn is installed but has no data/watch_dataset.npy")


def hanning(n: int) -> np.ndarray:
    """The (symmetric) Hanning window, numpy's ``np.hanning``: 0.5 - 0.5 cos(2 pi k / (n - 1)).

    Chosen over the periodic Hann window by measurement (study CNN, 10 epochs, seeds 0/1, one
    global standardisation): 0.876/0.855 test accuracy with it, 0.822/0.878 with the periodic
    window."""
    return np.hanning(n)


def watch_spectrogram(rec: np.ndarray) -> np.ndarray:
    """Log-magnitude spectra of one recording: (n_frames, 6 axes, 5 bins), a frame every 4
    samples."""
    rec = np.asarray(rec, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(rec, WATCH_FRAME, axis=0)[::WATCH_HOP]
    # frames: (n_frames, axes, 8)
    spec = np.fft.rfft(frames * hanning(WATCH_FRAME), axis=-1)[..., :WATCH_BINS]
    return np.log1p(np.abs(spec))


def watch_windows(rec: np.ndarray) -> np.ndarray:
    """The model inputs of one recording: (n_windows, 30, 20), rows = axis-major (axis*5 + bin)."""
    spec = watch_spectrogram(rec)               # (n_frames, A, 5)
    n_axes = spec.shape[1]
    n_win = (len(rec) - WATCH_WINDOW) // WATCH_STRIDE + 1
    if n_win <= 0:
        return np.zeros((0, n_axes * WATCH_BINS, WATCH_FRAMES), np.float32)
    step = WATCH_STRIDE // WATCH_HOP            # window k starts at frame 4k
    out = np.stack([spec[k * step:k * step + WATCH_FRAMES] for k in range(n_win)])
    # (n_win, 20 frames, A, 5) -> (n_win, A, 5, 20) -> (n_win, A*5, 20)
    out = out.transpose(0, 2, 3, 1).reshape(n_win, n_axes * WATCH_BINS, WATCH_FRAMES)
    return out.astype(np.float32)


def prepare_watch(classes: tuple[str, ...] | None = None) -> dict:
    """All windows of the chosen classes, unstandardised, with their subject numbers.

    Returns a dict: x (N, 30, 20) float32, y (N,) int64 (index into ``class_names``),
    subject (N,) int64, class_names tuple.
    """
    raw = np.load(watch_data_path(), allow_pickle=True).item()
    all_names = tuple(str(s) for s in raw["y_labels"])
    names = tuple(classes) if classes else WATCH_DEFAULT_CLASSES
    _check_class_names(names, all_names)
    xs, ys, subs = [], [], []
    for rec, label, subject in zip(raw["X"], raw["y"], raw["subject"]):
        name = all_names[int(label)]
        if name not in names:
            continue
        w = watch_windows(rec)
        xs.append(w)
        ys.append(np.full(len(w), names.index(name), np.int64))
        subs.append(np.full(len(w), int(subject), np.int64))
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "subject": np.concatenate(subs),
            "class_names": names}


def _load_watch(cfg: DatasetConfig) -> Dataset:
    d = prepare_watch(cfg.classes)
    train = np.isin(d["subject"], WATCH_TRAIN_SUBJECTS)
    test = np.isin(d["subject"], WATCH_TEST_SUBJECTS)
    x_train, x_test = d["x"][train], d["x"][test]
    # Standardise with one mean and one standard deviation from the training split. (Measured:
    # standardising each of the 30 rows separately lost 5-10 points of test accuracy: it
    # blows up the near-silent high-frequency rows.)
    mean = float(x_train.astype(np.float64).mean())
    std = float(x_train.astype(np.float64).std()) + 1e-12
    x_train = ((x_train - mean) / std)[..., None].astype(np.float32)
    x_test = ((x_test - mean) / std)[..., None].astype(np.float32)
    desc = (
        "seglearn 1.2.5 watch_dataset.npy: smartwatch 6-axis IMU (ax ay az [g], wx wy wz [rad/s]), "
        f"sampled at {WATCH_RATE_HZ:g} Hz (rate from seglearn's load_watch docstring and examples "
        "and the SPAR data set README), subjects performing sets of 20 shoulder-exercise "
        f"repetitions. Classes {', '.join(d['class_names'])}. Preprocessing after the 2020 study's "
        f"radar frames: sliding windows of {WATCH_WINDOW} samples every {WATCH_STRIDE} samples "
        f"({WATCH_WINDOW / WATCH_RATE_HZ:.2f} s every {WATCH_STRIDE / WATCH_RATE_HZ:.2f} s, the "
        f"real-time deadline); each window cut into {WATCH_FRAMES} Hanning-windowed (np.hanning) "
        "frames "
        f"of {WATCH_FRAME} samples (hop {WATCH_HOP}), rfft, all {WATCH_BINS} bins, log1p of the "
        f"magnitude; rows = 6 axes x {WATCH_BINS} bins (axis-major), columns = frames -> a "
        f"{6 * WATCH_BINS}x{WATCH_FRAMES}x1 frame; standardised as (v - {mean:.6g}) / {std:.6g}, "
        "the training split's mean and standard deviation. Split by subject: train subjects "
        f"{_ranges(WATCH_TRAIN_SUBJECTS)}, test subjects {_ranges(WATCH_TEST_SUBJECTS)} "
        "(no subject in both)."
    )
    return Dataset(
        name="watch", x_train=x_train, y_train=d["y"][train], x_test=x_test,
        y_test=d["y"][test], class_names=d["class_names"], description=desc,
        frame_period_s=WATCH_STRIDE / WATCH_RATE_HZ,
    )


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian package dataset-fashion-mnist, idx format)
# ---------------------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed) into an array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if zero != 0 or dtype_code not in dtypes:
        raise ValueError(f"{path}: not an idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[dtype_code], offset=4 + 4 * ndim)
    return arr.reshape(dims)


def _load_fashion_mnist(cfg: DatasetConfig) -> Dataset:
    root = Path(cfg.path) if cfg.path else FASHION_DIR
    files = {}
    for key, stem in (("x_train", "train-images-idx3-ubyte"),
                      ("y_train", "train-labels-idx1-ubyte"),
                      ("x_test", "t10k-images-idx3-ubyte"),
                      ("y_test", "t10k-labels-idx1-ubyte")):
        cands = [root / (stem + ".gz"), root / stem]
        found = next((p for p in cands if p.is_file()), None)
        if found is None:
            raise SpecError("dataset.path", f"Fashion-MNIST file {stem}(.gz) not found in {root} "
                            "(install the Debian package dataset-fashion-mnist or set "
                            "dataset.path to a folder with the four idx files)", source=str(root))
        files[key] = found
    arrays = {k: read_idx(p) for k, p in files.items()}
    x_train = (arrays["x_train"].astype(np.float32) / 255.0)[..., None]
    x_test = (arrays["x_test"].astype(np.float32) / 255.0)[..., None]
    ds = Dataset(
        name="fashion_mnist", x_train=x_train, y_train=arrays["y_train"].astype(np.int64),
        x_test=x_test, y_test=arrays["y_test"].astype(np.int64), class_names=FASHION_CLASSES,
        description=f"Fashion-MNIST from {root}: 28x28x1 grey images scaled to [0, 1]; the "
                    "official 60,000/10,000 train/test split.",
        frame_period_s=None,
    )
    return _select_classes(ds, cfg.classes)


# ---------------------------------------------------------------------------------------------
# A user's .npz
# ---------------------------------------------------------------------------------------------

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path: Path, key: str) -> dict[str, np.ndarray]:
    """Every array of an .npz (no pickles: a data file must not be able to run code)."""
    def bad(msg: str) -> SpecError:
        return SpecError(key, msg, source=str(path))

    if not path.is_file():
        raise bad("file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise bad("the file holds object arrays (pickled data); store numbers, and "
                      "class_names as a string array (np.array([...], dtype=str))") from None
        raise bad(f"not a readable .npz file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile, OSError, ...
        raise bad(f"not a readable .npz file ({type(e).__name__}: {e})") from None


def _inputs(x: np.ndarray, name: str, bad) -> np.ndarray:
    """Model inputs as float32: (N, features), (N, H, W) -> NHWC with one channel, or NHWC."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise bad(f"{name} must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]       # NHW -> NHWC with one channel
    elif x.ndim not in (2, 4):
        raise bad(f"{name} must be (N, features), NHW (3-D) or NHWC (4-D), got shape {x.shape}")
    if len(x) == 0:
        raise bad(f"{name} is empty")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise bad(f"{name} contains NaN or infinite values")
    return x


def _labels(y: np.ndarray, n: int, name: str, bad) -> np.ndarray:
    """Integer class labels (N,) from integer, integral float or one-hot labels."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] < 2:
            raise bad(f"{name} has shape {y.shape}: one-hot labels need >= 2 columns")
        y = np.argmax(y, axis=1)
    elif y.ndim != 1:
        raise bad(f"{name} must be integer labels (N,) or one-hot (N, classes), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise bad(f"{name} holds non-integer labels")
    elif y.dtype.kind not in "iub":
        raise bad(f"{name} must be integer labels, got dtype {y.dtype}")
    if len(y) != n:
        raise bad(f"{name} has {len(y)} labels for {n} samples")
    return y.astype(np.int64)


def _targets(y: np.ndarray | None, x: np.ndarray, name: str, task: str, bad) -> np.ndarray:
    """Float regression targets (N, ...); an autoencoder's default to its inputs."""
    if y is None:
        if task == "autoencoder":
            return x
        raise bad(f"missing array {name} (regression targets)")
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise bad(f"{name} must be numeric targets, got dtype {y.dtype}")
    if y.ndim == 1:
        y = y[:, None]
    if len(y) != len(x):
        raise bad(f"{name} has {len(y)} targets for {len(x)} samples")
    y = y.astype(np.float32)
    if not np.isfinite(y).all():
        raise bad(f"{name} contains NaN or infinite values")
    return y


def _anomaly_labels(arrays: dict, n_test: int, bad) -> np.ndarray | None:
    """``anomaly_test``: 0 (normal) / 1 (anomalous) per test sample, both present; or None."""
    if "anomaly_test" not in arrays:
        return None
    a = np.asarray(arrays["anomaly_test"]).reshape(-1)
    if len(a) != n_test or not np.isin(a, (0, 1)).all():
        raise bad(f"anomaly_test must hold 0 (normal) or 1 (anomalous) for each of the {n_test} "
                  f"test samples, got {len(a)} values {np.unique(a)[:5].tolist()}")
    if len(np.unique(a)) < 2:
        raise bad("anomaly_test needs both normal (0) and anomalous (1) test samples")
    return a.astype(np.int64)


def _load_npz(cfg: DatasetConfig) -> Dataset:
    if cfg.path is None:
        raise SpecError("dataset.path", "dataset 'npz' needs a path to a .npz file with "
                        + ", ".join(NPZ_KEYS))
    path = Path(cfg.path)

    def bad(msg: str) -> SpecError:
        return SpecError("dataset.path", msg, source=str(path))

    arrays = _read_npz(path, "dataset.path")
    need = NPZ_KEYS if _task(cfg) != "autoencoder" else ("x_train", "x_test")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise bad(f"missing array(s) {', '.join(missing)}; it has "
                  f"{', '.join(sorted(arrays)) or 'none'} (needs {', '.join(need)})")
    xs = {split: _inputs(arrays[f"x_{split}"], f"x_{split}", bad) for split in ("train", "test")}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise bad(f"x_train samples are {xs['train'].shape[1:]} but x_test samples are "
                  f"{xs['test'].shape[1:]}")
    period = None
    if "frame_period_s" in arrays:
        period = float(np.asarray(arrays["frame_period_s"]).reshape(-1)[0])
    if _task(cfg) != "classification":
        if cfg.classes:
            raise SpecError("dataset.classes", f"only for classification; the task is {cfg.task}")
        ys = {s: _targets(arrays.get(f"y_{s}"), xs[s], f"y_{s}", cfg.task, bad)
              for s in ("train", "test")}
        anomaly = _anomaly_labels(arrays, len(xs["test"]), bad)
        what = "targets = inputs" if cfg.task == "autoencoder" and "y_train" not in arrays \
            else f"targets {ys['train'].shape[1:]}"
        return Dataset(
            name="npz", x_train=xs["train"], y_train=ys["train"], x_test=xs["test"],
            y_test=ys["test"], class_names=(), task=cfg.task, anomaly_test=anomaly,
            description=f"user data set {path.name} ({cfg.task}, {what}): inputs used as stored "
                        "(no scaling)" + (f"; anomaly labels of the test samples: "
                                          f"{int(anomaly.sum())} anomalous of {len(anomaly)}"
                                          if anomaly is not None else ""),
            frame_period_s=period)
    ys = {s: _labels(arrays[f"y_{s}"], len(xs[s]), f"y_{s}", bad) for s in ("train", "test")}
    names = _class_names(arrays, ys, bad)
    ds = Dataset(
        name="npz", x_train=xs["train"], y_train=ys["train"], x_test=xs["test"],
        y_test=ys["test"], class_names=names,
        description=f"user data set {path.name}: inputs used as stored (no scaling), "
                    f"{len(names)} classes",
        frame_period_s=period,
    )
    return _select_classes(ds, cfg.classes)


def _class_names(arrays: dict, ys: dict, bad) -> tuple[str, ...]:
    top = int(max(ys["train"].max(), ys["test"].max()))
    if int(min(ys["train"].min(), ys["test"].min())) < 0:
        raise bad("labels must be >= 0")
    if "class_names" not in arrays:
        return tuple(str(i) for i in range(top + 1))
    names = tuple(str(s) for s in np.asarray(arrays["class_names"]).reshape(-1))
    if len(set(names)) != len(names):
        raise bad("class_names has duplicates")
    if top >= len(names):
        raise bad(f"label {top} but only {len(names)} class_names")
    return names


# ---------------------------------------------------------------------------------------------
# A folder of class sub-folders of images
# ---------------------------------------------------------------------------------------------

def _class_dirs(root: Path, bad) -> dict[str, list[Path]]:
    """Class name (sub-folder) -> its image files, sorted; classes in sorted order."""
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(dirs) < 2:
        raise bad(f"{root} needs at least 2 class sub-folders, found {len(dirs)}")
    out = {}
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise bad(f"class folder {d} holds no {'/'.join(IMAGE_SUFFIXES)} image")
        out[d.name] = files
    return out


def _read_images(files: list[Path], cfg: DatasetConfig, bad) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    mode = COLOR_MODES[cfg.color_mode]
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert(mode)
                if cfg.image_size is not None:
                    h, w = cfg.image_size
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, np.float32)
        except (UnidentifiedImageError, OSError) as e:
            raise bad(f"cannot read image {f}: {e}") from None
        a = a[..., None] if a.ndim == 2 else a
        if out and a.shape != out[0].shape:
            raise bad(f"{f} is {a.shape[1]}x{a.shape[0]} but {files[0]} is "
                      f"{out[0].shape[1]}x{out[0].shape[0]}: give dataset.image_size")
        out.append(a)
    return np.stack(out) * np.float32(cfg.rescale)


def split_per_class(y: np.ndarray, test_share: float, seed: int) -> np.ndarray:
    """A boolean test mask: ``round(test_share * n)`` samples of every class (at least one, and
    one left for training when a class has two or more), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(max(1, int(round(test_share * len(idx)))), max(len(idx) - 1, 1))
        test[idx[:k]] = True
    return test


def _load_images(cfg: DatasetConfig) -> Dataset:
    root = Path(cfg.path) if cfg.path else None

    def bad(msg: str) -> SpecError:
        return SpecError("dataset.path", msg, source=str(root))

    if root is None or not root.is_dir():
        raise bad("dataset 'images' needs `path` to a folder of class sub-folders")
    split_dirs = (root / "train").is_dir() and (root / "test").is_dir()
    if split_dirs:
        per = {s: _class_dirs(root / s, bad) for s in ("train", "test")}
        names = tuple(per["train"])
        extra = sorted(set(per["test"]) - set(names))
        if extra:
            raise bad(f"test/ has class folder(s) {', '.join(extra)} that train/ has not")
        files = {s: [(names.index(c), f) for c, fs in per[s].items() for f in fs] for s in per}
        how = "the train/ and test/ sub-folders"
    else:
        if cfg.test_split is None:
            raise SpecError("dataset.test_split", f"{root} has no train/ and test/ sub-folders: "
                            "give the test share, e.g. test_split: 0.2", source=str(root))
        per_class = _class_dirs(root, bad)
        names = tuple(per_class)
        pairs = [(names.index(c), f) for c, fs in per_class.items() for f in fs]
        test = split_per_class(np.array([c for c, _ in pairs]), cfg.test_split, cfg.split_seed)
        files = {"train": [p for p, t in zip(pairs, test) if not t],
                 "test": [p for p, t in zip(pairs, test) if t]}
        how = f"{cfg.test_split:g} of each class drawn for test (seed {cfg.split_seed})"
    xs = {s: _read_images([f for _, f in files[s]], cfg, bad) for s in ("train", "test")}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise bad(f"train images are {xs['train'].shape[1:]}, test images "
                  f"{xs['test'].shape[1:]}: give dataset.image_size")
    h, w, c = xs["train"].shape[1:]
    ds = Dataset(
        name="images", x_train=xs["train"], y_train=np.array([c for c, _ in files["train"]], np.int64),
        x_test=xs["test"], y_test=np.array([c for c, _ in files["test"]], np.int64),
        class_names=names,
        description=f"images from {root} (classes = sorted sub-folder names: {', '.join(names)}), "
                    f"{cfg.color_mode}, {h}x{w}x{c}" + (" (resized, bilinear)" if cfg.image_size
                                                         else "")
                    + f", pixel values x {cfg.rescale:g}; split: {how}.")
    return _select_classes(ds, cfg.classes)


# ---------------------------------------------------------------------------------------------
# A CSV of windows
# ---------------------------------------------------------------------------------------------

def _load_csv(cfg: DatasetConfig) -> Dataset:
    path = Path(cfg.path) if cfg.path else None

    def bad(msg: str) -> SpecError:
        return SpecError("dataset.path", msg, source=str(path))

    if path is None or not path.is_file():
        raise bad("dataset 'csv' needs `path` to a .csv file")
    if not cfg.shape:
        raise SpecError("dataset.shape", "a CSV of windows needs the shape of one sample, e.g. "
                        "shape: [128, 3] (values per row = its product)", source=str(path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise bad("needs a header row and at least two data rows")
    header, rows = [h.strip() for h in rows[0]], rows[1:]
    if cfg.label_column not in header:
        raise SpecError("dataset.label_column", f"no column {cfg.label_column!r}; the header has "
                        f"{', '.join(header[:8])}{' ...' if len(header) > 8 else ''}", source=str(path))
    li = header.index(cfg.label_column)
    si = header.index("split") if "split" in header else None
    vcols = [i for i in range(len(header)) if i not in (li, si)]
    want = int(np.prod(cfg.shape))
    if len(vcols) != want:
        raise SpecError("dataset.shape", f"{tuple(cfg.shape)} is {want} values per window, the "
                        f"file has {len(vcols)} value columns", source=str(path))
    try:
        x = np.array([[float(r[i]) for i in vcols] for r in rows], np.float32)
    except (ValueError, IndexError) as e:
        raise bad(f"a value is not a number or a row is short ({e})") from None
    if not np.isfinite(x).all():
        raise bad("contains NaN or infinite values")
    labels = [r[li].strip() for r in rows]
    if all(lab.lstrip("-").isdigit() for lab in labels):
        y = np.array([int(lab) for lab in labels], np.int64)
        if y.min() < 0:
            raise bad("integer labels must be >= 0")
        names = tuple(str(i) for i in range(int(y.max()) + 1))
    else:
        names = tuple(sorted(set(labels)))
        y = np.array([names.index(lab) for lab in labels], np.int64)
    x = x.reshape(len(rows), *cfg.shape)
    if si is not None:
        split = [r[si].strip().lower() for r in rows]
        if not set(split) <= {"train", "test"}:
            raise bad(f"column split must be train or test, got {sorted(set(split) - {'train', 'test'})}")
        test = np.array([s == "test" for s in split])
        how = "the split column"
    elif cfg.test_split is not None:
        test = split_per_class(y, cfg.test_split, cfg.split_seed)
        how = f"{cfg.test_split:g} of each class drawn for test (seed {cfg.split_seed})"
    else:
        raise SpecError("dataset.test_split", "the CSV has no split column: give the test share, "
                        "e.g. test_split: 0.2", source=str(path))
    ds = Dataset(
        name="csv", x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test],
        class_names=names,
        description=f"windows from {path.name}: one row per window, class in column "
                    f"{cfg.label_column!r}, {want} values per row reshaped to {tuple(cfg.shape)} "
                    f"(row-major), used as stored; split: {how}.")
    return _select_classes(ds, cfg.classes)


# ---------------------------------------------------------------------------------------------
# Common steps
# ---------------------------------------------------------------------------------------------

def _check_class_names(wanted: tuple[str, ...], available: tuple[str, ...]) -> None:
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise SpecError("dataset.classes", f"unknown class(es) {', '.join(map(repr, unknown))}; "
                        f"the data set has {', '.join(available)}")
    if len(set(wanted)) != len(wanted):
        raise SpecError("dataset.classes", "a class is listed twice")
    if len(wanted) < 2:
        raise SpecError("dataset.classes", "keep at least 2 classes")


def _select_classes(ds: Dataset, classes: tuple[str, ...] | None) -> Dataset:
    """Keep only ``classes`` (by name), relabelled 0.. in the order given."""
    if not classes:
        return ds
    classes = tuple(classes)
    _check_class_names(classes, ds.class_names)
    remap = np.full(len(ds.class_names), -1, np.int64)
    for new, name in enumerate(classes):
        remap[ds.class_names.index(name)] = new
    ytr, yte = remap[ds.y_train], remap[ds.y_test]
    ktr, kte = ytr >= 0, yte >= 0
    return dataclasses.replace(ds, x_train=ds.x_train[ktr], y_train=ytr[ktr],
                               x_test=ds.x_test[kte], y_test=yte[kte], class_names=classes,
                               description=ds.description + f" Classes kept: {', '.join(classes)}.")


def stratified_indices(y: np.ndarray, n: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """``n`` indices of ``y``, class proportions kept (largest remainder), sorted, deterministic."""
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take = np.floor(quota).astype(int)
    # every class keeps at least one sample when n allows it
    take = np.where((take == 0) & (counts > 0) & (n >= len(classes)), 1, take)
    rest = n - take.sum()
    if rest > 0:
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        for i in order:
            if rest == 0:
                break
            if take[i] < counts[i]:
                take[i] += 1
                rest -= 1
    while take.sum() > n:            # only when the at-least-one rule overshot
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(y == c)
        picked.append(np.sort(rng.permutation(idx)[:k]))
    return np.sort(np.concatenate(picked))


def _subsample(ds: Dataset, max_train: int | None, max_test: int | None) -> Dataset:
    for key, v in (("dataset.max_train", max_train), ("dataset.max_test", max_test)):
        if v is not None and v < 1:
            raise SpecError(key, f"must be >= 1, got {v}")
    if (max_train is None or max_train >= len(ds.y_train)) and \
            (max_test is None or max_test >= len(ds.y_test)):
        return ds
    more = {}
    if _task(ds) == "classification":
        itr = stratified_indices(ds.y_train, max_train or len(ds.y_train))
        ite = stratified_indices(ds.y_test, max_test or len(ds.y_test))
    else:  # regression: a seeded draw (test: by anomaly label when there are labels)
        itr = _seeded_indices(len(ds.y_train), max_train or len(ds.y_train))
        n_te = max_test or len(ds.y_test)
        ite = (stratified_indices(ds.anomaly_test, n_te) if ds.anomaly_test is not None
               else _seeded_indices(len(ds.y_test), n_te))
        more["anomaly_test"] = None if ds.anomaly_test is None else ds.anomaly_test[ite]
    note = f" Stratified subsample (seed {SUBSAMPLE_SEED}): {len(itr)} train, {len(ite)} test."
    return dataclasses.replace(
        ds, x_train=ds.x_train[itr], y_train=ds.y_train[itr], x_test=ds.x_test[ite],
        y_test=ds.y_test[ite], description=ds.description + note, **more)


def _seeded_indices(n_all: int, n: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """``n`` of ``range(n_all)`` drawn with ``seed``, sorted."""
    return np.sort(np.random.default_rng(seed).permutation(n_all)[:n])


def _ranges(nums: tuple[int, ...]) -> str:
    nums = sorted(nums)
    if nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 2:
        return f"{nums[0]}-{nums[-1]}"
    return ", ".join(str(n) for n in nums)
