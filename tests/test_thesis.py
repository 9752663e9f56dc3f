"""`make thesis QUICK=1`: the 2020 study's reproduction end to end on a small subset (issue 15).

Runs bench/thesis/run.py --quick into a temporary folder (real training, conversion, builds and
QEMU runs) and checks that thesis.html holds every table of the study with figures of ours in it,
the three redrawn figures, the free search's answer and the written comparison; then that a
second run resumes (runs no trial again) and rewrites the report.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "thesis" / "run.py"
TABLES = ("table-A-1", "table-A-2", "table-A-3", "table-A-4", "table-5-3", "table-5-4")
FIGURES = ("fig-5-4", "fig-5-5", "fig-5-6")


def _section(page: str, sid: str) -> str:
    m = re.search(rf"<section id='{sid}'>(.*?)</section>", page, re.S)
    assert m, f"no section {sid}"
    return m.group(1)


def _run(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_thesis_quick_report_has_every_table_with_numbers(tmp_path):
    out = tmp_path / "thesis"
    done = _run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (out / "thesis.html").read_text()
    for sid in TABLES:
        body = _section(page, sid)
        ours = re.findall(r"<td data-v='([-0-9.e+]+)'", body)
        assert len(ours) >= 3, f"{sid}: fewer than 3 figures of ours"
        assert "<span class='prov'>" in body, f"{sid}: figures without provenance marks"
        assert "class='study'" in body, f"{sid}: no column of the study's"
    for fid in FIGURES:
        assert f"id='{fid}'" in page and f"id='{fid}-data'" in page, f"figure {fid} not drawn"
    assert page.count("id='mcus-plotly'") == 1  # plotly.js inlined once, run on first draw
    free = _section(page, "free")
    assert "Does a cheaper part than the STM32F722ZE" in free or "No part meets the constraints" in free
    assert "Nothing adjusted" in _section(page, "differences")

    # Resumable: a second run finds every study complete and only rewrites the report.
    again = _run(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running " not in again.stderr and "already holds" in again.stderr
