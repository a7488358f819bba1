"""How the proxy handles upstream failures (issue 14 item 3, issue 23 items 1-2, issue 25 item
3), measured against real HTTP servers on loopback: small upstreams written here (and, for
exact bytes, tests/serve/raw_upstream.py), `confroute serve`'s app under uvicorn, and httpx or
the official OpenAI SDK as a client. Prints one row per case (what the client saw, whether that
is what it should see, and how long it took), then the number mishandled.

    python bench/upstream_failures.py ARTIFACT

Cases: every upstream rate-limited (429, Retry-After); the OpenAI SDK against that; the edge
refusing a prompt for length; a client that gives up; an upstream 500's message; an upstream
error that echoes the API key; 200s that are no chat completion (no choices, cut off, not JSON,
an error object, a redirect, a Content-Length that lies); streams that are no chat-completion
stream (JSON instead, only keep-alives, a first event that is not a chunk); streams that break
mid-event or stall after their first chunk; the request deadline; a client body that stalls;
then the same kinds on /v1/responses (the Responses API: bodies that are no `response`, streams
that are no Responses event stream, breaks after the first event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from raw_upstream import (  # noqa: E402
    Script,
    chunk,
    json_answer,
    json_head,
    raw_upstream,
    sse_answer,
)
from upstream import completion, echo_app, serve_in_thread  # noqa: E402

from confroute.serve import ServeSettings, UpstreamSettings, create_app  # noqa: E402

KEY = "sk-live-EXAMPLEKEY-123456"
CHAT = {"model": "confroute", "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
RESPONSES = {"model": "confroute", "input": "What is 2 plus 2?"}
BODIES = {"/chat/completions": CHAT, "/responses": RESPONSES}
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


LIMITS = {"first_content_timeout_s": 2.0, "request_timeout_s": 5.0, "read_timeout_s": 2.0,
          "body_timeout_s": 2.0}
"""Short deadlines, so that each case ends in seconds (the defaults are 120, 600, 120, 30)."""


@contextlib.contextmanager
def proxy(artifact: Path, edge: Starlette | Script, cloud: Starlette | Script | None,
          fallback: bool = True) -> Iterator[str]:
    """The proxy's /v1 URL; `edge` a Starlette app, or a Script of exact bytes. With `cloud`
    None, `edge` is served as the top model instead, below an echo edge, and every request is
    routed to it (threshold 0): the failing upstream then has nothing to fall back to, since
    fallback goes up the ladder only."""
    threshold = None
    if cloud is None:
        edge, cloud, threshold = echo_app("edge"), edge, 0.0
    with contextlib.ExitStack() as stack:
        def settings(app: Starlette | Script | None, model: str) -> UpstreamSettings:
            if app is None:
                return UpstreamSettings()
            if isinstance(app, Script):
                raw = stack.enter_context(raw_upstream(lambda body: app))
                return UpstreamSettings(raw.url, model)
            return UpstreamSettings(stack.enter_context(serve_in_thread(app)) + "/v1", model)

        cfg = ServeSettings(edge=settings(edge, "edge-m"), cloud=settings(cloud, "cloud-m"),
                            fallback=fallback, threshold=threshold, **LIMITS)
        app = create_app(artifact, cfg, environ={"CONFROUTE_EDGE_API_KEY": KEY,
                                                 "CONFROUTE_CLOUD_API_KEY": KEY})
        yield stack.enter_context(serve_in_thread(app)) + "/v1"


Outcome = tuple[str, bool]
"""What the client saw, and whether that is how the case should be handled."""


def rate_limited(artifact: Path) -> Outcome:
    limited = upstream(429, {"error": {"message": "slow down"}}, {"retry-after": "7"})
    with proxy(artifact, limited, limited) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    wait = reply.headers.get("retry-after", "none")
    return f"HTTP {reply.status_code}, Retry-After: {wait}", (reply.status_code, wait) == (429, "7")


def sdk_backoff(artifact: Path) -> Outcome:
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
    return (f"{outcome} after {attempts} attempts, {waited:.1f} s (upstream Retry-After: 3)",
            outcome == "RateLimitError" and attempts == 3)


def context_length(artifact: Path) -> Outcome:
    with proxy(artifact, upstream(400, LENGTH), upstream()) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT, headers=TO_EDGE)
    who = reply.headers.get("x-confroute-route", "nobody")
    return f"HTTP {reply.status_code}, answered by {who}", \
        (reply.status_code, who) == (200, "cloud")


def client_gives_up(artifact: Path) -> Outcome:
    slow = upstream(delay_s=10.0)
    with proxy(artifact, slow, None) as url:
        left = time.monotonic()
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(url + "/chat/completions", json=CHAT, timeout=0.5)
        left = time.monotonic()
        while not slow.state.open_s and time.monotonic() - left < 15:
            time.sleep(0.05)
    kept = slow.state.calls[0] + slow.state.open_s[0] - left if slow.state.open_s else 15.0
    return (f"upstream kept generating {max(kept, 0.0):.2f} s after the client left (of 10 s)",
            kept < 2.0)


def error_message(artifact: Path) -> Outcome:
    failing = upstream(500, {"error": {"message": "model overloaded, retry later"}})
    with proxy(artifact, failing, None) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    message = reply.json()["error"]["message"]
    return f"HTTP {reply.status_code}: {message}", reply.status_code == 502 and \
        "model overloaded" in message


def key_echo(artifact: Path) -> Outcome:
    leaky = upstream(503, {"error": {"message": f"bad gateway auth: key {KEY} rejected"}})
    with proxy(artifact, leaky, None) as url:
        reply = httpx.post(url + "/chat/completions", json=CHAT)
    leaked = KEY in reply.text
    return (f"HTTP {reply.status_code}, key {'LEAKED' if leaked else 'not shown'}: "
            f"{reply.json()['error']['message']}", not leaked)


def falls_back(script: Script, stream: bool = False, path: str = "/chat/completions") -> Any:
    """A case: the edge writes `script`; the client should get the cloud's answer."""
    def case(artifact: Path) -> Outcome:
        with proxy(artifact, script, echo_app("cloud")) as url:
            reply = httpx.post(url + path, json={**BODIES[path], "stream": stream},
                               headers=TO_EDGE, timeout=60)
            alone = _alone(artifact, script, stream, path)
        who = reply.headers.get("x-confroute-route", "nobody")
        handled = reply.status_code == 200 and who == "cloud" and alone[1]
        return f"HTTP {reply.status_code} from {who}; alone: {alone[0]}", handled

    return case


def _alone(artifact: Path, script: Script, stream: bool, path: str) -> Outcome:
    """With no upstream to fall back to (the failing upstream is the top model's, and fallback
    goes up only): 502 (504 for time) with the reason, OpenAI-shaped."""
    with proxy(artifact, script, None) as url:
        reply = httpx.post(url + path, json={**BODIES[path], "stream": stream}, timeout=60)
    try:
        message = reply.json()["error"]["message"].removeprefix("no upstream answered: ")
    except (ValueError, KeyError):
        return f"HTTP {reply.status_code}, not an OpenAI error", False
    return f"HTTP {reply.status_code} {message[:90]}", reply.status_code in (502, 504)


FIRST = b"data: " + chunk("Four", role=True) + b"\n\n"


def whole_events_then_error(script: Script, path: str = "/chat/completions") -> Any:
    """A case: the stream is committed, then breaks: only whole events, the error event last
    (for Responses, an `error` event that also holds the `error` object the SDK raises)."""
    def case(artifact: Path) -> Outcome:
        from confroute.serve.sse import EventSplitter, event_data

        with proxy(artifact, script, upstream()) as url:
            started = time.monotonic()
            reply = httpx.post(url + path, json={**BODIES[path], "stream": True},
                               headers=TO_EDGE, timeout=60)
            took = time.monotonic() - started
        splitter = EventSplitter(1 << 20)
        events = [event_data(e) for e in splitter.feed(reply.content)]
        last = json.loads(events[-1] or "{}") if events else {}
        handled = splitter.pending == b"" and "error" in last and all(
            e is None or e == "[DONE]" or isinstance(json.loads(e), dict) for e in events)
        why = last.get("error", {}).get("message", "no error event")
        return f"{len(events)} whole events, last: {why[:70]} ({took:.1f} s)", handled

    return case


def body_stalls(artifact: Path) -> Outcome:
    import socket

    with proxy(artifact, upstream(), None) as url:
        port = int(url.split(":")[-1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
            answer = sock.recv(65536)
            took = time.monotonic() - started
    status = int(answer.split()[1]) if answer else 0
    return f"HTTP {status} after {took:.1f} s (body_timeout_s 2)", status == 408


def request_deadline(artifact: Path) -> Outcome:
    keepalives = [(0.2, b": ping\n\n") for _ in range(100)]
    return whole_events_then_error(sse_answer(FIRST, *keepalives, end="hang"))(artifact)


CASES = [
    ("all upstreams 429 (Retry-After: 7)", rate_limited),
    ("OpenAI SDK, max_retries=2, all 429", sdk_backoff),
    ("edge 400 context_length_exceeded", context_length),
    ("client gives up at 0.5 s (non-streamed)", client_gives_up),
    ("upstream 500 with a message", error_message),
    ("upstream 503 echoing the API key", key_echo),
    ("200 without choices", falls_back(json_answer({"id": "x", "object": "chat.completion"}))),
    ("200 cut off", falls_back(json_answer(b'{"id": "x", "choices": [ {'))),
    ("200 not JSON", falls_back(json_answer(b"<html>OK</html>"))),
    ("200 error object", falls_back(json_answer({"error": {"message": "overloaded"}}))),
    ("200 content a number", falls_back(json_answer({"choices": [{"message": {"content": 5}}]}))),
    ("302 redirect", falls_back(Script(b"HTTP/1.1 302 Found\r\nlocation: /x\r\n"
                                       b"content-length: 0\r\nconnection: close\r\n\r\n"))),
    ("Content-Length lies, then close", falls_back(Script(json_head(200, 500),
                                                          [(0.0, b'{"choices": [')]))),
    ("Content-Length lies, then stall", falls_back(Script(json_head(200, 500),
                                                          [(0.0, b'{"choices": [')], "hang"))),
    ("headers, then stall", falls_back(Script(json_head(200, None), [], "hang"))),
    ("stream: JSON instead", falls_back(json_answer(completion("up", "m", "4")), stream=True)),
    ("stream: only keep-alives", falls_back(sse_answer(*[(0.2, b": keepalive\n\n")] * 100,
                                                       end="hang"), stream=True)),
    ("stream: first data not JSON", falls_back(sse_answer(b"data: hello\n\n"), stream=True)),
    ("stream: [DONE] first", falls_back(sse_answer(b"data: [DONE]\n\n"), stream=True)),
    ("stream: closed mid first event", falls_back(sse_answer(b'data: {"id": "c", "ch'),
                                                  stream=True)),
    ("stream breaks mid-line", whole_events_then_error(
        sse_answer(FIRST + b'data: {"id":"c","object":"chat.compl'))),
    ("stream breaks before a blank line", whole_events_then_error(
        sse_answer(FIRST + b"data: " + chunk(" is") + b"\n"))),
    ("stream (CRLF) breaks between CR and LF", whole_events_then_error(
        sse_answer(FIRST.replace(b"\n", b"\r\n") + b"data: " + chunk(" is") + b"\r"))),
    ("stream stalls after its first chunk", whole_events_then_error(sse_answer(FIRST,
                                                                               end="hang"))),
    ("stream of keep-alives past the deadline", request_deadline),
    ("client body stalls (Content-Length 500)", body_stalls),
]


def _event(kind: str, number: int, **fields: Any) -> bytes:
    data = json.dumps({"type": kind, "sequence_number": number, **fields})
    return f"event: {kind}\ndata: {data}\n\n".encode()


R = "/responses"
CREATED = _event("response.created", 0, response={"id": "r", "object": "response",
                                                  "status": "in_progress", "output": []})
DELTA = _event("response.output_text.delta", 1, item_id="m", output_index=0, content_index=0,
               delta="Four")
OUTPUT = [{"type": "message", "role": "assistant",
           "content": [{"type": "output_text", "text": "Four", "annotations": []}]}]
CASES += [
    ("responses: 200 a chat completion", falls_back(json_answer(completion("up", "m", "4")),
                                                    path=R)),
    ("responses: 200 without output", falls_back(json_answer({"object": "response"}), path=R)),
    ("responses: 200 status failed", falls_back(json_answer(
        {"object": "response", "status": "failed", "output": []}), path=R)),
    ("responses: 200 error object", falls_back(json_answer({"error": {"message": "busy"}}),
                                               path=R)),
    ("responses: 200 text a number", falls_back(json_answer({"object": "response", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": 4}]}]}), path=R)),
    ("responses: 200 cut off", falls_back(json_answer(json.dumps(
        {"object": "response", "output": OUTPUT}).encode()[:40]), path=R)),
    ("responses: headers, then stall", falls_back(Script(json_head(200, None), [], "hang"),
                                                  path=R)),
    ("responses stream: JSON instead", falls_back(json_answer(
        {"object": "response", "output": OUTPUT}), stream=True, path=R)),
    ("responses stream: a chat-completion stream", falls_back(sse_answer(FIRST), stream=True,
                                                              path=R)),
    ("responses stream: first event an error", falls_back(sse_answer(_event(
        "error", 0, code="server_error", message="busy")), stream=True, path=R)),
    ("responses stream: only keep-alives", falls_back(sse_answer(
        *[(0.2, b": keepalive\n\n")] * 100, end="hang"), stream=True, path=R)),
    ("responses stream breaks mid-line", whole_events_then_error(
        sse_answer(CREATED + b'event: response.output_text.delta\ndata: {"ty'), R)),
    ("responses stream ends before completed", whole_events_then_error(
        sse_answer(CREATED + DELTA), R)),
    ("responses stream: a chunk mid-stream", whole_events_then_error(
        sse_answer(CREATED + FIRST), R)),
    ("responses stream stalls after created", whole_events_then_error(
        sse_answer(CREATED, end="hang"), R)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    print(cpu_summary())
    mishandled = 0
    for name, case in CASES:
        started = time.monotonic()
        text, handled = case(args.artifact)
        mishandled += not handled
        print(f"{name:42s} {'ok ' if handled else 'BAD'} {time.monotonic() - started:5.1f} s  "
              f"{text}", flush=True)
    print(f"mishandled: {mishandled} of {len(CASES)}")


if __name__ == "__main__":
    main()
