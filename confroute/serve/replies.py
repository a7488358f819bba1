"""Passing an upstream's answer to the client, and recording it: what `chat.relay` and the
cascade (`cascade.cascade_chat`) share, so that every proxied request gets the same
x-confroute-* headers, `x-request-id` (the upstream's, else the proxy's own), fallback metric,
log line and one decision-log record (`recording.Trace`) with its usage, cost and answer text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from confroute.policy import Decision
from confroute.serve.answers import DONE
from confroute.serve.decisions import header_safe, headers, named_values
from confroute.serve.metrics import Metrics
from confroute.serve.proxy import REQUEST_ID, Reply
from confroute.serve.recording import Paid, Trace, answer_of, watched
from confroute.serve.sse import event_data
from confroute.serve.wire import Problem

log = logging.getLogger("confroute.serve")
Edit = Callable[[dict[str, Any]], dict[str, Any] | None]
"""A change to an answer's JSON body or stream chunk; None drops the chunk."""


def respond(metrics: Metrics, trace: Trace, reply: Reply, notes: list[str], decision: Decision,
            extra: dict[str, str] | None = None, events: list[bytes] | None = None,
            paid: Sequence[Paid] = (), edit: Edit | None = None) -> Response:
    """The client's response to `reply`, which answers `decision` (the model it chose; an
    answer by another is a fallback, counted in `metrics.fallbacks`), with the decision's
    headers, `extra` headers, x-request-id and the trace's id. `events`: the stream's events
    when they were read already (they are relayed instead of `reply.stream`). `paid`: earlier
    calls of this request whose usage is paid too (recorded with it). `edit`: applied to the
    JSON body, or to each data event of a stream (None drops the event), after it was
    recorded. The trace is recorded once the answer is sent (a stream: when it ends or the
    client leaves)."""
    answered = reply.upstream
    out = headers(decision, (answered.name, answered.model), notes) | header_safe(
        {REQUEST_ID: reply.request_id or trace.request_id, **(extra or {})}) | trace.headers
    if answered.name != decision.model:
        metrics.fallbacks.labels(decision.model).inc()
    trace.decision = decision
    log.info("%s: p=%s routed=%s answered=%s status=%d%s id=%s", trace.endpoint,
             named_values(decision.probabilities) or "none", decision.model, answered.name,
             reply.status, " stream" if reply.stream else "", out[REQUEST_ID])
    if reply.stream is not None:
        done = BackgroundTask(reply.close) if reply.close and events is None else None
        source = reply.stream if events is None else _replay(events)
        stream = watched(source, trace, answered, notes, trace.traffic.shadow is not None, paid)
        if edit is not None:
            stream = _edited(stream, edit)
        return StreamingResponse(stream, media_type=reply.content_type,
                                 headers={**out, "cache-control": "no-cache",
                                          "x-accel-buffering": "no"}, background=done)
    usage, text = answer_of(reply.content)
    trace.done(reply.status, answered, notes, usage, text, paid)
    content = reply.content
    if edit is not None:
        edited = edit(json.loads(content))  # a 2xx chat answer: checked to be a JSON object
        content = json.dumps(edited).encode() if edited is not None else content
    return Response(content, status_code=reply.status, media_type=reply.content_type,
                    headers=out)


def refused(problem: Problem, trace: Trace, decision: Decision, paid: Sequence[Paid] = (),
            extra: dict[str, str] | None = None) -> Problem:
    """`problem` (no upstream answered `decision`) with the decision's headers, `extra`
    headers and the proxy's ids, recorded with its status and message; raise what it
    returns."""
    problem.headers.update(headers(decision, None, []) | header_safe(extra or {})
                           | {REQUEST_ID: trace.request_id} | trace.headers)
    trace.decision = decision
    trace.done(problem.status, notes=[problem.message], paid=paid)
    return problem


async def _edited(stream: AsyncIterator[bytes], edit: Edit) -> AsyncIterator[bytes]:
    async for event in stream:
        data = event_data(event)
        if data is None or data == DONE or not data.startswith("{"):
            yield event
            continue
        edited = edit(json.loads(data))  # the relay checked each chunk is a JSON object
        if edited is not None:
            yield b"data: " + json.dumps(edited).encode() + b"\n\n"


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
