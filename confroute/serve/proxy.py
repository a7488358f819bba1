"""Forwarding a request (a chat completion, or a Responses request: `answers.Api`) to an
upstream, with fallback to the next one.

The app hands `forward` the upstreams to try, in order: for a two-model artifact the chosen one
then the other; for a K-model ladder the chosen model then each more expensive one, cheapest
first (a cheaper model would answer worse than the one the router asked for).

Fallback classes: an upstream has failed, and the next one is tried, when it
  - cannot be reached, or times out before its first content;
  - answers 429 (rate-limited) or 5xx;
  - answers 400/413/422 saying the prompt does not fit its context window (OpenAI's code
    `context_length_exceeded`, llama.cpp's `exceed_context_size_error`, vLLM's "maximum context
    length" message): a prompt the edge model cannot hold goes to the cloud.
Other 4xx answers are the client's problem and pass through (status and body). When every
upstream failed: all rate-limited -> 429 with the smallest upstream `Retry-After`, so clients
back off; all refused the length -> the last refusal passes through; else 502 (504 when all
timed out). Upstream error messages are kept, with anything that could be a key redacted.

No 2xx is trusted unread: a body that is not the API's answer (for chat: not JSON, cut off,
no `choices`, wrong types: `answers`; for Responses: `response_answers`), a stream that is not
text/event-stream or whose first data event is not the API's (`streams`), a redirect, and an
answer over MAX_UPSTREAM_BYTES are failures like a 5xx. The upstream's `x-request-id` is kept
in the Reply.

Deadlines (`deadlines.Deadline`): each upstream has `first_content_timeout_s` for its first
content (a whole non-streamed answer, or a stream's first data event: SSE comments and
keep-alives do not count), within what is left of `request_timeout_s`; past it the next
upstream is tried. A streamed response is committed once its first data event is relayed: a
failure before that falls back; after it, the stream ends with an OpenAI-style error event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from confroute.llm_client import redact
from confroute.serve.answers import CHAT, Api, UpstreamFailure
from confroute.serve.deadlines import Deadline
from confroute.serve.metrics import Metrics
from confroute.serve.settings import Upstream
from confroute.serve.streams import open_stream
from confroute.serve.wire import Problem

__all__ = ["MAX_UPSTREAM_BYTES", "Reply", "UpstreamFailure", "call", "error_message", "forward"]

log = logging.getLogger("confroute.serve")

RATE_LIMITED = 429
LENGTH_STATUSES = (400, 413, 422)
LENGTH_CODES = {"context_length_exceeded", "exceed_context_size_error"}
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID_CHARS = 200
LENGTH_MESSAGE = re.compile(r"maximum context length|context[ _](length|size|window)|"
                            r"too many tokens|prompt is too long", re.IGNORECASE)
MAX_MESSAGE_CHARS = 500
MAX_UPSTREAM_BYTES = 64 * 1024 * 1024
"""Largest non-streamed answer, and stream event, read from an upstream: more is a failure
(an upstream that sends without end must not fill this process's memory)."""


@dataclasses.dataclass
class Reply:
    """An upstream's answer: a whole body, or an open stream whose first data event was read
    and found to be the API's (a chat.completion.chunk, a Responses event)."""

    upstream: Upstream
    status: int
    content_type: str
    content: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    """Releases the upstream connection of a stream, also if the client never reads it."""
    request_id: str | None = None
    """The upstream's x-request-id header (cut to MAX_REQUEST_ID_CHARS), None without one."""


async def forward(client: httpx.AsyncClient, upstreams: Mapping[str, Upstream],
                  order: Sequence[str], body: dict[str, Any], fallback: bool, metrics: Metrics,
                  configure: str = "", *, deadline: Deadline, api: Api = CHAT
                  ) -> tuple[Reply, list[str]]:
    """Send `body` to `api` of the first configured upstream in `order`; if it fails and
    `fallback` is
    on, to the next configured one, and so on while `deadline` leaves time. Unconfigured
    names are skipped (and noted).

    Returns the reply and notes on the upstreams that were skipped or failed, in order. Raises
    Problem (429, 502, 503, 504) when no upstream answered; see the module docstring. The 503
    for "nothing configured" ends with `configure`, the way to configure one.
    """
    notes: list[str] = []
    failures: list[UpstreamFailure] = []
    for i, name in enumerate(order):
        upstream = upstreams.get(name)
        if upstream is None:
            notes.append(f"{name} upstream not configured")
            continue
        try:
            return await attempt(client, upstream, body, metrics, deadline, api), notes
        except UpstreamFailure as failure:
            metrics.upstream_errors.labels(name, failure.kind).inc()
            log.warning("upstream %s failed: %s", name, failure.detail)
            notes.append(f"{name} upstream failed: {failure.detail}")
            failures.append(failure)
            if not fallback:
                break
            if deadline.left() <= 0 and order[i + 1:]:
                notes.append(f"request_timeout_s ({deadline.request_timeout_s:g} s) passed: "
                             f"{', '.join(order[i + 1:])} not tried")
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


async def attempt(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any],
                  metrics: Metrics, deadline: Deadline, api: Api = CHAT) -> Reply:
    """`call`, its time to first content bounded by `deadline.for_attempt()`."""
    seconds, setting = deadline.for_attempt()
    try:
        async with asyncio.timeout(seconds):
            return await call(client, upstream, body, metrics, deadline, api)
    except TimeoutError:
        what = "first stream event" if body.get("stream") else "answer"
        raise UpstreamFailure("timeout", f"no {what} within {seconds:g} s ({setting})") from None


async def call(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any],
               metrics: Metrics, deadline: Deadline, api: Api = CHAT) -> Reply:
    """One upstream call to `api`; raises UpstreamFailure when the next upstream should be
    tried.
    A streamed answer is returned once its first data event is read (its relay ends by
    `deadline`); a whole answer once it is read and checked."""
    streaming = bool(body.get("stream"))
    payload = {**body, "model": upstream.model}
    headers = {"content-type": "application/json",
               "accept": "text/event-stream" if streaming else "application/json"}
    if upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    request = client.build_request("POST", upstream.base_url.rstrip("/") + api.path,
                                   content=json.dumps(payload), headers=headers)
    started = time.perf_counter()
    response = await _send(client, request)
    try:
        content_type = response.headers.get("content-type", "application/json")
        if streaming and response.is_success and media_type(content_type) == "text/event-stream":
            stream = await open_stream(response, upstream, metrics, deadline,
                                       MAX_UPSTREAM_BYTES, api)
            metrics.upstream_latency.labels(upstream.name).observe(time.perf_counter() - started)
            return Reply(upstream, 200, content_type, stream=stream, close=response.aclose,
                         request_id=_request_id(response))
        content = await _read(_read_capped(response))
        metrics.upstream_latency.labels(upstream.name).observe(time.perf_counter() - started)
    except BaseException:  # also cancellation (the client left, a deadline): close the call
        await response.aclose()
        raise
    await response.aclose()
    # Some servers echo a rejected key in their error body: never pass it on. An answer (2xx) is
    # passed as it is: a short key would otherwise be cut out of its words ("prompt_to***ens").
    if upstream.api_key and not response.is_success:
        content = content.replace(upstream.api_key.encode(), b"***")
    reply = Reply(upstream, response.status_code, content_type, content=content,
                  request_id=_request_id(response))
    _raise_if_failed(reply, response.headers.get("retry-after"), streaming, api)
    if response.is_success:  # read, and found to be the API's answer
        reply.content_type = "application/json"
    return reply


def _request_id(response: httpx.Response) -> str | None:
    found = response.headers.get(REQUEST_ID, "").strip()
    return found[:MAX_REQUEST_ID_CHARS] or None


def _raise_if_failed(reply: Reply, retry_after: str | None, streaming: bool, api: Api) -> None:
    """Raise UpstreamFailure for the answers that fall back (see the module docstring)."""
    status = reply.status
    if 200 <= status < 300:
        problem = (f"a stream was asked for and it answered {media_type(reply.content_type)!r}"
                   if streaming else api.body_problem(reply.content))
        if problem is not None:
            raise UpstreamFailure("invalid_answer", redact(f"HTTP {status}, but {problem}",
                                                          reply.upstream.api_key))
        return
    if status < 200 or 300 <= status < 400:
        hint = " (a redirect: set base_url to the URL it points at)" if status >= 300 else ""
        raise UpstreamFailure(f"http_{status}", f"HTTP {status}, which is no answer{hint}")
    if status != RATE_LIMITED and status < 500 and status not in LENGTH_STATUSES:
        return
    message, code = error_message(reply.content, reply.upstream.api_key)
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == RATE_LIMITED or status >= 500:
        raise UpstreamFailure(f"http_{status}", detail, retry_after=retry_after)
    if code in LENGTH_CODES or LENGTH_MESSAGE.search(message):
        raise UpstreamFailure("context_length", detail, reply=reply)


def media_type(content_type: str) -> str:
    """"text/event-stream; charset=utf-8" -> "text/event-stream"."""
    return content_type.split(";", 1)[0].strip().lower()


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


async def _read_capped(response: httpx.Response) -> bytes:
    """The whole body, UpstreamFailure past MAX_UPSTREAM_BYTES (declared or sent)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPSTREAM_BYTES:
        raise UpstreamFailure("too_large", f"announced an answer of {int(declared):,} bytes "
                              f"(the limit is {MAX_UPSTREAM_BYTES:,})")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_UPSTREAM_BYTES:
            raise UpstreamFailure("too_large", f"sent an answer of more than "
                                  f"{MAX_UPSTREAM_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
