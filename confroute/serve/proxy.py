"""Forwarding a chat completion to an upstream, with fallback to the next one.

The app hands `forward` the upstreams to try, in order: for a two-model artifact the chosen one
then the other; for a K-model ladder the chosen model then each more expensive one, cheapest
first (a cheaper model would answer worse than the one the router asked for).

Fallback classes: an upstream has failed, and the next one is tried, when it
  - cannot be reached, or times out before its response starts;
  - answers 429 (rate-limited) or 5xx;
  - answers 400/413/422 saying the prompt does not fit its context window (OpenAI's code
    `context_length_exceeded`, llama.cpp's `exceed_context_size_error`, vLLM's "maximum context
    length" message): a prompt the edge model cannot hold goes to the cloud.
Other 4xx answers are the client's problem and pass through (status and body). When every
upstream failed: all rate-limited -> 429 with the smallest upstream `Retry-After`, so clients
back off; all refused the length -> the last refusal passes through; else 502 (504 when all
timed out). Upstream error messages are kept, with anything that could be a key redacted.

A streamed response is committed once its first chunk has arrived: a failure before that falls
back, a failure after it ends the stream with an OpenAI-style error event.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from confroute.llm_client import redact
from confroute.serve.metrics import Metrics
from confroute.serve.settings import Upstream
from confroute.serve.wire import Problem

log = logging.getLogger("confroute.serve")

RATE_LIMITED = 429
LENGTH_STATUSES = (400, 413, 422)
LENGTH_CODES = {"context_length_exceeded", "exceed_context_size_error"}
LENGTH_MESSAGE = re.compile(r"maximum context length|context[ _](length|size|window)|"
                            r"too many tokens|prompt is too long", re.IGNORECASE)
MAX_MESSAGE_CHARS = 500


class UpstreamFailure(Exception):
    """The upstream did not answer usably; `detail` is safe to show (no URL, no key).

    `retry_after` is the upstream's Retry-After header (429s); `reply` is its answer when that
    answer should reach the client if no other upstream does (a context-length refusal).
    """

    def __init__(self, kind: str, detail: str, retry_after: str | None = None,
                 reply: Reply | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.reply = reply


@dataclasses.dataclass
class Reply:
    """An upstream's answer: a whole body, or an open stream whose first chunk was read."""

    upstream: Upstream
    status: int
    content_type: str
    content: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    """Releases the upstream connection of a stream, also if the client never reads it."""


async def forward(client: httpx.AsyncClient, upstreams: Mapping[str, Upstream],
                  order: Sequence[str], body: dict[str, Any], fallback: bool, metrics: Metrics,
                  configure: str = "") -> tuple[Reply, list[str]]:
    """Send `body` to the first configured upstream in `order`; if it fails and `fallback` is
    on, to the next configured one, and so on. Unconfigured names are skipped (and noted).

    Returns the reply and notes on the upstreams that were skipped or failed, in order. Raises
    Problem (429, 502, 503, 504) when no upstream answered; see the module docstring. The 503
    for "nothing configured" ends with `configure`, the way to configure one.
    """
    notes: list[str] = []
    failures: list[UpstreamFailure] = []
    for name in order:
        upstream = upstreams.get(name)
        if upstream is None:
            notes.append(f"{name} upstream not configured")
            continue
        try:
            return await call(client, upstream, body, metrics), notes
        except UpstreamFailure as failure:
            metrics.upstream_errors.labels(name, failure.kind).inc()
            log.warning("upstream %s failed: %s", name, failure.detail)
            notes.append(f"{name} upstream failed: {failure.detail}")
            failures.append(failure)
            if not fallback:
                break
    if not failures:
        raise Problem(503, f"no upstream to answer: {'; '.join(notes)}"
                      + (f"; {configure}" if configure else "")
                      + ("" if fallback else " (fallback is off)"), "upstream_not_configured",
                      "server_error")
    refused = [f.reply for f in failures if f.reply is not None]
    if refused:  # the prompt is too long for every upstream tried: the client must shorten it
        return refused[-1], notes
    raise _no_answer(failures, notes)


def _no_answer(failures: list[UpstreamFailure], notes: list[str]) -> Problem:
    detail = "; ".join(notes)
    if all(f.kind == f"http_{RATE_LIMITED}" for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after]
        numeric = [w for w in waits if w.strip().isdigit()]
        # The soonest any upstream will take requests again (an HTTP-date passes as it came).
        wait = min(numeric, key=int) if numeric else (waits[0] if waits else None)
        return Problem(429, f"every upstream is rate-limited: {detail}", "rate_limit_exceeded",
                       "requests", {"retry-after": wait} if wait else {})
    status = 504 if all(f.kind == "timeout" for f in failures) else 502
    return Problem(status, f"no upstream answered: {detail}", "upstream_unavailable",
                   "server_error")


async def call(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any],
               metrics: Metrics) -> Reply:
    """One upstream call; raises UpstreamFailure when the next upstream should be tried."""
    streaming = bool(body.get("stream"))
    payload = {**body, "model": upstream.model}
    headers = {"content-type": "application/json",
               "accept": "text/event-stream" if streaming else "application/json"}
    if upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    request = client.build_request("POST", upstream.chat_url, content=json.dumps(payload),
                                   headers=headers)
    started = time.perf_counter()
    response = await _send(client, request)
    try:
        content_type = response.headers.get("content-type", "application/json")
        if streaming and response.status_code == 200:
            chunks = response.aiter_bytes()
            first = await _read(anext(chunks, b""))
            metrics.upstream_latency.labels(upstream.name).observe(time.perf_counter() - started)
            return Reply(upstream, 200, content_type,
                         stream=_relay(first, chunks, response, upstream, metrics),
                         close=response.aclose)
        content = await _read(response.aread())
        metrics.upstream_latency.labels(upstream.name).observe(time.perf_counter() - started)
    except BaseException:  # also cancellation (the client left): close the upstream call
        await response.aclose()
        raise
    await response.aclose()
    if upstream.api_key:  # some servers echo the key they rejected; never pass it on
        content = content.replace(upstream.api_key.encode(), b"***")
    reply = Reply(upstream, response.status_code, content_type, content=content)
    _raise_if_failed(reply, response.headers.get("retry-after"))
    return reply


def _raise_if_failed(reply: Reply, retry_after: str | None) -> None:
    """Raise UpstreamFailure for the statuses that fall back (see the module docstring)."""
    status = reply.status
    if status != RATE_LIMITED and status < 500 and status not in LENGTH_STATUSES:
        return
    message, code = error_message(reply.content, reply.upstream.api_key)
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == RATE_LIMITED or status >= 500:
        raise UpstreamFailure(f"http_{status}", detail, retry_after=retry_after)
    if code in LENGTH_CODES or LENGTH_MESSAGE.search(message):
        raise UpstreamFailure("context_length", detail, reply=reply)


def error_message(content: bytes, key: str = "") -> tuple[str, str]:
    """(message, code) of an upstream's error body, redacted and cut to MAX_MESSAGE_CHARS.

    Reads OpenAI's `{"error": {"message", "code", "type"}}`, and the flat `{"message"}` or
    `{"detail"}` of other servers; any other body is kept as text.
    """
    text = content.decode("utf-8", errors="replace")
    code = ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, str):
        text = body
    elif isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            codes = [error.get("code"), error.get("type")]
            code = next((c for c in codes if isinstance(c, str) and c in LENGTH_CODES), "")
            text = str(error.get("message") or error.get("detail") or text)
        elif isinstance(error, str):
            text = error
    return redact(" ".join(text.split())[:MAX_MESSAGE_CHARS], key), code


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamFailure("timeout", f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise UpstreamFailure("connection", f"connection failed ({type(exc).__name__})") from exc


async def _read(awaitable: Any) -> Any:
    try:
        return await awaitable
    except httpx.TimeoutException as exc:
        raise UpstreamFailure("timeout", f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise UpstreamFailure("connection", f"response broke off ({type(exc).__name__})") from exc


async def _relay(first: bytes, chunks: AsyncIterator[bytes], response: httpx.Response,
                 upstream: Upstream, metrics: Metrics) -> AsyncIterator[bytes]:
    """Pass the stream through chunk by chunk; always release the upstream connection."""
    try:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as exc:
        # Too late to fall back (the client has part of an answer): end with an error event,
        # which OpenAI clients raise as an APIError rather than returning a truncated answer.
        metrics.upstream_errors.labels(upstream.name, "stream").inc()
        log.warning("upstream %s broke off mid-stream: %s", upstream.name, type(exc).__name__)
        error = {"error": {"message": f"the {upstream.name} upstream broke off mid-stream "
                           f"({type(exc).__name__})", "type": "server_error",
                           "code": "upstream_stream_error"}}
        yield f"data: {json.dumps(error)}\n\n".encode()
    finally:
        await response.aclose()
