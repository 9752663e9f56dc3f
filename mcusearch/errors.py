"""The errors mcusearch raises on purpose. Anything else is a bug."""
from __future__ import annotations


class McusearchError(Exception):
    """Base class: a problem the user can act on; the CLI prints it and exits non-zero."""

    exit_code = 1


class SpecError(McusearchError):
    """search.yaml (or a file it names) is wrong. ``where`` is the key path, e.g. ``knobs.channels``."""

    exit_code = 2

    def __init__(self, where: str, message: str, source: str | None = None):
        self.where, self.message, self.source = where, message, source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")


class StageError(McusearchError):
    """A pipeline stage failed for one trial; the trial is recorded as FAIL with this reason."""

    def __init__(self, stage: str, message: str, log: str | None = None):
        self.stage, self.message, self.log = stage, message, log
        super().__init__(f"{stage}: {message}")


class Infeasible(McusearchError):
    """A candidate was rejected before the expensive stages because it cannot meet a constraint."""

    def __init__(self, constraint: str, message: str):
        self.constraint, self.message = constraint, message
        super().__init__(f"infeasible ({constraint}): {message}")
