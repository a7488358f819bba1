"""The cascade in the proxy (`ServeSettings.cascade`, opt-in; `confroute.cascade`).

A pair only. Stage 1: a request whose router score is >= the cascade's t1 goes to the cloud at
once (its stream relayed as usual). Otherwise the edge is asked, with `logprobs: true`, and its
answer is HELD until stage 2 has read its mean token log-prob: when the edge's uncertainty is
>= t2 the request is sent, as the client wrote it, to the cloud, and the client gets only the
cloud's answer; else the held edge answer is served (without the log-probs the client did not
ask for). A stream is buffered whole, event by event, until the edge's stream ends, so the
decision is made before the first byte reaches the client: its time to first token becomes the
edge's whole generation time (plus the cloud's time to first token when escalated).

An edge answer without log-probs (an upstream that ignores `logprobs: true`) or with malformed
ones is never escalated or kept silently: `cascade_missing` decides ("edge": serve it, as stage 1
chose; "cloud": escalate), the `x-confroute-cascade` header names what was missing and a
warning is logged. An edge stream that breaks off is escalated (nothing has reached the
client). Headers: `x-confroute-cascade-stage` (router, edge, or fallback when the edge upstream
failed and the cloud answered) and `x-confroute-uncertainty` (stage 2's P(edge wrong)).
A request that forces a model or overrides a threshold is routed as without the cascade.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from confroute.cascade import (
    CascadeDecision,
    CascadePolicy,
    EdgeEvidence,
    MissingLogprobs,
    token_logprobs,
)
from confroute.errors import InputError
from confroute.policy import Decision
from confroute.serve.answers import DONE
from confroute.serve.deadlines import Deadline
from confroute.serve.decisions import header_safe, headers
from confroute.serve.proxy import MAX_UPSTREAM_BYTES, Reply, forward
from confroute.serve.sse import event_data
from confroute.serve.wire import unless_disconnected

if TYPE_CHECKING:
    from confroute.serve.service import Service

log = logging.getLogger("confroute.serve")


async def cascade_chat(service: Service, request: Request, body: dict[str, Any],
                       decision: Decision) -> Response:
    """Answer a chat request through both stages (see the module docstring)."""
    policy = service.cascade
    assert policy is not None and decision.score is not None
    edge, cloud = service.models
    deadline = Deadline.of(request.scope, service.settings)
    direct = policy.first(decision.score)
    if direct is not None:
        reply, notes = await _ask(service, request, body, [cloud], deadline)
        return _respond(reply, _headers(decision, direct, reply, notes))
    reply, notes = await _ask(service, request, {**body, "logprobs": True}, [edge, cloud],
                              deadline)
    if reply.upstream.name != edge:  # the edge failed; the cloud answered by fallback
        return _respond(reply, _headers(decision, None, reply, notes))
    if not 200 <= reply.status < 300:  # a 4xx the client must see (proxy.py's classes)
        kept = CascadeDecision("edge", "edge", decision.score, policy.t1, None, policy.t2,
                               f"the edge answered HTTP {reply.status}; passed on")
        return _respond(reply, _headers(decision, kept, reply, notes))
    events = await _buffer(reply) if reply.stream is not None else None
    verdict, note = _second(policy, decision.score, reply, events, service)
    if verdict.route == "cloud":
        cloud_reply, more = await _ask(service, request, body, [cloud], deadline)
        return _respond(cloud_reply, _headers(decision, verdict, cloud_reply, notes + more,
                                              note))
    if not body.get("logprobs"):
        reply, events = _without_logprobs(reply, events)
    return _respond(reply, _headers(decision, verdict, reply, notes, note), events)


async def _ask(service: Service, request: Request, body: dict[str, Any], order: list[str],
               deadline: Deadline) -> tuple[Reply, list[str]]:
    return await unless_disconnected(request, forward(
        service.client(), service.upstreams, order, body, service.settings.fallback,
        service.metrics, service.how_to_configure(), deadline=deadline))


async def _buffer(reply: Reply) -> list[bytes] | None:
    """Every event of the edge's stream, or None when it broke off (its relay ended with an
    error event) or passed MAX_UPSTREAM_BYTES."""
    assert reply.stream is not None
    events: list[bytes] = []
    size = 0
    try:
        async for event in reply.stream:
            size += len(event)
            data = event_data(event)
            if size > MAX_UPSTREAM_BYTES or (data is not None and data.startswith('{"error"')):
                return None
            events.append(event)
    finally:
        if reply.close is not None:
            await reply.close()
    return events


def _second(policy: CascadePolicy, score: float, reply: Reply, events: list[bytes] | None,
            service: Service) -> tuple[CascadeDecision, str]:
    """Stage 2's decision and a note for the x-confroute-cascade header ("" when none)."""
    if reply.stream is not None and events is None:
        log.warning("cascade: the edge's stream broke off; escalated")
        return _escalated(policy, score, "the edge's stream broke off"), "edge-stream-broken"
    try:
        tokens = _stream_tokens(events) if events is not None else _body_tokens(reply.content)
        return policy.second(score, EdgeEvidence(sum(tokens) / len(tokens))), ""
    except InputError as exc:
        what = "no-logprobs" if isinstance(exc, MissingLogprobs) else "bad-logprobs"
        missing = service.settings.cascade_missing
        log.warning("cascade: %s from the edge (%s); %s", what, exc,
                    "escalated" if missing == "cloud" else "served the edge's answer")
        if missing == "cloud":
            return _escalated(policy, score, f"{what}: escalated"), what
        return CascadeDecision("edge", "edge", score, policy.t1, None, policy.t2,
                               f"{what}: served the edge's answer unjudged"), what


def _escalated(policy: CascadePolicy, score: float, why: str) -> CascadeDecision:
    return CascadeDecision("cloud", "edge", score, policy.t1, None, policy.t2, why)


def _body_tokens(content: bytes) -> list[float]:
    try:
        response = json.loads(content)
        choice = response["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"the edge's answer has no choices[0] ({exc})") from exc
    tokens = token_logprobs(choice)
    if not tokens:
        raise MissingLogprobs("the edge's answer has no tokens")
    return tokens


def _stream_tokens(events: Sequence[bytes]) -> list[float]:
    """Token log-probs of choice 0 over a stream's chunks (chunks without any are skipped)."""
    tokens: list[float] = []
    for data in _chunks(events):
        for choice in data.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0 \
                    and choice.get("logprobs") is not None:
                tokens += token_logprobs(choice)
    if not tokens:
        raise MissingLogprobs("the edge's stream carried no logprobs")
    return tokens


def _chunks(events: Sequence[bytes]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        data = event_data(event)
        if data is not None and data != DONE:
            out.append(json.loads(data))  # the relay checked each chunk is a JSON object
    return out


def _without_logprobs(reply: Reply, events: list[bytes] | None
                      ) -> tuple[Reply, list[bytes] | None]:
    """The edge's answer as the client asked for it: no log-probs."""
    def strip(value: dict[str, Any]) -> bytes:
        for choice in value.get("choices") or []:
            if isinstance(choice, dict):
                choice["logprobs"] = None
        return json.dumps(value).encode()

    if events is None:
        return dataclasses.replace(reply, content=strip(json.loads(reply.content))), None
    out = []
    for event in events:
        data = event_data(event)
        out.append(event if data is None or data == DONE
                   else b"data: " + strip(json.loads(data)) + b"\n\n")
    return reply, out


def _headers(decision: Decision, verdict: CascadeDecision | None, reply: Reply,
             notes: list[str], note: str = "") -> dict[str, str]:
    stage: str = "fallback" if verdict is None else verdict.stage
    if verdict is not None:
        index = 0 if verdict.route == "edge" else 1
        decision = dataclasses.replace(decision, model=decision.models[index] if
                                       decision.models else decision.model, model_index=index,
                                       reason=f"cascade: {verdict.reason}", threshold=verdict.t1)
    out = headers(decision, (reply.upstream.name, reply.upstream.model), notes)
    extra = {"x-confroute-cascade-stage": stage}
    if verdict is not None and verdict.uncertainty is not None:
        extra["x-confroute-uncertainty"] = f"{verdict.uncertainty:.6f}"
    if note:
        extra["x-confroute-cascade"] = note
    return out | header_safe(extra)


def _respond(reply: Reply, out: dict[str, str], events: list[bytes] | None = None
             ) -> Response:
    log.info("chat (cascade): stage=%s answered=%s status=%d%s",
             out["x-confroute-cascade-stage"], reply.upstream.name, reply.status,
             " stream" if reply.stream else "")
    if reply.stream is not None:
        stream: AsyncIterator[bytes] = reply.stream if events is None else _replay(events)
        done = BackgroundTask(reply.close) if reply.close and events is None else None
        return StreamingResponse(stream, media_type=reply.content_type, background=done,
                                 headers={**out, "cache-control": "no-cache",
                                          "x-accel-buffering": "no"})
    return Response(reply.content, status_code=reply.status, media_type=reply.content_type,
                    headers=out)


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
