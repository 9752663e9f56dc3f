"""Data sets: the built-in smartwatch IMU set (default), Fashion-MNIST, and a user's .npz.

Every loader returns a :class:`~mcusearch.model.Dataset` with NHWC float32 inputs and integer
labels, already split into train and test. Loading is deterministic: the same
:class:`~mcusearch.model.DatasetConfig` always gives the same arrays.

This module imports no TensorFlow (it is used on cache hits, which must stay fast).
"""
from __future__ import annotations

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

BUILTIN = ("watch", "fashion_mnist", "npz")


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load, split, filter classes and subsample as ``cfg`` says."""
    if cfg.name == "watch":
        ds = _load_watch(cfg)
    elif cfg.name == "fashion_mnist":
        ds = _load_fashion_mnist(cfg)
    elif cfg.name == "npz":
        ds = _load_npz(cfg)
    else:
        raise SpecError("dataset.name", f"unknown data set {cfg.name!r}; built-ins: "
                        + ", ".join(BUILTIN))
    ds = _subsample(ds, cfg.max_train, cfg.max_test)
    log.info("dataset %s: %d train, %d test, input %s, %d classes", ds.name, len(ds.y_train),
             len(ds.y_test), ds.input_shape, ds.n_classes)
    return ds


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


def _load_npz(cfg: DatasetConfig) -> Dataset:
    if cfg.path is None:
        raise SpecError("dataset.path", "dataset 'npz' needs a path to a .npz file with "
                        + ", ".join(NPZ_KEYS))
    path = Path(cfg.path)
    src = str(path)

    def bad(msg: str) -> SpecError:
        return SpecError("dataset.path", msg, source=src)

    if not path.is_file():
        raise bad("file not found")
    try:
        # No pickles: a data file must not be able to run code.
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise bad("the file holds object arrays (pickled data); store numbers, and "
                      "class_names as a string array (np.array([...], dtype=str))") from None
        raise bad(f"not a readable .npz file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile, OSError, ...
        raise bad(f"not a readable .npz file ({type(e).__name__}: {e})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise bad(f"missing array(s) {', '.join(missing)}; it has "
                  f"{', '.join(sorted(arrays)) or 'none'} (needs {', '.join(NPZ_KEYS)})")

    xs, ys = {}, {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "fiub":
            raise bad(f"x_{split} must be numeric, got dtype {x.dtype}")
        if x.ndim == 3:
            x = x[..., None]       # NHW -> NHWC with one channel
        elif x.ndim != 4:
            raise bad(f"x_{split} must be NHWC (4-D) or NHW (3-D), got shape {x.shape}")
        if y.ndim == 2:
            if y.shape[1] < 2:
                raise bad(f"y_{split} has shape {y.shape}: one-hot labels need >= 2 columns")
            y = np.argmax(y, axis=1)
        elif y.ndim != 1:
            raise bad(f"y_{split} must be integer labels (N,) or one-hot (N, classes), "
                      f"got shape {y.shape}")
        if y.dtype.kind == "f":
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise bad(f"y_{split} holds non-integer labels")
        elif y.dtype.kind not in "iub":
            raise bad(f"y_{split} must be integer labels, got dtype {y.dtype}")
        if len(x) != len(y):
            raise bad(f"x_{split} has {len(x)} samples but y_{split} has {len(y)} labels")
        if len(x) == 0:
            raise bad(f"x_{split} is empty")
        xs[split], ys[split] = x.astype(np.float32), y.astype(np.int64)
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise bad(f"x_train samples are {xs['train'].shape[1:]} but x_test samples are "
                  f"{xs['test'].shape[1:]}")
    if not (np.isfinite(xs["train"]).all() and np.isfinite(xs["test"]).all()):
        raise bad("x_train/x_test contain NaN or infinite values")

    top = int(max(ys["train"].max(), ys["test"].max()))
    low = int(min(ys["train"].min(), ys["test"].min()))
    if low < 0:
        raise bad("labels must be >= 0")
    if "class_names" in arrays:
        names = tuple(str(s) for s in np.asarray(arrays["class_names"]).reshape(-1))
        if len(set(names)) != len(names):
            raise bad("class_names has duplicates")
        if top >= len(names):
            raise bad(f"label {top} but only {len(names)} class_names")
    else:
        names = tuple(str(i) for i in range(top + 1))
    period = None
    if "frame_period_s" in arrays:
        period = float(np.asarray(arrays["frame_period_s"]).reshape(-1)[0])
    ds = Dataset(
        name="npz", x_train=xs["train"], y_train=ys["train"], x_test=xs["test"],
        y_test=ys["test"], class_names=names,
        description=f"user data set {path.name}: inputs used as stored (no scaling), "
                    f"{len(names)} classes",
        frame_period_s=period,
    )
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
    return Dataset(name=ds.name, x_train=ds.x_train[ktr], y_train=ytr[ktr], x_test=ds.x_test[kte],
                   y_test=yte[kte], class_names=classes,
                   description=ds.description + f" Classes kept: {', '.join(classes)}.",
                   frame_period_s=ds.frame_period_s)


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
    itr = stratified_indices(ds.y_train, max_train or len(ds.y_train))
    ite = stratified_indices(ds.y_test, max_test or len(ds.y_test))
    note = f" Stratified subsample (seed {SUBSAMPLE_SEED}): {len(itr)} train, {len(ite)} test."
    return Dataset(name=ds.name, x_train=ds.x_train[itr], y_train=ds.y_train[itr],
                   x_test=ds.x_test[ite], y_test=ds.y_test[ite], class_names=ds.class_names,
                   description=ds.description + note, frame_period_s=ds.frame_period_s)


def _ranges(nums: tuple[int, ...]) -> str:
    nums = sorted(nums)
    if nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 2:
        return f"{nums[0]}-{nums[-1]}"
    return ", ".join(str(n) for n in nums)
