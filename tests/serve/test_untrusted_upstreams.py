"""Issue 23 items 1 and 2: trust no upstream 200, and no wait without an end. The edge upstream
writes exact bytes (tests/serve/raw_upstream.py); the cloud is a real echo server. An answer
that is not a chat completion, or that does not come in time, falls back to the cloud; with
nothing left the client gets 502 (504 for time) with the reasons, in the OpenAI error shape."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from raw_upstream import (
    REQUEST_S,
    Script,
    chunk,
    echo_cloud,  # noqa: F401  (the `cloud` fixture)
    json_answer,
    json_head,
    scripted_proxy,
    sse_answer,
)

from confroute.runtime import Router
from confroute.serve import ServeSettings

CHAT = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
TO_EDGE = {"x-confroute-threshold": "1"}
TO_CLOUD = {"x-confroute-threshold": "0"}
FIRST = b"data: " + chunk("Four", role=True) + b"\n\n"

NOT_A_COMPLETION = {
    "no choices": json_answer({"id": "x", "object": "chat.completion"}),
    "cut off": json_answer(b'{"id": "x", "choices": [ {'),
    "not JSON": json_answer(b"<html><body>OK</body></html>"),
    "a list": json_answer([{"message": {"content": "hi"}}]),
    "empty choices": json_answer({"choices": []}),
    "choices a string": json_answer({"choices": "hi"}),
    "message a string": json_answer({"choices": [{"message": "hi"}]}),
    "content a number": json_answer({"choices": [{"message": {"content": 5}}]}),
    "tool_calls an object": json_answer({"choices": [{"message": {"content": None,
                                                                  "tool_calls": {}}}]}),
    "an error sent with 200": json_answer({"error": {"message": "model overloaded"}}),
    "another object kind": json_answer({"object": "list", "data": [], "choices": [{}]}),
    "an empty body": json_answer(b""),
    "204 No Content": Script(json_head(204, 0)),
    "302 redirect": Script(b"HTTP/1.1 302 Found\r\nlocation: http://elsewhere/v1\r\n"
                           b"content-length: 0\r\nconnection: close\r\n\r\n"),
    "Content-Length longer than the body, then closed": Script(
        json_head(200, 500), [(0.0, b'{"id": "x", "choices": [')]),
    "Content-Length longer than the body, then a stall": Script(
        json_head(200, 500), [(0.0, b'{"id": "x", "choices": [')], "hang"),
    "nothing at all, then a stall": Script(b"", [], "hang"),
    "headers, then a stall": Script(json_head(200, None), [], "hang"),
    "a body dribbled without end": Script(json_head(200, None),
                                          [(0.2, b" ") for _ in range(100)]),
}
NOT_A_STREAM = {
    "JSON instead of a stream": json_answer({"choices": [{"message": {"content": "hi"}}]}),
    "only keep-alive comments": sse_answer(*[(0.1, b": keepalive\n\n") for _ in range(100)],
                                           end="hang"),
    "only comments and empty events": sse_answer(b":\n\n", b"\n\n", (0.0, b"event: ping\n\n"),
                                                 end="hang"),
    "first data not JSON": sse_answer(b"data: hello\n\n"),
    "first data [DONE]": sse_answer(b"data: [DONE]\n\n"),
    "first event an error": sse_answer(b'data: {"error": {"message": "overloaded"}}\n\n'),
    "first event a completion, not a chunk": sse_answer(
        b'data: {"object": "chat.completion", "choices": []}\n\n'),
    "closed before any event": sse_answer(),
    "closed mid first event": sse_answer(b'data: {"id": "c", "cho'),
    "a stall before any event": sse_answer(end="hang"),
    "text/plain": Script(json_head(200, None, "text/plain"), [(0.0, FIRST)]),
}


@contextlib.contextmanager
def proxy(router: Router, script: Script, cloud: Any, **settings: Any) -> Iterator[str]:
    """The proxy's chat completions URL over the scripted upstream (raw_upstream.scripted_proxy)."""
    with scripted_proxy(router, script, cloud, **settings) as base:
        yield base + "/chat/completions"


CASES = [(name, script, False) for name, script in NOT_A_COMPLETION.items()] + \
    [(name, script, True) for name, script in NOT_A_STREAM.items()]


@pytest.mark.parametrize("name, script, stream", CASES, ids=[c[0] for c in CASES])
def test_an_answer_that_is_not_a_chat_completion_falls_back(router: Router, cloud: Any,
                                                            name: str, script: Script,
                                                            stream: bool) -> None:
    with proxy(router, script, cloud) as url:
        started = time.monotonic()
        reply = httpx.post(url, json={**CHAT, "stream": stream}, headers=TO_EDGE, timeout=30)
        took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == "cloud"
    assert reply.headers["x-confroute-reason"].startswith("fallback: edge upstream failed")
    assert took < REQUEST_S + 5  # the wait had an end (a bound, not a speed measurement)
    if stream:
        events = [e.removeprefix(b"data: ") for e in reply.content.split(b"\n\n") if e]
        deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
        assert "".join(d.get("content", "") for d in deltas).startswith("cloud says")
    else:
        assert reply.json()["choices"][0]["message"]["content"].startswith("cloud says")


@pytest.mark.parametrize("name, script, stream", CASES, ids=[c[0] for c in CASES])
def test_with_nothing_to_fall_back_to_it_is_a_502_with_the_reason(router: Router, name: str,
                                                                  script: Script,
                                                                  stream: bool) -> None:
    with proxy(router, script, None) as url:
        reply = httpx.post(url, json={**CHAT, "stream": stream}, headers=TO_CLOUD, timeout=30)
    assert reply.status_code in (502, 504), reply.text
    error = reply.json()["error"]
    assert error["code"] == "upstream_unavailable" and "cloud upstream failed" in error["message"]
    timed_out = "within" in error["message"]
    assert (reply.status_code == 504) == timed_out, error["message"]


def test_a_stall_after_the_first_chunk_ends_the_stream_with_an_error_event(
        router: Router, cloud: Any) -> None:
    keepalives = [(0.1, b": ping\n\n") for _ in range(100)]
    for script, limits, why in [
            (sse_answer(FIRST, end="hang"), {"read_timeout_s": 0.5},
             "stalled mid-stream past read_timeout_s"),
            (sse_answer(FIRST, *keepalives, end="hang"), {}, "longer than request_timeout_s"),
            (sse_answer(FIRST, end="hang"), {}, "longer than request_timeout_s")]:
        with proxy(router, script, cloud, **limits) as url, httpx.stream(
                "POST", url, json={**CHAT, "stream": True}, headers=TO_EDGE,
                timeout=30) as reply:
            body = b"".join(reply.iter_bytes())
        assert reply.headers["x-confroute-route"] == "edge"  # committed: no fallback now
        last = json.loads(body.strip().split(b"\n\n")[-1].removeprefix(b"data: "))
        assert why in last["error"]["message"], last


@pytest.mark.parametrize("field", ["body_timeout_s", "first_content_timeout_s",
                                   "request_timeout_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "10"])
def test_deadline_settings_must_be_positive_finite_seconds(field: str, value: Any) -> None:
    from confroute.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})


def test_the_request_deadline_stops_the_fallback_chain(router: Router, cloud: Any) -> None:
    slow = Script(json_head(200, None), [], "hang")
    calls = len(cloud.state.seen)
    with proxy(router, slow, cloud, first_content_timeout_s=REQUEST_S) as url:
        reply = httpx.post(url, json=CHAT, headers=TO_EDGE, timeout=30)
    # the edge used up the request's time: the cloud is not tried, and the client is told why
    assert reply.status_code == 504, reply.text
    message = reply.json()["error"]["message"]
    assert "(request_timeout_s)" in message and "cloud not tried" in message, message
    assert len(cloud.state.seen) == calls
