"""Issue 25 item 3: streams are relayed as whole SSE events. An upstream that breaks off anywhere
(mid-line, between a line and its blank line, inside a CRLF) leaves the client only well-formed
events, the last one the error event; CRLF, LF and CR line ends all frame events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from raw_upstream import chunk, raw_upstream, sse_answer
from upstream import serve_in_thread

from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app
from confroute.serve.sse import EventSplitter, EventTooLarge, event_data

CHAT = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}], "stream": True}
STOP = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()


# --- the splitter on its own -------------------------------------------------------------------

def stream_with(end: bytes) -> tuple[bytes, list[bytes]]:
    events = [b": keep-alive" + end + end, b"data: " + chunk("a", role=True) + end + end,
              b"event: x" + end + b'data: {"object": "chat.completion.chunk",' + end
              + b'data: "choices": []}' + end + end,  # one JSON value on two data lines
              b"data: " + STOP + end + end, b"data: [DONE]" + end + end]
    return b"".join(events), events


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_split_of_the_stream_gives_the_same_whole_events(end: bytes) -> None:
    raw, events = stream_with(end)
    for cut in range(len(raw) + 1):  # one split point anywhere, CRLF halves included
        splitter = EventSplitter(1 << 20)
        got = splitter.feed(raw[:cut]) + splitter.feed(raw[cut:])
        assert b"".join(got).replace(b"\r\n", b"\r") == raw.replace(b"\r\n", b"\r"), cut
        assert len(got) == len(events) and splitter.pending == b""
    splitter = EventSplitter(1 << 20)
    one_by_one = [e for i in range(len(raw)) for e in splitter.feed(raw[i:i + 1])]
    assert len(one_by_one) == len(events)


def test_a_half_written_event_stays_pending() -> None:
    for tail in (b'data: {"id":"c","object":"chat.compl', b"data: " + chunk("x") + b"\n",
                 b"data: " + chunk("x") + b"\r\n", b"data: x\r", b"data: one\ndata: tw"):
        splitter = EventSplitter(1 << 20)
        assert splitter.feed(b"data: 1\n\n" + tail) == [b"data: 1\n\n"]
        assert splitter.pending == tail, tail


def test_event_data_follows_the_sse_field_rules() -> None:
    assert event_data(b"data: one\ndata:two\ndata\n\n") == "one\ntwo\n"
    assert event_data(b": comment\r\n\r\n") is None
    assert event_data(b"event: ping\nid: 3\nretry: 10\n\n") is None
    assert event_data(b"data:  two spaces\r\r") == " two spaces"
    with pytest.raises(EventTooLarge):
        EventSplitter(100).feed(b"data: " + b"x" * 200)


# --- through the proxy, from an upstream that writes exact bytes ------------------------------

@pytest.fixture()
def proxy(router: Router) -> Iterator[Any]:
    """proxy(script, **settings) -> the proxy's URL, its one upstream writing `script`."""
    with_stack: list[Any] = []

    def start(script: Any, **settings: Any) -> str:
        up = raw_upstream(lambda body: script)
        upstream = up.__enter__()
        with_stack.append(up)
        cfg = ServeSettings(edge=UpstreamSettings(upstream.url, "m"),
                            cloud=UpstreamSettings(upstream.url, "m"), fallback=False,
                            read_timeout_s=settings.pop("read_timeout_s", 5.0), **settings)
        served = serve_in_thread(create_app(router, cfg))
        with_stack.append(served)
        return served.__enter__() + "/v1"

    yield start
    for context in reversed(with_stack):
        context.__exit__(None, None, None)


def relayed(url: str) -> list[bytes]:
    """The events the client received, each checked to be whole: JSON data or [DONE]."""
    reply = httpx.post(url + "/chat/completions", json=CHAT, timeout=20)
    assert reply.status_code == 200, reply.text
    splitter = EventSplitter(1 << 20)
    events = splitter.feed(reply.content)
    assert splitter.pending == b"", f"the client got a half event: {splitter.pending!r}"
    for event in events:
        data = event_data(event)
        assert data is None or data == "[DONE]" or isinstance(json.loads(data), dict), event
    return events


FIRST = b"data: " + chunk("Four", role=True) + b"\n\n"
BREAKS = {  # where the upstream stops writing, after one whole event
    "mid-line": FIRST + b'data: {"id":"c","object":"chat.compl',
    "between the line and its blank line": FIRST + b"data: " + chunk(" is") + b"\n",
    "between CR and LF of the blank line": FIRST.replace(b"\n", b"\r\n") + b"data: "
    + chunk(" is") + b"\r\n\r",
    "after a CRLF line": FIRST.replace(b"\n", b"\r\n") + b"data: " + chunk(" is") + b"\r\n",
    "after a CR line": FIRST.replace(b"\n", b"\r") + b"data: " + chunk(" is") + b"\r",
    "inside a two-line event": FIRST + b"data: {\"id\": \"c\",\ndata: ",
    "after a comment line": FIRST + b": still there",
    "at an event's end, before finish_reason and [DONE]": FIRST + b"data: " + chunk(" is")
    + b"\n\n",
}


@pytest.mark.parametrize("where", BREAKS)
def test_a_break_leaves_whole_events_then_the_error_event(proxy: Any, where: str) -> None:
    events = relayed(proxy(sse_answer(BREAKS[where])))
    assert events[0].startswith(b"data: " + chunk("Four", role=True))
    last = json.loads(event_data(events[-1]) or "")
    assert last["error"]["code"] == "upstream_stream_error", events
    assert all(b'"error"' not in e for e in events[:-1])


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_a_whole_stream_passes_as_sent_with_any_line_end(proxy: Any, end: bytes) -> None:
    raw, _ = stream_with(end)
    events = relayed(proxy(sse_answer(*[bytes([b]) for b in raw])))  # one write per byte
    # the keep-alive before the first chunk is dropped (it is not content), the rest as sent
    assert b"".join(events).replace(b"\r\n", b"\r") == \
        raw.split(end + end, 1)[1].replace(b"\r\n", b"\r")


def test_keepalives_after_the_first_chunk_are_relayed(proxy: Any) -> None:
    events = relayed(proxy(sse_answer(FIRST, b": ping\n\n", b"data: " + STOP + b"\n\n",
                                      b"data: [DONE]\n\n")))
    assert events[1] == b": ping\n\n" and events[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize("bad", [b"data: not json\n\n", b"data: [1, 2]\n\n",
                                 b'data: {"object": "chat.completion", "choices": []}\n\n',
                                 b'data: {"choices": [{"delta": "x"}]}\n\n'])
def test_an_event_that_is_no_chunk_after_the_first_ends_the_stream(proxy: Any,
                                                                   bad: bytes) -> None:
    events = relayed(proxy(sse_answer(FIRST, bad, b"data: [DONE]\n\n")))
    assert len(events) == 2 and b"upstream_stream_error" in events[1]


def test_an_upstream_error_event_mid_stream_is_passed_on(proxy: Any) -> None:
    error = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    events = relayed(proxy(sse_answer(FIRST, error)))
    assert events[1] == error  # well-formed, and it says why: relayed, then the end is noted


def test_the_openai_sdk_raises_instead_of_returning_half_an_answer(proxy: Any) -> None:
    url = proxy(sse_answer(BREAKS["mid-line"]))
    sdk = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    stream = sdk.chat.completions.create(model="confroute", stream=True,  # type: ignore
                                         messages=CHAT["messages"])
    with pytest.raises(openai.APIError, match="in the middle of an event"):
        for _ in stream:
            pass


def test_the_error_event_starts_on_a_line_of_its_own(proxy: Any) -> None:
    reply = httpx.post(proxy(sse_answer(BREAKS["mid-line"])) + "/chat/completions", json=CHAT,
                       timeout=20)
    lines = re.split(rb"\r\n|\r|\n", reply.content)
    assert not any(b"chat.compldata" in line for line in lines)
    assert any(line.startswith(b'data: {"error"') for line in lines)
