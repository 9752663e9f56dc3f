"""A status line on a terminal: one line at the bottom, redrawn in place while the run works.

:class:`StatusLine` draws ``text()`` with a carriage return, padded to the terminal's width (so a
shorter text leaves nothing of a longer one behind) and cut to it (a wrapped line could not be
redrawn in place), at least every ``interval`` seconds from a small thread, so clocks in the text
move while a trial runs. While it is shown, the terminal's log handlers and ``sys.stderr`` write
through it: the line is cleared, the text printed, and the line drawn again below it, so log lines
never mix with it. When the block ends the last text stays, as an ordinary line. Log records marked with :data:`STATUS_ONLY` (``extra={STATUS_ONLY: True}``) do
not reach the terminal while the line shows them (they still reach other handlers: the run log).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable, TextIO

STATUS_ONLY = "status_only"  # a log record's attribute: shown by the status line, not as a line


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal a status line can be redrawn on."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class _Through:
    """A stream that clears the status line before anything is written and draws it again once
    a line is complete (log handlers flush after each record; ``print`` ends with a newline)."""

    def __init__(self, status: "StatusLine", stream: TextIO):
        self._status, self._stream = status, stream

    def write(self, s: str) -> int:
        return self._status.write_through(self._stream, s)

    def flush(self) -> None:
        self._status.flush_through(self._stream)

    def __getattr__(self, name: str):  # fileno, isatty, encoding, ...
        return getattr(self._stream, name)


class _NotOnTerminal(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, STATUS_ONLY, False)


class StatusLine:
    """The status line on ``stream`` (a terminal) while the ``with`` block runs."""

    def __init__(self, text: Callable[[], str], stream: TextIO | None = None, interval: float = 1.0):
        self._text = text
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = 0                 # width of the line on screen now (0: none)
        self._line_start = True         # the cursor is at the start of an empty line
        self._restore: list[Callable[[], None]] = []

    # ---- drawing ---------------------------------------------------------------------------------
    def width(self) -> int:
        """Columns available (one less than the terminal's: the cursor never wraps)."""
        try:
            return max(10, os.get_terminal_size(self._stream.fileno()).columns - 1)
        except (OSError, ValueError, AttributeError):
            return 79

    def draw(self, whole: bool = False) -> None:
        """Draw the line again (not while a line of other output is half written); ``whole``:
        not cut to the terminal's width (the last time: it may wrap, it is not redrawn)."""
        with self._lock:
            if not self._line_start:
                return
            try:
                text = " ".join(self._text().split())
            except Exception as e:  # a status line is not worth a run
                text = f"(no status: {type(e).__name__})"
            w = self.width()
            text = text if len(text) <= w or whole else text[:w - 3] + "..."
            self._stream.write("\r" + text.ljust(max(self._shown, len(text))))
            self._stream.flush()
            self._shown = len(text)

    def clear(self) -> None:
        """Remove the line from the screen (the cursor back at its start)."""
        with self._lock:
            if self._shown:
                self._stream.write("\r" + " " * self._shown + "\r")
                self._stream.flush()
                self._shown = 0

    def write_through(self, stream: TextIO, s: str) -> int:
        with self._lock:
            if s:
                self.clear()
                self._line_start = s.endswith("\n")
            return stream.write(s)

    def flush_through(self, stream: TextIO) -> None:
        with self._lock:
            stream.flush()
            if self._thread is not None and not self._stop.is_set():
                self.draw()

    # ---- life ------------------------------------------------------------------------------------
    def __enter__(self) -> "StatusLine":
        self._install()
        self.draw()
        self._thread = threading.Thread(target=self._loop, name="status-line", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop redrawing; the last text stays on screen as an ordinary line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self._interval + 1)
        with self._lock:
            if not self._line_start:  # after a half-written line of other output
                self._stream.write("\n")
                self._line_start = True
            self.draw(whole=True)
            self._stream.write("\n")
            self._stream.flush()
            self._shown = 0
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.draw()

    def _install(self) -> None:
        """Route the terminal's log handlers and ``sys.stderr`` through the line."""
        through = _Through(self, self._stream)
        only = _NotOnTerminal()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is self._stream:
                handler.setStream(through)
                handler.addFilter(only)
                self._restore.append(lambda h=handler: (h.setStream(self._stream), h.removeFilter(only)))
        if sys.stderr is self._stream:
            sys.stderr = through
            self._restore.append(lambda: setattr(sys, "stderr", self._stream))
