"""The command line: ``mcusearch init | validate | run | report | measure | calibrate | cache |
boards | catalog``.

Every command prints one clear line on a user error and exits non-zero (2 for a bad spec).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mcusearch.errors import McusearchError

DESCRIPTION = """\
Search the configurations of a neural network (channel pruning, quantization, converter,
compiler flags, board) for the ones that fit a microcontroller: every trial builds the real
model, generates C, cross-compiles firmware, runs it on a (possibly emulated) board, checks its
outputs against the host model and records flash, RAM, instructions and accuracy.

Typical use:
  mcusearch init search.yaml       write a commented template
  mcusearch validate search.yaml   check it without running anything
  mcusearch run search.yaml        run (or resume) the search, then write the report
  mcusearch report reports/search  write reports/search.html from a run folder
  mcusearch measure model.h5 --board qemu-m7     one model on one board, no search
  mcusearch calibrate model.h5 --board nucleo-f722ze   estimates vs a real board, per layer
  mcusearch catalog                what the built-in parts catalog knows and lacks

Exit status:
  0    done (for `run`: at least one trial completed)
  1    `run` completed no trial (every one failed or was infeasible), or a run-time error
  2    a bad spec or input file (one line names the key or file; nothing was written)
  130  interrupted (Ctrl-C: the trial in flight is marked and runs again on resume)
"""


def _cmd_init(args) -> int:
    from mcusearch.spec import TEMPLATE

    path = Path(args.path)
    if path.exists() and not args.force:
        raise McusearchError(f"{path} exists; use --force to overwrite it")
    path.write_text(TEMPLATE)
    print(f"wrote {path}; edit it, then `mcusearch validate {path}`")
    return 0


def _cmd_validate(args) -> int:
    from mcusearch.knobs import knobs_from_spec, search_space
    from mcusearch.spec import load_spec

    spec = load_spec(args.spec)
    checked = _preflight(spec)
    space = search_space(knobs_from_spec(spec))
    size = 1
    for v in space.values():
        size *= len(v)
    for line in checked.lines:
        print(f"  {line}")
    print(f"{args.spec}: valid. {len(space)} search parameters, {size} configurations; "
          f"{spec.search.n_trials} trials with {spec.search.sampler}; run folder {spec.run_dir}")
    return 0


def _preflight(spec):
    """Load and check the spec's data set and model together before anything is written
    (:mod:`mcusearch.preflight`); print its warnings, one line each."""
    from mcusearch.preflight import preflight

    checked = preflight(spec)     # imports TensorFlow (quietly) only once the data is checked
    for w in checked.warnings:
        print(f"mcusearch: warning: {w}", file=sys.stderr)
    return checked


def _cmd_run(args) -> int:
    from mcusearch.report import pareto_table, write_report
    from mcusearch.spec import load_spec
    from mcusearch.study import recommendation, run_study

    spec = load_spec(args.spec)
    _preflight(spec)
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    _interrupt_once_then_kill()
    try:
        summary = run_study(spec, n_trials=args.n_trials, timeout_s=args.timeout,
                            progress=not args.no_progress, report_every=args.report_every)
    except KeyboardInterrupt:  # the trial in flight is marked: leave now, not after TF's clean-up
        import os

        print("mcusearch: interrupted; finished trials are saved, run again to resume",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    rec, why_none = recommendation(spec, summary)
    out = write_report(summary, recommendation=rec, why_none=why_none)
    print()
    print(f"Pareto-optimal configurations ({len(summary.records)} trials in {summary.run_dir}):")
    print(pareto_table(summary))
    print()
    print(rec if rec else f"No recommendation: {why_none}")
    print(f"\nreport: {out}")
    if not any(r.status == "ok" for r in summary.records):
        print("mcusearch: no trial completed (see each trial's stage and reason above)",
              file=sys.stderr)
        return 1
    return 0


STOP_GRACE_S = 2.0  # after a Ctrl-C the run marks its trial and exits within this, or is killed


def _interrupt_once_then_kill() -> None:
    """The first Ctrl-C raises KeyboardInterrupt (the trial in flight is marked interrupted and
    queued again) and the process ends within :data:`STOP_GRACE_S` whatever it is doing; a
    second Ctrl-C ends it at once (the next run then fails the trial it leaves RUNNING)."""
    import os
    import signal
    import threading

    def hard_exit() -> None:
        print("mcusearch: stopped", file=sys.stderr)
        os._exit(130)

    def on_sigint(signum, frame) -> None:
        if getattr(on_sigint, "seen", False):
            hard_exit()
        on_sigint.seen = True
        print("mcusearch: stopping (Ctrl-C again to kill)", file=sys.stderr)
        timer = threading.Timer(STOP_GRACE_S, hard_exit)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def _cmd_report(args) -> int:
    from mcusearch.report import pareto_table, write_report
    from mcusearch.report.export import export_paths
    from mcusearch.spec import load_spec
    from mcusearch.study import load_summary, recommendation

    def load(path: Path, storage: str | None, study_name: str | None):
        """A run given by its spec file or its folder: its spec (when known) and summary."""
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            spec = load_spec(path)
            return spec, load_summary(spec.run_dir, spec.search.storage, spec.search.study_name)
        summary = load_summary(path, storage, study_name)
        saved = summary.run_dir / "spec.yaml"  # the spec the run was started with
        return (load_spec(saved) if saved.is_file() else None), summary

    for i, p in enumerate(map(Path, args.run_dir)):  # bad input: one line naming the path, exit 2
        if not (p.is_file() and p.suffix in (".yaml", ".yml")) and not (p / "study.db").is_file() \
                and not (i == 0 and args.storage):
            e = McusearchError(f"{p}: neither a spec file (.yaml) nor a run folder holding study.db")
            e.exit_code = 2
            raise e
    spec, summary = load(Path(args.run_dir[0]), args.storage, args.study_name)
    others = [load(Path(p), None, None)[1] for p in args.run_dir[1:]]  # compared: their own study.db
    rec, why_none = recommendation(spec, summary) if spec is not None else (None, None)
    out = write_report(summary, Path(args.output) if args.output else None, recommendation=rec,
                       why_none=why_none, spec=spec, export_csv=args.csv, export_json=args.json,
                       compare=others)
    if not args.quiet:
        print(pareto_table(summary))
        if rec or why_none:
            print(rec if rec else f"No recommendation: {why_none}")
    print(f"report: {out}")
    for path in export_paths(out, args.csv, args.json):
        print(f"export: {path}")
    return 0


def _cmd_boards(args) -> int:
    from mcusearch.boards import board_table

    rows = board_table(check_probes=not args.no_probe)
    heads = ("name", "kind", "core", "fpu", "probe")
    widths = [max(len(h), *(len(str(getattr(r, h))) for r in rows)) for h in heads]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths)) + "  description")
    for r in rows:
        print("  ".join(str(getattr(r, h)).ljust(w) for h, w in zip(heads, widths)) + f"  {r.description}")
    return 0


def _cmd_measure(args) -> int:
    """One model, one board, no search: convert, build, run, check, print the figures."""
    import shutil
    import tempfile

    from mcusearch.boards import available_boards, get_board
    from mcusearch.build import build, opt_level_arg
    from mcusearch.calibrate import check_model_file, prepare_model
    from mcusearch.convert import convert
    from mcusearch.errors import SpecError
    from mcusearch.log import import_tensorflow_quietly
    from mcusearch.measure import measure

    import_tensorflow_quietly()
    path = Path(args.model)
    quant = check_model_file(path, args.converter)
    if args.board not in available_boards():
        raise SpecError("--board", f"unknown board {args.board!r}; available: {', '.join(sorted(available_boards()))}")
    opt = opt_level_arg(args.opt_level)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mcusearch-measure-"))
    # Inputs: seeded random values (the outputs are still checked against the host model).
    try:
        model = prepare_model(path, args.converter, args.inputs, args.seed, out)
    except SpecError:
        if not args.out:                        # a bad model file leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    macs = model.macs
    board = get_board(args.board)
    conv = convert(model, args.converter, out / "c")
    fw = build(conv, board, opt, out / "build")
    meas = measure(fw, conv, board, timeout_s=args.timeout)
    rows = [("board", f"{board.name} ({board.kind}, {board.core})"),
            ("converter", f"{args.converter} ({quant}), {opt}"),
            ("per inference", str(meas.per_inference)),
            ("latency", f"{meas.est_latency_ms}: {meas.est_latency_ms.method}"),
            ("flash (image / model)", f"{fw.flash_bytes:,} / {fw.model_flash_bytes:,} bytes (static)"),
            ("RAM (image / model)", f"{fw.ram_bytes:,} / {fw.model_ram_bytes:,} bytes (static)"),
            ("output check", f"{len(meas.counts)} random inputs, max |firmware - host| {meas.max_abs_error:g}, "
                             f"top-1 agreement {meas.argmax_agreement:.0%}"),
            ("artifacts", str(out))]
    if macs:
        rows.insert(3, ("MACs", f"{macs:,} ({meas.per_inference.value / macs:.2f} per MAC)"))
    rows[-1:-1] = _plan_rows(out / "c" / "plan.json")
    for k, v in rows:
        print(f"{k:<22} {v}")
    return 0


def _plan_rows(path: Path) -> list[tuple[str, str]]:
    """What the mcusearch generators' memory plan says (plan.json): the activation arena's peak
    and the buffers that make it, and the planner's notes (stage boundaries, layers in place or a
    row a call); nothing for the other converters."""
    import json

    if not path.is_file():
        return []
    plan = json.loads(path.read_text())
    peak = plan.get("peak") or {}
    rows = []
    if peak.get("buffers"):
        rows.append(("activation arena", f"{plan['arena_bytes']:,} bytes (planned), "
                                         f"{peak['bytes']:,} live at the peak: "
                                         + ", ".join(peak["buffers"][:6])
                                         + (", ..." if len(peak["buffers"]) > 6 else "")))
    rows += [("memory plan" if i == 0 else "", note) for i, note in enumerate(plan.get("notes", []))]
    return rows


def _cmd_cache(args) -> int:
    from mcusearch.model.cache import KINDS, ModelCache
    from mcusearch.model.stage import base_key
    from mcusearch.spec import load_spec

    spec = load_spec(args.spec)
    cache = ModelCache(spec.cache_dir)
    if args.action == "clear":
        removed = cache.clear(args.kind or None)
        print(f"removed {sum(removed.values())} model cache entries from {cache.root} ("
              + ", ".join(f"{k} {n}" for k, n in removed.items()) + ")")
        return 0
    info = cache.info()
    key = base_key(spec.base_model_config())
    print(f"model cache {cache.root}: {info['entries']} entries, {info['bytes'] / 1e6:.1f} MB")
    for kind in KINDS:
        k = info["kinds"][kind]
        print(f"  {kind:<10} {k['entries']:>5} entries {k['bytes'] / 1e6:>9.1f} MB")
    state = "cached" if cache.get("base", key) else "not cached (the first trial trains it)"
    print(f"this spec's base model ({key[:12]}): {state}")
    return 0


def duration(text: str) -> float:
    """Seconds from ``8h``, ``90m``, ``45s`` or a plain number of seconds (finite, > 0)."""
    import math

    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}.get(text.strip()[-1:].lower())
    try:
        value = float(text.strip()[:-1] if scale else text) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (8h, 90m, 45s)") from None
    if not math.isfinite(value) or not 0 < value <= 366 * 86_400:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration from 1 s to a year")
    return value


def _cmd_calibrate(args) -> int:
    """Per layer: emulated instructions, the part's estimated cycles, the board's measured cycles."""
    from mcusearch.calibrate import calibrate, calibration_dir, save_path
    from mcusearch.log import import_tensorflow_quietly

    import_tensorflow_quietly()
    out = Path(args.out) if args.out else None
    cal = calibrate(Path(args.model), args.board, part_name=args.part, emulator_name=args.emulator,
                    converter=args.converter, opt_level=args.opt_level, inputs=args.inputs, seed=args.seed,
                    timeout_s=args.timeout, out=out)
    print(cal.table())
    if args.save is not False:
        path = cal.correction().save(save_path(args.save, cal.part))
        if path.parent.resolve() == calibration_dir().resolve():
            print(f"\nsaved: {path} (estimates of {cal.part} on {cal.memory} are now multiplied by "
                  f"{cal.total.ratio:.4g}, labelled \"{cal.correction().label}\")")
        else:
            print(f"\nsaved: {path} (estimates read corrections from {calibration_dir()}: copy it there, or set "
                  f"MCUSEARCH_CALIBRATION_DIR={path.parent})")
    return 0


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{n}: from 1 to 1000000")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcusearch", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("init", help="write a commented search.yaml template")
    s.add_argument("path", nargs="?", default="search.yaml")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=_cmd_init)

    s = sub.add_parser("validate", help="check a spec without running it (exit 2 if it is wrong)")
    s.add_argument("spec")
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("run", help="run or resume a search, then write its report",
                       description="Run the study until it holds search.n_trials finished trials "
                                   "(re-running resumes), then print the Pareto front and write "
                                   "the HTML report.")
    s.add_argument("spec")
    s.add_argument("--n-trials", type=_count, help="override search.n_trials (the study's total)")
    s.add_argument("--timeout", type=duration, metavar="DURATION",
                   help="stop starting new trials after this long: 8h, 90m, 45s or seconds")
    s.add_argument("--no-progress", action="store_true",
                   help="no progress (done / failed / infeasible, best so far, time left, trials "
                        "running): on a terminal a status line updated in place, otherwise a line "
                        "after each trial; the log lines also go to <run folder>/run.log")
    s.add_argument("--report-every", type=_count, metavar="N",
                   help="rewrite the HTML report every N finished trials while the study runs")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("report", help="write the HTML report of a run folder (or of a spec's run)")
    s.add_argument("run_dir", nargs="+",
                   help="the run folder (search.run_dir) or the spec file; more runs after it are compared "
                        "with it (their Pareto fronts overlaid, their spec differences listed)")
    s.add_argument("-o", "--output", help="the HTML file (default: <run folder>.html)")
    s.add_argument("--storage", help="an Optuna storage URL, if not the run folder's study.db")
    s.add_argument("--study-name", help="the study in that storage")
    s.add_argument("-q", "--quiet", action="store_true", help="print only the report's path")
    s.add_argument("--csv", action="store_true",
                   help="also write <report>.trials.csv and <report>.pareto.csv (units, provenance columns)")
    s.add_argument("--json", action="store_true", help="also write <report>.json (all trials, Pareto set)")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("measure", help="measure one model on one board, without a search",
                       description="Convert MODEL (a Keras .h5/.keras file, or an int8 .tflite), build the "
                                   "firmware, run it on the board with seeded random inputs, check its outputs "
                                   "against the host model and print instructions/cycles, flash and RAM.")
    s.add_argument("model")
    s.add_argument("--board", default="qemu-m7", help="a name from `mcusearch boards` (default qemu-m7)")
    from mcusearch.convert.aidge import LIMITS as AIDGE_LIMITS
    s.add_argument("--converter", default="mcusearch",
                   help="mcusearch (default), mcusearch-lowmem (1-D maps streamed: less RAM, more "
                        "instructions), mcusearch-ref, or aidge (float32 only; it cannot take: "
                        + "; ".join(AIDGE_LIMITS) + ")")
    s.add_argument("-O", "--opt-level", default="-O3",
                   help="compiler optimisation level: -O2, -Os, --opt-level O2, ... (default -O3)")
    s.add_argument("--inputs", type=int, default=4, help="how many inputs to run (default 4)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--timeout", type=float, default=300, help="seconds before a run counts as hung")
    s.add_argument("--out", help="folder for the generated C and the ELF (default: a new temp folder)")
    s.set_defaults(func=_cmd_measure)

    s = sub.add_parser(
        "calibrate", help="compare the per-part cycle estimate with a board, per layer; save a correction",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build MODEL (a Keras .h5/.keras file, or an int8 .tflite) with per-layer markers for the "
                    "emulator of the board's core and for the board, run both, and print per layer: the "
                    "emulated instructions (QEMU, exact), the estimated cycles for the board's part (its own "
                    "memory system: flash wait states, caches, TCM), the cycles measured on the board, and "
                    "measured / estimated.",
        epilog="With --save, the whole-inference ratio is written as a per-part correction (YAML). Later "
               "estimates of that part on the same memory configuration are multiplied by it and labelled "
               "\"calibrated on <board>, <date>\". Corrections are read from $MCUSEARCH_CALIBRATION_DIR, or "
               "else from <cache>/calibration ($MCUSEARCH_CACHE or ~/.cache/mcusearch).\n\n"
               "A real board (e.g. nucleo-f767zi) needs a probe; only its run uses the hardware. A QEMU board "
               "given as --board stands in for one (its count is instructions, and the table says so): name "
               "the part with --part.\n\n"
               "  mcusearch calibrate model.tflite --board nucleo-f767zi --save\n"
               "  mcusearch calibrate model.h5 --board qemu-m7 --part STM32F722ZE")
    s.add_argument("model")
    s.add_argument("--board", required=True, help="a name from `mcusearch boards`")
    s.add_argument("--part", help="the catalog part to calibrate (default: the board's own part)")
    s.add_argument("--emulator", help="the QEMU board for the emulated side (default: the one with the board's core)")
    s.add_argument("--converter", default="mcusearch", help="mcusearch (default), mcusearch-lowmem or mcusearch-ref: a converter "
                                                            "whose code has per-layer markers")
    s.add_argument("-O", "--opt-level", default="-O3",
                   help="compiler optimisation level: -O2, -Os, --opt-level O2, ... (default -O3)")
    s.add_argument("--inputs", type=_count, default=2, help="inputs to run (default 2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--timeout", type=float, default=300, help="seconds before a run counts as hung")
    s.add_argument("--out", help="folder for the generated C, the ELFs and the profiles (default: a temp folder)")
    s.add_argument("--save", nargs="?", const="", default=False, metavar="PATH",
                   help="save the correction: to the calibration folder, or to PATH (a file or a folder)")
    s.set_defaults(func=_cmd_calibrate)

    s = sub.add_parser("cache", help="show or clear the model cache of a spec (search.cache_dir)",
                       description="The model stage caches trained, pruned and quantised models "
                                   "by content (data, architecture, knobs, library versions): "
                                   "`info` lists the entries, `clear` removes them.")
    s.add_argument("action", choices=["info", "clear"])
    s.add_argument("spec")
    s.add_argument("--kind", action="append",
                   choices=["base", "pruned", "sparse", "variant", "footprint"],
                   help="with clear: only this kind of entry (repeatable; default: all)")
    s.set_defaults(func=_cmd_cache)

    s = sub.add_parser("boards", help="list the boards firmware can run on (and connected probes)")
    s.add_argument("--no-probe", action="store_true", help="do not ask pyOCD which probes are connected")
    s.set_defaults(func=_cmd_boards)
    from mcusearch.catalog_cli import add_catalog_parser
    add_catalog_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # WARNING until the checks before a run are done: a refused spec prints its one error line
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except McusearchError as e:
        print(f"mcusearch: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("mcusearch: interrupted; finished trials are saved, run again to resume", file=sys.stderr)
        return 130
