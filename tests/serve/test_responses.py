"""/v1/responses (the OpenAI Responses API) for a pair and for three models, in front of real
echo upstreams on loopback: the official `openai` SDK's `client.responses.create`, plain and
streamed, and its `responses.stream` helper; what is scored from `input` (and what is not:
`instructions`, images, tool outputs); the request's `model` forcing a model; the fallback up
the ladder; hostile bodies (no `input`, wrong types, huge, the request guard's kinds) refused
before any upstream call; x-request-id kept from the upstream, or the proxy's own, on chat
and responses, streamed and not. Upstreams that misbehave: test_responses_upstreams.py."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from served import (  # noqa: F401
    CHAT,
    KEYS,
    QUESTION,
    echo_servers,
    make_app,
    named,
    pick,
    seen,
    served_router,
)
from upstream import serve_in_thread

from confroute.runtime import Router

THRESHOLDS = "x-confroute-thresholds"
OWN_ID = re.compile(r"req_[0-9a-f]{32}")


@pytest.fixture()
def proxy(served: Router, echo: SimpleNamespace) -> Iterator[str]:
    """The proxy's base URL (…/v1), under uvicorn on loopback."""
    with serve_in_thread(make_app(served, echo)) as url:
        yield url + "/v1"


def sdk(base_url: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0,
                         default_headers=headers or None)


@pytest.mark.parametrize("position", [0, -1])
def test_the_sdk_gets_the_chosen_models_answer(proxy: str, served: Router, echo: SimpleNamespace,
                                               position: int) -> None:
    model = served.models[position]
    before = seen(echo)[model]
    raw = sdk(proxy, **{THRESHOLDS: pick(served.models, model)}).responses.with_raw_response \
        .create(model="confroute", input=QUESTION, instructions="Answer briefly.")
    answer = raw.parse()
    assert answer.output_text == f"{model} says: {QUESTION}"
    assert (raw.headers["x-confroute-route"], raw.headers["x-confroute-model"]) == \
        (model, f"{model}-model")
    sent = echo.apps[model].state.seen[before]
    assert sent["model"] == f"{model}-model" and sent["authorization"] == f"Bearer {KEYS[model]}"
    assert sent["body"]["instructions"] == "Answer briefly."  # forwarded as it came
    assert raw.headers["x-request-id"] == f"req_{model}_{before + 1}"


def test_the_sdk_streams_named_events(proxy: str, served: Router) -> None:
    model = served.models[-1]
    client = sdk(proxy, **{THRESHOLDS: pick(served.models, model)})
    events = list(client.responses.create(model="confroute", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == f"{model} says: {QUESTION}"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with client.responses.stream(model="confroute", input=QUESTION) as stream:
        assert stream.get_final_response().output_text == text


def test_the_stream_is_relayed_with_its_event_names(proxy: str) -> None:
    with httpx.stream("POST", proxy + "/responses", json={"input": QUESTION, "stream": True},
                      timeout=30) as reply:
        body = reply.read().decode()
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert body.startswith("event: response.created\ndata: {")
    assert "event: response.output_text.delta\ndata: " in body
    assert body.rstrip().splitlines()[-2] == "event: response.completed"


INPUTS = {  # what a client sends -> the same conversation as chat messages
    "a string": (QUESTION, [{"role": "user", "content": QUESTION}]),
    "a message list": ([{"role": "user", "content": QUESTION}],
                       [{"role": "user", "content": QUESTION}]),
    "typed message items with input_text parts": (
        [{"type": "message", "role": "developer", "content": "Be brief."},
         {"type": "message", "role": "user", "content": [
             {"type": "input_text", "text": "What is 2 plus 2?"},
             {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
         {"type": "message", "role": "assistant", "content": [
             {"type": "output_text", "text": "4", "annotations": []}]},
         {"type": "function_call_output", "call_id": "c1", "output": "18 C"},
         {"role": "user", "content": QUESTION}],
        [{"role": "user", "content": "What is 2 plus 2?"},
         {"role": "assistant", "content": "4"}, {"role": "user", "content": QUESTION}]),
}


@pytest.mark.parametrize("form", INPUTS)
def test_input_is_scored_as_the_same_chat_conversation(proxy: str, served: Router,
                                                       form: str) -> None:
    given, messages = INPUTS[form]
    reply = httpx.post(proxy + "/responses", json={"model": "confroute", "input": given,
                                                   "instructions": "Think of " + "x" * 500},
                       timeout=30)
    assert reply.status_code == 200, reply.text
    expected = served.decide(messages)
    assert named(reply.headers["x-confroute-probabilities"]) == pytest.approx(
        expected.probabilities, abs=1e-5)
    assert reply.headers["x-confroute-decision"] == expected.model


@pytest.mark.parametrize("given", [
    [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}],
    [{"role": "user", "content": [{"type": "input_file", "file_id": "f1"}]}],
    [{"type": "function_call_output", "call_id": "c1", "output": "18 C"}],
    [{"type": "item_reference", "id": "msg_1"}]])
def test_input_without_text_goes_to_the_top_model(proxy: str, served: Router,
                                                  given: Any) -> None:
    reply = httpx.post(proxy + "/responses", json={"input": given}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == served.models[-1]
    assert "x-confroute-probabilities" not in reply.headers


def test_the_requests_model_forces_a_served_model(proxy: str, served: Router) -> None:
    for model in served.models:
        answer = sdk(proxy).responses.with_raw_response.create(model=model, input=QUESTION)
        assert answer.headers["x-confroute-route"] == model
        assert answer.parse().output_text.startswith(f"{model} says")
    other = sdk(proxy).responses.with_raw_response.create(model="gpt-4o", input=QUESTION)
    assert other.headers["x-confroute-decision"] in served.models  # the router decided


def test_it_falls_back_up_the_ladder(served: Router, echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    app = make_app(served, echo, {cheapest: "failing"})
    with serve_in_thread(app) as url:
        for stream in (False, True):
            reply = httpx.post(url + "/v1/responses", json={
                "model": cheapest, "input": QUESTION, "stream": stream}, timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-confroute-route"] == served.models[1]
            assert reply.headers["x-confroute-reason"].startswith(
                f"fallback: {cheapest} upstream failed: HTTP 500")


def test_every_upstream_failing_is_a_502_in_the_openai_shape(served: Router,
                                                            echo: SimpleNamespace) -> None:
    app = make_app(served, echo, {m: "failing" for m in served.models})
    with serve_in_thread(app) as url, pytest.raises(openai.APIStatusError) as raised:
        sdk(url + "/v1").responses.create(model="confroute", input=QUESTION)
    assert raised.value.status_code == 502
    assert raised.value.response.json()["error"]["code"] == "upstream_unavailable"
    assert OWN_ID.fullmatch(raised.value.response.headers["x-request-id"])


HOSTILE = {  # body -> the status it must get, before any upstream call
    "no input": ({"model": "confroute"}, 422),
    "input null": ({"input": None}, 422),
    "input a number": ({"input": 42}, 422),
    "input an object": ({"input": {"role": "user", "content": "hi"}}, 422),
    "input true": ({"input": True}, 422),
    "input an empty list": ({"input": []}, 422),
    "input an empty string": ({"input": "   "}, 422),
    "an item a string": ({"input": ["hi"]}, 422),
    "an item's type a number": ({"input": [{"type": 3, "role": "user", "content": "hi"}]}, 422),
    "a message without a role": ({"input": [{"type": "message", "content": "hi"}]}, 422),
    "a role a number": ({"input": [{"role": 3, "content": "hi"}]}, 422),
    "a user message without content": ({"input": [{"role": "user"}]}, 422),
    "content a number": ({"input": [{"role": "user", "content": 5}]}, 422),
    "a part a string": ({"input": [{"role": "user", "content": ["hi"]}]}, 422),
    "a part without a type": ({"input": [{"role": "user", "content": [{"text": "hi"}]}]}, 422),
    "input_text text null": ({"input": [{"role": "user", "content": [
        {"type": "input_text", "text": None}]}]}, 422),
    "input_text text a list": ({"input": [{"role": "user", "content": [
        {"type": "input_text", "text": ["hi"]}]}]}, 422),
    "only assistant messages": ({"input": [{"role": "assistant", "content": "hi"}]}, 422),
    "instructions a number": ({"input": "hi", "instructions": 5}, 422),
    "a lone surrogate": (b'{"input": "great phone \\ud83d"}', 422),
    "a forced unknown model": ({"input": "hi", "confroute_force_model": "gpt-9"}, 422),
    "a threshold over 1": ({"input": "hi", "confroute_thresholds": {"x": 2}}, 422),
    "over max_prompt_chars": ({"input": "x" * 200_001}, 413),
    "over max_body_bytes": ({"input": "x" * 1_100_000}, 413),
    "NaN": (b'{"input": "hi", "temperature": NaN}', 400),
    "a 5,000-digit number": (b'{"input": "hi", "max_output_tokens": ' + b"9" * 5000 + b"}", 400),
    "nesting 101 deep": (b'{"input": "hi", "x": ' + b"[" * 101 + b"]" * 101 + b"}", 400),
    "a repeated key": (b'{"input": "hi", "input": "hello"}', 400),
    "a list as the body": (b'["hi"]', 400),
    "not JSON": (b"input=hi", 400),
    "not UTF-8": (b'{"input": "bad \xff bytes"}', 400),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_body_is_refused_before_any_upstream_call(served: Router, echo: SimpleNamespace,
                                                            name: str) -> None:
    body, status = HOSTILE[name]
    app = make_app(served, echo, max_body_bytes=1_000_000, max_prompt_chars=200_000)
    before = seen(echo)
    with serve_in_thread(app) as url:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = httpx.post(url + "/v1/responses", content=content, timeout=30,
                           headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    assert set(reply.json()["error"]) == {"message", "type", "code"}
    assert seen(echo) == before


GUARDED = {  # headers -> status: the request guard's kinds, on the new endpoint too
    "text/plain": ({"content-type": "text/plain"}, 415),
    "a form": ({"content-type": "application/x-www-form-urlencoded"}, 415),
    "multipart": ({"content-type": "multipart/form-data; boundary=x"}, 415),
    "no Content-Type": ({"content-type": ""}, 415),
    "a foreign Host": ({"host": "evil.example"}, 403),
    "a Host that begins with localhost": ({"host": "localhost.evil.example"}, 403),
    "a foreign Origin": ({"origin": "http://evil.example"}, 403),
    "Origin null": ({"origin": "null"}, 403),
    "Sec-Fetch-Site cross-site": ({"sec-fetch-site": "cross-site"}, 403),
}


@pytest.mark.parametrize("name", GUARDED)
def test_the_request_guard_covers_responses(proxy: str, echo: SimpleNamespace,
                                            name: str) -> None:
    headers, status = GUARDED[name]
    before = seen(echo)
    reply = httpx.post(proxy + "/responses", content=json.dumps({"input": QUESTION}),
                       headers={"content-type": "application/json", **headers}, timeout=30)
    assert reply.status_code == status, reply.text
    assert seen(echo) == before


@contextlib.contextmanager
def posted(url: str, path: str, body: dict[str, Any]) -> Iterator[httpx.Response]:
    with httpx.stream("POST", url + path, json=body, timeout=30) as reply:
        reply.read()
        yield reply


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path, body", [("/chat/completions", CHAT),
                                        ("/responses", {"input": QUESTION})])
def test_the_upstreams_request_id_is_kept(proxy: str, served: Router, echo: SimpleNamespace,
                                          path: str, body: dict[str, Any], stream: bool) -> None:
    top = served.models[-1]
    with posted(proxy, path, {**body, "model": top, "stream": stream}) as reply:
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == f"req_{top}_{seen(echo)[top]}"
