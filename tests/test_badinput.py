"""Bad input stopped at the door: every malformed spec or bad file of the corpus
(tests/badinput/make_corpus.py) makes `mcusearch validate` and `mcusearch run` exit 2 with one
line naming the key or file, no traceback and nothing written (issue 11)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("badinput") / "corpus"
    subprocess.run([sys.executable, str(ROOT / "tests" / "badinput" / "make_corpus.py"), str(root)],
                   check=True, capture_output=True)
    return root


def _tree(d: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(d)), p.stat().st_size if p.is_file() else -1) for p in d.rglob("*"))


def _cli(command: str, spec: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the user's default
    return subprocess.run([sys.executable, "-m", "mcusearch", command, spec], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _problem(command: str, case: dict, root: Path) -> str | None:
    """Why the case is not refused properly, or None."""
    d = root / case["name"]
    before = _tree(d)
    r = _cli(command, case["spec"], d)
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    why = []
    if r.returncode != 2:
        why.append(f"exit {r.returncode}")
    if len(lines) != 1:
        why.append(f"{len(lines)} lines")
    elif case["expect"] not in lines[0]:
        why.append(f"does not name {case['expect']!r}")
    if "Traceback" in r.stderr:
        why.append("traceback")
    if _tree(d) != before:
        why.append("wrote " + ", ".join(sorted({p for p, _ in _tree(d)} - {p for p, _ in before})))
    return f"{case['name']}: {'; '.join(why)}: {lines[-3:]}" if why else None


# One case of each kind, for the quick suite (the whole corpus runs with the slow tests in CI).
QUICK = ("latin1", "nested_list_10000", "duplicate_nested_key", "empty", "deadline_negative",
         "search_seed_2_70", "data_nan", "model_truncated", "params_unknown", "run_dir_is_a_file",
         "storage_unknown_scheme")


def _refused(command: str, root: Path, only: tuple[str, ...] = ()) -> list[str]:
    cases = json.loads((root / "cases.json").read_text())
    cases = [c for c in cases if not only or c["name"] in only]
    assert not only or len(cases) == len(only)
    with ThreadPoolExecutor(2) as pool:
        return [p for p in pool.map(lambda c: _problem(command, c, root), cases) if p]


def test_corpus_is_large_and_its_base_is_valid(corpus):
    assert len(json.loads((corpus / "cases.json").read_text())) >= 60
    r = _cli("validate", "spec.yaml", corpus / "_good")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in r.stdout and not r.stderr.strip(), r.stderr  # no TensorFlow start-up lines


def test_validate_refuses_one_bad_input_of_each_kind(corpus):
    problems = _refused("validate", corpus, QUICK)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_validate_refuses_every_bad_input(corpus):
    problems = _refused("validate", corpus)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_run_refuses_every_bad_input(corpus):
    problems = _refused("run", corpus)
    assert not problems, "\n".join(problems)

