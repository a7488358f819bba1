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
client). When an escalated request finds no cloud answer (down, 5xx, 429, its deadline), the
edge's held answer is served after all, marked `x-confroute-cascade: escalation-failed` (an
answer already paid for beats an error; an edge stream that broke off has none to serve, and
the client gets the error). Headers: `x-confroute-cascade-stage` (router, edge, or fallback
when the edge upstream failed and the cloud answered) and `x-confroute-uncertainty` (stage
2's P(edge wrong)).
A request that forces a model or overrides a threshold is routed as without the cascade.

The answer goes out, and is recorded, as `chat.relay`'s do (`replies.respond`): x-request-id,
one decision-log record (the stage under its policy's "cascade"; an escalated request's edge
usage as paid, its cost added), the fallback metric. A streamed edge request is asked with
`stream_options.include_usage`; the usage chunk reaches the client only when it asked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

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
from confroute.serve.proxy import MAX_UPSTREAM_BYTES, Reply, forward
from confroute.serve.recording import Paid, Trace, answer_of, events_answer
from confroute.serve.replies import Edit, refused, respond
from confroute.serve.sse import event_data
from confroute.serve.wire import Problem, unless_disconnected

if TYPE_CHECKING:
    from confroute.serve.service import Service

log = logging.getLogger("confroute.serve")


async def cascade_chat(service: Service, request: Request, body: dict[str, Any],
                       decision: Decision, trace: Trace) -> Response:
    """Answer a chat request through both stages (see the module docstring), recorded by
    `trace` as `chat.relay` records (`replies`), with the cascade's stage in the record's
    policy. Raises Problem (with the decision's headers, recorded) when no upstream answered."""
    policy = service.cascade
    assert policy is not None and decision.score is not None
    edge, cloud = service.models
    deadline = Deadline.of(request.scope, service.settings)
    direct = policy.first(decision.score)
    if direct is not None:
        trace.cascade = _stage(policy, "router", direct)
        return await _cloud(service, request, body, trace, deadline, decision, direct, [], "")
    asked = _routed(decision, CascadeDecision(  # stage 1 chose the edge
        "edge", "router", decision.score, policy.t1, None, policy.t2,
        f"score {decision.score:.4f} < t1 {policy.t1:.4f}: the edge answers first"))
    try:
        reply, notes = await _ask(service, request, _edge_body(body), [edge, cloud], deadline)
    except Problem as problem:  # neither answered
        trace.cascade = _stage(policy, "edge")
        raise refused(problem, trace, asked) from None
    edit = _as_asked(body)
    if reply.upstream.name != edge:  # the edge failed; the cloud answered by fallback
        trace.cascade = _stage(policy, "fallback")
        return respond(service.metrics, trace, reply, notes, asked,
                       {"x-confroute-cascade-stage": "fallback"}, edit=edit)
    if not 200 <= reply.status < 300:  # a 4xx the client must see (proxy.py's classes)
        kept = CascadeDecision("edge", "edge", decision.score, policy.t1, None, policy.t2,
                               f"the edge answered HTTP {reply.status}; passed on")
        trace.cascade = _stage(policy, "edge", kept)
        return _served(service, trace, reply, notes, decision, kept)
    events = await _buffer(reply) if reply.stream is not None else None
    verdict, note = _second(policy, decision.score, reply, events, service)
    trace.cascade = _stage(policy, verdict.stage, verdict, note)
    if verdict.route == "cloud":
        usage = events_answer(events)[0] if events is not None else answer_of(reply.content)[0]
        held = None if reply.stream is not None and events is None else (
            lambda problem: _held(service, policy, trace, reply, notes, decision, verdict,
                                  problem, events, edit))
        return await _cloud(service, request, body, trace, deadline, decision, verdict, notes,
                            note, [(edge, usage)], held)
    return _served(service, trace, reply, notes, decision, verdict, note, events, edit)


def _held(service: Service, policy: CascadePolicy, trace: Trace, reply: Reply,
          notes: list[str], decision: Decision, verdict: CascadeDecision, problem: Problem,
          events: list[bytes] | None, edit: Edit | None) -> Response:
    """The edge's held answer when the escalation found no cloud answer: an answer the edge
    judged uncertain, already paid for, beats an error (x-confroute-cascade: escalation-failed,
    the cloud's failure in the record's notes)."""
    kept = dataclasses.replace(verdict, route="edge", reason=f"{verdict.reason}; the cloud "
                               f"failed ({problem.message}): served the edge's answer")
    log.warning("cascade: escalation failed (%s); served the edge's held answer",
                problem.message)
    trace.cascade = _stage(policy, kept.stage, kept, "escalation-failed")
    return _served(service, trace, reply, [*notes, problem.message], decision, kept,
                   "escalation-failed", events, edit)


def _edge_body(body: dict[str, Any]) -> dict[str, Any]:
    """What the edge is asked: the client's request with `logprobs: true` (stage 2 reads
    them) and, streamed, `stream_options.include_usage` (its usage is paid when escalated)."""
    asked = {**body, "logprobs": True}
    if body.get("stream"):
        options = body.get("stream_options")
        asked["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                   "include_usage": True}
    return asked


async def _cloud(service: Service, request: Request, body: dict[str, Any], trace: Trace,
                 deadline: Deadline, decision: Decision, verdict: CascadeDecision,
                 notes: list[str], note: str, paid: Sequence[Paid] = (),
                 held: Callable[[Problem], Response] | None = None) -> Response:
    """The cloud's answer to the client's request as written (sent direct, or escalated);
    when the cloud does not answer, `held(problem)` (the edge's answer) unless the client has
    gone (499), else the Problem, recorded."""
    routed = _routed(decision, verdict)
    try:
        reply, more = await _ask(service, request, body, [service.models[1]], deadline)
    except Problem as problem:
        if held is not None and problem.status != 499:
            return held(problem)
        raise refused(problem, trace, routed, paid) from None
    return respond(service.metrics, trace, reply, notes + more, routed,
                   _extra(verdict, note), paid=paid)


def _served(service: Service, trace: Trace, reply: Reply, notes: list[str], decision: Decision,
            verdict: CascadeDecision, note: str = "", events: list[bytes] | None = None,
            edit: Edit | None = None) -> Response:
    """The edge's (held) answer, as the client asked for it."""
    return respond(service.metrics, trace, reply, notes, _routed(decision, verdict),
                   _extra(verdict, note), events, edit=edit)


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


def _as_asked(body: dict[str, Any]) -> Edit | None:
    """How the edge's answer is changed back to what the client asked for: no log-probs
    unless asked, and in a stream no usage unless asked (`stream_options.include_usage`).
    None when nothing is to change."""
    logprobs = bool(body.get("logprobs"))
    options = body.get("stream_options")
    usage = not body.get("stream") or (isinstance(options, dict)
                                       and bool(options.get("include_usage")))
    if logprobs and usage:
        return None

    def edit(value: dict[str, Any]) -> dict[str, Any] | None:
        choices = value.get("choices")
        if not usage:
            if choices == [] and "usage" in value:
                return None  # the usage chunk the edge was asked for
            value.pop("usage", None)
        if not logprobs:
            for choice in choices or []:
                if isinstance(choice, dict):
                    choice["logprobs"] = None
        return value
    return edit


def _routed(decision: Decision, verdict: CascadeDecision) -> Decision:
    """The decision as the cascade made it: the model of its route, and its reason."""
    index = 0 if verdict.route == "edge" else 1
    return dataclasses.replace(decision, model=decision.models[index] if decision.models
                               else decision.model, model_index=index,
                               reason=f"cascade: {verdict.reason}", threshold=verdict.t1)


def _stage(policy: CascadePolicy, stage: str, verdict: CascadeDecision | None = None,
           note: str = "") -> dict[str, Any]:
    """What the decision log keeps of the cascade (the record's policy.cascade): the stage
    that decided (router, edge, or fallback when the edge upstream failed), t1, t2, stage 2's
    uncertainty and the x-confroute-cascade note."""
    out: dict[str, Any] = {"stage": stage, "t1": policy.t1, "t2": policy.t2}
    if verdict is not None and verdict.uncertainty is not None:
        out["uncertainty"] = verdict.uncertainty
    if note:
        out["note"] = note
    return out


def _extra(verdict: CascadeDecision, note: str) -> dict[str, str]:
    extra: dict[str, str] = {"x-confroute-cascade-stage": verdict.stage}
    if verdict.uncertainty is not None:
        extra["x-confroute-uncertainty"] = f"{verdict.uncertainty:.6f}"
    if note:
        extra["x-confroute-cascade"] = note
    return extra
