"""Fault isolation: one trial's stages run in a child process the study can always get back from.

A segfault or an abort inside TensorFlow or the converter, an out-of-memory kill or a hang
would otherwise end the whole run. :func:`run_isolated` runs :func:`~mcusearch.trial.run_trial`
in a fresh Python process (``python -m mcusearch.isolate``, not a fork: TensorFlow's threads do
not survive ``fork``) and watches it: each stage it starts is reported on a pipe; a stage that
runs longer than ``search.stage_timeout_s``, or a child whose resident memory passes
``search.memory_limit_mb``, is killed; a child that dies by a signal is named by it. Each case
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


def run_isolated(spec, config, trial_dir: Path, on_stage=None, stage_timeout_s: float | None = None,
                 memory_limit_mb: float | None = None):
    """:func:`~mcusearch.trial.run_trial` in a child process; returns its TrialResult or raises
    its StageError / Infeasible (or a StageError for a crash, a timeout or too much memory)."""
    from mcusearch.proc import die_with_parent

    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    job = trial_dir / ".job.pkl"
    result = trial_dir / ".result.pkl"
    result.unlink(missing_ok=True)
    job.write_bytes(pickle.dumps({"spec": spec.resolved_yaml(), "base_dir": str(spec.base_dir),
                                  "config": config, "trial_dir": str(trial_dir)}))
    with open(trial_dir / CHILD_LOG, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "mcusearch.isolate", str(job), str(result)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                 preexec_fn=die_with_parent, process_group=0)
    try:
        stage = _watch(child, on_stage, stage_timeout_s, memory_limit_mb)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        job.unlink(missing_ok=True)
    return _outcome(child.returncode, stage, result, trial_dir)


def _watch(child: subprocess.Popen, on_stage, stage_timeout_s, memory_limit_mb) -> str:
    """Follow the child's stage reports until it exits; kill it on a stage timeout or too much
    memory (raising StageError). Returns the last stage it reported."""
    os.set_blocking(child.stdout.fileno(), False)
    stage, started, buf = "start", time.monotonic(), b""
    while child.poll() is None:
        chunk = child.stdout.read() or b""
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"@stage "):
                stage, started = line[7:].decode(), time.monotonic()
                if on_stage is not None:
                    on_stage(stage)
        budget = STARTUP_S if stage == "start" else stage_timeout_s
        if budget is not None and time.monotonic() - started > budget:
            child.kill()
            if stage == "start":
                raise StageError(stage, f"the trial's process did not start within {budget:g} s: killed")
            raise StageError(stage, f"took longer than search.stage_timeout_s ({budget:g} s): killed")
        rss = _rss_mb(child.pid)
        if memory_limit_mb is not None and rss is not None and rss > memory_limit_mb:
            child.kill()
            raise StageError(stage, f"out of memory: {rss:,.0f} MB resident, over "
                                    f"search.memory_limit_mb ({memory_limit_mb:g} MB): killed")
        time.sleep(POLL_S)
    rest = (buf + (child.stdout.read() or b"")).split(b"\n")
    for line in rest:
        if line.startswith(b"@stage "):
            stage = line[7:].decode()
            if on_stage is not None:
                on_stage(stage)
    return stage


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
    raise StageError(stage, f"the trial's process exited with status {code}; see {trial_dir / CHILD_LOG}")


# ---- the child --------------------------------------------------------------------------------

def _inject(stage: str) -> None:
    """The test-only fault hook (see the module docstring)."""
    want = os.environ.get(FAULT_ENV, "")
    if not want or want.split(":")[0] != stage:
        return
    kind = want.split(":", 1)[1]
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


def _child(job_path: str, result_path: str) -> int:
    import logging

    import yaml

    from mcusearch.errors import McusearchError
    from mcusearch.log import import_tensorflow_quietly
    from mcusearch.spec import parse_spec
    from mcusearch.trial import run_trial

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    job = pickle.loads(Path(job_path).read_bytes())

    def report(stage: str) -> None:
        sys.stdout.write(f"@stage {stage}\n")
        sys.stdout.flush()
        _inject(stage)

    def out(payload: dict) -> int:
        tmp = Path(result_path + ".tmp")
        tmp.write_bytes(pickle.dumps(payload))
        os.replace(tmp, result_path)
        return 0

    import_tensorflow_quietly()
    spec = parse_spec(yaml.safe_load(job["spec"]), "spec.yaml (of the run)", Path(job["base_dir"]))
    try:
        result = run_trial(spec, job["config"], Path(job["trial_dir"]), on_stage=report)
    except Infeasible as e:
        return out({"kind": "infeasible", "constraint": e.constraint, "message": e.message})
    except McusearchError as e:
        return out({"kind": "error", "stage": getattr(e, "stage", ""), "message":
                    getattr(e, "message", str(e)), "log": getattr(e, "log", None)})
    return out({"kind": "ok", "result": result})


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1], sys.argv[2]))
