"""What the serve tests share: echo upstreams on loopback for every model of the pair (edge,
cloud) and of the three-model ladder (small, medium, large) plus failing ones, the artifact
under test for K = 2 and K = 3 (`served`), and the app with chosen upstreams per model.

Test modules import the fixtures they use: `echo_servers` (named `echo`) and `served_router`
(named `served`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from upstream import closed_port_url, echo_app, serve_in_thread

from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app
from confroute.serve.settings import env_name

MODELS = ["edge", "cloud", "small", "medium", "large", "local-8b", "api-large"]
"""The models of the tiny pair, the tiny ladder and the priced pair, each with an echo server."""
KEYS = {m: f"sk-{m}-SECRET-{i}{i}{i}{i}" for i, m in enumerate(MODELS, 1)}
ENVIRON = {env_name(m, "api_key"): key for m, key in KEYS.items()}
QUESTION = "Prove that there are infinitely many primes of the form 4k+3."
CHAT = {"model": "confroute", "messages": [{"role": "user", "content": QUESTION}]}
LENGTH = {"error": {"message": "This model's maximum context length is 2048 tokens.",
                    "type": "invalid_request_error", "code": "context_length_exceeded"}}


@pytest.fixture(scope="session", name="echo")
def echo_servers() -> Iterator[SimpleNamespace]:
    """Echo upstreams by name: one per model (requiring its key), and failing ones."""
    apps = {m: echo_app(m, api_key=KEYS[m]) for m in MODELS} | {
        "failing": echo_app("failing", fail_status=500),
        "limited": echo_app("limited", fail_status=429, fail_headers={"retry-after": "3"}),
        "limited9": echo_app("limited9", fail_status=429, fail_headers={"retry-after": "9"}),
        "slow": echo_app("slow", delay_s=5.0),
        "broken": echo_app("broken", break_after=2),
        "length": echo_app("length", fail_status=400, fail_body=LENGTH),
        "leaky": echo_app("leaky", fail_status=503, fail_body={"error": {
            "message": f"auth failed for key {KEYS['large']}"}}),
        "unicode": echo_app("unicode", fail_status=503, fail_body={"error": {
            "message": "überlastet → später erneut versuchen"}})}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) + "/v1"
                for name, app in apps.items()}
        urls["down"] = closed_port_url()
        yield SimpleNamespace(urls=urls, apps=apps)


@pytest.fixture(scope="module", params=["pair", "ladder"], name="served")
def served_router(request: pytest.FixtureRequest) -> Router:
    """The artifact under test, fp32: the tiny pair (edge, cloud) or the tiny three-model
    ladder (small, medium, large; threshold rule)."""
    return request.getfixturevalue("router" if request.param == "pair" else "ladder_router")


def make_app(router: Router, echo: SimpleNamespace, servers: dict[str, str | None] | None = None,
             **settings: Any) -> Any:
    """The app with each model's upstream played by the echo server of its name, or by the one
    `servers` names for it (None: no upstream); keys from the environment by model name.

    The upstream read timeout is the service's own (generous) unless a test sets one: a
    short default failed healthy echo answers, delayed by a loaded CPU, as timeouts (504). A
    test of timeouts (the "slow" echo server) sets `read_timeout_s` itself."""
    chosen: dict[str, str | None] = {m: m for m in router.models} | (servers or {})
    entries = {m: UpstreamSettings(echo.urls[s], f"{m}-model") for m, s in chosen.items() if s}
    return create_app(router, ServeSettings(upstreams=entries, **settings), environ=ENVIRON)


def pick(models: list[str], model: str) -> str:
    """An x-confroute-thresholds value that picks `model` whatever the router predicts: every
    cheaper model's threshold 1, its own 0."""
    index = models.index(model)
    return ",".join(f"{m}={1 if i < index else 0}" for i, m in enumerate(models[:index + 1]))


def named(header: str) -> dict[str, float]:
    """ "small=0.500000,medium=..." -> {"small": 0.5, ...}"""
    return {k: float(v) for k, v in (pair.split("=") for pair in header.split(","))}


def sse_text(body: str) -> tuple[str, list[dict]]:
    """The concatenated content deltas of an SSE chat stream, and its events."""
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks), chunks


def metric(text: str, name: str) -> float:
    """The value of one sample line of Prometheus text, e.g. 'x_total{a="b"}'."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def seen(echo: SimpleNamespace) -> dict[str, int]:
    """How many requests each echo server has had."""
    return {name: len(app.state.seen) for name, app in echo.apps.items()}
