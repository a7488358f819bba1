"""Fixtures of the proxy tests (the tiny router is the root conftest's `router`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from upstream import echo_app, serve_in_thread


@pytest.fixture(scope="module")
def cloud() -> Iterator[Any]:
    """A real echo server as the cloud upstream: the app, its base URL (.../v1) in state.url
    (what raw_upstream.scripted_proxy routes the fallback to)."""
    app = echo_app("cloud")
    with serve_in_thread(app) as url:
        app.state.url = url + "/v1"
        yield app
