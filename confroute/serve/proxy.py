"""Forwarding a chat completion to an upstream, with fallback to the other one.

An upstream has failed when it cannot be reached, times out before its response starts, or
answers 429 or 5xx; its 4xx answers are the client's problem and pass through unchanged. A
streamed response is committed once its first chunk has arrived: a failure before that falls
back, a failure after it ends the stream with an OpenAI-style error event.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx

from confroute.serve.metrics import Metrics
from confroute.serve.settings import ROUTES, Upstream
from confroute.serve.wire import Problem

log = logging.getLogger("confroute.serve")

RETRYABLE_STATUS = 429


class UpstreamFailure(Exception):
    """The upstream did not answer usably; `detail` is safe to show (no URL, no key)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


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


async def forward(client: httpx.AsyncClient, upstreams: Mapping[str, Upstream], chosen: str,
                  body: dict[str, Any], fallback: bool, metrics: Metrics
                  ) -> tuple[Reply, list[str]]:
    """Send `body` to the chosen upstream (then the other one, if `fallback`).

    Returns the reply and notes on the upstreams that were skipped or failed, in order.
    """
    order = [chosen] + ([r for r in ROUTES if r != chosen] if fallback else [])
    notes: list[str] = []
    timeouts = 0
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
            timeouts += failure.kind == "timeout"
    if not any(upstreams.get(n) for n in order):
        raise Problem(503, f"no upstream to answer: {'; '.join(notes)}; set "
                      f"CONFROUTE_{chosen.upper()}_BASE_URL and CONFROUTE_{chosen.upper()}_MODEL"
                      + ("" if fallback else " (fallback is off)"), "upstream_not_configured",
                      "server_error")
    status = 504 if timeouts == len([n for n in order if n in upstreams]) else 502
    raise Problem(status, f"no upstream answered: {'; '.join(notes)}", "upstream_unavailable",
                  "server_error")


async def call(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any],
               metrics: Metrics) -> Reply:
    """One upstream call; raises UpstreamFailure when the other upstream should be tried."""
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
        if response.status_code == RETRYABLE_STATUS or response.status_code >= 500:
            raise UpstreamFailure(f"http_{response.status_code}",
                                  f"HTTP {response.status_code}")
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
    except BaseException:
        await response.aclose()
        raise
    await response.aclose()
    if upstream.api_key:  # some servers echo the key they rejected; never pass it on
        content = content.replace(upstream.api_key.encode(), b"***")
    return Reply(upstream, response.status_code, content_type, content=content)


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
