"""How the proxy handles upstream failures (issue 14, item 3), measured against real HTTP servers
on loopback: small upstreams written here, `confroute serve`'s app under uvicorn, and the
official OpenAI SDK as a client. Prints one row per case: what the client saw.

    python bench/upstream_failures.py ARTIFACT

Cases: every upstream rate-limited (429, Retry-After); the OpenAI SDK against that (which
exception, how many attempts, how long it waited); the edge refusing a prompt for length; a
client that gives up on a non-streamed request (how long the upstream kept generating after it
left); an upstream 500's message; an upstream error that echoes the API key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))

from gemm import cpu_summary  # noqa: E402 - bench/ is on sys.path when this script runs
from upstream import completion, serve_in_thread  # noqa: E402

from confroute.serve import ServeSettings, UpstreamSettings, create_app  # noqa: E402

KEY = "sk-live-EXAMPLEKEY-123456"
CHAT = {"model": "confroute", "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
TO_EDGE = {"x-confroute-threshold": "1"}
LENGTH = {"error": {"message": "This model's maximum context length is 2048 tokens.",
                    "type": "invalid_request_error", "code": "context_length_exceeded"}}


def upstream(status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
             delay_s: float = 0.0) -> Starlette:
    """An upstream that answers every chat request alike; `state.calls` and `state.open_s`
    (how long each request stayed open: until it answered or its caller hung up)."""
    calls: list[float] = []
    open_s: list[float] = []

    async def chat(request: Request) -> Response:
        started = time.monotonic()
        calls.append(started)
        while time.monotonic() - started < delay_s:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.02)
        open_s.append(time.monotonic() - started)
        if status == 200:
            return JSONResponse(completion("up", "m", "4"))
        return JSONResponse(body, status_code=status, headers=headers)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.calls, app.state.open_s = calls, open_s
    return app


@contextlib.contextmanager
def proxy(artifact: Path, edge: Starlette, cloud: Starlette | None, fallback: bool = True
          ) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        def settings(app: Starlette | None, model: str) -> UpstreamSettings:
            if app is None:
                return UpstreamSettings()
            return UpstreamSettings(stack.enter_context(serve_in_thread(app)) + "/v1", model)

        cfg = ServeSettings(edge=settings(edge, "edge-m"), cloud=settings(cloud, "cloud-m"),
                            fallback=fallback)
        app = create_app(artifact, cfg, environ={"CONFROUTE_EDGE_API_KEY": KEY})
        yield stack.enter_context(serve_in_thread(app)) + "/v1"


def rate_limited(artifact: Path) -> str:
    limited = upstream(429, {"error": {"message": "slow down"}}, {"retry-after": "7"})
    with proxy(artifact, limited, limited) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    return f"HTTP {reply.status_code}, Retry-After: {reply.headers.get('retry-after', 'none')}"


def sdk_backoff(artifact: Path) -> str:
    limited = upstream(429, {"error": {"message": "slow down"}}, {"retry-after": "3"})
    with proxy(artifact, limited, limited) as url:
        sdk = openai.OpenAI(base_url=url, api_key="unused", max_retries=2)
        started = time.monotonic()
        try:
            sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]
            outcome = "answered"
        except openai.APIError as exc:
            outcome = type(exc).__name__
        waited = time.monotonic() - started
    attempts = len(limited.state.calls) // 2  # each attempt tries the edge, then the cloud
    return f"{outcome} after {attempts} attempts, {waited:.1f} s (upstream Retry-After: 3)"


def context_length(artifact: Path) -> str:
    with proxy(artifact, upstream(400, LENGTH), upstream()) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT, headers=TO_EDGE)
    return (f"HTTP {reply.status_code}, answered by "
            f"{reply.headers.get('x-confroute-route', 'nobody')}")


def client_gives_up(artifact: Path) -> str:
    slow = upstream(delay_s=10.0)
    with proxy(artifact, slow, None) as url:
        left = time.monotonic()
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(url + "/chat/completions", json=CHAT, timeout=0.5)
        left = time.monotonic()
        while not slow.state.open_s and time.monotonic() - left < 15:
            time.sleep(0.05)
    kept = slow.state.calls[0] + slow.state.open_s[0] - left if slow.state.open_s else 15.0
    return f"upstream kept generating {max(kept, 0.0):.2f} s after the client left (of 10 s)"


def error_message(artifact: Path) -> str:
    failing = upstream(500, {"error": {"message": "model overloaded, retry later"}})
    with proxy(artifact, failing, None) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    return f"HTTP {reply.status_code}: {reply.json()['error']['message']}"


def key_echo(artifact: Path) -> str:
    leaky = upstream(503, {"error": {"message": f"bad gateway auth: key {KEY} rejected"}})
    with proxy(artifact, leaky, None) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    leaked = "LEAKED" if KEY in reply.text else "not shown"
    return f"HTTP {reply.status_code}, key {leaked}: {reply.json()['error']['message']}"


CASES = [("all upstreams 429 (Retry-After: 7)", rate_limited),
         ("OpenAI SDK, max_retries=2, all 429", sdk_backoff),
         ("edge 400 context_length_exceeded", context_length),
         ("client gives up at 0.5 s (non-streamed)", client_gives_up),
         ("upstream 500 with a message", error_message),
         ("upstream 503 echoing the API key", key_echo)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    print(cpu_summary())
    for name, case in CASES:
        print(f"{name:42s} {case(args.artifact)}", flush=True)


if __name__ == "__main__":
    main()
