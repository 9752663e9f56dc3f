"""What reaches the terminal: third-party start-up noise kept off it, C-level output captured.

TensorFlow prints absl/oneDNN lines from C++ when it is imported, whatever
``TF_CPP_MIN_LOG_LEVEL`` says, and the TFLite converter prints ``fully_quantize:`` lines from
C++ to file descriptor 2. Python's ``sys.stderr`` does not see them, so they are caught at the
file-descriptor level (:func:`capture_fd2`) and kept for a trial's log instead.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

# C++ start-up lines of TensorFlow that say nothing to a mcusearch user.
NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|"
                   r"This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate|"
                   r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered")


class Captured:
    """The text written to file descriptor 2 inside :func:`capture_fd2` (set when it exits)."""

    text: str = ""

    def lines(self) -> list[str]:
        return self.text.splitlines()


@contextlib.contextmanager
def capture_fd2() -> Iterator[Captured]:
    """Send everything written to file descriptor 2 (C, C++ and Python) to a temporary file
    while the block runs; the text is in the yielded :class:`Captured` afterwards."""
    out = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.text = tmp.read().decode("utf-8", "replace")


def not_noise(lines: list[str]) -> list[str]:
    """The lines that are not known third-party start-up noise."""
    return [line for line in lines if line.strip() and not NOISE.search(line)]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (once) with its C++ start-up lines dropped; anything else it prints
    still reaches stderr."""
    if "tensorflow" in sys.modules:
        return
    with capture_fd2() as out:
        import tensorflow  # noqa: F401
    for line in not_noise(out.lines()):
        print(line, file=sys.stderr)
