"""Every serve test runs in its own working directory: the decision log is on by default and
writes its SQLite file (confroute-decisions.db) there, not into the checkout.

This file shadows the name `conftest` for the serve tests, so it also passes on what they
import from the suite's shared conftest."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "shared_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
IMAGE, TOOL_TURN, make_rows = _shared.IMAGE, _shared.TOOL_TURN, _shared.make_rows


@pytest.fixture(scope="session", autouse=True)
def _own_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session-wide, so that module-scoped apps are made there too."""
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("serve-cwd"))
    try:
        yield
    finally:
        os.chdir(before)
