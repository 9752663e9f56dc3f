"""Overnight without a babysitter (issue 11): kill -9 leaves no emulator, no temp folder and no
miscount behind; failed trials say their stage and reason in one line; nothing completed is
exit 1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from mcusearch.proc import clean_stale_temp, make_temp, pid_alive
from mcusearch.study import counts, finished, reap_dead_trials

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "badinput"))
from make_corpus import BASE, _npz  # noqa: E402  (the corpus's small valid spec and data)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_child_dies_with_its_parent_even_on_kill_9():
    code = ("import subprocess, sys; from mcusearch.proc import die_with_parent; "
            "p = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent); "
            "print(p.pid, flush=True); p.wait()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "the child outlived its killed parent"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by init; a zombie of ours is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_temp_folders_of_dead_runs_are_removed_on_the_next_start():
    dead = Path(f"/tmp/mcus-qemu-{_dead_pid()}-test")
    dead.mkdir()
    (dead / "qemu.log").write_text("left by a killed run")
    mine = make_temp("mcus-qemu-")
    try:
        removed = clean_stale_temp()
        assert dead in removed and not dead.exists()
        assert mine.is_dir() and mine not in removed
    finally:
        for d in (dead, mine):
            if d.exists():
                import shutil
                shutil.rmtree(d)


def test_a_dead_runs_trial_is_failed_at_once_and_queued_again(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, directions=["minimize"])
    dist = optuna.distributions.CategoricalDistribution(["-O2", "-O3"])
    study.add_trial(optuna.create_trial(params={"opt": "-O2"}, distributions={"opt": dist},
                                        values=[1.0], user_attrs={"status": "ok"}))
    import socket
    t = study.ask({"opt": dist})
    t.set_user_attr("worker", {"host": socket.gethostname(), "pid": _dead_pid()})
    t.set_user_attr("status", "running")
    other = study.ask({"opt": dist})  # another machine's trial: left to the heartbeat
    other.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    assert finished(study) == 1

    assert reap_dead_trials(study) == [t.number]
    trials = study.get_trials()
    dead = trials[t.number]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert dead.user_attrs["status"] == "interrupted" and "died" in dead.user_attrs["error"]
    assert not counts(dead) and finished(study) == 1
    assert trials[other.number].state == optuna.trial.TrialState.RUNNING
    waiting = [x for x in trials if x.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == t.number


# ---- the real thing: a run killed with kill -9 during a trial, then resumed ---------------------

def _spec(tmp_path: Path, n_trials: int) -> Path:
    data = {**BASE, "search": {**BASE["search"], "n_trials": n_trials, "seed": 3}}
    data["knobs"] = {**BASE["knobs"], "opt_level": ["-O1", "-O2", "-O3", "-Os"]}
    _npz()(tmp_path / "data.npz")
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, their children, ... (read cheaply from /proc)."""
    out, todo = [], [pid]
    while todo:
        try:             # a process may exit while it is read: it has no children any more
            tasks = list(Path(f"/proc/{todo.pop()}/task").glob("*/children"))
        except OSError:
            continue
        for children in tasks:
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _qemu_children(pid: int) -> list[int]:
    """QEMU processes below ``pid`` (the trial's process starts them; they run for a fraction of
    a second)."""
    out = []
    for k in _descendants(pid):
        try:
            if b"qemu-system-arm" in Path(f"/proc/{k}/cmdline").read_bytes():
                out.append(k)
        except OSError:
            pass
    return out


@pytest.mark.slow
def test_kill_9_during_a_trial_then_resume(tmp_path):
    spec = _spec(tmp_path, n_trials=3)
    run = subprocess.Popen([sys.executable, "-m", "mcusearch", "run", "--no-progress", str(spec)],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qemu: list[int] = []
    deadline = time.monotonic() + 400
    while not qemu and run.poll() is None and time.monotonic() < deadline:
        qemu = _qemu_children(run.pid)
        time.sleep(0.002)
    assert qemu, "no QEMU child seen before the run ended"
    below = _descendants(run.pid)  # the trial's process (search.isolate) and QEMU
    temp = [d for p in below for d in Path("/tmp").glob(f"mcus-qemu-{p}-*")]
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert _wait_for(lambda: not [p for p in below if _running(p)], 5), "a child outlived the run"

    study = optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials())

    r = subprocess.run([sys.executable, "-m", "mcusearch", "run", "--no-progress", str(spec)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    study = optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = study.get_trials()
    assert finished(study) == 3, [(t.number, t.state.name, t.user_attrs.get("status")) for t in trials]
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    killed = [t for t in trials if t.user_attrs.get("status") == "interrupted"]
    assert len(killed) == 1 and killed[0].state == optuna.trial.TrialState.FAIL
    assert not [d for d in temp if d.exists()], "the killed run's temp folder is still there"


# ---- exit status and noise; Ctrl-C ----------------------------------------------------------------

NOISE = ("Traceback", "fully_quantize", "oneDNN", "absl::InitializeLog", "FutureWarning",
         "A new study created")


@pytest.mark.slow
def test_nothing_completed_is_exit_1_with_one_line_per_failed_trial(tmp_path):
    spec = _spec(tmp_path, n_trials=1)
    data = yaml.safe_load(spec.read_text())
    data["target"]["timeout_s"] = 0.001  # every firmware run times out: the measure stage fails
    spec.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-m", "mcusearch", "run", str(spec)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    for word in NOISE:
        assert word not in r.stderr + r.stdout, word
    failed = [line for line in r.stderr.splitlines() if "trial 0 failed in" in line]
    assert len(failed) == 1 and "measure" in failed[0], r.stderr
    assert "no trial completed" in r.stderr
    assert "progress: 1/1 trials: 0 ok, 1 failed, 0 infeasible" in r.stderr
    assert "trial 0 failed in measure" in (tmp_path / "run" / "run.log").read_text()
    logs = list((tmp_path / "run" / "trials").glob("*/trial.log"))
    assert logs and "Traceback" in logs[0].read_text()


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_one_ctrl_c_stops_within_2_s_and_marks_the_trial(tmp_path):
    spec = _spec(tmp_path, n_trials=2)
    err = tmp_path / "err.txt"
    with err.open("w") as f:
        run = subprocess.Popen([sys.executable, "-m", "mcusearch", "run", "--no-progress", str(spec)],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=f)
    assert _wait_for(lambda: "trial 0: ch=" in err.read_text() or run.poll() is not None, 400)
    time.sleep(1.0)  # inside the trial's model stage (training)
    t0 = time.monotonic()
    run.send_signal(signal.SIGINT)
    assert _wait_for(lambda: run.poll() is not None, 10)
    assert time.monotonic() - t0 < 2.5, time.monotonic() - t0
    assert run.returncode == 130, err.read_text()[-1000:]
    study = optuna.load_study(study_name="mcusearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    t = study.get_trials()[0]
    assert t.state == optuna.trial.TrialState.FAIL and t.user_attrs["status"] == "interrupted"
    assert not counts(t)


def test_a_full_disk_is_named_as_the_reason(tmp_path):
    from mcusearch.errors import StageError
    from mcusearch.study import disk_full

    try:
        with open("/dev/full", "w") as f:  # the kernel's always-full device: ENOSPC on write
            f.write("x" * 10_000)
            f.flush()
    except OSError as e:
        err = e
    assert disk_full(err).startswith("disk full (No space left on device")
    try:
        try:
            raise err
        except OSError as e:
            raise StageError("build", "could not write the firmware") from e
    except StageError as wrapped:
        assert disk_full(wrapped).startswith("disk full")
    assert disk_full(ValueError("a shape mismatch")) is None


# ---- fault isolation: a crash, a hang or too much memory fails the trial, not the run -----------

def _one_trial(tmp_path: Path):
    from mcusearch.knobs import config_from_params, knobs_from_spec, search_space
    from mcusearch.spec import load_spec

    spec = load_spec(_spec(tmp_path, n_trials=1))
    knobs = knobs_from_spec(spec)
    params = {name: choices[0] for name, choices in search_space(knobs).items()}
    return spec, config_from_params(knobs, params)


@pytest.mark.parametrize("kind, limits, words", [
    ("abort", {}, "aborted (SIGABRT)"),
    pytest.param("segv", {}, "SIGSEGV", marks=pytest.mark.slow),
    pytest.param("hang", {"stage_timeout_s": 3}, "took longer than search.stage_timeout_s",
                 marks=pytest.mark.slow),
    pytest.param("memory", {"memory_limit_mb": 1200}, "out of memory", marks=pytest.mark.slow),
])
def test_a_fault_in_a_stage_fails_the_trial_with_one_line(kind, limits, words, tmp_path, monkeypatch):
    from mcusearch.errors import StageError
    from mcusearch.isolate import CHILD_LOG, FAULT_ENV, run_isolated

    spec, config = _one_trial(tmp_path)
    monkeypatch.setenv(FAULT_ENV, f"feasibility:{kind}")
    seen = []
    t0 = time.monotonic()
    with pytest.raises(StageError) as e:
        run_isolated(spec, config, tmp_path / "trial", seen.append, **limits)
    assert e.value.stage == "feasibility" and seen == ["feasibility"]
    assert words in e.value.message and "\n" not in e.value.message, e.value.message
    assert (tmp_path / "trial" / CHILD_LOG).is_file()
    assert time.monotonic() - t0 < 120


@pytest.mark.slow
def test_the_study_goes_on_after_a_crash(tmp_path):
    spec = _spec(tmp_path, n_trials=2)
    env = {**os.environ, "MCUSEARCH_TEST_FAULT": "model:abort"}
    r = subprocess.run([sys.executable, "-m", "mcusearch", "run", "--no-progress", str(spec)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    failed = [line for line in r.stderr.splitlines() if " failed in model: aborted (SIGABRT)" in line]
    assert len(failed) == 2, r.stderr  # both trials ran; each ended as FAIL with one line
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text, seconds", [("8h", 28_800), ("90m", 5_400), ("45s", 45), ("3600", 3_600),
                                           ("1.5h", 5_400)])
def test_run_timeout_takes_a_duration(text, seconds):
    from mcusearch.cli import duration

    assert duration(text) == seconds


@pytest.mark.parametrize("args", [["--timeout", "nan"], ["--timeout", "-1h"], ["--timeout", "soon"],
                                  ["--timeout", "1e308"], ["--n-trials", "0"], ["--n-trials", "x"]])
def test_run_refuses_bad_budgets_before_reading_the_spec(args, tmp_path, capsys):
    from mcusearch.cli import main

    with pytest.raises(SystemExit) as e:
        main(["run", str(tmp_path / "absent.yaml"), *args])
    assert e.value.code == 2
    assert args[0] in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---- workers: a board runs one trial at a time; identical knobs are not built twice at once -------

def test_a_board_lock_is_released_when_its_holder_is_killed():
    from mcusearch.proc import board_lock

    name = f"test-{os.getpid()}"
    code = (f"import time; from mcusearch.proc import board_lock\n"
            f"with board_lock({name!r}):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            with board_lock(name, wait_s=0.5):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with board_lock(name, wait_s=5):
            pass
    finally:
        holder.kill()


def test_a_trial_waits_for_a_running_twin(tmp_path, monkeypatch):
    import threading

    import mcusearch.study as st

    monkeypatch.setattr(st, "TWIN_POLL_S", 0.1)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", directions=["minimize"])
    dist = {"opt": optuna.distributions.CategoricalDistribution(["-O2", "-O3"])}
    study.enqueue_trial({"opt": "-O2"})
    study.enqueue_trial({"opt": "-O2"})
    other = study.ask(dist)  # "another worker" runs -O2 now
    mine = study.ask(dist)
    assert mine.params == other.params == {"opt": "-O2"}
    threading.Timer(1.0, lambda: study.tell(other, 1.0)).start()
    t0 = time.monotonic()
    st._wait_for_running_twin(mine, mine.params)
    assert time.monotonic() - t0 >= 0.9


def test_a_trial_with_other_knobs_does_not_wait(tmp_path):
    import mcusearch.study as st

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", directions=["minimize"])
    study.enqueue_trial({"opt": "-O2"})
    study.enqueue_trial({"opt": "-O3"})
    dist = {"opt": optuna.distributions.CategoricalDistribution(["-O2", "-O3"])}
    a, b = study.ask(dist), study.ask(dist)
    assert a.params != b.params
    t0 = time.monotonic()
    st._wait_for_running_twin(b, b.params)
    assert time.monotonic() - t0 < 0.5
