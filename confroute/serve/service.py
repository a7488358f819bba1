"""The state behind one app, for any artifact (a pair or K models): the router and the policy it
serves, the upstreams keyed by the artifact's model names, scoring, the HTTP client, metrics,
and the wrapper every endpoint goes through (auth, JSON errors, request metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from confroute.errors import InputError
from confroute.policy import Decision
from confroute.runtime import Router
from confroute.serve.cascade_policy import load_cascade
from confroute.serve.decisions import Overrides, named_values, serving_policy
from confroute.serve.metrics import Metrics
from confroute.serve.recording import Traffic
from confroute.serve.reload import reload_on_sighup, shadow_call, swap, target_share
from confroute.serve.scoring import Scorer
from confroute.serve.settings import ServeSettings
from confroute.serve.upstreams import judge_upstream, resolve_upstreams
from confroute.serve.wire import Problem, check_token, error_response
from confroute.text import NoTextError
from confroute.traffic.shadow import Completion

log = logging.getLogger("confroute.serve")

Handler = Callable[[Request], Awaitable[Response]]


class Service:
    """Routes with the artifact's policy (the settings' thresholds replacing some) to the
    upstream of the chosen model, falling back up the ladder (`order`)."""

    def __init__(self, router: Router, settings: ServeSettings,
                 environ: Mapping[str, str] | None = None,
                 settings_source: Callable[[], ServeSettings] | None = None):
        self.router = router
        self.settings = settings
        self.settings_source = settings_source
        """Where a reload reads the cascade settings anew (`reload.swap`); None: as started."""
        self.models = list(router.models)
        self.policy = serving_policy(router.policy, settings.threshold, settings.thresholds)
        self.upstreams = resolve_upstreams(settings, self.models, environ)
        self.judge = judge_upstream(settings, environ)
        self.cascade = load_cascade(router, settings)
        missing = [m for m in self.models if m not in self.upstreams]
        if self.upstreams and missing:
            log.warning("no upstream for %s: requests routed there go up the ladder",
                        ", ".join(missing))
        self.metrics = Metrics()
        self.scorer = Scorer(self._score, self.metrics, settings.batch_max,
                             settings.score_workers or os.cpu_count() or 1)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        model_file = router.manifest["onnx"]["variants"][router.variant]
        self.model_sha256 = router.manifest["files"][model_file]
        self.metrics.info.labels(router.variant, router.turn, self.model_sha256).set(1)
        self.traffic = Traffic(settings, router, self.metrics, target_share(router))
        self.reloading = asyncio.Lock()

    def _score(self, texts: list[str]) -> np.ndarray:
        """Rows of [P(model k adequate) for k, USD of the prompt on model k for k, P(cloud
        needed)]: the utility rule weighs costs, which depend on each prompt's length, and a
        pair's decision compares the router's own score."""
        probs, scores = self.router.probabilities(texts)
        return np.concatenate([probs, self.router.costs(texts), scores[:, None]], axis=1)

    def decide(self, row: np.ndarray, overrides: Overrides, endpoint: str) -> Decision:
        """The decision for one scored row (see `_score`), counted in the metrics."""
        k = len(self.models)
        try:
            decision = self.policy.decide(
                row[:k], overrides.thresholds, overrides.model, row[k:2 * k],
                overrides.lambda_per_usd, score=float(row[2 * k]), threshold=overrides.threshold)
        except InputError as exc:  # overrides were checked: this is the router's output
            raise RuntimeError(f"the policy refused the router's output: {exc}") from exc
        self.metrics.routes.labels(endpoint, decision.model).inc()
        return decision

    def without_text(self, overrides: Overrides, endpoint: str) -> Decision:
        """A conversation with no text to score: the forced model, else the top one."""
        decision = self.policy.overridden(overrides.thresholds, overrides.threshold) \
            .without_text(overrides.model)
        self.metrics.routes.labels(endpoint, decision.model).inc()
        return decision

    def order(self, decision: Decision) -> list[str]:
        """The upstreams to try: the chosen model, then each more expensive one (a fallback goes
        up the ladder, never down: a cheaper model is one the router judged less adequate, and
        for a pair that means the cloud never falls back to the edge)."""
        return self.models[decision.model_index:]

    def how_to_configure(self) -> str:
        """How to give this service upstreams (the end of its 503 when it has none)."""
        pair = ("CONFROUTE_EDGE_BASE_URL and CONFROUTE_CLOUD_BASE_URL (with their _MODEL), or "
                if len(self.models) == 2 else "")
        return (f"this service has no upstreams: set {pair}add an upstreams section to the "
                f"--config file, one entry (base_url, model) per model of "
                f"{', '.join(self.models)}")

    def describe(self) -> str:
        """What the startup log line and /health say about the routing."""
        if self.policy.rule == "utility":
            return f"rule=utility lambda_per_usd={self.policy.lambda_per_usd:.6g}"
        thresholds = named_values(dict(zip(self.models, self.policy.thresholds.tolist(),
                                           strict=True)))
        pair = "" if self.policy.threshold is None else f"threshold={self.policy.threshold:.4f} "
        return f"rule=threshold {pair}thresholds {thresholds}"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        log.info("confroute serve: %s router (turn=%s, %s); upstreams: %s",
                 self.router.variant, self.router.turn, self.describe(),
                 ", ".join(f"{u.name}={u.model}" for u in self.upstreams.values()) or "none")
        self.traffic.start_shadow(self.shadow_call)
        with reload_on_sighup(self):
            yield
        await self.traffic.close()
        await self.scorer.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reload(self) -> dict[str, Any]:
        """Load the artifact again (a served link resolved anew) and swap it in: requests
        already scored finish on the old router. Raises ConfrouteError (the old one stays)."""
        async with self.reloading:
            return await swap(self)

    async def shadow_call(self, model: str, messages: list[dict[str, Any]],
                          fields: dict[str, Any]) -> Completion:
        """One shadow or judge call (`ShadowJudge`'s `call`) to the model's upstream."""
        upstream = self.judge if model == self.settings.shadow.judge_model else \
            self.upstreams.get(model)
        return await shadow_call(self.client(), upstream, model, messages, fields)

    def client(self) -> httpx.AsyncClient:
        # One pooled client per event loop (made lazily, so a new loop gets a new pool).
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            s = self.settings
            # TCP_NODELAY: httpx writes a request's headers and body separately, and with
            # Nagle's algorithm on the body would wait ~40 ms for the upstream's delayed ACK.
            transport = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            self._client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s))
            self._client_loop = loop
        return self._client

    def endpoint(self, name: str, handler: Callable[[Service, Request], Awaitable[Response]],
                 auth: bool = True) -> Handler:
        """Wrap a handler with auth, JSON errors, and request metrics."""
        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if auth:
                    check_token(request, self.settings.token)
                response = await handler(self, request)
            except Problem as problem:
                response = problem.response()
            except Exception:
                log.exception("%s: unexpected error", name)
                response = error_response(500, "internal server error; see the server log",
                                          "internal_error", "server_error")
            self.metrics.requests.labels(name, str(response.status_code)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)
            return response
        return wrapped

    def prompts(self, body: dict[str, Any]) -> list[Any]:
        """The prompts of a /v1/route body: 'prompt' (one) or 'prompts' (a list); Problem."""
        if ("prompt" in body) == ("prompts" in body):
            raise Problem(422, "send exactly one of 'prompt' (one prompt) or 'prompts' (a list "
                          "of prompts); each prompt is a string or a list of chat messages",
                          "missing_prompt")
        if "prompt" in body:
            return [body["prompt"]]
        prompts = body["prompts"]
        if not isinstance(prompts, list) or not prompts:
            raise Problem(422, "'prompts' must be a non-empty list", "invalid_prompts")
        if len(prompts) > self.settings.max_prompts:
            raise Problem(413, f"{len(prompts)} prompts in one request; the limit is "
                          f"{self.settings.max_prompts} (max_prompts): split the request",
                          "too_many_prompts")
        return prompts

    def texts(self, prompts: list[Any], no_text_ok: bool = False) -> list[str]:
        """The scored texts (the artifact's turn setting picks the turn), length-checked.

        Raises Problem 422/413, or NoTextError itself when `no_text_ok` (the caller decides).
        """
        try:
            texts = self.router.texts(prompts)
        except InputError as exc:
            if no_text_ok and isinstance(exc, NoTextError):
                raise
            raise Problem(422, str(exc), "invalid_prompt") from exc
        limit = self.settings.max_prompt_chars
        for i, text in enumerate(texts):
            if len(text) > limit:
                where = "the prompt" if len(texts) == 1 else f"prompt {i}"
                raise Problem(413, f"{where} has {len(text):,} characters to score; the limit "
                              f"is {limit:,} (max_prompt_chars)", "prompt_too_long")
        return texts
