"""Serving a K-model (ladder) artifact: the real tiny three-model artifact (small -> medium ->
large) in-process, in front of real echo upstreams on loopback, one per model, plus failing ones.
Config files and startup checks: test_serve_config.py."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import openai
import pytest
from starlette.testclient import TestClient
from upstream import closed_port_url, echo_app, serve_in_thread

from confroute.errors import ConfigError
from confroute.runtime import LadderRouter, Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

from conftest import IMAGE

SMALL_KEY, MEDIUM_KEY, LARGE_KEY = ("sk-small-SECRET-1111", "sk-medium-SECRET-2222",
                                    "sk-large-SECRET-3333")
# small and medium by the default variable names, large by its api_key_env
KEYS = {"CONFROUTE_SMALL_API_KEY": SMALL_KEY, "CONFROUTE_MEDIUM_API_KEY": MEDIUM_KEY,
        "LARGE_KEY": LARGE_KEY}
SECRETS = (SMALL_KEY, MEDIUM_KEY, LARGE_KEY)
MODEL_KEYS = dict(zip(("small", "medium", "large"), SECRETS, strict=True))
QUESTION = "Prove that there are infinitely many primes of the form 4k+3."
CHAT = {"model": "confroute", "messages": [{"role": "user", "content": QUESTION}]}
# per-request thresholds that pick each model whatever the router predicts (P >= 0 always)
PICK = {"small": "small=0", "medium": "small=1,medium=0", "large": "small=1,medium=1,large=0"}
THRESHOLDS = "x-confroute-thresholds"
LENGTH = {"error": {"message": "This model's maximum context length is 2048 tokens.",
                    "type": "invalid_request_error", "code": "context_length_exceeded"}}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {"small": echo_app("small", api_key=SMALL_KEY),
            "medium": echo_app("medium", api_key=MEDIUM_KEY),
            "large": echo_app("large", api_key=LARGE_KEY),
            "failing": echo_app("failing", fail_status=500),
            "limited": echo_app("limited", fail_status=429, fail_headers={"retry-after": "3"}),
            "limited9": echo_app("limited9", fail_status=429, fail_headers={"retry-after": "9"}),
            "slow": echo_app("slow", delay_s=5.0),
            "broken": echo_app("broken", break_after=2),
            "length": echo_app("length", fail_status=400, fail_body=LENGTH),
            "leaky": echo_app("leaky", fail_status=503, fail_body={"error": {
                "message": f"auth failed for key {LARGE_KEY}"}}),
            "unicode": echo_app("unicode", fail_status=503, fail_body={"error": {
                "message": "überlastet → später erneut versuchen"}})}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) + "/v1"
                for name, app in apps.items()}
        urls["down"] = closed_port_url()
        yield SimpleNamespace(urls=urls, apps=apps)


def make_app(router: LadderRouter, upstreams: SimpleNamespace, small: str | None = "small",
             medium: str | None = "medium", large: str | None = "large",
             **settings: Any) -> Any:
    """The app with each model's upstream played by the named echo server (None: none)."""
    entries = {model: UpstreamSettings(upstreams.urls[server], f"{model}-model",
                                       "LARGE_KEY" if model == "large" else None)
               for model, server in (("small", small), ("medium", medium), ("large", large))
               if server is not None}
    settings.setdefault("read_timeout_s", 0.5)
    return create_app(router, ServeSettings(upstreams=entries, **settings), environ=KEYS)


@pytest.fixture(scope="module")
def client(ladder_router: LadderRouter, upstreams: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(make_app(ladder_router, upstreams)) as test_client:
        yield test_client


def named(header: str) -> dict[str, float]:
    """ "small=0.500000,medium=..." -> {"small": 0.5, ...}"""
    return {k: float(v) for k, v in (pair.split("=") for pair in header.split(","))}


def sse_text(body: str) -> tuple[str, list[dict]]:
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks), chunks


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def seen(upstreams: SimpleNamespace) -> dict[str, int]:
    return {name: len(app.state.seen) for name, app in upstreams.apps.items()}


def test_the_fixture_is_a_three_model_ladder(ladder_router: LadderRouter) -> None:
    assert isinstance(ladder_router, LadderRouter)
    assert ladder_router.models == ["small", "medium", "large"]


# --- /health, /v1/models ----------------------------------------------------------------------


def test_health_says_what_is_loaded(client: TestClient, ladder_router: LadderRouter) -> None:
    body = client.get("/health").json()
    assert body["models"] == ["small", "medium", "large"]
    assert list(body["thresholds"].values()) == pytest.approx(
        ladder_router.policy.thresholds.tolist())
    assert body["upstreams"] == {m: {"configured": True, "model": f"{m}-model"}
                                 for m in ("small", "medium", "large")}
    assert "threshold" not in body and body["rule"] == "threshold"
    assert not any(secret in json.dumps(body) for secret in SECRETS)


def test_openai_sdk_lists_the_ladder(ladder_router: LadderRouter,
                                     upstreams: SimpleNamespace) -> None:
    with serve_in_thread(make_app(ladder_router, upstreams)) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["confroute", "small", "medium", "large"]
        assert sdk.models.retrieve("medium").id == "medium"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("medium-model")
        raw = sdk.chat.completions.with_raw_response.create(
            model="confroute", messages=CHAT["messages"],
            extra_headers={"x-confroute-force-model": "medium"})
        assert raw.parse().choices[0].message.content == f"medium says: {QUESTION}"


# --- /v1/route --------------------------------------------------------------------------------


def test_route_decides_as_the_runtime_does(client: TestClient,
                                           ladder_router: LadderRouter) -> None:
    conversation = [{"role": "user", "content": "What is 3 plus 4?"},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "Prove it by induction on 4."}]
    prompts = ["What is 2 plus 2?", conversation, QUESTION, "Spell the word number 9."]
    expected = [d.to_dict() for d in ladder_router.decide_batch(prompts)]
    results = client.post("/v1/route", json={"prompts": prompts}).json()["results"]
    assert [(r["model"], r["model_index"], r["reason"]) for r in results] == \
        [(e["model"], e["model_index"], e["reason"]) for e in expected]
    for result, want in zip(results, expected, strict=True):
        assert result["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        assert result["thresholds"] == pytest.approx(want["thresholds"])
    one = client.post("/v1/route", json={"prompt": QUESTION}).json()
    assert one["model"] == expected[2]["model"] and set(one) == set(expected[2])


@pytest.mark.parametrize("body, model, reason", [
    ({"thresholds": {"small": 0}}, "small", "cheapest model predicted adequate: P = "),
    ({"thresholds": {"small": 1, "medium": 0}}, "medium",
     "; every cheaper model was below its"),
    ({"thresholds": {"small": 1, "medium": 1, "large": 1}}, None,
     "no model cleared its threshold; highest predicted adequacy"),
    ({"model": "large", "thresholds": {"small": 0}}, "large", "forced by the request"),
    ({"model": "small"}, "small", "forced by the request"),
])
def test_route_overrides_and_forced_model(client: TestClient, ladder_router: LadderRouter,
                                          body: dict, model: str | None, reason: str) -> None:
    expected = ladder_router.decide(QUESTION, thresholds=body.get("thresholds"),
                                    model=body.get("model"))
    result = client.post("/v1/route", json={"prompt": QUESTION, **body}).json()
    assert result["model"] == expected.model == (model or expected.model)
    assert reason in result["reason"] and result["reason"] == expected.reason
    for name, value in body.get("thresholds", {}).items():
        assert result["thresholds"][name] == value
    if model is None:  # nobody cleared: the best predicted model
        probs = result["probabilities"]
        assert result["model"] == max(probs, key=probs.get)


def test_server_thresholds_replace_the_artifacts(ladder_router: LadderRouter,
                                                 upstreams: SimpleNamespace) -> None:
    app = make_app(ladder_router, upstreams, thresholds={"small": 0.0})
    artifact = ladder_router.policy.thresholds.tolist()
    with TestClient(app) as test_client:
        result = test_client.post("/v1/route", json={"prompt": QUESTION}).json()
        assert result["model"] == "small"
        assert list(result["thresholds"].values()) == pytest.approx([0.0, *artifact[1:]])
        assert test_client.get("/health").json()["thresholds"]["small"] == 0.0
        again = test_client.post("/v1/route", json={"prompt": QUESTION,
                                                     "thresholds": {"small": 1, "medium": 0}})
        assert again.json()["model"] == "medium"  # the request's override wins


@pytest.mark.parametrize("raw, code, message", [
    (b'{"prompt": "a", "threshold": 0.5}', "unknown_field",
     "'model' (force a model) and, for the artifact's rule, 'thresholds' ({model: threshold}) "
     "or 'lambda_per_usd'; this artifact routes among small, medium, large"),
    (b'{"prompt": "a", "thresholds": {"huge": 0.5}}', "unknown_model",
     "thresholds: unknown model 'huge'; this service routes among small, medium, large"),
    (b'{"prompt": "a", "thresholds": {"small": 1.5}}', "invalid_threshold",
     "thresholds.small: threshold must be a number in [0, 1]; found 1.5"),
    (b'{"prompt": "a", "thresholds": {"small": -0.1}}', "invalid_threshold", "found -0.1"),
    (b'{"prompt": "a", "thresholds": {"small": "high"}}', "invalid_threshold", "found 'high'"),
    (b'{"prompt": "a", "thresholds": [0.5]}', "invalid_threshold",
     'thresholds must map model names to thresholds, e.g. {"small": 0.8}; found list'),
    (b'{"prompt": "a", "model": "gpt-9"}', "unknown_model", "model: unknown model 'gpt-9'"),
    (b'{"prompt": "a", "model": 3}', "unknown_model", "model: unknown model int"),
])
def test_bad_route_overrides_are_a_422(client: TestClient, raw: bytes, code: str,
                                       message: str) -> None:
    reply = client.post("/v1/route", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and message in error["message"], error


# --- /v1/chat/completions ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["small", "medium", "large"])
def test_chat_goes_to_the_chosen_model_with_its_name_and_key(
        client: TestClient, ladder_router: LadderRouter, upstreams: SimpleNamespace,
        model: str) -> None:
    reply = client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.3},
                        headers={THRESHOLDS: PICK[model]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == f"{model} says: {QUESTION}"
    headers = reply.headers
    assert (headers["x-confroute-decision"], headers["x-confroute-route"],
            headers["x-confroute-model"]) == (model, model, f"{model}-model")
    expected = ladder_router.decide(CHAT["messages"], thresholds=named(PICK[model]))
    assert headers["x-confroute-reason"] == expected.reason
    assert named(headers["x-confroute-probabilities"]) == pytest.approx(
        expected.probabilities, abs=1e-5)
    assert named(headers["x-confroute-thresholds"]) == pytest.approx(expected.thresholds)
    request = upstreams.apps[model].state.seen[-1]
    assert request["model"] == f"{model}-model"
    assert request["authorization"] == f"Bearer {MODEL_KEYS[model]}"
    assert request["body"]["temperature"] == 0.3 and THRESHOLDS not in request["body"]


def test_chat_overrides_in_the_body_and_forced_model(client: TestClient,
                                                     upstreams: SimpleNamespace) -> None:
    before = seen(upstreams)
    reply = client.post("/v1/chat/completions", json={
        **CHAT, "confroute_thresholds": {"small": 1, "medium": 0}})
    assert reply.headers["x-confroute-route"] == "medium"
    forwarded = upstreams.apps["medium"].state.seen[-1]["body"]
    assert "confroute_thresholds" not in forwarded  # the proxy's, not the model's
    reply = client.post("/v1/chat/completions", json={**CHAT, "confroute_force_model": "large",
                                                      "confroute_thresholds": {"small": 0}})
    assert reply.headers["x-confroute-route"] == "large"
    assert reply.headers["x-confroute-reason"] == "forced by the request"
    assert "confroute_force_model" not in upstreams.apps["large"].state.seen[-1]["body"]
    # a header wins over its body field
    reply = client.post("/v1/chat/completions", json={**CHAT, "confroute_force_model": "large"},
                        headers={"x-confroute-force-model": "small"})
    assert reply.headers["x-confroute-route"] == "small"
    after = seen(upstreams)
    assert [after[m] - before[m] for m in ("small", "medium", "large")] == [1, 1, 1]


def test_chat_streams_from_the_chosen_model(client: TestClient) -> None:
    reply = client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                        headers={THRESHOLDS: PICK["medium"]})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-confroute-route"] == "medium"
    text, chunks = sse_text(reply.text)
    assert text == f"medium says: {QUESTION}" and len(chunks) > 3


def test_chat_falls_back_up_the_ladder_twice(ladder_router: LadderRouter,
                                             upstreams: SimpleNamespace,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(ladder_router, upstreams, small="down", medium="failing")
    with TestClient(app) as test_client:
        for stream in (False, True):
            reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                     headers={THRESHOLDS: PICK["small"]})
            assert reply.status_code == 200, reply.text
            assert (reply.headers["x-confroute-decision"], reply.headers["x-confroute-route"],
                    reply.headers["x-confroute-model"]) == ("small", "large", "large-model")
            reason = reply.headers["x-confroute-reason"]
            assert reason.startswith("fallback: small upstream failed: connection failed ("), \
                reason
            assert "; medium upstream failed: HTTP 500: failing is failing on purpose; chose " \
                "small: cheapest model predicted adequate" in reason
        assert sse_text(reply.text)[0] == f"large says: {QUESTION}"
        text = test_client.get("/metrics").text
    assert metric(text, 'confroute_upstream_errors_total{kind="connection",upstream="small"}') == 2
    assert metric(text, 'confroute_upstream_errors_total{kind="http_500",upstream="medium"}') == 2
    assert metric(text, 'confroute_fallbacks_total{from_upstream="small"}') == 2
    assert metric(text, 'confroute_routes_total{endpoint="chat",route="small"}') == 2
    assert not any(secret in caplog.text for secret in SECRETS)


def test_a_prompt_too_long_for_a_model_goes_up(ladder_router: LadderRouter,
                                               upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(ladder_router, upstreams, small="length")) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: PICK["small"]})
    assert reply.status_code == 200 and reply.headers["x-confroute-route"] == "medium"
    assert "maximum context length" in reply.headers["x-confroute-reason"]


def test_fallback_never_goes_down_the_ladder(ladder_router: LadderRouter,
                                             upstreams: SimpleNamespace) -> None:
    before = seen(upstreams)
    app = make_app(ladder_router, upstreams, medium="failing", large="limited")
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: PICK["medium"]})
    assert reply.status_code == 502, reply.text
    assert reply.json()["error"]["message"] == (
        "no upstream answered: medium upstream failed: HTTP 500: failing is failing on purpose; "
        "large upstream failed: HTTP 429: limited is failing on purpose")
    assert reply.headers["x-confroute-decision"] == "medium"
    assert "x-confroute-route" not in reply.headers
    after = seen(upstreams)
    assert after["small"] == before["small"]  # the cheaper model was never asked
    assert (after["failing"] - before["failing"], after["limited"] - before["limited"]) == (1, 1)


@pytest.mark.parametrize("servers, status, code, parts", [
    (("down", "failing", "leaky"), 502, "upstream_unavailable",
     ["small upstream failed: connection failed (ConnectError)",
      "medium upstream failed: HTTP 500: failing is failing on purpose",
      "large upstream failed: HTTP 503: auth failed for key ***"]),
    (("limited9", "limited", "limited9"), 429, "rate_limit_exceeded",
     ["every upstream is rate-limited: small upstream failed: HTTP 429"]),
    (("slow", "slow", "slow"), 504, "upstream_unavailable",
     ["small upstream failed: timed out", "medium upstream failed: timed out",
      "large upstream failed: timed out"]),
])
@pytest.mark.parametrize("stream", [False, True])
def test_every_rung_failing_is_an_error_listing_each(
        ladder_router: LadderRouter, upstreams: SimpleNamespace, servers: tuple[str, str, str],
        status: int, code: str, parts: list[str], stream: bool) -> None:
    app = make_app(ladder_router, upstreams, *servers)
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                 headers={THRESHOLDS: PICK["small"]})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    positions = [error["message"].find(part) for part in parts]
    assert -1 not in positions and positions == sorted(positions), error["message"]
    assert reply.headers["x-confroute-decision"] == "small"
    if status == 429:
        assert reply.headers["retry-after"] == "3"  # the soonest any model takes requests
    assert not any(secret in reply.text for secret in SECRETS)
    assert "127.0.0.1" not in reply.text


def test_without_fallback_only_the_chosen_model_is_asked(ladder_router: LadderRouter,
                                                         upstreams: SimpleNamespace) -> None:
    before = seen(upstreams)
    app = make_app(ladder_router, upstreams, small="failing", fallback=False)
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: PICK["small"]})
    assert reply.status_code == 502
    assert reply.json()["error"]["message"] == \
        "no upstream answered: small upstream failed: HTTP 500: failing is failing on purpose"
    assert seen(upstreams)["medium"] == before["medium"]


@pytest.mark.parametrize("fallback", [True, False])
def test_a_model_without_an_upstream_passes_its_requests_up(
        ladder_router: LadderRouter, upstreams: SimpleNamespace, fallback: bool) -> None:
    app = make_app(ladder_router, upstreams, small=None, fallback=fallback)
    with TestClient(app) as test_client:
        assert test_client.get("/health").json()["upstreams"]["small"] == \
            {"configured": False, "model": None}
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: PICK["small"]})
        assert reply.status_code == 200, reply.text
        assert (reply.headers["x-confroute-decision"], reply.headers["x-confroute-route"]) == \
            ("small", "medium")
        assert reply.headers["x-confroute-reason"].startswith(
            "fallback: small upstream not configured; chose small: ")
        # /v1/route still says what the router chose
        assert test_client.post("/v1/route", json={"prompt": QUESTION, "thresholds": {
            "small": 0}}).json()["model"] == "small"


def test_without_upstreams_the_service_routes_only(ladder_router: LadderRouter,
                                                   upstreams: SimpleNamespace) -> None:
    app = make_app(ladder_router, upstreams, None, None, None)
    with TestClient(app) as test_client:
        assert test_client.post("/v1/route", json={"prompt": QUESTION}).status_code == 200
        reply = test_client.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["code"] == "upstream_not_configured"
    assert "add an upstreams section to the --config file, one entry (base_url, model) per " \
        "model of small, medium, large" in error["message"]


def test_a_stream_that_breaks_off_does_not_fall_back(ladder_router: LadderRouter,
                                                     upstreams: SimpleNamespace) -> None:
    before = seen(upstreams)
    with TestClient(make_app(ladder_router, upstreams, small="broken")) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers={THRESHOLDS: PICK["small"]})
    assert reply.headers["x-confroute-route"] == "small"
    events = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 3  # two chunks relayed, then the error: too late to fall back
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_stream_error"
    assert seen(upstreams)["medium"] == before["medium"]


def test_a_reason_with_any_characters_is_a_valid_header(ladder_router: LadderRouter,
                                                        upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(ladder_router, upstreams, small="unicode")) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: PICK["small"]})
    assert reply.status_code == 200, reply.text
    assert "HTTP 503: \\xfcberlastet \\u2192 sp\\xe4ter erneut versuchen" in \
        reply.headers["x-confroute-reason"]


def test_no_text_to_score_goes_to_the_top_model(client: TestClient) -> None:
    messages = [{"role": "user", "content": [IMAGE]}]
    reply = client.post("/v1/chat/completions", json={"messages": messages},
                        headers={THRESHOLDS: PICK["small"]})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == "large"
    assert reply.headers["x-confroute-reason"].startswith("no text to score")
    assert "x-confroute-probabilities" not in reply.headers
    forced = client.post("/v1/chat/completions", json={"messages": messages},
                         headers={"x-confroute-force-model": "small"})
    assert forced.headers["x-confroute-route"] == "small"


@pytest.mark.parametrize("body, headers, code, message", [
    ({}, {THRESHOLDS: "small"}, "invalid_threshold",
     "x-confroute-thresholds must be model=threshold pairs separated by commas"),
    ({}, {THRESHOLDS: "small=2"}, "invalid_threshold",
     "x-confroute-thresholds.small: threshold must be a number in [0, 1]; found 2.0"),
    ({}, {THRESHOLDS: "small=lots"}, "invalid_threshold", "found 'lots'"),
    ({}, {THRESHOLDS: "huge=0.5"}, "unknown_model", "x-confroute-thresholds: unknown model"),
    ({"confroute_thresholds": {"small": -1}}, {}, "invalid_threshold",
     "confroute_thresholds.small: threshold must be a number in [0, 1]"),
    ({}, {"x-confroute-force-model": "huge"}, "unknown_model",
     "x-confroute-force-model: unknown model 'huge'; this service routes among small, medium"),
    ({"confroute_force_model": ["large"]}, {}, "unknown_model",
     "confroute_force_model: unknown model list"),
    ({}, {"x-confroute-threshold": "0.5"}, "invalid_threshold",
     "one threshold (confroute_threshold or x-confroute-threshold) is for two-model artifacts"),
    ({"confroute_threshold": 0.5}, {}, "invalid_threshold", "send confroute_thresholds"),
])
def test_bad_chat_overrides_are_a_422_before_any_upstream_call(
        client: TestClient, upstreams: SimpleNamespace, body: dict, headers: dict, code: str,
        message: str) -> None:
    before = seen(upstreams)
    reply = client.post("/v1/chat/completions", json={**CHAT, **body}, headers=headers)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and message in error["message"], error
    assert seen(upstreams) == before


def test_metrics_count_decisions_per_model(ladder_router: LadderRouter,
                                           upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(ladder_router, upstreams)) as test_client:
        for thresholds in ({"small": 0}, {"small": 0}, {"small": 1, "medium": 0}):
            test_client.post("/v1/route", json={"prompt": QUESTION, "thresholds": thresholds})
        test_client.post("/v1/route", json={"prompts": [QUESTION] * 3, "model": "large"})
        test_client.post("/v1/chat/completions", json=CHAT, headers={THRESHOLDS: PICK["medium"]})
        text = test_client.get("/metrics").text
    assert metric(text, 'confroute_routes_total{endpoint="route",route="small"}') == 2
    assert metric(text, 'confroute_routes_total{endpoint="route",route="medium"}') == 1
    assert metric(text, 'confroute_routes_total{endpoint="route",route="large"}') == 3
    assert metric(text, 'confroute_routes_total{endpoint="chat",route="medium"}') == 1
    assert metric(text, 'confroute_fallbacks_total{from_upstream="medium"}') == 0
    assert metric(text, 'confroute_upstream_seconds_count{upstream="medium"}') == 1
    assert metric(text, "confroute_score_batch_prompts_sum") == 7


def test_concurrent_requests_get_their_own_decisions(ladder_router: LadderRouter,
                                                     upstreams: SimpleNamespace) -> None:
    import asyncio

    import httpx

    prompts = [f"Is {i} larger than {3 * i}? " + "word " * (i % 5) for i in range(24)]
    expected = ladder_router.adequacy(prompts)
    app = make_app(ladder_router, upstreams, batch_max=8, score_workers=2)

    async def ask_all() -> list[list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            replies = await asyncio.gather(*(http.post("/v1/route", json={"prompt": p})
                                             for p in prompts))
        return [list(r.json()["probabilities"].values()) for r in replies]

    np.testing.assert_allclose(asyncio.run(ask_all()), expected, atol=1e-6)


# --- a two-model artifact keeps its own overrides ---------------------------------------------


@pytest.mark.parametrize("body, headers, message", [
    ({"confroute_thresholds": {"edge": 0.5}}, {},
     "confroute_thresholds is for K-model (ladder) artifacts; this one routes between edge and "
     "cloud: send confroute_threshold instead"),
    ({"confroute_force_model": "cloud"}, {}, "confroute_force_model is for K-model"),
    ({}, {"x-confroute-force-model": "cloud"}, "header x-confroute-force-model is for K-model"),
    ({}, {THRESHOLDS: "edge=0.5"}, "send x-confroute-threshold instead"),
])
def test_a_two_model_artifact_refuses_ladder_overrides(
        router: Router, upstreams: SimpleNamespace, body: dict, headers: dict,
        message: str) -> None:
    app = create_app(router, ServeSettings(edge=UpstreamSettings(upstreams.urls["small"], "e"),
                                           cloud=UpstreamSettings(upstreams.urls["large"], "c")),
                     environ={})
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, **body}, headers=headers)
        assert reply.status_code == 422, reply.text
        assert message in reply.json()["error"]["message"]
        assert test_client.post("/v1/route", json={"prompt": QUESTION, "model": "edge"}
                                ).json()["error"]["code"] == "unknown_field"


def test_a_two_model_artifact_refuses_ladder_settings(router: Router,
                                                      upstreams: SimpleNamespace) -> None:
    upstream = UpstreamSettings(upstreams.urls["small"], "m")
    with pytest.raises(ConfigError, match="upstreams is for K-model .* set edge/cloud"):
        create_app(router, ServeSettings(upstreams={"edge": upstream}), environ={})
    with pytest.raises(ConfigError, match="thresholds is for K-model"):
        create_app(router, ServeSettings(thresholds={"edge": 0.5}), environ={})


def test_a_utility_artifact_routes_by_probability_and_cost(utility_ladder_artifact: Path,
                                                           upstreams: SimpleNamespace) -> None:
    router = Router.load(utility_ladder_artifact, variant="fp32")
    assert isinstance(router, LadderRouter) and router.policy.rule == "utility"
    prompts = ["What is 2 plus 2?", QUESTION, "Spell the word number 9."]
    expected = [d.to_dict() for d in router.decide_batch(prompts)]
    with TestClient(make_app(router, upstreams)) as client:
        results = client.post("/v1/route", json={"prompts": prompts}).json()["results"]
        assert [(r["model"], r["reason"]) for r in results] == \
            [(e["model"], e["reason"]) for e in expected]
        bad = client.post("/v1/route", json={"prompt": QUESTION, "thresholds": {"small": 0}})
        assert bad.status_code == 422 and "utility rule" in bad.json()["error"]["message"]
        cheap = client.post("/v1/route", json={"prompt": QUESTION, "lambda_per_usd": 1e12})
        assert cheap.json()["model"] == "small" and "lambda 1e+12" in cheap.json()["reason"]
        for value in (-1, "x", True):
            bad = client.post("/v1/route", json={"prompt": QUESTION, "lambda_per_usd": value})
            assert bad.status_code == 422 and "lambda_per_usd must be a number >= 0" in \
                bad.json()["error"]["message"]
        for extra in ({"json": {"confroute_lambda_per_usd": 1e12}},
                      {"headers": {"x-confroute-lambda": "1e12"}}):
            body = {"model": "confroute", "messages": [{"role": "user", "content": QUESTION}]}
            body |= extra.get("json", {})
            forced = client.post("/v1/chat/completions", json=body,
                                 headers=extra.get("headers", {}))
            assert forced.status_code == 200, forced.text
            assert forced.headers["x-confroute-decision"] == "small"
        chat = client.post("/v1/chat/completions", json={
            "model": "confroute", "messages": [{"role": "user", "content": QUESTION}]})
        assert chat.status_code == 200
        assert chat.headers["x-confroute-decision"] == expected[1]["model"]
        health = client.get("/health").json()
        assert health["rule"] == "utility" and health["lambda_per_usd"] == pytest.approx(
            router.policy.lambda_per_usd)
        one = client.post("/v1/chat/completions", json={
            "model": "confroute", "confroute_threshold": 0.5,
            "messages": [{"role": "user", "content": QUESTION}]})
        assert one.status_code == 422 and "confroute_lambda_per_usd" in \
            one.json()["error"]["message"]
    with pytest.raises(ConfigError, match="utility rule"):
        make_app(router, upstreams, thresholds={"small": 0.5})


def test_a_lambda_override_is_refused_by_the_threshold_rule(client: TestClient) -> None:
    bad = client.post("/v1/route", json={"prompt": QUESTION, "lambda_per_usd": 5})
    assert bad.status_code == 422 and "threshold rule" in bad.json()["error"]["message"]
    assert bad.json()["error"]["code"] == "invalid_lambda"
    chat = client.post("/v1/chat/completions", headers={"x-confroute-lambda": "5"}, json={
        "model": "confroute", "messages": [{"role": "user", "content": QUESTION}]})
    assert chat.status_code == 422
