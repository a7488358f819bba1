"""The ASGI app: routing endpoint, OpenAI-compatible proxy, health and metrics.

    app = create_app("runs/demo/artifact", load_settings())   # then: uvicorn.run(app)

Endpoints (all but /health need `Authorization: Bearer $CONFROUTE_TOKEN` when a token is set):
  POST /v1/route             {"prompt": P} or {"prompts": [P, ...]}, optional "threshold";
                             P is a string or a list of chat messages
  POST /v1/chat/completions  OpenAI chat completions, scored and forwarded to the edge or cloud
                             upstream; per-request threshold: header `x-confroute-threshold` or
                             body field `confroute_threshold`. The scored text is the user
                             turn(s) picked by the artifact's `preprocess.turn` (first, last or
                             all), the `data.turn` setting it was trained with. Response headers:
                             x-confroute-route / -model (who answered), -decision, -score,
                             -threshold, -reason (why, including any fallback)
                             A conversation whose user turns hold no text (only images,
                             audio or files) is not scored and goes to the cloud (reason
                             "no text to score"). A client that disconnects before a
                             non-streamed answer cancels the upstream call.
  GET  /v1/models            OpenAI model list: "confroute" (the router; the proxy ignores the
                             request's `model` and routes) and the upstreams' model names
  GET  /health               liveness + what is loaded
  GET  /metrics              Prometheus text
CORS is off unless `cors_origins` is set; then browsers from those origins may call the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from confroute.errors import require

require("starlette", "serve")
require("httpx", "serve")
require("prometheus_client", "serve")

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from confroute.errors import InputError  # noqa: E402
from confroute.runtime import Router, check_threshold, decide  # noqa: E402
from confroute.serve.metrics import Metrics  # noqa: E402
from confroute.serve.proxy import forward  # noqa: E402
from confroute.serve.scoring import Scorer  # noqa: E402
from confroute.serve.settings import ServeSettings, Upstream, resolve_upstreams  # noqa: E402
from confroute.serve.wire import (  # noqa: E402
    Problem,
    check_token,
    error_response,
    read_json,
    unless_disconnected,
)
from confroute.text import NoTextError  # noqa: E402

log = logging.getLogger("confroute.serve")

Handler = Callable[[Request], Awaitable[Response]]
ROUTE_KEYS = {"prompt", "prompts", "threshold"}
THRESHOLD_HEADER = "x-confroute-threshold"
THRESHOLD_FIELD = "confroute_threshold"
EXPOSED_HEADERS = [f"x-confroute-{h}" for h in
                   ("route", "model", "decision", "score", "threshold", "reason")]
ROUTER_MODEL = "confroute"
"""The model id /v1/models lists for the router itself."""
NO_TEXT_RULE = "no text to score (user turns hold only images, audio or files): cloud by rule"


def create_app(router_or_dir: Router | str | Path, settings: ServeSettings | None = None,
               environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the service for a loaded Router or an artifact directory (verified on load).

    Upstream API keys are read from `environ` (default: os.environ) here, once. The settings'
    `variant` and `threads` apply when a directory is given (a Router comes loaded).
    """
    settings = settings or ServeSettings()
    router = router_or_dir if isinstance(router_or_dir, Router) else Router.load(
        router_or_dir, variant=settings.variant, threads=settings.threads)
    service = Service(router, settings, resolve_upstreams(settings, environ))
    routes = [
        Route("/health", service.endpoint("health", service.health, auth=False), methods=["GET"]),
        Route("/metrics", service.endpoint("metrics", service.metrics_text), methods=["GET"]),
        Route("/v1/route", service.endpoint("route", service.route), methods=["POST"]),
        Route("/v1/chat/completions", service.endpoint("chat", service.chat), methods=["POST"]),
        Route("/v1/models", service.endpoint("models", service.models), methods=["GET"]),
        Route("/v1/models/{model:path}", service.endpoint("models", service.model),
              methods=["GET"]),
    ]
    middleware = [Middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type", THRESHOLD_HEADER],
        expose_headers=EXPOSED_HEADERS, max_age=600)] if settings.cors_origins else []
    app = Starlette(routes=routes, lifespan=service.lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app


class Service:
    """The state behind one app: router, scorer, upstream client, metrics."""

    def __init__(self, router: Router, settings: ServeSettings, upstreams: dict[str, Upstream]):
        self.router = router
        self.settings = settings
        self.upstreams = upstreams
        self.threshold = router.threshold if settings.threshold is None else settings.threshold
        self.metrics = Metrics()
        self.scorer = Scorer(router, self.metrics, settings.batch_max,
                             settings.score_workers or os.cpu_count() or 1)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        model_file = router.manifest["onnx"]["variants"][router.variant]
        self.model_sha256 = router.manifest["files"][model_file]
        self.metrics.info.labels(router.variant, router.turn, self.model_sha256).set(1)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        log.info("confroute serve: %s router (turn=%s, threshold=%.4f); upstreams: %s",
                 self.router.variant, self.router.turn, self.threshold,
                 ", ".join(f"{u.name}={u.model}" for u in self.upstreams.values()) or "none")
        yield
        await self.scorer.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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

    def endpoint(self, name: str, handler: Handler, auth: bool = True) -> Handler:
        """Wrap a handler with auth, JSON errors, and request metrics."""
        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if auth:
                    check_token(request, self.settings.token)
                response = await handler(request)
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

    async def health(self, request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "variant": self.router.variant, "turn": self.router.turn,
            "threshold": self.threshold, "model_sha256": self.model_sha256,
            "fallback": self.settings.fallback,
            "upstreams": {name: {"configured": name in self.upstreams,
                                 "model": u.model if (u := self.upstreams.get(name)) else None}
                          for name in ("edge", "cloud")},
        })

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def route(self, request: Request) -> Response:
        body = await read_json(request, self.settings.max_body_bytes)
        unknown = sorted(set(body) - ROUTE_KEYS)
        if unknown:
            raise Problem(422, f"unknown field(s) {', '.join(unknown)}; /v1/route takes "
                          "'prompt' or 'prompts', and optionally 'threshold'", "unknown_field")
        threshold = self._threshold(body.get("threshold"))
        prompts = self._prompts(body)
        scores = await self.scorer.score(self._texts(prompts))
        results = [self._decide(float(s), threshold, "route") for s in scores]
        return JSONResponse(results[0] if "prompt" in body else {"results": results})

    async def chat(self, request: Request) -> Response:
        body = await read_json(request, self.settings.max_body_bytes)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Problem(422, "'messages' must be a non-empty list of chat messages",
                          "invalid_messages")
        override = body.pop(THRESHOLD_FIELD, None)
        header = request.headers.get(THRESHOLD_HEADER)
        threshold = self._threshold(_number(header) if header is not None else override)
        decision = await self._chat_decision(messages, threshold)
        try:
            reply, notes = await unless_disconnected(request, forward(
                self.client(), self.upstreams, decision["route"], body, self.settings.fallback,
                self.metrics))
        except Problem as problem:  # no upstream answered: still say how it was routed
            problem.headers.update(self._headers(decision, None, []))
            raise
        headers = self._headers(decision, reply.upstream, notes)
        if reply.upstream.name != decision["route"]:
            self.metrics.fallbacks.labels(decision["route"]).inc()
        log.info("chat: score=%s routed=%s answered=%s status=%d%s", decision["score"],
                 decision["route"], reply.upstream.name, reply.status,
                 " stream" if reply.stream else "")
        if reply.stream is not None:
            done = BackgroundTask(reply.close) if reply.close else None
            return StreamingResponse(reply.stream, media_type=reply.content_type,
                                     headers={**headers, "cache-control": "no-cache",
                                              "x-accel-buffering": "no"}, background=done)
        return Response(reply.content, status_code=reply.status, media_type=reply.content_type,
                        headers=headers)

    async def _chat_decision(self, messages: list[Any], threshold: float) -> dict[str, Any]:
        """Score the conversation; one with no text at all goes to the cloud (NO_TEXT_RULE)."""
        try:
            texts = self._texts([messages], no_text_ok=True)
        except NoTextError:
            self.metrics.routes.labels("chat", "cloud").inc()
            return {"score": None, "route": "cloud", "threshold": threshold,
                    "rule": NO_TEXT_RULE}
        (score,) = await self.scorer.score(texts)
        return self._decide(float(score), threshold, "chat")

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": self._models()})

    async def model(self, request: Request) -> Response:
        wanted = request.path_params["model"]
        for entry in self._models():
            if entry["id"] == wanted:
                return JSONResponse(entry)
        raise Problem(404, f"model {wanted!r} is not served here; GET /v1/models lists them",
                      "model_not_found")

    def _models(self) -> list[dict[str, Any]]:
        """OpenAI `Model` objects: the router, then each configured upstream's model."""
        entries = [{"id": ROUTER_MODEL, "object": "model", "created": 0,
                    "owned_by": "confroute"}]
        for name, upstream in self.upstreams.items():
            if all(e["id"] != upstream.model for e in entries):
                entries.append({"id": upstream.model, "object": "model", "created": 0,
                                "owned_by": f"confroute-{name}"})
        return entries

    def _threshold(self, value: Any) -> float:
        if value is None:
            return self.threshold
        try:
            return check_threshold(value)
        except InputError as exc:
            raise Problem(422, str(exc), "invalid_threshold") from exc

    def _prompts(self, body: dict[str, Any]) -> list[Any]:
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

    def _texts(self, prompts: list[Any], no_text_ok: bool = False) -> list[str]:
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

    def _decide(self, score: float, threshold: float, endpoint: str) -> dict[str, Any]:
        route = decide(score, threshold)
        self.metrics.routes.labels(endpoint, route).inc()
        return {"score": score, "route": route, "threshold": threshold}

    def _headers(self, decision: dict[str, Any], answered: Upstream | None, notes: list[str]
                 ) -> dict[str, str]:
        """x-confroute-route/-model: who answered; -decision, -score, -reason: why."""
        score, threshold = decision["score"], decision["threshold"]
        headers = {"x-confroute-decision": decision["route"],
                   "x-confroute-threshold": f"{threshold:.6f}"}
        if score is None:
            reason = decision["rule"]
        else:
            reason = (f"score {score:.4f} {'>=' if decision['route'] == 'cloud' else '<'} "
                      f"threshold {threshold:.4f}")
            headers["x-confroute-score"] = f"{score:.6f}"
        if answered is not None:
            if answered.name != decision["route"]:
                reason = f"fallback: {'; '.join(notes)}; routed {decision['route']} by {reason}"
            headers |= {"x-confroute-route": answered.name, "x-confroute-model": answered.model}
        return headers | {"x-confroute-reason": reason}


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text  # check_threshold names the bad value


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 from the router, as JSON like every other error."""
    status = getattr(exc, "status_code", 500)
    return error_response(status, f"{request.method} {request.url.path}: "
                          f"{getattr(exc, 'detail', 'error')}",
                          "not_found" if status == 404 else "http_error",
                          headers=getattr(exc, "headers", None))
