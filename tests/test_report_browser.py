"""The report of a real small study, opened in headless Chromium through the DevTools protocol.

Fails on any console error, uncaught exception or failed request and on any request that leaves
the report's folder; checks every plot drew (SVG points, bars, or painted canvas pixels), that the
answer card is complete, that sorting and filtering the all-trials table work, that the page fits
a 1,280-px window, and keeps a screenshot per section in reports/browser/ (git-ignored).
"""
from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mcusearch.report.cdp import Browser, find_chromium

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None, reason="no chromium (Debian: apt-get install chromium)")]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "reports" / "browser"
SECTIONS = ("answer", "parts", "front", "trials", "search", "layers")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A real 4-trial study (TensorFlow, arm-none-eabi-gcc, QEMU), then its report with exports."""
    tmp = tmp_path_factory.mktemp("report-browser")
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["model"]["train"]["epochs"] = 2
    data["model"]["retrain_epochs"] = 1
    data["dataset"].update(max_train=1200, max_test=400, probe_per_class=2)
    data["target"]["boards"] = ["qemu-m7"]
    data["knobs"] = {"channels": {"per": "pair", "values": [4, 8]}, "quantization": ["float32", "int8"],
                     "opt_level": ["-O2"], "converter": ["mcusearch", "aidge"]}  # int8 + aidge: rejected
    data["constraints"]["accuracy_min"] = 0.3
    data["search"] = {"sampler": "random", "n_trials": 4, "seed": 3, "run_dir": "run",
                      "cache_dir": str(tmp / "cache")}
    spec = tmp / "search.yaml"
    spec.write_text(yaml.safe_dump(data))
    for args in (("run", str(spec), "--no-progress"), ("report", "run", "--csv", "--json", "-q")):
        r = subprocess.run([sys.executable, "-m", "mcusearch", *args], cwd=tmp, capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "run.html"


def _plots(b: Browser) -> list[dict]:
    """Per Plotly graph: its traces, SVG points and bars, painted pixels of its 2-D-readable canvases
    and the points of its WebGL 3-D scene."""
    return b.evaluate("""Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
      id: d.id, traces: (d._fullData || []).length,
      points: d.querySelectorAll('.scatterlayer .point').length,
      bars: d.querySelectorAll('.barlayer .point').length,
      axes: d.querySelectorAll('.parcoords .axis').length,
      gl: d._fullLayout && d._fullLayout.scene && d._fullLayout.scene._scene
          ? d._fullLayout.scene._scene.glplot.objects.reduce((a, o) => a + (o.pointCount || 0), 0) : 0,
      painted: Array.from(d.querySelectorAll('canvas')).map(c => {
        const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
        const x = t.getContext('2d'); x.drawImage(c, 0, 0);
        const px = x.getImageData(0, 0, t.width, t.height).data; let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n; }).reduce((a, n) => a + n, 0)}))""")


def _column(b: Browser, header: str) -> list:
    """The visible values of one column of the all-trials table, top to bottom (None for blanks)."""
    return b.evaluate(f"""(() => {{
      const t = document.getElementById('trials-table');
      const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim().startsWith({header!r}));
      return Array.from(t.tBodies[0].rows).filter(r => r.style.display !== 'none').map(r => {{
        const v = r.cells[i].getAttribute('data-v'); return v === null || v === '' ? null : parseFloat(v); }});
    }})()""")


def _click_header(b: Browser, header: str) -> None:
    b.evaluate(f"""Array.from(document.getElementById('trials-table').tHead.rows[0].cells)
                   .find(c => c.textContent.trim().startsWith({header!r})).click()""")


def _filter(b: Browser, text: str, klass: str = "") -> str:
    """Type ``text`` into the table's filter and pick the class ``klass``; the count line after."""
    return b.evaluate(f"""(() => {{
      const f = document.getElementById('trial-filter'), k = document.getElementById('trial-class');
      f.value = {text!r}; f.dispatchEvent(new Event('input'));
      k.value = {klass!r}; k.dispatchEvent(new Event('change'));
      return document.getElementById('trial-count').textContent; }})()""")


def test_report_in_chromium(report: Path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Browser(width=1280, height=900) as b:
        t0 = time.monotonic()
        b.open(report.as_uri())
        load_s = time.monotonic() - t0
        assert b.problems() == []
        outside = [u for u in b.requests() if not u.startswith(report.parent.as_uri())]
        assert outside == [], "the report must make no request outside its folder (no CDN, no network)"

        # The answer first: a part, a margin per constraint with a provenance mark, runners-up or a reason.
        card = b.evaluate("""(() => { const c = document.getElementById('answer');
          return {text: c.innerText, rows: c.querySelectorAll('table.checks tbody tr').length,
                  marked: c.querySelectorAll('table.checks tbody tr .prov').length,
                  colours: Array.from(c.querySelectorAll('table.checks td.margin')).map(td => td.classList[1]),
                  details: c.querySelectorAll('details').length}; })()""")
        assert card["text"].startswith("Buy "), card["text"][:300]
        assert card["rows"] >= 4 and card["marked"] == card["rows"], card
        assert set(card["colours"]) <= {"green", "amber", "red"}, card["colours"]
        assert "Why not cheaper?" in card["text"] and card["details"] == 1
        assert "price:" in card["text"]

        # Every plot drew (each is drawn when scrolled into view: draw them all, as printing does).
        assert b.evaluate("document.querySelectorAll('.js-plotly-plot').length") <= 2  # only what is in view
        b.evaluate("mcusRenderAll().then(() => true)")
        # The per-layer profile of every trial that has one, picked from the table.
        profiled = b.evaluate("""(async () => { const ids = [];
          for (const x of document.querySelectorAll('#trials-table button')) {
            await mcusShowProfile(parseInt(x.closest('tr').id.slice(6))); ids.push(x.closest('tr').id); }
          return ids; })()""")
        assert profiled, "no trial has a per-layer profile"
        shown = b.evaluate("[...new Set(document.getElementById('plot-layers').data.flatMap(t => t.y))]")
        assert len(shown) == len(profiled), (shown, profiled)  # each picked trial added once
        plots = {p["id"]: p for p in _plots(b)}
        assert {"plot-pareto", "plot-pareto-3d", "plot-progress", "plot-parallel", "plot-layers"} <= set(plots), plots
        assert all(p["traces"] and p["points"] + p["bars"] + p["painted"] + p["gl"] for p in plots.values()), plots
        assert plots["plot-pareto-3d"]["gl"] >= 2 and plots["plot-layers"]["bars"] >= 5 * len(profiled)
        assert plots["plot-pareto"]["points"] >= 2 and plots["plot-progress"]["points"] >= 4
        assert plots["plot-parallel"]["axes"] >= 3 and plots["plot-parallel"]["painted"] > 1000, plots
        menus = b.evaluate("document.getElementById('plot-pareto').layout.updatemenus.map(m => m.buttons.length)")
        assert len(menus) == 2 and min(menus) >= 4  # x and y dropdowns, a choice of figures each

        # The table: one row per trial; sorting by a figure, both ways; filtering.
        assert len(_column(b, "trial")) == 4
        _click_header(b, "flash kB")
        up = _column(b, "flash kB")
        vals = [v for v in up if v is not None]
        assert len(vals) >= 2 and vals == sorted(vals) and up[:len(vals)] == vals  # blanks last
        _click_header(b, "flash kB")
        down = [v for v in _column(b, "flash kB") if v is not None]
        assert down == sorted(vals, reverse=True)
        assert _filter(b, "no trial says this") == "0 of 4 trials shown"
        assert _filter(b, "", "Pareto-optimal") == f"{len(_column(b, 'trial'))} of 4 trials shown"
        assert 1 <= len(_column(b, "trial")) < 4
        assert _filter(b, "", "") == "4 of 4 trials shown"

        # Legible at 1,280 px: nothing wider than the window (the wide table scrolls in its box).
        assert b.evaluate("document.documentElement.scrollWidth") <= 1280
        for sid in SECTIONS:
            if b.evaluate(f"!!document.getElementById('{sid}')"):
                b.screenshot(SHOTS / f"{sid}.png", f"#{sid}")
                assert (SHOTS / f"{sid}.png").stat().st_size > 5000
        pdf = b.call("Page.printToPDF", printBackground=True)["data"]  # prints (A4/Letter) without error
        (SHOTS / "report.pdf").write_bytes(base64.b64decode(pdf))
        assert (SHOTS / "report.pdf").stat().st_size > 50_000
        assert b.problems() == []
    print(f"report loaded in {load_s:.2f} s; screenshots in {SHOTS}")


def test_axis_menus_do_not_overlap_at_print_width(report: Path):
    """At A4 print width (718 px between the default margins) the Pareto plots' axis menus and
    their labels do not cover one another (side by side, long figure names did in the 3-D plot)."""
    with Browser(width=718, height=1000) as b:
        b.call("Emulation.setEmulatedMedia", media="print")
        b.open(report.as_uri())
        b.evaluate("mcusRenderAll().then(() => true)")
        boxes = b.evaluate("""['plot-pareto', 'plot-pareto-3d'].map(id => {
          const d = document.getElementById(id), r = e => { const b = e.getBoundingClientRect();
            return [b.left, b.top, b.right, b.bottom]; };
          return [...d.querySelectorAll('g.updatemenu-header-group'),
                  ...[...d.querySelectorAll('g.annotation')].filter(a => /^[xyz]:$/.test(a.textContent))].map(r); })""")
        assert b.problems() == []
    for plot in boxes:
        assert len(plot) >= 4, plot  # 2 or 3 menus and their labels
        for i, a in enumerate(plot):
            for c in plot[i + 1:]:
                overlap = min(a[2], c[2]) - max(a[0], c[0]), min(a[3], c[3]) - max(a[1], c[1])
                assert min(overlap) <= 0.5, (a, c)
            assert a[2] <= 718 + 0.5, a  # inside the page


def test_exports_beside_the_report(report: Path):
    import csv
    import json

    base = report.with_suffix("")
    trials = list(csv.DictReader(base.with_name(base.name + ".trials.csv").open()))
    pareto = list(csv.DictReader(base.with_name(base.name + ".pareto.csv").open()))
    doc = json.loads(base.with_name(base.name + ".json").read_text())
    assert len(trials) == 4 and 1 <= len(pareto) <= 3
    ok = [t for t in trials if t["status"] == "ok"]
    assert ok and all(t["flash_kb_unit"] == "kB" and t["flash_kb_provenance"] == "static" for t in ok)
    assert all(t["instructions_provenance"] == "emulated" and t["instructions_method"] for t in ok)
    assert {t["trial"] for t in pareto} == {str(n) for n in doc["pareto"]}
    assert [t["class"] for t in trials if t["status"] == "infeasible"] == ["rejected"] * sum(
        t["status"] == "infeasible" for t in trials)
    assert doc["recommendation"]["part"] and doc["trials"][0]["figures"] is not None


def test_optuna_dashboard_opens_the_study(report: Path):
    """optuna-dashboard (PyPI) serves the run's storage as it is: the study and, per trial, the
    figures, status and configuration mcusearch stores as user attributes."""
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = report.parent / "run" / "study.db"
    dash = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), "--host", "127.0.0.1",
                             "--port", str(port), "--quiet", f"sqlite:///{db}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/api/studies"
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = json.load(urllib.request.urlopen(url, timeout=5))["study_summaries"]
                break
            except OSError:
                assert dash.poll() is None, dash.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["mcusearch"]
        study = json.load(urllib.request.urlopen(f"{url}/{studies[0]['study_id']}?after=0", timeout=30))
        assert len(study["trials"]) == 4
        done = [t for t in study["trials"] if t["state"] == "Complete"]
        assert done
        for t in done:
            attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
            assert {"figures", "status", "config", "artifacts"} <= set(attrs)
            assert "emulated" in attrs["figures"]
    finally:
        dash.terminate()
        dash.wait(timeout=30)
