"""The ASGI app: routing endpoint, OpenAI-compatible proxy, health and metrics.

    app = create_app("runs/demo/artifact", load_settings())   # then: uvicorn.run(app)

Endpoints (all but /health need `Authorization: Bearer $CONFROUTE_TOKEN` when a token is set),
as they work for a two-model (edge/cloud) artifact; a K-model (ladder) artifact: see below.
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
Every request first passes the request guard (`guard`): loopback Host names only on loopback
(plus `allowed_hosts`), no foreign Origin, JSON bodies only, read within `body_timeout_s`.

A ladder artifact (models cheapest first, each with an upstream from the `upstreams:` settings)
routes each prompt to the cheapest model whose predicted adequacy clears its threshold, else the
best predicted model (`confroute.policy`):
  POST /v1/route             {"prompt": P} or {"prompts": [P, ...]}, optional "thresholds"
                             ({"small": 0.8}: some models' thresholds) and "model" (force one);
                             each result: model, model_index, reason, probabilities, thresholds
  POST /v1/chat/completions  forwarded to the chosen model's upstream with its model name; when
                             that upstream fails, to the next more expensive model's, and so on
                             up the ladder. Overrides: `confroute_thresholds` /
                             `confroute_force_model` body fields or `x-confroute-thresholds:
                             small=0.8,medium=0.6` / `x-confroute-force-model` headers. Response
                             headers: x-confroute-decision (the chosen model), -route and -model
                             (the model that answered, its upstream's model name), -reason,
                             -probabilities, -thresholds. No text to score: the top model.
  GET  /v1/models            "confroute" and the ladder's model names
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import re
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
import numpy as np  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from confroute.errors import ConfigError, InputError  # noqa: E402
from confroute.policy import Decision  # noqa: E402
from confroute.runtime import LadderRouter, Router, check_threshold, decide  # noqa: E402
from confroute.serve import ladder  # noqa: E402
from confroute.serve.deadlines import Deadline  # noqa: E402
from confroute.serve.guard import RequestGuard  # noqa: E402
from confroute.serve.hosts import check_origins  # noqa: E402
from confroute.serve.metrics import Metrics  # noqa: E402
from confroute.serve.proxy import forward  # noqa: E402
from confroute.serve.scoring import Scorer  # noqa: E402
from confroute.serve.settings import (  # noqa: E402
    ROUTES,
    ServeSettings,
    Upstream,
    check_two_model,
    resolve_ladder,
    resolve_upstreams,
)
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
EXPOSED_HEADERS = [f"x-confroute-{h}" for h in ("route", "model", "decision", "score",
                                                 "threshold", "reason", "probabilities",
                                                 "thresholds")]
REQUEST_HEADERS = ["authorization", "content-type", THRESHOLD_HEADER, ladder.THRESHOLDS_HEADER,
                   ladder.FORCE_HEADER, ladder.LAMBDA_HEADER]
ROUTER_MODEL = "confroute"
"""The model id /v1/models lists for the router itself."""
NO_TEXT_RULE = "no text to score (user turns hold only images, audio or files): cloud by rule"


def create_app(router_or_dir: Router | str | Path, settings: ServeSettings | None = None,
               environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the service for a loaded Router or an artifact directory (verified on load).

    Upstream API keys are read from `environ` (default: os.environ) here, once. The settings'
    `variant` and `threads` apply when a directory is given (a Router comes loaded). A ladder
    artifact (a `LadderRouter`) is served by LadderService; ConfigError when the settings do
    not fit the artifact (see `resolve_ladder` and `check_two_model`).
    """
    settings = settings or ServeSettings()
    router = router_or_dir if isinstance(router_or_dir, Router) else Router.load(
        router_or_dir, variant=settings.variant, threads=settings.threads)
    service = LadderService(router, settings, environ) if isinstance(router, LadderRouter) \
        else Service(router, settings, environ)
    routes = [
        Route("/health", service.endpoint("health", service.health, auth=False), methods=["GET"]),
        Route("/metrics", service.endpoint("metrics", service.metrics_text), methods=["GET"]),
        Route("/v1/route", service.endpoint("route", service.route), methods=["POST"]),
        Route("/v1/chat/completions", service.endpoint("chat", service.chat), methods=["POST"]),
        Route("/v1/models", service.endpoint("models", service.models), methods=["GET"]),
        Route("/v1/models/{model:path}", service.endpoint("models", service.model),
              methods=["GET"]),
    ]
    # The guard first: no request reaches CORS or an endpoint without passing it.
    refused = service.metrics.refused
    middleware = [Middleware(RequestGuard, settings=settings,
                             refused=lambda code: refused.labels(code).inc())]
    middleware += [Middleware(
        CORSMiddleware, allow_origins=check_origins(settings.cors_origins),
        allow_methods=["GET", "POST"], allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS, max_age=600)] if settings.cors_origins else []
    app = Starlette(routes=routes, lifespan=service.lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app


class Service:
    """The state behind one app: router, scorer, upstream client, metrics.

    This class serves a two-model (edge/cloud) artifact; LadderService overrides the parts that
    differ for K models (`_route_overrides`, `_chat_overrides`, `_decide`, `_no_text`, `_order`,
    `_headers` and what /health and /v1/models say).
    """

    route_keys = ROUTE_KEYS

    def __init__(self, router: Router, settings: ServeSettings,
                 environ: Mapping[str, str] | None = None):
        self.router = router
        self.settings = settings
        self.upstreams = self._set_up_routing(environ)
        self.metrics = Metrics()
        self.scorer = Scorer(self._score_function(), self.metrics, settings.batch_max,
                             settings.score_workers or os.cpu_count() or 1)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        model_file = router.manifest["onnx"]["variants"][router.variant]
        self.model_sha256 = router.manifest["files"][model_file]
        self.metrics.info.labels(router.variant, router.turn, self.model_sha256).set(1)

    def _set_up_routing(self, environ: Mapping[str, str] | None) -> dict[str, Upstream]:
        """Check the settings against the artifact, set the routing defaults (here the
        threshold) and return the configured upstreams; ConfigError for settings that do not fit.
        """
        check_two_model(self.settings)
        s = self.settings
        self.threshold = self.router.threshold if s.threshold is None else s.threshold
        return resolve_upstreams(s, environ)

    def _score_function(self) -> Callable[[list[str]], Any]:
        return self.router.score

    def _describe(self) -> str:
        """What the startup log line says about the routing."""
        return f"threshold={self.threshold:.4f}"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        log.info("confroute serve: %s router (turn=%s, %s); upstreams: %s",
                 self.router.variant, self.router.turn, self._describe(),
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
        unknown = sorted(set(body) - self.route_keys)
        if unknown:
            raise Problem(422, f"unknown field(s) {', '.join(unknown)}; /v1/route takes "
                          f"{self._route_fields()}", "unknown_field")
        overrides = self._route_overrides(body)
        prompts = self._prompts(body)
        scores = await self.scorer.score(self._texts(prompts))
        results = [self._decide(s, overrides, "route") for s in scores]
        return JSONResponse(results[0] if "prompt" in body else {"results": results})

    def _route_fields(self) -> str:
        return "'prompt' or 'prompts', and optionally 'threshold'"

    def _route_overrides(self, body: dict[str, Any]) -> Any:
        """The routing overrides of a /v1/route body (here: the threshold)."""
        return self._threshold(body.get("threshold"))

    def _chat_overrides(self, body: dict[str, Any], request: Request) -> Any:
        """The routing overrides of a chat request, popped from its body (not forwarded)."""
        for name in (ladder.THRESHOLDS_FIELD, ladder.FORCE_FIELD, ladder.LAMBDA_FIELD):
            if name in body:
                raise Problem(422, f"{name} is for K-model (ladder) artifacts; this one routes "
                              f"between edge and cloud: send {THRESHOLD_FIELD} instead",
                              "unknown_field")
        for name in (ladder.THRESHOLDS_HEADER, ladder.FORCE_HEADER, ladder.LAMBDA_HEADER):
            if name in request.headers:
                raise Problem(422, f"header {name} is for K-model (ladder) artifacts; this one "
                              f"routes between edge and cloud: send {THRESHOLD_HEADER} instead",
                              "unknown_field")
        override = body.pop(THRESHOLD_FIELD, None)
        header = request.headers.get(THRESHOLD_HEADER)
        return self._threshold(_number(header) if header is not None else override)

    async def chat(self, request: Request) -> Response:
        body = await read_json(request, self.settings.max_body_bytes)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Problem(422, "'messages' must be a non-empty list of chat messages",
                          "invalid_messages")
        overrides = self._chat_overrides(body, request)
        decision = await self._chat_decision(messages, overrides)
        chosen = self._chosen(decision)
        try:
            reply, notes = await unless_disconnected(request, forward(
                self.client(), self.upstreams, self._order(chosen), body,
                self.settings.fallback, self.metrics, self._how_to_configure(chosen),
                deadline=Deadline.of(request.scope, self.settings)))
        except Problem as problem:  # no upstream answered: still say how it was routed
            problem.headers.update(self._headers(decision, None, []))
            raise
        headers = self._headers(decision, reply.upstream, notes)
        if reply.upstream.name != chosen:
            self.metrics.fallbacks.labels(chosen).inc()
        log.info("chat: %s routed=%s answered=%s status=%d%s", self._log_why(decision),
                 chosen, reply.upstream.name, reply.status, " stream" if reply.stream else "")
        if reply.stream is not None:
            done = BackgroundTask(reply.close) if reply.close else None
            return StreamingResponse(reply.stream, media_type=reply.content_type,
                                     headers={**headers, "cache-control": "no-cache",
                                              "x-accel-buffering": "no"}, background=done)
        return Response(reply.content, status_code=reply.status, media_type=reply.content_type,
                        headers=headers)

    async def _chat_decision(self, messages: list[Any], overrides: Any) -> dict[str, Any]:
        """Score the conversation; one with no text at all goes by `_no_text`."""
        try:
            texts = self._texts([messages], no_text_ok=True)
        except NoTextError:
            decision = self._no_text(overrides)
            self.metrics.routes.labels("chat", self._chosen(decision)).inc()
            return decision
        (score,) = await self.scorer.score(texts)
        return self._decide(score, overrides, "chat")

    def _no_text(self, threshold: Any) -> dict[str, Any]:
        """A conversation with no text at all goes to the cloud (NO_TEXT_RULE)."""
        return {"score": None, "route": "cloud", "threshold": threshold, "rule": NO_TEXT_RULE}

    def _chosen(self, decision: dict[str, Any]) -> str:
        return str(decision["route"])

    def _order(self, chosen: str) -> list[str]:
        """The upstreams to try, in order: the chosen one, then (fallback) the other."""
        return [chosen] + ([r for r in ROUTES if r != chosen]
                           if self.settings.fallback else [])

    def _how_to_configure(self, chosen: str) -> str:
        return (f"set CONFROUTE_{chosen.upper()}_BASE_URL and "
                f"CONFROUTE_{chosen.upper()}_MODEL")

    def _log_why(self, decision: dict[str, Any]) -> str:
        return f"score={decision['score']}"

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

    def _decide(self, score: Any, threshold: Any, endpoint: str) -> dict[str, Any]:
        score = float(score)
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
        return _header_safe(headers | {"x-confroute-reason": reason})


class LadderService(Service):
    """The service for a K-model (ladder) artifact: routes with the artifact's policy (its
    thresholds, with the settings' `thresholds` replacing some) to one of K upstreams, and falls
    back up the ladder (to more expensive models only) when an upstream fails."""

    router: LadderRouter
    route_keys = ladder.ROUTE_KEYS

    def _set_up_routing(self, environ: Mapping[str, str] | None) -> dict[str, Upstream]:
        """Check the settings against the ladder, set its policy (the artifact's thresholds with
        the settings' replacing some) and return the configured upstreams."""
        self.ladder_models = list(self.router.models)
        upstreams = resolve_ladder(self.settings, self.ladder_models, environ)
        thresholds = np.array(self.router.policy.thresholds, dtype=float)
        if self.settings.thresholds and self.router.policy.rule == "utility":
            raise ConfigError(f"thresholds in the serve settings apply to the threshold rule; "
                              f"{self.router.directory} routes by the utility rule (P - lambda x "
                              "cost): remove them, or store the threshold rule with `confroute "
                              "calibrate ARTIFACT --rule threshold --target_cost USD --write`")
        for name, value in self.settings.thresholds.items():
            thresholds[self.ladder_models.index(name)] = value
        self.policy = dataclasses.replace(self.router.policy, thresholds=thresholds)
        missing = [m for m in self.ladder_models if m not in upstreams]
        if upstreams and missing:
            log.warning("no upstream for %s: requests routed there go up the ladder",
                        ", ".join(missing))
        return upstreams

    def _score_function(self) -> Callable[[list[str]], Any]:
        """Rows of [P(model k adequate) for k, then USD of the prompt on model k for k]: the
        utility rule weighs both, and costs depend on each prompt's length."""
        def score(texts: list[str]) -> np.ndarray:
            return np.concatenate([self.router.adequacy(texts), self.router.costs(texts)],
                                  axis=1)

        return score

    def _describe(self) -> str:
        return "thresholds " + ladder.named_values(self._thresholds())

    def _thresholds(self) -> dict[str, float | None]:
        return {m: float(t) if math.isfinite(t) else None
                for m, t in zip(self.ladder_models, self.policy.thresholds.tolist(), strict=True)}

    async def health(self, request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "variant": self.router.variant, "turn": self.router.turn,
            "models": self.ladder_models, "rule": self.policy.rule,
            "lambda_per_usd": self.policy.lambda_per_usd, "thresholds": self._thresholds(),
            "model_sha256": self.model_sha256, "fallback": self.settings.fallback,
            "upstreams": {name: {"configured": name in self.upstreams,
                                 "model": u.model if (u := self.upstreams.get(name)) else None}
                          for name in self.ladder_models},
        })

    def _models(self) -> list[dict[str, Any]]:
        """OpenAI `Model` objects: the router, then the ladder's models, cheapest first."""
        return [{"id": name, "object": "model", "created": 0, "owned_by": "confroute"}
                for name in [ROUTER_MODEL, *self.ladder_models]]

    def _route_fields(self) -> str:
        return ("'prompt' or 'prompts', and optionally 'model' (force a model) and, for the "
                "artifact's rule, 'thresholds' ({model: threshold}) or 'lambda_per_usd'; this "
                "artifact routes among " + ", ".join(self.ladder_models))

    def _route_overrides(self, body: dict[str, Any]) -> ladder.Overrides:
        return self._for_rule(ladder.overrides(
            self.ladder_models, body.get("thresholds"), body.get("model"), "thresholds",
            "model"), ladder.check_lambda(body.get("lambda_per_usd"), "lambda_per_usd"))

    def _for_rule(self, overrides: tuple[dict[str, float], str | None],
                  lambda_per_usd: float | None) -> ladder.Overrides:
        """Overrides of the other rule (thresholds for the utility rule, lambda for the threshold
        rule) are a 422."""
        if overrides[0] and self.policy.rule == "utility":
            raise Problem(422, "this artifact routes by the utility rule (P - lambda x cost), "
                          "which has no thresholds to override; send lambda_per_usd or force a "
                          "model", "invalid_threshold")
        if lambda_per_usd is not None and self.policy.rule == "threshold":
            raise Problem(422, "this artifact routes by the threshold rule, which has no lambda "
                          "to override; send thresholds or force a model", "invalid_lambda")
        return ladder.Overrides(*overrides, lambda_per_usd)

    def _chat_overrides(self, body: dict[str, Any], request: Request) -> ladder.Overrides:
        if THRESHOLD_FIELD in body or THRESHOLD_HEADER in request.headers:
            hint = (f"send {ladder.LAMBDA_FIELD} (500) or {ladder.LAMBDA_HEADER} (500)"
                    if self.policy.rule == "utility" else
                    f"send {ladder.THRESHOLDS_FIELD} "
                    f'({{"{self.ladder_models[0]}": 0.8}}) or {ladder.THRESHOLDS_HEADER} '
                    f"({self.ladder_models[0]}=0.8)")
            raise Problem(422, f"one threshold ({THRESHOLD_FIELD} or {THRESHOLD_HEADER}) is for "
                          f"two-model artifacts; this one routes among "
                          f"{', '.join(self.ladder_models)} by the {self.policy.rule} rule: "
                          f"{hint}", "invalid_threshold")
        thresholds = body.pop(ladder.THRESHOLDS_FIELD, None)
        model = body.pop(ladder.FORCE_FIELD, None)
        lam = body.pop(ladder.LAMBDA_FIELD, None)
        thresholds_from, model_from, lam_from = (ladder.THRESHOLDS_FIELD, ladder.FORCE_FIELD,
                                                 ladder.LAMBDA_FIELD)
        if (header := request.headers.get(ladder.THRESHOLDS_HEADER)) is not None:
            thresholds = ladder.parse_thresholds_header(header)
            thresholds_from = ladder.THRESHOLDS_HEADER
        if (header := request.headers.get(ladder.FORCE_HEADER)) is not None:
            model, model_from = header.strip(), ladder.FORCE_HEADER
        if (header := request.headers.get(ladder.LAMBDA_HEADER)) is not None:
            lam, lam_from = header.strip(), ladder.LAMBDA_HEADER
        return self._for_rule(ladder.overrides(self.ladder_models, thresholds, model,
                                               thresholds_from, model_from),
                              ladder.check_lambda(lam, lam_from))

    def _decide(self, score: Any, overrides: ladder.Overrides, endpoint: str) -> dict[str, Any]:
        k = len(self.ladder_models)
        try:
            decision = self.policy.decide(score[:k], overrides.thresholds, overrides.model,
                                          costs=score[k:],
                                          lambda_per_usd=overrides.lambda_per_usd)
        except InputError as exc:  # overrides were checked: this is the router's output
            raise RuntimeError(f"the policy refused the router's output: {exc}") from exc
        self.metrics.routes.labels(endpoint, decision.model).inc()
        return ladder.as_json(decision)

    def _no_text(self, overrides: ladder.Overrides) -> dict[str, Any]:
        """No text to score: the forced model, else the most expensive one."""
        thresholds, forced = overrides.thresholds, overrides.model
        model = forced or self.ladder_models[-1]
        named = dict(zip(self.ladder_models, self.policy.thresholds.tolist(), strict=True))
        reason = "forced by the request" if forced else \
            f"{NO_TEXT_RULE.removesuffix(': cloud by rule')}: {model}, the top model, by rule"
        return ladder.as_json(Decision(model, self.ladder_models.index(model), reason, {},
                                       named | thresholds))

    def _chosen(self, decision: dict[str, Any]) -> str:
        return str(decision["model"])

    def _order(self, chosen: str) -> list[str]:
        """The chosen model, then each more expensive one (fallback goes up the ladder)."""
        return self.ladder_models[self.ladder_models.index(chosen):]

    def _how_to_configure(self, chosen: str) -> str:
        return (f"this service has no upstreams: add an upstreams section to the --config "
                f"file, one entry (base_url, model) per model of {', '.join(self.ladder_models)}")

    def _log_why(self, decision: dict[str, Any]) -> str:
        return "p=" + (ladder.named_values(decision["probabilities"]) or "none")

    def _headers(self, decision: dict[str, Any], answered: Upstream | None, notes: list[str]
                 ) -> dict[str, str]:
        """x-confroute-decision: the chosen model; -route, -model: the model that answered and
        its upstream's model name; -reason: why (with any fallback); -probabilities and
        -thresholds: what the choice was made from."""
        chosen, reason = decision["model"], decision["reason"]
        headers = {"x-confroute-decision": chosen,
                   "x-confroute-thresholds": ladder.named_values(decision["thresholds"])}
        if decision["probabilities"]:
            headers["x-confroute-probabilities"] = ladder.named_values(decision["probabilities"])
        if answered is not None:
            if answered.name != chosen:
                reason = f"fallback: {'; '.join(notes)}; chose {chosen}: {reason}"
            headers |= {"x-confroute-route": answered.name, "x-confroute-model": answered.model}
        return _header_safe(headers | {"x-confroute-reason": reason})


def _header_safe(headers: dict[str, str]) -> dict[str, str]:
    """Header values as printable ASCII: an upstream's error message (in -reason) or a model
    name may hold any character, and HTTP headers carry Latin-1 at most (Starlette would fail
    with a 500). Other characters become \\uXXXX escapes, control characters spaces."""
    return {name: _CONTROL.sub(" ", value.encode("ascii", "backslashreplace").decode("ascii"))
            for name, value in headers.items()}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
