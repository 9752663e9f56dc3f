"""A live report: rewrite the HTML report while a study runs, every N finished trials.

Entry point: :func:`report_every` (an Optuna trial callback, for ``mcusearch run --report-every N``).
Any worker may call it, on SQLite or PostgreSQL: it reads the whole study from the storage, so
the report shows every worker's trials and says how many are still running. The report is
written atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import logging
from typing import Callable

import optuna

log = logging.getLogger("mcusearch.report")


def report_every(spec, every: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """A callback writing ``spec``'s report after every ``every``-th finished trial of the study."""
    from mcusearch.report import write_report
    from mcusearch.study import recommendation, summarize

    if every < 1:
        raise ValueError(f"report every {every} trials: expected 1 or more")

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        n = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        if n % every:
            return
        try:
            summary = summarize(study, spec.run_dir, spec.storage_url)
            rec, why_none = recommendation(spec, summary)
            out = write_report(summary, recommendation=rec, why_none=why_none, spec=spec)
        except Exception as e:  # a report is a view: it must never stop the study
            log.warning("live report after %d trials not written: %s: %s", n, type(e).__name__, e)
            return
        log.info("live report after %d finished trials: %s", n, out)

    return callback
