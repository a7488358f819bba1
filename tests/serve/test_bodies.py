"""Issue 23 items 2 and 5: request bodies. Hostile JSON (nesting, huge numbers, NaN, repeated
keys, huge strings and arrays within the byte limit) is a 400/413/422 in the OpenAI error
shape, never a 500, on every endpoint; a body that stalls or is shorter than its Content-Length
gets 408 after body_timeout_s, before any work."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from upstream import echo_app, serve_in_thread

from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app
from confroute.serve.wire import MAX_JSON_DEPTH

USER = '[{"role": "user", "content": "What is 2 plus 2?"}]'
BODY_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def proxy(tiny_artifact: Path) -> Iterator[SimpleNamespace]:
    echo = echo_app("echo")
    with serve_in_thread(echo) as echo_url:
        up = UpstreamSettings(echo_url + "/v1", "echo-model")
        settings = ServeSettings(edge=up, cloud=up, body_timeout_s=BODY_TIMEOUT_S)
        with serve_in_thread(create_app(Router.load(tiny_artifact), settings)) as url:
            yield SimpleNamespace(url=url, port=int(url.rpartition(":")[2]), echo=echo)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (name, body for /v1/route, body for /v1/chat/completions, status, code)
HOSTILE = [
    ("nesting past the limit", f'{{"prompt": "a", "x": {nested(MAX_JSON_DEPTH)}}}',
     f'{{"messages": {USER}, "metadata": {nested(MAX_JSON_DEPTH)}}}', 400, "json_too_deep"),
    ("nesting that exhausts the parser", f'{{"prompt": {nested(100_000)}}}',
     f'{{"messages": {nested(100_000)}}}', 400, "json_too_deep"),
    ("objects nested deep", '{"a":' * 5000 + "1" + "}" * 5000,
     '{"messages":' * 5000 + "1" + "}" * 5000, 400, "json_too_deep"),
    ("a 5,000-digit integer", '{"prompt": "a", "threshold": ' + "1" * 5000 + "}",
     f'{{"messages": {USER}, "max_tokens": {"9" * 5000}}}', 400, "invalid_number"),
    ("a 5,000-digit fraction", '{"prompt": "a", "threshold": 0.' + "1" * 5000 + "}",
     f'{{"messages": {USER}, "temperature": 0.{"5" * 5000}}}', 400, "invalid_number"),
    ("an exponent past a double", '{"prompt": "a", "threshold": 1e999}',
     f'{{"messages": {USER}, "temperature": -1e400}}', 400, "invalid_number"),
    ("NaN", '{"prompt": "a", "threshold": NaN}', f'{{"messages": {USER}, "top_p": NaN}}',
     400, "invalid_number"),
    ("Infinity deep inside", '{"prompts": ["a"], "threshold": [Infinity]}',
     f'{{"messages": {USER}, "logit_bias": {{"50256": -Infinity}}}}', 400, "invalid_number"),
    ("a repeated key", '{"prompt": "a", "prompt": "b"}',
     f'{{"messages": {USER}, "messages": [{{"role": "user", "content": "other"}}]}}',
     400, "duplicate_key"),
    ("a repeated key deep inside", '{"prompt": [{"role": "user", "role": "system", '
     '"content": "a"}]}', '{"messages": [{"role": "user", "content": "a", "content": "b"}]}',
     400, "duplicate_key"),
    ("a top-level huge number", "9" * 5000, "-" + "9" * 5000, 400, "invalid_number"),
    ("a top-level array", "[" + '"a",' * 1000 + '"a"]', "[]", 400, "invalid_json"),
    ("a cut-off body", '{"prompt": "a', '{"messages": [{"role": ', 400, "invalid_json"),
    ("trailing garbage", '{"prompt": "a"} x', f'{{"messages": {USER}}}}}', 400, "invalid_json"),
    ("an empty body", "", "   ", 400, "empty_body"),
    ("a 900 kB string", json.dumps({"prompt": "x" * 900_000}),
     json.dumps({"messages": [{"role": "user", "content": "x" * 900_000}]}), 413,
     "prompt_too_long"),
    ("a huge array of prompts", json.dumps({"prompts": ["a"] * 200_000}),
     json.dumps({"messages": [{"role": "user"}] * 50_000}), None, None),
]


@pytest.mark.parametrize("name, route_body, chat_body, status, code", HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_json_is_a_4xx_in_the_openai_shape(proxy: SimpleNamespace, name: str,
                                                   route_body: str, chat_body: str,
                                                   status: int | None, code: str | None) -> None:
    calls = len(proxy.echo.state.seen)
    for path, body in (("/v1/route", route_body), ("/v1/chat/completions", chat_body)):
        reply = httpx.post(proxy.url + path, content=body.encode(), timeout=60,
                           headers={"content-type": "application/json"})
        assert 400 <= reply.status_code < 500, (path, reply.status_code, reply.text[:300])
        error = reply.json()["error"]
        assert error["message"] and error["type"] and len(error["message"]) < 1000
        if status is not None:
            assert (reply.status_code, error["code"]) == (status, code), (path, error)
    assert len(proxy.echo.state.seen) == calls  # none of it was forwarded


def test_json_within_the_bounds_is_served(proxy: SimpleNamespace) -> None:
    deep = f'{{"messages": {USER}, "metadata": {nested(MAX_JSON_DEPTH - 2)}}}'
    for body in (deep, f'{{"messages": {USER}, "seed": {"9" * 30}, "temperature": 1e-300}}',
                 '\ufeff{"prompt": "a"}'):
        path = "/v1/route" if "prompt" in body else "/v1/chat/completions"
        reply = httpx.post(proxy.url + path, content=body.encode(),
                           headers={"content-type": "application/json"})
        assert reply.status_code == 200, reply.text


# --- bodies that do not arrive ----------------------------------------------------------------

@contextlib.contextmanager
def connection(proxy: SimpleNamespace) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        yield sock


def answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n" \
       b"Content-Type: application/json\r\n"


@pytest.mark.parametrize("name, head, parts", [
    ("Content-Length promises more than is sent", HEAD + b"Content-Length: 500\r\n\r\n",
     [b'{"messages": [']),
    ("headers only, no body", HEAD + b"Content-Length: 50\r\n\r\n", []),
    ("a chunked body that stalls", HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
     [b"5\r\n{\"mes\r\n"]),
    ("a body dribbled one byte at a time", HEAD + b"Content-Length: 60\r\n\r\n",
     [b"{"] + [b" "] * 40),
])
def test_a_body_that_does_not_arrive_gets_a_408(proxy: SimpleNamespace, name: str,
                                                head: bytes, parts: list[bytes]) -> None:
    calls = len(proxy.echo.state.seen)
    with connection(proxy) as sock:
        sock.sendall(head)
        for part in parts:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came while the client was still sending
            sock.sendall(part)
            time.sleep(BODY_TIMEOUT_S / 20)
        status, body = answer(sock)
    assert status == 408 and body["error"]["code"] == "request_timeout", body
    assert "body_timeout_s" in body["error"]["message"]
    assert len(proxy.echo.state.seen) == calls


def test_a_client_that_leaves_mid_body_costs_nothing(proxy: SimpleNamespace) -> None:
    calls = len(proxy.echo.state.seen)
    with connection(proxy) as sock:
        sock.sendall(HEAD + b"Content-Length: 500\r\n\r\n" + b'{"messages": [')
    time.sleep(BODY_TIMEOUT_S * 2)
    reply = httpx.get(proxy.url + "/metrics")  # the service is still there, and counted it
    assert reply.status_code == 200 and len(proxy.echo.state.seen) == calls
    assert 'confroute_refused_total{code="client_closed"}' in reply.text or \
        'confroute_refused_total{code="request_timeout"}' in reply.text
