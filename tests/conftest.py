"""Fixtures shared by several test files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def so(tmp_path_factory) -> Path:
    """The QEMU instruction-class plugin (mcusearch/boards/plugin), built once per session."""
    from mcusearch.boards import plugin as pl

    if not shutil.which("gcc"):
        pytest.skip("no host gcc")
    return pl.build_plugin(tmp_path_factory.mktemp("plugin-cache"))
