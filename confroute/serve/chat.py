"""POST /v1/chat/completions: score the conversation, decide, and forward the request to the
chosen model's upstream (falling back up the ladder), with the decision in x-confroute-*
response headers.

The scored text is the user turn(s) picked by the artifact's `preprocess.turn` (first, last or
all), the `data.turn` setting it was trained with. A conversation whose user turns hold no text
(only images, audio or files) is not scored and goes to the top model (or a forced one). A
client that disconnects before a non-streamed answer cancels the upstream call.

`relay` is the part every proxied API shares (chat here, `responses` for /v1/responses): the
forward with fallback, the x-confroute-* headers, and `x-request-id`, the upstream's when it
sent one, else the proxy's own (`req_` and 32 hex digits), on answers and on the proxy's
errors after the decision alike.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from confroute.policy import Decision
from confroute.serve.answers import CHAT, Api
from confroute.serve.cascade import cascade_chat
from confroute.serve.deadlines import Deadline
from confroute.serve.decisions import Overrides, chat_overrides
from confroute.serve.proxy import forward
from confroute.serve.recording import Trace
from confroute.serve.replies import refused, respond
from confroute.serve.service import Service
from confroute.serve.wire import Problem, read_json, unless_disconnected
from confroute.text import NoTextError

log = logging.getLogger("confroute.serve")


async def chat(service: Service, request: Request) -> Response:
    body = await read_json(request, service.settings.max_body_bytes)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(422, "'messages' must be a non-empty list of chat messages",
                      "invalid_messages")
    overrides = chat_overrides(service.policy, body, request.headers)
    decision, text = await scored_decision(service, messages, overrides, "chat")
    trace = service.traffic.begin("chat", text, decision, messages)
    if service.cascade is not None and decision.score is not None and overrides == Overrides():
        return await cascade_chat(service, request, body, decision, trace)
    return await relay(service, request, body, decision, CHAT, trace)


async def relay(service: Service, request: Request, body: dict[str, Any], decision: Decision,
                api: Api, trace: Trace, extra: dict[str, str] | None = None) -> Response:
    """Forward `body` to `api` of the upstreams `decision` orders (`proxy.forward`); the
    answer (whole or streamed) with the decision's headers, `extra` headers and x-request-id.
    Raises Problem
    (429, 499, 502, 503, 504) with those headers when no upstream answered. The request is
    recorded by `trace` (`recording`, `replies`) under the proxy's own id, the x-request-id
    sent when the upstream sends none: an upstream's ids need not be unique across upstreams
    or restarts."""
    try:
        reply, notes = await unless_disconnected(request, forward(
            service.client(), service.upstreams, service.order(decision), body,
            service.settings.fallback, service.metrics, service.how_to_configure(),
            deadline=Deadline.of(request.scope, service.settings), api=api))
    except Problem as problem:  # no upstream answered: still say how it was routed
        raise refused(problem, trace, decision, extra=extra) from None
    return respond(service.metrics, trace, reply, notes, decision, extra)


async def scored_decision(service: Service, messages: list[Any], overrides: Overrides,
                          endpoint: str) -> tuple[Decision, str]:
    """Score the conversation (chat messages) and decide; one with no text at all goes by
    rule. Counted in the metrics under `endpoint`. Returns the decision and the scored text
    ("" when there was none)."""
    try:
        texts = service.texts([messages], no_text_ok=True)
    except NoTextError:
        return service.without_text(overrides, endpoint), ""
    (row,) = await service.scorer.score(texts)
    return service.decide(row, overrides, endpoint), texts[0]
