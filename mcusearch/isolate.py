"""Fault isolation: one trial's stages run in a child process the study can always get back from.

A segfault or an abort inside TensorFlow or the converter, an out-of-memory kill or a hang
would otherwise end the whole run. :func:`run_isolated` runs :func:`~mcusearch.trial.run_trial`
in a worker process (``python -m mcusearch.isolate``, started fresh, not forked: TensorFlow's
threads do not survive ``fork``; it serves the run's trials one after another, so TensorFlow is
imported once, and is replaced after a fault) and watches it: each stage it starts is
reported on a pipe; a stage that runs longer than ``search.stage_timeout_s``, or a child whose
resident memory passes ``search.memory_limit_mb``, is killed; a child that dies by a signal is
named by it. Each case
ends the trial as a :class:`~mcusearch.errors.StageError` with a one-line reason, and the child's
own output (TensorFlow's, the converter's, Python's tracebacks) is in the trial's ``child.log``.

``MCUSEARCH_TEST_FAULT=STAGE:KIND`` (KIND: abort, segv, hang, memory, raise) injects a fault
when STAGE starts, for the tests only.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

from mcusearch.errors import Infeasible, StageError

CHILD_LOG = "child.log"          # the child's stdout/stderr, in the trial folder
FAULT_ENV = "MCUSEARCH_TEST_FAULT"
POLL_S = 0.1
STARTUP_S = 300.0  # the child's start (imports, the spec) before its first stage


class Worker:
    """One child process (``python -m mcusearch.isolate``) that runs trials one after another:
    TensorFlow is imported once per run, not once per trial. A child that crashed, hung or grew
    too big is killed; the next trial starts a fresh one."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.buf = b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, log_path: Path) -> None:
        from mcusearch.proc import die_with_parent

        with open(log_path, "ab") as log:  # its start-up output; each trial's goes to its folder
            self.proc = subprocess.Popen([sys.executable, "-m", "mcusearch.isolate"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         preexec_fn=die_with_parent,  # no orphan after kill -9
                                         process_group=0)  # Ctrl-C is the run's to handle
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def lines(self) -> list[str]:
        """The complete lines the child wrote since the last call."""
        try:
            self.buf += self.proc.stdout.read() or b""
        except (OSError, ValueError):
            pass
        *done, self.buf = self.buf.split(b"\n")
        return [line.decode(errors="replace") for line in done]


_WORKER = Worker()


def run_isolated(spec, config, trial_dir: Path, on_stage=None, stage_timeout_s: float | None = None,
                 memory_limit_mb: float | None = None):
    """:func:`~mcusearch.trial.run_trial` in the worker process; returns its TrialResult or raises
    its StageError / Infeasible (or a StageError for a crash, a timeout or too much memory)."""
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    job = trial_dir / ".job.pkl"
    result = trial_dir / ".result.pkl"
    result.unlink(missing_ok=True)
    job.write_bytes(pickle.dumps({"spec": spec.resolved_yaml(), "base_dir": str(spec.base_dir),
                                  "config": config, "trial_dir": str(trial_dir),
                                  "result": str(result), "fault": os.environ.get(FAULT_ENV, "")}))
    w = _WORKER
    try:
        if not w.alive():
            w.start(trial_dir.parent / "worker.log")
        w.proc.stdin.write(f"{job}\n".encode())
        w.proc.stdin.flush()
        stage, done = _watch(w, on_stage, stage_timeout_s, memory_limit_mb)
    except BrokenPipeError:
        stage, done = "start", False
    except BaseException:
        w.stop()  # a timeout, too much memory, Ctrl-C: the child goes with it
        raise
    finally:
        job.unlink(missing_ok=True)
    if not done:  # the worker died: say how
        code = w.proc.wait() if w.proc is not None else 0
        w.stop()
        return _outcome(code, stage, result, trial_dir)
    return _outcome(0, stage, result, trial_dir)


def stop_worker() -> None:
    """End the worker process (at the end of a run)."""
    _WORKER.stop()


def _watch(w: Worker, on_stage, stage_timeout_s, memory_limit_mb) -> tuple[str, bool]:
    """Follow the worker's stage reports until it reports the trial done (True) or dies (False);
    raise StageError when a stage runs over its time or the worker over its memory."""
    stage, started = "start", time.monotonic()
    while True:
        for line in w.lines():
            if line.startswith("@stage "):
                stage, started = line[7:], time.monotonic()
                if on_stage is not None:
                    on_stage(stage)
            elif line == "@done":
                return stage, True
        if not w.alive():
            for line in w.lines():
                if line.startswith("@stage "):
                    stage = line[7:]
            return stage, False
        budget = STARTUP_S if stage == "start" else stage_timeout_s
        if budget is not None and time.monotonic() - started > budget:
            if stage == "start":
                raise StageError(stage, f"the trial's process did not start within {budget:g} s: killed")
            raise StageError(stage, f"took longer than search.stage_timeout_s ({budget:g} s): killed")
        rss = _rss_mb(w.proc.pid)
        if memory_limit_mb is not None and rss is not None and rss > memory_limit_mb:
            raise StageError(stage, f"out of memory: {rss:,.0f} MB resident, over "
                                    f"search.memory_limit_mb ({memory_limit_mb:g} MB): killed")
        time.sleep(POLL_S)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _outcome(code: int, stage: str, result: Path, trial_dir: Path):
    """The child's TrialResult, or the exception that says how it ended."""
    payload = pickle.loads(result.read_bytes()) if result.is_file() else None
    result.unlink(missing_ok=True)
    if code == 0 and payload is not None:
        if payload["kind"] == "ok":
            return payload["result"]
        if payload["kind"] == "infeasible":
            raise Infeasible(payload["constraint"], payload["message"])
        raise StageError(payload["stage"] or stage, payload["message"], log=payload.get("log"))
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGKILL": "killed (SIGKILL: the kernel's out-of-memory killer, or by hand)",
               "SIGSEGV": "crashed (SIGSEGV: segmentation fault)",
               "SIGABRT": "aborted (SIGABRT)"}.get(name, f"died by signal {name}")
        raise StageError(stage, f"{why}; see {trial_dir / CHILD_LOG}")
    raise StageError(stage, f"the trial's process ended (status {code}) without a result; see "
                            f"{trial_dir / CHILD_LOG}")


# ---- the child --------------------------------------------------------------------------------

def _inject(fault: str, stage: str) -> None:
    """The test-only fault hook (see the module docstring)."""
    if not fault or fault.split(":")[0] != stage:
        return
    kind = fault.split(":", 1)[1]
    if kind == "abort":
        os.abort()
    if kind == "segv":
        import ctypes
        ctypes.string_at(0)
    if kind == "hang":
        time.sleep(3600)
    if kind == "memory":
        hog = []
        while True:
            hog.append(bytearray(64 << 20))
            for i in range(0, len(hog[-1]), 4096):  # touch it: resident, not just reserved
                hog[-1][i] = 1
    if kind == "raise":
        raise RuntimeError("injected failure")


def _one_job(job: dict, specs: dict) -> dict:
    """Run one trial in this (worker) process; the payload :func:`_outcome` reads."""
    import yaml

    from mcusearch.errors import McusearchError
    from mcusearch.spec import parse_spec
    from mcusearch.trial import run_trial

    def report(stage: str) -> None:
        sys.stdout.write(f"@stage {stage}\n")
        sys.stdout.flush()
        _inject(job["fault"], stage)

    key = (job["spec"], job["base_dir"])
    if key not in specs:  # parsed once per run (validation registers the spec's boards)
        specs[key] = parse_spec(yaml.safe_load(job["spec"]), "spec.yaml (of the run)",
                                Path(job["base_dir"]))
    try:
        result = run_trial(specs[key], job["config"], Path(job["trial_dir"]), on_stage=report)
    except Infeasible as e:
        return {"kind": "infeasible", "constraint": e.constraint, "message": e.message}
    except McusearchError as e:
        return {"kind": "error", "stage": getattr(e, "stage", ""), "message":
                getattr(e, "message", str(e)), "log": getattr(e, "log", None)}
    except Exception as e:  # outside a stage (a bug): still a result, with the reason
        import traceback
        traceback.print_exc()
        return {"kind": "error", "stage": "internal", "message": f"{type(e).__name__}: {e}"}
    return {"kind": "ok", "result": result}


def _serve() -> int:
    """The worker: read job files from stdin, one per line; run each with fd 2 sent to the
    trial's child.log; write the result file, then ``@done``."""
    import logging

    from mcusearch.log import import_tensorflow_quietly

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    import_tensorflow_quietly()
    specs: dict = {}
    for line in sys.stdin:
        job = pickle.loads(Path(line.strip()).read_bytes())
        saved = os.dup(2)
        with open(Path(job["trial_dir"]) / CHILD_LOG, "ab") as log:
            sys.stderr.flush()
            os.dup2(log.fileno(), 2)
            try:
                payload = _one_job(job, specs)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
        tmp = Path(job["result"] + ".tmp")
        tmp.write_bytes(pickle.dumps(payload))
        os.replace(tmp, job["result"])
        sys.stdout.write("@done\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve())
