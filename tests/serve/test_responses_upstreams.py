"""Issue 23 items 1-2 and issue 25 item 3 on /v1/responses: no upstream 200 is trusted unread
and no wait is without an end. The edge upstream writes exact bytes (raw_upstream.py); the
cloud is a real echo server. A body that is not a Responses `response`, or a stream that is not
a Responses event stream, falls back to the cloud; with nothing left the client gets 502 (504
for time) in the OpenAI error shape. A stream that breaks after it was committed ends with a
Responses `error` event, which the openai SDK raises, and the client never sees half an event."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import openai
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
from responses_upstream import response_object
from upstream import completion

from confroute.runtime import Router
from confroute.serve.sse import EventSplitter, event_data

BODY = {"model": "confroute", "input": "What is 2 plus 2?"}
TO_EDGE = {"x-confroute-threshold": "1"}
TO_CLOUD = {"x-confroute-threshold": "0"}
OWN_ID = re.compile(r"req_[0-9a-f]{32}")


def event(kind: str, number: int, **fields: Any) -> bytes:
    data = json.dumps({"type": kind, "sequence_number": number, **fields})
    return f"event: {kind}\ndata: {data}\n\n".encode()


CREATED = event("response.created", 0, response=response_object("e", "m", None, "in_progress"))
DELTA = event("response.output_text.delta", 1, item_id="msg_e", output_index=0,
              content_index=0, delta="Four", logprobs=[])
DONE = event("response.completed", 2, response=response_object("e", "m", "Four"))
GOOD = response_object("e", "m", "Four")

NOT_A_RESPONSE = {
    "a chat completion": json_answer(completion("e", "m", "Four")),
    "no output": json_answer({k: v for k, v in GOOD.items() if k != "output"}),
    "output an object": json_answer({**GOOD, "output": {"text": "Four"}}),
    "completed with no output": json_answer({**GOOD, "output": []}),
    "status failed": json_answer({**GOOD, "status": "failed", "output": []}),
    "an error sent with 200": json_answer({"error": {"message": "model overloaded"}}),
    "an error object beside the output": json_answer({**GOOD, "error": {
        "code": "server_error", "message": "overloaded"}}),
    "another object kind": json_answer({**GOOD, "object": "chat.completion"}),
    "an output item a string": json_answer({**GOOD, "output": ["Four"]}),
    "an output item without a type": json_answer({**GOOD, "output": [{"content": []}]}),
    "message content a string": json_answer({**GOOD, "output": [
        {"type": "message", "role": "assistant", "content": "Four"}]}),
    "output_text text a number": json_answer({**GOOD, "output": [
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": 4}]}]}),
    "cut off": json_answer(json.dumps(GOOD).encode()[:60]),
    "not JSON": json_answer(b"<html>OK</html>"),
    "an empty body": json_answer(b""),
    "a list": json_answer([GOOD]),
    "Content-Length longer than the body, then a stall": Script(
        json_head(200, 5000), [(0.0, json.dumps(GOOD).encode()[:60])], "hang"),
    "headers, then a stall": Script(json_head(200, None), [], "hang"),
}
NOT_A_STREAM = {
    "JSON instead of a stream": json_answer(GOOD),
    "a chat-completion stream": sse_answer(b"data: " + chunk("Four", role=True) + b"\n\n"),
    "first event an error": sse_answer(event("error", 0, code="server_error",
                                             message="overloaded")),
    "first event response.failed": sse_answer(event("response.failed", 0, response={
        **GOOD, "status": "failed", "error": {"code": "server_error", "message": "x"}})),
    "first event a bare error object": sse_answer(b'data: {"error": {"message": "busy"}}\n\n'),
    "first event with no type": sse_answer(b'data: {"response": {}}\n\n'),
    "first event of another API": sse_answer(event("thread.run.created", 0)),
    "first data not JSON": sse_answer(b"event: response.created\ndata: hello\n\n"),
    "first data [DONE]": sse_answer(b"data: [DONE]\n\n"),
    "first text delta a number": sse_answer(event("response.output_text.delta", 0, delta=4)),
    "only keep-alive comments": sse_answer(*[(0.1, b": keepalive\n\n") for _ in range(100)],
                                           end="hang"),
    "only named events without data": sse_answer(b"event: response.created\n\n", end="hang"),
    "closed before any event": sse_answer(),
    "closed mid first event": sse_answer(CREATED[:40]),
    "a stall before any event": sse_answer(end="hang"),
}
CASES = [(n, s, False) for n, s in NOT_A_RESPONSE.items()] + \
    [(n, s, True) for n, s in NOT_A_STREAM.items()]


@pytest.mark.parametrize("name, script, stream", CASES, ids=[c[0] for c in CASES])
def test_an_answer_that_is_not_a_response_falls_back(router: Router, cloud: Any, name: str,
                                                     script: Script, stream: bool) -> None:
    with scripted_proxy(router, script, cloud) as url:
        started = time.monotonic()
        reply = httpx.post(url + "/responses", json={**BODY, "stream": stream},
                           headers=TO_EDGE, timeout=30)
        took = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == "cloud"
    assert reply.headers["x-confroute-reason"].startswith("fallback: edge upstream failed")
    assert took < REQUEST_S + 5  # the wait had an end (a bound, not a speed measurement)
    if stream:
        datas = [json.loads(d) for e in EventSplitter(1 << 20).feed(reply.content)
                 if (d := event_data(e)) is not None]
        text = "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta")
        assert text.startswith("cloud says") and datas[-1]["type"] == "response.completed"
    else:
        assert reply.json()["output"][0]["content"][0]["text"].startswith("cloud says")


@pytest.mark.parametrize("name, script, stream", CASES, ids=[c[0] for c in CASES])
def test_with_nothing_to_fall_back_to_it_is_a_502_with_the_reason(router: Router, name: str,
                                                                  script: Script,
                                                                  stream: bool) -> None:
    with scripted_proxy(router, script, None) as url:
        reply = httpx.post(url + "/responses", json={**BODY, "stream": stream},
                           headers=TO_CLOUD, timeout=30)
    assert reply.status_code in (502, 504), reply.text
    error = reply.json()["error"]
    assert error["code"] == "upstream_unavailable" and "cloud upstream failed" in error["message"]
    assert (reply.status_code == 504) == ("within" in error["message"]), error["message"]
    assert OWN_ID.fullmatch(reply.headers["x-request-id"])  # the raw upstream sends none


BREAKS = {  # after the first event is relayed (committed): no fallback, an error event last
    "mid-line": CREATED + b'event: response.output_text.delta\ndata: {"type": "respo',
    "between the line and its blank line": CREATED + DELTA[:-1],
    "between CR and LF of the blank line": CREATED.replace(b"\n", b"\r\n")
    + DELTA.replace(b"\n", b"\r\n")[:-1],
    "after a comment line": CREATED + b": still there",
    "at an event's end, before response.completed": CREATED + DELTA,
    "an event that is not JSON": CREATED + b"data: oops\n\n" + DONE,
    "an event without a type": CREATED + b'data: {"delta": "x"}\n\n' + DONE,
    "a chat chunk mid-stream": CREATED + b"data: " + chunk("x") + b"\n\n" + DONE,
    "a text delta that is a number": CREATED + event("response.output_text.delta", 1,
                                                     delta=5) + DONE,
}


@pytest.mark.parametrize("where", BREAKS)
def test_a_broken_stream_ends_with_a_responses_error_event(router: Router, cloud: Any,
                                                           where: str) -> None:
    with scripted_proxy(router, sse_answer(BREAKS[where]), cloud) as url:
        reply = httpx.post(url + "/responses", json={**BODY, "stream": True}, headers=TO_EDGE,
                           timeout=30)
    assert reply.headers["x-confroute-route"] == "edge"  # committed: no fallback now
    splitter = EventSplitter(1 << 20)
    events = splitter.feed(reply.content)
    assert splitter.pending == b"", "the client got half an event"
    datas = [json.loads(event_data(e) or "") for e in events]
    assert event_data(events[0]) == event_data(CREATED)
    assert events[-1].startswith(b"event: error\ndata: ")
    last = datas[-1]
    assert last["type"] == "error" and last["code"] == "upstream_stream_error"
    assert last["error"]["message"] == last["message"]
    assert last["sequence_number"] == datas[-2]["sequence_number"] + 1
    assert all(d["type"] != "error" for d in datas[:-1])


def test_the_sdk_raises_instead_of_returning_half_an_answer(router: Router, cloud: Any) -> None:
    with scripted_proxy(router, sse_answer(BREAKS["mid-line"]), cloud) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0,
                               default_headers=TO_EDGE)
        stream = client.responses.create(model="confroute", input="hi", stream=True)
        with pytest.raises(openai.APIError, match="in the middle of an event"):
            for _ in stream:
                pass


def test_an_upstreams_own_error_event_ends_the_stream_as_sent(router: Router,
                                                              cloud: Any) -> None:
    error = event("error", 2, code="server_error", message="overloaded")
    with scripted_proxy(router, sse_answer(CREATED + DELTA + error), cloud) as url:
        reply = httpx.post(url + "/responses", json={**BODY, "stream": True}, headers=TO_EDGE,
                           timeout=30)
    assert reply.content == CREATED + DELTA + error  # it says why; nothing added


def test_a_whole_stream_passes_as_sent_with_done(router: Router, cloud: Any) -> None:
    sent = CREATED + b": ping\n\n" + DELTA + DONE + b"data: [DONE]\n\n"
    with scripted_proxy(router, sse_answer(*[bytes([b]) for b in sent]), cloud) as url:
        reply = httpx.post(url + "/responses", json={**BODY, "stream": True}, headers=TO_EDGE,
                           timeout=30)
    assert reply.content == sent


def test_a_stall_after_the_first_event_ends_the_stream_in_time(router: Router,
                                                               cloud: Any) -> None:
    keepalives = [(0.1, b": ping\n\n") for _ in range(100)]
    with scripted_proxy(router, sse_answer(CREATED, *keepalives, end="hang"), cloud) as url:
        started = time.monotonic()
        reply = httpx.post(url + "/responses", json={**BODY, "stream": True}, headers=TO_EDGE,
                           timeout=30)
    assert time.monotonic() - started < REQUEST_S + 5
    last = json.loads(event_data(reply.content.strip().split(b"\n\n")[-1]) or "")
    assert "longer than request_timeout_s" in last["message"], last


CHAT = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
STOP = b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
    {"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\n"
ANSWERS = {  # (path, body, a good answer from an upstream that sends no x-request-id)
    "chat": ("/chat/completions", CHAT, json_answer(completion("e", "m", "Four"))),
    "chat streamed": ("/chat/completions", {**CHAT, "stream": True}, sse_answer(
        b"data: " + chunk("Four", role=True) + b"\n\n" + STOP + b"data: [DONE]\n\n")),
    "responses": ("/responses", BODY, json_answer(GOOD)),
    "responses streamed": ("/responses", {**BODY, "stream": True},
                           sse_answer(CREATED + DELTA + DONE)),
}


@pytest.mark.parametrize("name", ANSWERS)
def test_without_an_upstream_request_id_the_proxy_gives_its_own(router: Router, cloud: Any,
                                                                name: str) -> None:
    path, body, script = ANSWERS[name]
    with scripted_proxy(router, script, cloud) as url:
        ids = [httpx.post(url + path, json=body, headers=TO_EDGE, timeout=30)
               for _ in range(2)]
    assert [r.headers["x-confroute-route"] for r in ids] == ["edge", "edge"]
    assert all(OWN_ID.fullmatch(r.headers["x-request-id"]) for r in ids)
    assert ids[0].headers["x-request-id"] != ids[1].headers["x-request-id"]


@pytest.mark.parametrize("sent, kept", [(b"req_abc-123", "req_abc-123"),
                                        (b"x" * 500, "x" * 200),
                                        (b"  spaced  ", "spaced"),
                                        ("caf\u00e9".encode("latin-1"), "caf\\xe9")])
def test_an_upstream_request_id_is_kept_as_a_bounded_ascii_header(
        router: Router, cloud: Any, sent: bytes, kept: str) -> None:
    raw = json.dumps(GOOD).encode()
    head = json_head(200, len(raw)).replace(b"\r\n\r\n", b"\r\nx-request-id: " + sent
                                            + b"\r\n\r\n")
    with scripted_proxy(router, Script(head, [(0.0, raw)]), cloud) as url:
        reply = httpx.post(url + "/responses", json=BODY, headers=TO_EDGE, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-confroute-route"] == "edge"
    assert reply.headers["x-request-id"] == kept
