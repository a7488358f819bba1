"""Request reading and error replies: bounded bodies, strict JSON, bearer auth, JSON errors.

Every error is an OpenAI-style body, `{"error": {"message", "type", "code"}}`, so OpenAI clients
surface the message; it never contains a secret.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import math
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive

T = TypeVar("T")
CLIENT_CLOSED = 499
"""The status logged for a request whose client left first (nginx's convention)."""


class Problem(Exception):
    """An error the client should see, with its HTTP status."""

    def __init__(self, status: int, message: str, code: str = "invalid_request",
                 kind: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.code, self.kind, self.headers)


def error_response(status: int, message: str, code: str, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects in a request body. Chat bodies (tool schemas
included) nest a few tens deep; Python's parser and encoder recurse, and deeper bodies would
end in a RecursionError (a 500) when forwarded."""
MAX_NUMBER_CHARS = 100
"""Longest number literal: a double holds 17 significant digits, and an integer of thousands
of digits costs quadratic time to read (Python refuses over 4,300 with a ValueError)."""
PARSED_BODY = "confroute.json"
"""The ASGI scope key under which the request guard leaves the body it read and parsed."""


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object: the one the request guard parsed (`confroute.serve
    .guard`, installed by create_app), else read here, refusing bodies over `limit` bytes."""
    if PARSED_BODY in request.scope:
        body = request.scope[PARSED_BODY]
    else:
        declared = request.headers.get("content-length")
        body = parse_json(await read_body(request.receive, declared, limit, math.inf))
    if not isinstance(body, dict):
        raise Problem(400, f"the request body must be a JSON object; found "
                      f"{_json_type(body)}", "invalid_json")
    return body


async def read_body(receive: Receive, declared: str | None, limit: int, timeout_s: float
                    ) -> bytes:
    """The whole request body from ASGI `receive`: Problem 413 past `limit` bytes (before
    reading when Content-Length, `declared`, says so), 408 when it has not all arrived within
    `timeout_s` seconds (a stalled client, or a Content-Length promising more than is sent),
    499 when the client leaves first."""
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            # Read incrementally: a chunked body has no Content-Length to check up front.
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Problem(CLIENT_CLOSED, f"the client left after sending {size} bytes "
                                  "of its request body", "client_closed")
                size += len(message.get("body", b""))
                if size > limit:
                    raise _too_large(limit, f"more than {limit}")
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        promised = f" of the {declared} its Content-Length announced" if declared else ""
        raise Problem(408, f"the request body did not arrive within {timeout_s:g} s "
                      f"(body_timeout_s): {size} bytes came{promised}; send the whole body "
                      "promptly, with a Content-Length that matches it", "request_timeout",
                      headers={"connection": "close"}) from None


def parse_json(raw: bytes) -> Any:
    """`raw` parsed as strict JSON (RFC 8259), bounded: Problem 400 for an empty body, bytes
    that are not UTF-8 JSON, NaN or Infinity, a number literal over MAX_NUMBER_CHARS or
    outside a double's range, a key repeated in one object (parsers disagree on which copy
    wins), nesting deeper than MAX_JSON_DEPTH."""
    if not raw.strip():
        raise Problem(400, "the request body is empty; send a JSON object", "empty_body")
    too_deep = Problem(400, f"the request body nests arrays and objects deeper than "
                       f"{MAX_JSON_DEPTH} levels; send a flatter body", "json_too_deep")
    if _depth(raw) > MAX_JSON_DEPTH:
        raise too_deep
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_int=_integer,
                          parse_float=_double, object_pairs_hook=_unique_keys)
    except _Refused as exc:
        raise Problem(400, f"the request body is not usable JSON: {exc}", exc.code) from None
    except RecursionError:  # (only if _depth misread a body that is not JSON anyway)
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise Problem(400, f"the request body is not valid JSON ({exc})", "invalid_json") from exc


class _Refused(ValueError):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; send a finite number (or null)",
                   "invalid_number")


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})",
                       "invalid_number")
    return int(text)


def _double(text: str) -> float:
    number = float(text) if len(text) <= MAX_NUMBER_CHARS else math.nan
    if not math.isfinite(number):
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"
        raise _Refused(f"the number {shown} is not a finite double (at most "
                       f"{MAX_NUMBER_CHARS} characters, magnitude below 1.8e308)",
                       "invalid_number")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        counts = collections.Counter(key for key, _ in pairs)
        repeated = next(key for key, n in counts.items() if n > 1)
        raise _Refused(f"the key {repeated!r} appears twice in one object; send it once",
                       "duplicate_key")
    return result


def _depth(raw: bytes) -> int:
    """The deepest nesting of [ and { in `raw`, strings skipped: in C (re, bytes.translate,
    numpy) rather than a walk of the parsed tree, which took 0.6 s on a 1 MB body of [[],[],...]."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def _too_large(limit: int, found: str) -> Problem:
    return Problem(413, f"the request body has {found} bytes; the limit is {limit:,} "
                   f"(max_body_bytes)", "body_too_large")


def check_token(request: Request, token: str | None) -> None:
    """Refuse the request unless it carries `Authorization: Bearer <token>` (when one is set)."""
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken must not reveal how much of the token matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        raise Problem(401, "missing or wrong bearer token; send 'Authorization: Bearer "
                      "<token>' with the token the server was started with (CONFROUTE_TOKEN)",
                      "unauthorized", "authentication_error", {"WWW-Authenticate": "Bearer"})


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it and raise Problem(499).

    Cancelling closes the upstream HTTP call, so a client that gives up stops the generation it
    asked for (and its cost), as Starlette's StreamingResponse already does for streams. Call it
    only after the body has been read: the next ASGI message is then the disconnect.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler is cancelled itself (server shutdown)
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Problem(CLIENT_CLOSED, "the client closed the connection before the answer; the "
                  "upstream call was cancelled", "client_closed")


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
