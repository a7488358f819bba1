"""Upstream failures as a gateway should handle them, against real HTTP servers on loopback,
for a pair whose edge is chosen (the same fallback up the ladder for K models: test_chat.py):
all rate-limited -> 429 with Retry-After (the OpenAI SDK backs off), a context-length refusal
falls back to the cloud, a client that gives up cancels the upstream call, and the upstream's
error message is kept with anything key-shaped redacted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from starlette.testclient import TestClient
from upstream import echo_app, serve_in_thread

from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

EDGE_KEY = "sk-edge-SECRET-1111"
CHAT = {"model": "confroute", "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
EDGE, CLOUD = {"x-confroute-threshold": "1"}, {"x-confroute-threshold": "0"}
OPENAI_LENGTH = {"error": {"message": "This model's maximum context length is 2048 tokens. "
                           "However, your messages resulted in 9000 tokens.",
                           "type": "invalid_request_error", "param": "messages",
                           "code": "context_length_exceeded"}}
LLAMA_CPP_LENGTH = {"error": {"code": 400, "message": "the request exceeds the available context "
                              "size, try increasing it", "type": "exceed_context_size_error"}}
VLLM_LENGTH = {"object": "error", "message": "This model's maximum context length is 2048 tokens."
               " However, you requested 4096 tokens.", "type": "BadRequestError", "code": 400}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {
        "edge": echo_app("edge"), "cloud": echo_app("cloud"),
        "limited7": echo_app("limited7", fail_status=429, fail_headers={"retry-after": "7"}),
        "limited3": echo_app("limited3", fail_status=429, fail_headers={"retry-after": "3"}),
        "limited1": echo_app("limited1", fail_status=429, fail_headers={"retry-after": "1"}),
        "failing": echo_app("failing", fail_status=500),
        "length": echo_app("length", fail_status=400, fail_body=OPENAI_LENGTH),
        "llamacpp": echo_app("llamacpp", fail_status=400, fail_body=LLAMA_CPP_LENGTH),
        "vllm": echo_app("vllm", fail_status=400, fail_body=VLLM_LENGTH),
        "badreq": echo_app("badreq", fail_status=400, fail_body={"error": {
            "message": "temperature must be <= 2", "type": "invalid_request_error"}}),
        "leaky": echo_app("leaky", fail_status=503, fail_body={"error": {
            "message": f"auth failed for key {EDGE_KEY} (also tried sk-proj-abcdef123456 with "
                       "Authorization: Bearer tok-xyz-987654)"}}),
        "html": echo_app("html", fail_status=502, fail_body="<html>Bad  Gateway</html>"),
        "unicode": echo_app("unicode", fail_status=503, fail_body={"error": {
            "message": "überlastet → später\u0001"}}),
        "slow": echo_app("slow", delay_s=10.0),
    }
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) + "/v1"
                for name, app in apps.items()}
        yield SimpleNamespace(urls=urls, apps=apps)


def make_app(router: Router, upstreams: SimpleNamespace, edge: str, cloud: str,
             **settings: Any) -> Any:
    cfg = ServeSettings(edge=UpstreamSettings(upstreams.urls[edge], "edge-model"),
                        cloud=UpstreamSettings(upstreams.urls[cloud], "cloud-model"), **settings)
    return create_app(router, cfg, environ={"CONFROUTE_EDGE_API_KEY": EDGE_KEY})


def chat(router: Router, upstreams: SimpleNamespace, edge: str, cloud: str,
         headers: dict[str, str], stream: bool = False, **settings: Any) -> httpx.Response:
    with TestClient(make_app(router, upstreams, edge, cloud, **settings)) as client:
        return client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                           headers=headers)


# --- 429 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("edge, cloud, fallback, retry_after", [
    ("limited7", "limited7", True, "7"), ("limited7", "limited3", True, "3"),
    ("limited7", "cloud", False, "7"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_all_upstreams_rate_limited_is_a_429_with_retry_after(
        router: Router, upstreams: SimpleNamespace, edge: str, cloud: str,
        fallback: bool, retry_after: str, stream: bool) -> None:
    reply = chat(router, upstreams, edge, cloud, EDGE, stream=stream, fallback=fallback)
    assert reply.status_code == 429, reply.text
    assert reply.headers["retry-after"] == retry_after
    error = reply.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "edge upstream failed: HTTP 429: limited7 is failing on purpose" in error["message"]


def test_rate_limited_and_failing_is_a_502(router: Router, upstreams: SimpleNamespace) -> None:
    reply = chat(router, upstreams, "limited7", "failing", EDGE)
    assert reply.status_code == 502 and "retry-after" not in reply.headers


def test_the_openai_sdk_backs_off_as_told(router: Router, upstreams: SimpleNamespace) -> None:
    seen = [upstreams.apps["limited1"].state.seen]
    before = len(seen[0])
    with serve_in_thread(make_app(router, upstreams, "limited1", "limited1")) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=1)
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        waited = time.monotonic() - started
    assert len(seen[0]) - before == 4  # 2 attempts by the SDK x (edge, then cloud fallback)
    # the SDK's own first back-off is at most 0.5 s: waiting >= 1 s is the proxy's Retry-After
    assert waited >= 1.0


# --- context length ----------------------------------------------------------------------------


@pytest.mark.parametrize("edge", ["length", "llamacpp", "vllm"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_too_long_for_the_edge_goes_to_the_cloud(
        router: Router, upstreams: SimpleNamespace, edge: str, stream: bool) -> None:
    reply = chat(router, upstreams, edge, "cloud", EDGE, stream=stream)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-decision"] == "edge"
    assert reply.headers["x-confroute-route"] == "cloud"
    reason = reply.headers["x-confroute-reason"]
    assert reason.startswith("fallback: edge upstream failed: HTTP 400: ")
    assert "context" in reason


def test_too_long_for_every_upstream_passes_the_refusal_through(
        router: Router, upstreams: SimpleNamespace) -> None:
    for cloud, fallback in (("length", True), ("cloud", False)):
        reply = chat(router, upstreams, "length", cloud, EDGE, fallback=fallback)
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "context_length_exceeded"


def test_other_client_errors_pass_through_without_fallback(
        router: Router, upstreams: SimpleNamespace) -> None:
    cloud_calls = len(upstreams.apps["cloud"].state.seen)
    reply = chat(router, upstreams, "badreq", "cloud", EDGE)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "temperature must be <= 2"
    assert len(upstreams.apps["cloud"].state.seen) == cloud_calls


# --- a client that gives up --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_gives_up_cancels_the_upstream_call(
        router: Router, upstreams: SimpleNamespace, stream: bool) -> None:
    hung_up = upstreams.apps["slow"].state.hung_up
    before = len(hung_up)
    # the proxy's own read timeout (30 s) is far off: only the cancellation can end the call
    with serve_in_thread(make_app(router, upstreams, "slow", "cloud",
                                  read_timeout_s=30.0)) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": stream},
                       headers=EDGE, timeout=0.5)
        deadline = time.monotonic() + 5.0  # the echo upstream checks every 20 ms
        while len(hung_up) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = httpx.get(url + "/metrics").text
    assert len(hung_up) == before + 1
    assert 'confroute_requests_total{endpoint="chat",status="499"} 1.0' in metrics


# --- error messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("edge, message", [
    ("failing", "edge upstream failed: HTTP 500: failing is failing on purpose"),
    ("html", "edge upstream failed: HTTP 502: <html>Bad Gateway</html>"),
    ("leaky", "edge upstream failed: HTTP 503: auth failed for key *** (also tried sk-*** with "
              "Authorization: Bearer ***)"),
])
def test_upstream_error_messages_are_kept_and_redacted(
        router: Router, upstreams: SimpleNamespace, edge: str, message: str) -> None:
    reply = chat(router, upstreams, edge, "cloud", EDGE, fallback=False)
    assert reply.status_code == 502
    text = reply.json()["error"]["message"]
    assert message in text, text
    for secret in (EDGE_KEY, "sk-proj-abcdef123456", "tok-xyz-987654"):
        assert secret not in reply.text


def test_a_fallback_reason_with_any_characters_is_a_valid_header(
        router: Router, upstreams: SimpleNamespace) -> None:
    # HTTP headers carry Latin-1 at most: the upstream's words are escaped, not a 500
    reply = chat(router, upstreams, "unicode", "cloud", EDGE)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == "cloud"
    assert reply.headers["x-confroute-reason"].startswith(
        "fallback: edge upstream failed: HTTP 503: \\xfcberlastet \\u2192 sp\\xe4ter ;")


@pytest.mark.parametrize("key", ["k", "tokens", EDGE_KEY])
def test_an_answer_is_passed_unchanged_whatever_the_key(
        router: Router, upstreams: SimpleNamespace, key: str) -> None:
    # Only error bodies are searched for the key: in an answer a short key would be cut out of
    # its words ("prompt_to***ens"), and a key that is a word of the answer would hide it.
    direct = httpx.post(upstreams.urls["edge"] + "/chat/completions", json=CHAT).json()
    cfg = ServeSettings(edge=UpstreamSettings(upstreams.urls["edge"], "edge-model"),
                        cloud=UpstreamSettings(upstreams.urls["cloud"], "cloud-model"))
    app = create_app(router, cfg, environ={"CONFROUTE_EDGE_API_KEY": key})
    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", json=CHAT, headers=EDGE)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert "***" not in reply.text
    assert answer["usage"].keys() == direct["usage"].keys()
    assert answer["choices"][0]["message"]["content"] == \
        direct["choices"][0]["message"]["content"]
