"""search.yaml: the schema, its error messages, and the CLI's validate / init."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcusearch.errors import SpecError
from mcusearch.knobs import config_from_params, knobs_from_spec, search_space
from mcusearch.spec import TEMPLATE, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _spec(**overrides) -> dict:
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    for dotted, value in overrides.items():
        node = data
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return data


def _error(data, tmp_path=Path(".")) -> SpecError:
    with pytest.raises(SpecError) as e:
        parse_spec(data, "search.yaml", tmp_path)
    return e.value


def test_default_example_is_valid():
    spec = load_spec(ROOT / "search.yaml")
    assert spec.dataset.name == "watch"
    assert spec.knobs.channels.values[-1] == 32
    assert spec.run_dir == ROOT / "reports" / "search"
    assert spec.storage_url.endswith("reports/search/study.db")


def test_template_is_valid_and_documents_every_section():
    spec = parse_spec(yaml.safe_load(TEMPLATE))
    assert spec.name == "my-search"
    for section in ("model:", "dataset:", "target:", "constraints:", "knobs:", "objectives:", "search:"):
        assert section in TEMPLATE


@pytest.mark.parametrize("overrides, where, words", [
    ({"knobs__channelz": [1]}, "knobs.channelz", "unknown key"),
    ({"search__n_trials": "many"}, "search.n_trials", "integer"),
    ({"knobs__quantization": []}, "knobs.quantization", "at least 1"),
    ({"knobs__quantization": ["int4"]}, "knobs.quantization[0]", "float32"),
    ({"knobs__opt_level": ["-O9"]}, "knobs.opt_level[0]", "-O3"),
    ({"knobs__channels": {"per": "pair", "values": []}}, "knobs.channels.values", "at least 1"),
    ({"knobs__channels": {"per": "pair", "values": [0, 8]}}, "knobs.channels.values", ">= 1"),
    ({"knobs__channels": {"per": "pair", "values": [8, 64]}}, "knobs.channels.values", "32 filters"),
    ({"knobs__converter": ["xcube"]}, "knobs.converter", "unknown converter"),
    ({"target__boards": ["nucleo-zz"]}, "target.boards", "unknown board"),
    ({"objectives": [{"metric": "speed", "direction": "minimize"}]}, "objectives[0].metric", "unknown metric"),
    ({"objectives": [{"metric": "accuracy", "direction": "up"}]}, "objectives[0].direction", "maximize"),
    ({"constraints__accuracy_min": 1.5}, "constraints.accuracy_min", "less than or equal to 1"),
    ({"dataset__name": "npz"}, "dataset", "needs `path"),
    ({"dataset__name": "npz", "dataset__path": "missing.npz"}, "dataset.path", "file not found"),
    ({"model__path": "nope.h5"}, "model.path", "file not found"),
])
def test_bad_spec_names_the_key(overrides, where, words, tmp_path):
    err = _error(_spec(**overrides), tmp_path)
    assert err.where == where, str(err)
    assert words in err.message, str(err)


def test_converter_without_the_quantization_is_infeasible(tmp_path):
    # A converter that supports only float32, as a third-party one would: int8-only knobs are infeasible.
    from mcusearch.convert import CONVERTERS, Converter, register

    @register
    class FloatOnly(Converter):
        name = "float-only-for-test"
        quantizations = frozenset({"float32"})

        def convert(self, model, out_dir):
            raise NotImplementedError

    try:
        err = _error(_spec(knobs__quantization=["int8"], knobs__converter=["float-only-for-test"]), tmp_path)
        assert err.where == "knobs"
        assert "supports ['float32']" in err.message
        parse_spec(_spec(knobs__converter=["float-only-for-test", "mcusearch"]), "s.yaml", tmp_path)
    finally:
        CONVERTERS.pop("float-only-for-test")


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nknobs: [unclosed\n")
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "line" in e.value.where and "not valid YAML" in e.value.message


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"")
    spec = parse_spec(_spec(dataset__name="npz", dataset__path="d.npz", dataset__classes=None),
                      "s.yaml", tmp_path)
    assert spec.base_model_config().dataset.path == tmp_path / "d.npz"


def test_knobs_space_and_config():
    spec = load_spec(ROOT / "search.yaml")
    knobs = knobs_from_spec(spec)
    space = search_space(knobs)
    assert set(space) == {"channels_1", "channels_2", "channels_3", "sparsity", "quantization",
                          "opt_level", "converter", "board"}
    params = {k: v[0] for k, v in space.items()}
    cfg = config_from_params(knobs, params)
    assert cfg.channels == (4, 4, 4) and cfg.quantization == "float32" and cfg.sparsity == 0
    full = config_from_params(knobs, {**params, "channels_1": 32, "channels_2": 32, "channels_3": 32})
    assert full.channels is None  # full width means "not pruned"
    assert cfg.key() != full.key()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mcusearch", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_validate_bad_spec_exits_2_and_writes_nothing(tmp_path):
    data = _spec(knobs__opt_level=["-O3", "-O7"])
    data["search"]["run_dir"] = "out"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    for cmd in ("validate", "run"):
        r = _cli(cmd, "bad.yaml", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "knobs.opt_level[1]" in r.stderr and "-O7" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_cli_init_then_validate(tmp_path):
    r = _cli("init", "s.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("validate", "s.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr
    r = _cli("init", "s.yaml", cwd=tmp_path)
    assert r.returncode != 0 and "--force" in r.stderr


def test_generic_board_definition_and_options(tmp_path):
    data = _spec(target__define=[{"name": "my-l4", "pyocd_target": "stm32l475xg", "core": "cortex-m4",
                                  "fpu": "single", "flash_kb": 1024, "ram_kb": 128, "clock_mhz": 4}],
                 target__boards=["qemu-m7", "my-l4"],
                 target__board_options={"my-l4": {"probe": "0670FF"}})
    spec = parse_spec(data, "s.yaml", tmp_path)
    board = spec.board("my-l4")
    assert board.kind == "real" and board.core == "cortex-m4" and board.probe == "0670FF"
    assert spec.board("qemu-m7").kind == "emulated"
    err = _error(_spec(target__board_options={"nucleo-f767zi": {"probe": "x"}}), tmp_path)
    assert err.where == "target" and "not in target.boards" in err.message
    err = _error(_spec(target__define=[{"name": "bad", "pyocd_target": "x", "core": "cortex-z9",
                                        "flash_kb": 1, "ram_kb": 1, "clock_mhz": 1}]), tmp_path)
    assert err.where == "target.define" and "cortex-z9" in err.message
