"""A deterministic OpenAI-compatible chat server that echoes the last user message.

It stands in for a real LLM where the thing under test is the proxy (tests, bench/load.py, trying
a deployment before the models are up). Plain and SSE-streamed answers, an optional required API
key, and failure modes (an HTTP error status with a chosen body and headers, a delay that notices
when the caller hangs up, a stream that breaks off).

    python tests/serve/upstream.py --name edge --port 0    # prints its base URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from confroute.serve.listen import bind

CREATED = 1_700_000_000  # fixed, so answers are byte-for-byte reproducible


def echo_app(name: str, api_key: str | None = None, fail_status: int | None = None,
             delay_s: float = 0.0, break_after: int | None = None,
             fail_body: Any = None, fail_headers: dict[str, str] | None = None) -> Starlette:
    """The echo server; `app.state.seen` records each request's model, auth header and body,
    and `app.state.hung_up` the requests whose caller disconnected during `delay_s`.

    `fail_status` answers every request with that status, `fail_body` (default: an OpenAI error
    saying it fails on purpose) and `fail_headers` (e.g. Retry-After).
    """
    seen: list[dict[str, Any]] = []
    hung_up: list[dict[str, Any]] = []

    async def chat(request: Request) -> Response:
        body = await request.json()
        auth = request.headers.get("authorization")
        seen.append({"model": body.get("model"), "authorization": auth, "body": body})
        if delay_s and await _caller_left(request, delay_s):
            hung_up.append(body)
            return Response(status_code=499)
        if api_key is not None and auth != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided",
                                           "type": "invalid_request_error"}}, status_code=401)
        if fail_status is not None:
            error = fail_body if fail_body is not None else {"error": {
                "message": f"{name} is failing on purpose", "type": "server_error"}}
            return JSONResponse(error, status_code=fail_status, headers=fail_headers)
        text = f"{name} says: {last_user_text(body.get('messages', []))}"
        if body.get("stream"):
            return StreamingResponse(_chunks(name, body.get("model"), text, break_after),
                                     media_type="text/event-stream")
        return JSONResponse(completion(name, body.get("model"), text))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.seen = seen
    app.state.hung_up = hung_up
    return app


async def _caller_left(request: Request, delay_s: float) -> bool:
    """Wait `delay_s` (as a generating model would), returning early if the caller hangs up."""
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.02)
    return False


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def completion(name: str, model: Any, text: str) -> dict[str, Any]:
    words = len(text.split())
    return {"id": f"chatcmpl-{name}", "object": "chat.completion", "created": CREATED,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": words, "completion_tokens": words,
                      "total_tokens": 2 * words}}


async def _chunks(name: str, model: Any, text: str, break_after: int | None
                  ) -> AsyncIterator[bytes]:
    """One SSE event per word, as OpenAI streams: role first, then content deltas, then stop."""
    deltas = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word} for word in _words(text)]
    for i, delta in enumerate(deltas + [{}]):
        if break_after is not None and i >= break_after:
            raise RuntimeError("echo: breaking the stream off on purpose")
        chunk = {"id": f"chatcmpl-{name}", "object": "chat.completion.chunk", "created": CREATED,
                 "model": model, "choices": [{"index": 0, "delta": delta,
                                              "finish_reason": None if delta else "stop"}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        await asyncio.sleep(0)  # a separate write per event, like a generating model
    yield b"data: [DONE]\n\n"


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + " " for p in parts[:-1]] + parts[-1:]


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` with uvicorn on an ephemeral port in a thread; yields its http://host:port."""
    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server thread did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="echo", help="prefix of every answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    args = parser.parse_args(argv)
    sock = bind(args.host, args.port)
    print(f"http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    uvicorn.Server(uvicorn.Config(echo_app(args.name), log_level="warning",
                                  lifespan="off")).run(sockets=[sock])


if __name__ == "__main__":
    main()
