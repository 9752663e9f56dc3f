"""The status line on a terminal (issue 11): one line redrawn in place (carriage return, padded to
the terminal's width) at least every second, log lines printed above it unmangled, the last state
left as an ordinary line; not on a terminal, or with --no-progress, no status line at all.
Checked on a real pseudo-terminal."""
from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from mcusearch.status import STATUS_ONLY, StatusLine, is_terminal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "badinput"))
from make_corpus import BASE, _npz  # noqa: E402  (the corpus's small valid spec and data)

COLUMNS = 100


def _pty(columns: int = COLUMNS) -> tuple[int, int]:
    """A pseudo-terminal (master, slave) ``columns`` wide that does not turn \\n into \\r\\n."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave


def _read_all(master: int, until=lambda: False, timeout: float = 900) -> bytes:
    """Everything written to the terminal until the other side closes it (or ``until()``)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        import select
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif until():
            break
    return out


def _screen(text: str) -> list[str]:
    """The lines as they stay on screen: each line's last redraw (what follows its last \\r)."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]


def test_is_terminal_only_for_a_terminal(tmp_path):
    master, slave = _pty()
    try:
        with os.fdopen(os.dup(slave), "w") as tty, open(tmp_path / "f", "w") as f:
            assert is_terminal(tty) and not is_terminal(f)
    finally:
        os.close(master)
        os.close(slave)


def test_the_line_is_redrawn_in_place_and_log_lines_stay_whole(monkeypatch):
    master, slave = _pty()
    tty = os.fdopen(slave, "w", buffering=1)
    monkeypatch.setattr(sys, "stderr", tty)
    handler = logging.StreamHandler(tty)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logger = logging.getLogger("test_status_line")
    logger.propagate = False
    logging.getLogger().addHandler(handler)  # the line reroutes the root logger's terminal handlers
    logger.addHandler(handler)
    ticks = iter(range(1_000_000))
    try:
        with StatusLine(lambda: f"status {next(ticks)} " + "x" * 200, interval=0.05):
            time.sleep(0.3)
            handler.handle(logging.makeLogRecord({"msg": "a log line"}))
            handler.handle(logging.makeLogRecord({"msg": "for the line only", STATUS_ONLY: True}))
            print("printed to stderr", file=sys.stderr)
            time.sleep(0.3)
        assert sys.stderr is tty and handler.stream is tty and not handler.filters  # all undone
    finally:
        logging.getLogger().removeHandler(handler)
        logger.removeHandler(handler)
        tty.close()
    raw = _read_all(master, timeout=5).decode()
    os.close(master)
    draws = re.findall(r"\rstatus (\d+) x*\.\.\.", raw)
    assert len(draws) >= 6 and len(set(draws)) == len(draws), raw[:300]  # redrawn, again and again
    redraws = re.findall(r"\r([^\r\n]*)", raw)
    assert all(len(d) <= COLUMNS - 1 for d in redraws[:-1])  # never wraps while it is redrawn
    assert redraws[-1].endswith("x" * 200)  # the last one, left as a line, is whole
    screen = _screen(raw)
    assert "LOG a log line" in screen and "printed to stderr" in screen  # whole lines of their own
    assert "for the line only" not in raw
    assert screen[-1] == "" and screen[-2].startswith("status ")  # the last state stays as a line
    assert screen.index("LOG a log line") < len(screen) - 2


# ---- the real thing: `mcusearch run` on a pseudo-terminal ----------------------------------------

def _spec(tmp_path: Path, n_trials: int) -> Path:
    data = {**BASE, "search": {**BASE["search"], "n_trials": n_trials, "seed": 5}}
    data["knobs"] = {**BASE["knobs"], "opt_level": ["-O1", "-O2", "-O3", "-Os"]}
    _npz()(tmp_path / "data.npz")
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _run_on_a_terminal(tmp_path: Path, *args: str) -> tuple[int, bytes]:
    master, slave = _pty()
    env = {**os.environ, "TERM": "xterm"}
    run = subprocess.Popen([sys.executable, "-m", "mcusearch", "run", *args, str(tmp_path / "spec.yaml")],
                           cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    try:
        raw = _read_all(master, until=lambda: run.poll() is not None)
        return run.wait(timeout=60), raw
    finally:
        run.kill()
        os.close(master)


@pytest.mark.slow
def test_run_on_a_terminal_shows_a_live_status_line(tmp_path):
    _spec(tmp_path, n_trials=2)
    rc, raw = _run_on_a_terminal(tmp_path)
    text = raw.decode("utf-8", "replace")
    assert rc == 0, text[-3000:]
    draws = re.findall(r"\r([^\r\n]*trials:[^\r\n]*)", text)
    assert len(draws) >= 5, text[-3000:]
    clocks = {m for d in draws for m in re.findall(r"running: #\d+ \w+ (\d+:\d\d)", d)}
    assert len(clocks) >= 2, draws  # the elapsed time moves while a trial runs
    assert all(len(d.rstrip()) <= COLUMNS - 1 for d in draws[:-1])
    screen = _screen(text)
    logs = [line for line in screen if "mcusearch." in line]
    assert any("trial 0:" in line for line in logs) and any("trial 1:" in line for line in logs)
    for line in logs:  # each log line whole, on its own line, without status text in it
        assert re.match(r"^\d\d:\d\d:\d\d mcusearch\.[\w.]+: ", line) and "trials:" not in line, line
    assert not [line for line in screen if "progress:" in line]  # the status line shows it instead
    final = [line for line in screen if line.startswith("2/2 trials: ")]
    assert len(final) == 1 and "running" not in final[0], screen  # the last state, left as a line
    assert "Pareto-optimal configurations" in text
    run_log = (tmp_path / "run" / "run.log").read_text()
    assert "progress: 1/2 trials" in run_log and "progress: 2/2 trials" in run_log


@pytest.mark.slow
def test_no_progress_means_no_status_line_on_a_terminal(tmp_path):
    _spec(tmp_path, n_trials=1)
    rc, raw = _run_on_a_terminal(tmp_path, "--no-progress")
    text = raw.decode("utf-8", "replace")
    assert rc == 0, text[-3000:]
    assert "trials:" not in text and "\r" not in text.replace("\r\n", "\n")
