"""Processes and their debris: children that die with their parent, this worker's identity, and
the temporary folders a killed run leaves behind.

A run killed with ``kill -9`` cannot clean up. So every child it starts (QEMU, a GDB server) asks
the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), every temporary folder carries
the PID of the process that made it, and the next run removes the folders of dead PIDs
(:func:`clean_stale_temp`).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1  # linux/prctl.h
TEMP_PREFIXES = ("mcus-qemu-",)  # folders made by :func:`make_temp` (prefix + PID + "-")


def die_with_parent() -> None:
    """``preexec_fn`` of a child process: the kernel sends it SIGKILL when its parent dies
    (even by ``kill -9``), so no emulator outlives the run. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def worker_id() -> dict[str, object]:
    """Who runs a trial: host name and PID (stored on the trial; see the study's reaper)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def make_temp(prefix: str, short: bool = False) -> Path:
    """A new temporary folder named ``<prefix><pid>-<random>`` (in /tmp when ``short``: unix
    socket paths must stay under ~107 bytes)."""
    assert prefix in TEMP_PREFIXES, prefix
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir="/tmp" if short else None))


def clean_stale_temp() -> list[Path]:
    """Remove the temporary folders of :data:`TEMP_PREFIXES` whose process is dead; return them."""
    removed = []
    for root in {Path(tempfile.gettempdir()), Path("/tmp")}:
        for prefix in TEMP_PREFIXES:
            for d in root.glob(f"{prefix}*"):
                pid = d.name[len(prefix):].split("-", 1)[0]
                if d.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
    return removed


@contextlib.contextmanager
def board_lock(name: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold the machine-wide lock of board ``name`` (one probe runs one firmware at a time, so
    workers on this machine take turns); the kernel releases it when the holder dies, even by
    ``kill -9``. A probe hangs off one machine, so a machine-wide lock covers every worker that
    can reach it."""
    import fcntl

    path = Path(tempfile.gettempdir()) / f"mcusearch-board-{name}.lock"
    with open(path, "a+") as f:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"board {name} stayed busy for {wait_s:g} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
