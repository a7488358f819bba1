"""The ASGI app factory: the routing endpoint, the OpenAI-compatible proxy, health and metrics.

    app = create_app("runs/demo/artifact", load_settings())   # then: uvicorn.run(app)

Endpoints (all but /health need `Authorization: Bearer $CONFROUTE_TOKEN` when a token is set),
the same for every artifact, a pair (edge, cloud) or K models (cheapest first):
  POST /v1/route             {"prompt": P} or {"prompts": [P, ...]}, optional overrides
                             (confroute.serve.decisions); P is a string or a list of chat
                             messages; each result is the decision (`policy.Decision.to_dict`):
                             for a pair score, route, threshold, then for any artifact model,
                             model_index, reason, probabilities, thresholds (threshold rule) or
                             lambda_per_usd (utility rule)
  POST /v1/chat/completions  OpenAI chat completions, scored and forwarded to the chosen model's
                             upstream with its model name, falling back up the ladder
                             (confroute.serve.chat); response headers x-confroute-decision (the
                             chosen model), -route and -model (the model that answered, its
                             upstream's model name), -reason (with any fallback),
                             -probabilities, -thresholds, and for a pair -score and -threshold
  POST /v1/responses         the OpenAI Responses API, scored from its `input` and forwarded
                             as chat is, with the same headers (confroute.serve.responses);
                             chat and responses answers carry x-request-id (the upstream's,
                             else the proxy's own)
  GET  /v1/models            OpenAI model list: "confroute" (the router) and the artifact's
                             models; a request's `model` naming one of those forces it
  POST /v1/feedback          an outcome of a logged request (confroute.serve.admin)
  POST /admin/reload         load the artifact again and swap it in (also on SIGHUP)
  GET  /health               liveness + what is loaded
  GET  /metrics              Prometheus text
CORS is off unless `cors_origins` is set; then browsers from those origins may call the API.
Every request first passes the request guard (`guard`): loopback Host names only on loopback
(plus `allowed_hosts`), no foreign Origin, JSON bodies only, read within `body_timeout_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from confroute import arguments as check
from confroute.errors import ArtifactError, require

require("starlette", "serve")
require("httpx", "serve")
require("prometheus_client", "serve")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

import confroute.serve.admin as admin  # noqa: E402
import confroute.serve.endpoints as endpoints  # noqa: E402
from confroute.artifact import MAKE_IT  # noqa: E402
from confroute.runtime import Router  # noqa: E402
from confroute.serve.chat import chat  # noqa: E402
from confroute.serve.decisions import EXPOSED_HEADERS, REQUEST_HEADERS  # noqa: E402
from confroute.serve.guard import RequestGuard  # noqa: E402
from confroute.serve.hosts import check_origins  # noqa: E402
from confroute.serve.responses import responses  # noqa: E402
from confroute.serve.service import Service  # noqa: E402
from confroute.serve.settings import ServeSettings  # noqa: E402
from confroute.serve.wire import error_response  # noqa: E402


def create_app(router_or_dir: Router | str | Path, settings: ServeSettings | None = None,
               environ: Mapping[str, str] | None = None,
               settings_source: Callable[[], ServeSettings] | None = None) -> Starlette:
    """Build the service for a loaded Router or an artifact directory (verified on load).

    `settings_source` (optional) gives the settings anew; a reload (SIGHUP, POST
    /admin/reload) takes the cascade's (`cascade`, `cascade_policy`, `cascade_missing`) from
    it, e.g. `confroute serve`'s flags and --config file parsed again. Without it a reload
    reads the cascade policy again from its file or the artifact's manifest, on or off as
    started.

    Upstream API keys are read from `environ` (default: os.environ) here, once. The settings'
    `variant` and `threads` apply when a directory is given (a Router comes loaded). Raises
    ConfigError when the settings do not fit the artifact (see `resolve_upstreams` and
    `decisions.serving_policy`).
    """
    settings = check.instance(settings, "settings", ServeSettings, "a ServeSettings",
                              optional=True) or ServeSettings()
    environ = check.mapping(environ, "environ", optional=True)
    router = router_or_dir if isinstance(router_or_dir, Router) else Router.load(
        check.path(router_or_dir, "router_or_dir", ArtifactError, kind="folder", fix=MAKE_IT),
        variant=settings.variant, threads=settings.threads)
    if settings_source is not None and not callable(settings_source):
        raise TypeError("settings_source must be a function that returns ServeSettings")
    service = Service(router, settings, environ, settings_source)
    routes = [
        Route("/health", service.endpoint("health", endpoints.health, auth=False),
              methods=["GET"]),
        Route("/metrics", service.endpoint("metrics", endpoints.metrics_text), methods=["GET"]),
        Route("/v1/route", service.endpoint("route", endpoints.route), methods=["POST"]),
        Route("/v1/chat/completions", service.endpoint("chat", chat), methods=["POST"]),
        Route("/v1/feedback", service.endpoint("feedback", admin.feedback), methods=["POST"]),
        Route("/admin/reload", service.endpoint("reload", admin.reload), methods=["POST"]),
        Route("/v1/responses", service.endpoint("responses", responses), methods=["POST"]),
        Route("/v1/models", service.endpoint("models", endpoints.models), methods=["GET"]),
        Route("/v1/models/{model:path}", service.endpoint("models", endpoints.model),
              methods=["GET"]),
    ]
    # The guard first: no request reaches CORS or an endpoint without passing it.
    refused = service.metrics.refused
    middleware = [Middleware(RequestGuard, settings=settings,
                             refused=lambda code: refused.labels(code).inc())]
    middleware += [Middleware(
        CORSMiddleware, allow_origins=check_origins(settings.cors_origins),
        allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type",
                                                      *REQUEST_HEADERS],
        expose_headers=EXPOSED_HEADERS, max_age=600)] if settings.cors_origins else []
    app = Starlette(routes=routes, lifespan=service.lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 from the router, as JSON like every other error."""
    status = getattr(exc, "status_code", 500)
    return error_response(status, f"{request.method} {request.url.path}: "
                          f"{getattr(exc, 'detail', 'error')}",
                          "not_found" if status == 404 else "http_error",
                          headers=getattr(exc, "headers", None))
