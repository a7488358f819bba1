"""Request reading and error replies: bounded bodies, JSON checks, bearer auth, JSON errors.

Every error is an OpenAI-style body, `{"error": {"message", "type", "code"}}`, so OpenAI clients
surface the message; it never contains a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

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


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing bodies over `limit` bytes before parsing."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit, declared)
    chunks, size = [], 0
    # Read incrementally: a chunked body has no Content-Length to check up front.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"more than {limit}")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise Problem(400, "the request body is empty; send a JSON object", "empty_body")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the request body is not valid JSON ({exc})", "invalid_json") from exc
    if not isinstance(body, dict):
        raise Problem(400, f"the request body must be a JSON object; found "
                      f"{type(body).__name__}", "invalid_json")
    return body


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
