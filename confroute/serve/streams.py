"""Relaying an upstream's SSE stream: checked before it is committed, whole events after.

`open_stream` reads the stream up to its first data event (comments and keep-alives before it
are dropped) and checks it with the API's checks (`answers.Api`: a chat.completion.chunk, or a
Responses event); anything else raises UpstreamFailure, so the proxy can still fall back
(nothing has reached the client). The relay it returns then passes the stream on one whole
event at a time (`sse.EventSplitter`) and ends it with one error event in the API's form when
the upstream breaks off, sends an event that is not one of the API's, stalls past the read
timeout, ends before the answer does (for chat: no finish_reason and no [DONE]; for Responses:
no response.completed, .incomplete or .failed), or the request passes its deadline; a
half-written event is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from confroute.llm_client import redact
from confroute.serve.answers import Api, UpstreamFailure
from confroute.serve.deadlines import Deadline
from confroute.serve.metrics import Metrics
from confroute.serve.settings import Upstream
from confroute.serve.sse import EventSplitter, EventTooLarge, event_data

log = logging.getLogger("confroute.serve")


class StreamBroken(Exception):
    """The stream stopped being one of the API's streams after it was committed."""


async def open_stream(response: httpx.Response, upstream: Upstream, metrics: Metrics,
                      deadline: Deadline, max_event_bytes: int, api: Api
                      ) -> AsyncIterator[bytes]:
    """The relay of `response` (an open text/event-stream), once its first data event has
    arrived and is one of `api`'s. Raises UpstreamFailure (not such a stream, broken off,
    timed out before that); the caller closes `response` then. The relay closes it itself."""
    splitter = EventSplitter(max_event_bytes)
    events = _events(response, splitter)
    try:
        first = await _first_event(events, splitter, upstream, api)
    except BaseException:
        await events.aclose()
        raise
    return _relay(first, events, splitter, response, upstream, metrics, deadline, api)


async def _first_event(events: AsyncIterator[bytes], splitter: EventSplitter,
                       upstream: Upstream, api: Api) -> bytes:
    """The first data event, checked; comments and keep-alives before it are dropped (they are
    not content, and relaying one would commit the response)."""
    try:
        async for event in events:
            data = event_data(event)
            if data is None:
                continue
            if (problem := api.first_problem(data)) is not None:
                raise UpstreamFailure("invalid_answer", redact(
                    f"a stream that is not a {api.name} stream: {problem}", upstream.api_key))
            return event
    except httpx.TimeoutException as exc:
        raise UpstreamFailure("timeout", f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise UpstreamFailure("connection", f"the stream broke off before any chunk "
                              f"({type(exc).__name__})") from exc
    except EventTooLarge as exc:
        raise UpstreamFailure("invalid_answer", f"a stream that is not SSE: {exc}") from exc
    cut = " (mid-event)" if splitter.pending.strip() else ""
    raise UpstreamFailure("invalid_answer", f"the stream ended before any chunk{cut}")


async def _events(response: httpx.Response, splitter: EventSplitter
                  ) -> AsyncGenerator[bytes, None]:
    async for chunk in response.aiter_bytes():
        for event in splitter.feed(chunk):
            yield event


async def _relay(first: bytes, events: AsyncIterator[bytes], splitter: EventSplitter,
                 response: httpx.Response, upstream: Upstream, metrics: Metrics,
                 deadline: Deadline, api: Api) -> AsyncIterator[bytes]:
    """Pass on whole events until the stream ends; always release the upstream connection."""
    last = event_data(first) or ""
    finished = api.finishes(last)
    try:
        yield first
        while (event := await _next(events, deadline)) is not None:
            data = event_data(event)
            if data is not None:
                if (problem := api.event_problem(data)) is not None:
                    raise StreamBroken(redact(f"sent what is not a {api.name} event: "
                                              f"{problem}", upstream.api_key))
                finished, last = finished or api.finishes(data), data
            yield event
        if splitter.pending.strip():
            raise StreamBroken("ended its stream in the middle of an event")
        if not finished:
            raise StreamBroken(f"ended its stream before the answer ({api.unfinished})")
    except (httpx.HTTPError, EventTooLarge, StreamBroken, TimeoutError) as exc:
        # Too late to fall back (the client has part of an answer): end with an error event,
        # which OpenAI clients raise as an APIError rather than returning a truncated answer.
        metrics.upstream_errors.labels(upstream.name, "stream").inc()
        message = _why(exc, upstream, deadline)
        log.warning("upstream %s: %s", upstream.name, message)
        yield api.error_event(message, "upstream_stream_error", last)
    finally:
        await response.aclose()


async def _next(events: AsyncIterator[bytes], deadline: Deadline) -> bytes | None:
    """The next whole event, None at the end; TimeoutError past the request's deadline."""
    try:
        async with asyncio.timeout(deadline.left()):
            return await anext(events)
    except StopAsyncIteration:
        return None


def _why(exc: Exception, upstream: Upstream, deadline: Deadline) -> str:
    if isinstance(exc, TimeoutError):
        return (f"the request took longer than request_timeout_s "
                f"({deadline.request_timeout_s:g} s); the {upstream.name} upstream's answer "
                "was cut there")
    if isinstance(exc, httpx.TimeoutException):
        return (f"the {upstream.name} upstream stalled mid-stream past read_timeout_s "
                f"({type(exc).__name__})")
    if isinstance(exc, httpx.HTTPError):
        return f"the {upstream.name} upstream broke off mid-stream ({type(exc).__name__})"
    return f"the {upstream.name} upstream sent {exc}" if isinstance(exc, EventTooLarge) \
        else f"the {upstream.name} upstream {exc}"
