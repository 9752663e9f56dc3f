"""Data in: a folder of class sub-folders of images, a CSV of windows, regression / autoencoder
.npz files with anomaly labels, and a separate calibration set, each on small data written here."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcusearch.errors import SpecError
from mcusearch.model import DatasetConfig
from mcusearch.model.datasets import calibration_inputs, load_dataset, split_per_class
from mcusearch.spec import parse_spec


def _image(path: Path, value: int, size=(6, 4), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value, value // 2, 0) if mode == "RGB" else value).save(path)


def test_image_folder_with_train_and_test(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls, v, ext in (("cat", 200, ".png"), ("ant", 100, ".bmp"), ("bee", 50, ".jpg")):
            for i in range(n):
                _image(tmp_path / split / cls / f"{i}{ext}", v, size=(6 + i, 4))
    ds = load_dataset(DatasetConfig(name="images", path=tmp_path, image_size=(3, 5),
                                    color_mode="grayscale"))
    assert ds.class_names == ("ant", "bee", "cat")           # sorted sub-folder names
    assert ds.x_train.shape == (9, 3, 5, 1) and ds.x_test.shape == (6, 3, 5, 1)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # grey of an RGB (100, 50, 0) pixel: Pillow's L = (299 R + 587 G + 114 B) / 1000, then / 255
    assert ds.x_train[0].mean() == pytest.approx(round(0.299 * 100 + 0.587 * 50) / 255, abs=1e-6)
    rgb = load_dataset(DatasetConfig(name="images", path=tmp_path, image_size=(3, 5),
                                     color_mode="rgb", rescale=1.0))
    assert rgb.x_test.shape == (6, 3, 5, 3) and rgb.x_train[0, 0, 0].tolist() == [100, 50, 0]


def test_image_folder_split_by_fraction(tmp_path):
    for cls, v in (("a", 10), ("b", 240)):
        for i in range(5):
            _image(tmp_path / cls / f"{i}.png", v, mode="L")
    cfg = DatasetConfig(name="images", path=tmp_path, test_split=0.4, split_seed=3)
    ds = load_dataset(cfg)
    assert ds.x_train.shape == (6, 4, 6, 1) and ds.y_test.tolist() == [0, 0, 1, 1]
    assert ds.x_test[0].max() == pytest.approx(10 / 255)
    again = load_dataset(cfg)                                 # seeded: the same split
    assert np.array_equal(again.x_train, ds.x_train)
    with pytest.raises(SpecError) as e:
        load_dataset(DatasetConfig(name="images", path=tmp_path))
    assert e.value.where == "dataset.test_split"
    _image(tmp_path / "a" / "big.png", 10, size=(9, 9), mode="L")
    with pytest.raises(SpecError, match="give dataset.image_size"):
        load_dataset(cfg)


def test_split_per_class_keeps_every_class_on_both_sides():
    y = np.array([0] * 10 + [1] * 2 + [2] * 1)
    test = split_per_class(y, 0.2, 0)
    assert [int(test[y == c].sum()) for c in range(3)] == [2, 1, 1]


def _csv(path: Path, rows: list[list], header: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_csv_of_windows(tmp_path):
    header = ["label"] + [f"v{i}" for i in range(6)] + ["split"]
    rows = [[lab, *(np.arange(6) + 10 * k), split] for k, (lab, split) in enumerate(
        [("walk", "train"), ("run", "train"), ("walk", "test"), ("run", "test"), ("walk", "train")])]
    _csv(tmp_path / "w.csv", rows, header)
    ds = load_dataset(DatasetConfig(name="csv", path=tmp_path / "w.csv", shape=(3, 2)))
    assert ds.class_names == ("run", "walk") and ds.y_train.tolist() == [1, 0, 1]
    assert ds.x_train.shape == (3, 3, 2) and ds.x_train[1].tolist() == [[10, 11], [12, 13], [14, 15]]
    assert ds.y_test.tolist() == [1, 0]
    with pytest.raises(SpecError) as e:
        load_dataset(DatasetConfig(name="csv", path=tmp_path / "w.csv", shape=(4, 2)))
    assert e.value.where == "dataset.shape" and "6 value columns" in e.value.message
    # integer labels, no split column: a seeded share of each class
    _csv(tmp_path / "i.csv", [[k % 2, k, -k] for k in range(8)], ["y", "a", "b"])
    ds = load_dataset(DatasetConfig(name="csv", path=tmp_path / "i.csv", shape=(2,),
                                    label_column="y", test_split=0.25))
    assert ds.class_names == ("0", "1") and len(ds.y_test) == 2 and set(ds.y_test) == {0, 1}


def test_autoencoder_and_regression_npz(tmp_path):
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(20, 8)), rng.normal(size=(10, 8))
    anomaly = np.array([0, 1] * 5)
    np.savez(tmp_path / "ae.npz", x_train=x_tr, x_test=x_te, anomaly_test=anomaly)
    ds = load_dataset(DatasetConfig(name="npz", path=tmp_path / "ae.npz", task="autoencoder",
                                    max_test=6))
    assert ds.task == "autoencoder" and ds.class_names == () and ds.input_shape == (8,)
    assert np.array_equal(ds.y_train, ds.x_train) and ds.anomaly_test.tolist().count(1) == 3
    np.savez(tmp_path / "r.npz", x_train=x_tr, y_train=x_tr.sum(1), x_test=x_te, y_test=x_te.sum(1))
    r = load_dataset(DatasetConfig(name="npz", path=tmp_path / "r.npz", task="regression"))
    assert r.y_train.shape == (20, 1) and r.anomaly_test is None
    np.savez(tmp_path / "bad.npz", x_train=x_tr, x_test=x_te, anomaly_test=np.zeros(10))
    with pytest.raises(SpecError, match="both normal"):
        load_dataset(DatasetConfig(name="npz", path=tmp_path / "bad.npz", task="autoencoder"))
    with pytest.raises(SpecError, match="y_train"):
        load_dataset(DatasetConfig(name="npz", path=tmp_path / "ae.npz", task="regression"))


def test_separate_calibration_set(tmp_path):
    x = np.random.default_rng(1).normal(size=(12, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(12) % 2, x_test=x[:4],
             y_test=np.array([0, 1, 0, 1]))
    np.savez(tmp_path / "calib.npz", x=x[:3] + 5)
    ds = load_dataset(DatasetConfig(name="npz", path=tmp_path / "d.npz",
                                    calibration=tmp_path / "calib.npz"))
    rep, how = calibration_inputs(ds, 200)
    assert rep.shape == (3, 4, 4, 1) and rep.min() > 2 and "separate calibration set" in how
    plain = load_dataset(DatasetConfig(name="npz", path=tmp_path / "d.npz"))
    rep, how = calibration_inputs(plain, 5)
    assert len(rep) == 5 and how == "5 training samples"
    np.savez(tmp_path / "wrong.npz", x=x[:3, :2])
    with pytest.raises(SpecError) as e:
        load_dataset(DatasetConfig(name="npz", path=tmp_path / "d.npz",
                                   calibration=tmp_path / "wrong.npz"))
    assert e.value.where == "dataset.calibration" and "samples are (2, 4, 1)" in e.value.message


@pytest.mark.parametrize("dataset, where, words", [
    ({"name": "images"}, "dataset", "needs `path`"),
    ({"name": "csv", "path": "w.csv"}, "dataset", "needs `shape`"),
    ({"name": "images", "path": "imgs", "task": "autoencoder"}, "dataset", "come as an .npz"),
    ({"name": "npz", "path": "d.npz", "image_size": [3, 3]}, "dataset", "only for dataset `images`"),
    ({"name": "images", "path": "missing"}, "dataset.path", "folder not found"),
    ({"name": "npz", "path": "d.npz", "calibration": "w.csv"}, "dataset.calibration", "expected an .npz"),
    ({"name": "csv", "path": "d.npz", "shape": [2]}, "dataset.path", "expected a .csv file"),
])
def test_dataset_spec_errors_name_the_key(tmp_path, dataset, where, words):
    np.savez(tmp_path / "d.npz", x=np.zeros(1))
    (tmp_path / "w.csv").write_text("label,a\n")
    (tmp_path / "imgs").mkdir()
    with pytest.raises(SpecError) as e:
        parse_spec({"dataset": dataset, "knobs": {"converter": ["mcusearch-ref"]}},
                   base_dir=tmp_path)
    assert e.value.where == where and words in e.value.message, str(e.value)


def test_spec_gives_the_dataset_config(tmp_path):
    (tmp_path / "imgs").mkdir()
    spec = parse_spec({"dataset": {"name": "images", "path": "imgs", "image_size": [8, 8],
                                   "color_mode": "rgb", "test_split": 0.3},
                       "knobs": {"converter": ["mcusearch-ref"]}}, base_dir=tmp_path)
    cfg = spec.base_model_config().dataset
    assert cfg.path == tmp_path / "imgs" and cfg.image_size == (8, 8) and cfg.test_split == 0.3
