"""A real OpenAI-compatible chat server on loopback: the one test double of an LLM upstream.

It stands in for a real LLM where the thing under test is the caller: the serve proxy (tests,
bench/load.py, trying a deployment before the models are up), the LLM client, the HTTP sampling
backend and the judges. By default it echoes the last user message; `answer` makes it answer
otherwise (e.g. `lm_answer` serves a real causal LM, with per-token log-probs). Plain and
SSE-streamed answers, an optional required API key, and failure modes: an HTTP error status
(always, or for the first N requests, with an optional Retry-After, a chosen body and headers),
a delay that notices when the caller hangs up, a stream that breaks off, an unknown model (404),
a 200 whose body is not a chat completion. It serves the Responses API (/v1/responses, from
tests/serve/responses_upstream.py) alike, and every answer carries an x-request-id
(`req_<name>_<n>`, n counting its requests).

    python tests/serve/upstream.py --name edge --port 0    # prints its base URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any

import uvicorn
from responses_upstream import input_messages, responses_reply
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from confroute.serve.listen import bind

CREATED = 1_700_000_000  # fixed, so answers are byte-for-byte reproducible


@dataclasses.dataclass
class Answer:
    """What the model says: text, per-token log-probs (None: not offered), finish reason."""

    text: str
    logprobs: list[float] | None = None
    finish: str = "stop"


Answerer = Callable[[dict[str, Any]], Answer]
"""Request body -> the answer; called in a worker thread, one request at a time per app."""


@dataclasses.dataclass
class Failure:
    """How the server fails: `status` on the first `first` requests (None: on every request),
    with a Retry-After header when `retry_after` is set; `malformed`: a 200 with this body."""

    status: int | None = None
    first: int | None = None
    retry_after: str | None = None
    malformed: str | None = None
    body: Any = None
    """The error body (default: an OpenAI error saying it fails on purpose)."""
    headers: dict[str, str] | None = None


def echo_app(name: str = "echo", api_key: str | None = None, fail_status: int | None = None,
             delay_s: float = 0.0, break_after: int | None = None, *,
             fail_first: int | None = None, retry_after: str | None = None,
             malformed: str | None = None, models: Collection[str] | None = None,
             echo_key: bool = False, answer: Answerer | None = None,
             fail_body: Any = None, fail_headers: dict[str, str] | None = None) -> Starlette:
    """The server app. `app.state.seen` records each request's model, auth header, body and
    arrival (`time.monotonic()`); `app.state.hung_up` the requests whose caller disconnected
    during `delay_s`; `app.state.load` has `in_flight` and `max_in_flight` (the most requests
    handled at once).

    `fail_status` fails every request (or only the first `fail_first`), with `retry_after` as
    Retry-After; `malformed` answers 200 with that raw body; `models` lists the model names it
    knows (others get 404); `echo_key` puts the rejected key in the 401 message, as some
    servers do; `fail_body` and `fail_headers` shape the failure's answer.
    """
    seen: list[dict[str, Any]] = []
    hung_up: list[dict[str, Any]] = []
    load = {"in_flight": 0, "max_in_flight": 0}
    failure = Failure(fail_status, fail_first, retry_after, malformed, fail_body, fail_headers)
    answer_locked = _one_at_a_time(answer or _echo(name))

    async def chat(request: Request) -> Response:
        return await answer_request(request, responses=False)

    async def responses(request: Request) -> Response:
        return await answer_request(request, responses=True)

    async def answer_request(request: Request, responses: bool) -> Response:
        body = await request.json()
        auth = request.headers.get("authorization")
        seen.append({"model": body.get("model"), "authorization": auth, "body": body,
                     "at": time.monotonic()})
        load["in_flight"] += 1
        load["max_in_flight"] = max(load["max_in_flight"], load["in_flight"])
        try:
            if delay_s and await _caller_left(request, delay_s):
                hung_up.append(body)
                return Response(status_code=499)
            refusal = _refusal(name, body, auth, api_key, echo_key, models, failure, len(seen))
            if refusal is not None:
                return refusal
            said = await asyncio.to_thread(answer_locked, {
                **body, "messages": input_messages(body)} if responses else body)
        finally:
            load["in_flight"] -= 1
        ids = {"x-request-id": f"req_{name}_{len(seen)}"}
        if responses:
            return responses_reply(name, body, said.text, break_after, ids)
        if body.get("stream"):
            lps = said.logprobs if body.get("logprobs") else None
            return StreamingResponse(_chunks(name, body.get("model"), said.text, break_after,
                                             lps), media_type="text/event-stream", headers=ids)
        return JSONResponse(completion(name, body.get("model"), said,
                                       logprobs=bool(body.get("logprobs"))), headers=ids)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/v1/responses", responses, methods=["POST"])])
    app.state.seen = seen
    app.state.load = load
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


def _echo(name: str) -> Answerer:
    return lambda body: Answer(f"{name} says: {last_user_text(body.get('messages', []))}")


def _one_at_a_time(answer: Answerer) -> Answerer:
    lock = threading.Lock()  # a served model is not thread-safe

    def locked(body: dict[str, Any]) -> Answer:
        with lock:
            return answer(body)

    return locked


def _refusal(name: str, body: dict[str, Any], auth: str | None, api_key: str | None,
             echo_key: bool, models: Collection[str] | None, failure: Failure,
             count: int) -> Response | None:
    """The error (or malformed) response this request gets, None when it gets an answer."""
    if api_key is not None and auth != f"Bearer {api_key}":
        shown = f": {(auth or '').removeprefix('Bearer ')}" if echo_key else ""
        return error(401, f"Incorrect API key provided{shown}", "invalid_request_error")
    if failure.status is not None and (failure.first is None or count <= failure.first):
        headers = dict(failure.headers or {})
        if failure.retry_after:
            headers["Retry-After"] = failure.retry_after
        if failure.body is not None:
            return JSONResponse(failure.body, status_code=failure.status, headers=headers)
        return error(failure.status, f"{name} is failing on purpose", "server_error", headers)
    if models is not None and body.get("model") not in models:
        return error(404, f"The model '{body.get('model')}' does not exist", "not_found_error")
    if failure.malformed is not None:
        return Response(failure.malformed, media_type="application/json")
    return None


def error(status: int, message: str, kind: str, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    """An error in OpenAI's format: {"error": {"message", "type"}}."""
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status,
                        headers=headers)


def last_user_text(messages: list[Any]) -> str:
    """The content of the last user message ("" when there is none; JSON for non-text)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def completion(name: str, model: Any, said: Answer | str, logprobs: bool = False
               ) -> dict[str, Any]:
    """A chat.completion body; token log-probs under choices[0].logprobs.content when asked."""
    said = Answer(said) if isinstance(said, str) else said
    words = len(said.text.split())
    choice: dict[str, Any] = {"index": 0, "finish_reason": said.finish,
                              "message": {"role": "assistant", "content": said.text}}
    if logprobs and said.logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "", "logprob": lp, "bytes": None,
                                           "top_logprobs": []} for lp in said.logprobs]}
    return {"id": f"chatcmpl-{name}", "object": "chat.completion", "created": CREATED,
            "model": model, "choices": [choice],
            "usage": {"prompt_tokens": words, "completion_tokens": words,
                      "total_tokens": 2 * words}}


def lm_answer(backend: Any) -> Answerer:
    """Answers from a `confroute.labelling.local.LocalBackend`'s model, as a server would:
    n=1, temperature 0 = greedy, the request's seed, top_p and max_tokens (default 16)."""
    from confroute.labelling.sampling import SamplingConfig

    def answer(body: dict[str, Any]) -> Answer:
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        temperature = float(body.get("temperature", 1.0))
        cfg = SamplingConfig(n=1, temperature=max(temperature, 1e-3),
                             top_p=float(body.get("top_p", 1.0)), top_k=0,
                             max_new_tokens=int(body.get("max_tokens", 16)),
                             greedy=temperature == 0, system=system)
        gen = backend.generate([messages[-1]["content"]], cfg, [int(body.get("seed", 0))])[0]
        sample = gen.greedy if temperature == 0 else gen.samples[0]
        return Answer(sample.text, sample.logprobs, sample.finish)

    return answer


async def _chunks(name: str, model: Any, text: str, break_after: int | None,
                  logprobs: list[float] | None = None) -> AsyncIterator[bytes]:
    """One SSE event per word, as OpenAI streams: role first, then content deltas, then stop;
    with `logprobs`, each content chunk carries its share of them (in order), as OpenAI's
    chunks carry their tokens' `logprobs.content`."""
    words = _words(text)
    deltas = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word} for word in words]
    for i, delta in enumerate(deltas + [{}]):
        if break_after is not None and i >= break_after:
            raise RuntimeError("echo: breaking the stream off on purpose")
        choice: dict[str, Any] = {"index": 0, "delta": delta,
                                  "finish_reason": None if delta else "stop"}
        if logprobs is not None and 1 <= i <= len(words):
            part = logprobs[(i - 1) * len(logprobs) // len(words):i * len(logprobs) // len(words)]
            choice["logprobs"] = {"content": [{"token": "", "logprob": lp, "bytes": None,
                                               "top_logprobs": []} for lp in part]}
        chunk = {"id": f"chatcmpl-{name}", "object": "chat.completion.chunk", "created": CREATED,
                 "model": model, "choices": [choice]}
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


def closed_port_url(host: str = "127.0.0.1") -> str:
    """A base URL on a port nothing listens on (bound, then released)."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    sock.close()
    return f"http://{host}:{port}/v1"


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
