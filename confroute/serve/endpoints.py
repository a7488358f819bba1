"""The service's plain endpoints: health, metrics, /v1/route and the OpenAI model list. Each is
`handler(service, request)`; `Service.endpoint` wraps it with auth, JSON errors and metrics."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from confroute.serve.decisions import ROUTE_KEYS, route_overrides
from confroute.serve.recording import REQUEST_ID_HEADER
from confroute.serve.service import Service
from confroute.serve.wire import Problem, read_json

ROUTER_MODEL = "confroute"
"""The model id /v1/models lists for the router itself (a request naming it is routed)."""


async def health(service: Service, request: Request) -> Response:
    """Liveness and what is loaded: the models, the rule with its parameters (a pair's
    threshold too), and which models have an upstream; never a key."""
    policy = service.policy
    rule: dict[str, Any] = {"rule": policy.rule}
    if policy.rule == "utility":
        rule["lambda_per_usd"] = policy.lambda_per_usd
    else:
        rule["thresholds"] = {m: t if math.isfinite(t) else None
                              for m, t in zip(service.models, policy.thresholds.tolist(),
                                              strict=True)}
        if policy.threshold is not None:
            rule["threshold"] = policy.threshold
    return JSONResponse({
        "status": "ok", "variant": service.router.variant, "turn": service.router.turn,
        "models": service.models, **rule, "model_sha256": service.model_sha256,
        "artifact": {"id": service.traffic.identity.id,
                     "sha256": service.traffic.identity.sha256},
        "fallback": service.settings.fallback,
        "upstreams": {name: {"configured": name in service.upstreams,
                             "model": u.model if (u := service.upstreams.get(name)) else None}
                      for name in service.models},
    })


async def metrics_text(service: Service, request: Request) -> Response:
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


async def route(service: Service, request: Request) -> Response:
    """POST /v1/route: {"prompt": P} or {"prompts": [...]} with optional overrides
    (confroute.serve.decisions); one decision (`policy.Decision.to_dict`) per prompt."""
    body = await read_json(request, service.settings.max_body_bytes)
    unknown = sorted(set(body) - ROUTE_KEYS)
    if unknown:
        raise Problem(422, f"unknown field(s) {', '.join(unknown)}; /v1/route takes 'prompt' or "
                      "'prompts', and optionally 'model' (force a model) and, for the "
                      "artifact's rule, 'threshold' (a pair), 'thresholds' ({model: threshold}) "
                      f"or 'lambda_per_usd'; this artifact routes among "
                      f"{', '.join(service.models)}", "unknown_field")
    overrides = route_overrides(service.policy, body)
    prompts = service.prompts(body)
    texts = service.texts(prompts)
    rows = await service.scorer.score(texts)
    decisions = [service.decide(row, overrides, "route") for row in rows]
    traces = [service.traffic.begin("route", t, d) for t, d in zip(texts, decisions, strict=True)]
    for trace in traces:
        trace.done(200)
    results = [d.to_dict() for d in decisions]
    return JSONResponse(results[0] if "prompt" in body else {"results": results}, headers={
        REQUEST_ID_HEADER: ",".join(t.request_id for t in traces)})


def model_list(service: Service) -> list[dict[str, Any]]:
    """OpenAI `Model` objects: the router, then the artifact's models, cheapest first (for a
    pair: edge, cloud), the names a request's `model` may use to force one."""
    return [{"id": name, "object": "model", "created": 0, "owned_by": "confroute"}
            for name in [ROUTER_MODEL, *service.models]]


async def models(service: Service, request: Request) -> Response:
    return JSONResponse({"object": "list", "data": model_list(service)})


async def model(service: Service, request: Request) -> Response:
    wanted = request.path_params["model"]
    for entry in model_list(service):
        if entry["id"] == wanted:
            return JSONResponse(entry)
    raise Problem(404, f"model {wanted!r} is not served here; GET /v1/models lists them",
                  "model_not_found")
