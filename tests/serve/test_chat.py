"""/v1/chat/completions for a pair and for three models (one code path), in-process in front
of real echo upstreams on loopback: the chosen model's upstream with its name and key, the
overrides, the request's `model`, streaming, the fallback up the ladder (never down), and what
the headers say (upstream failure kinds: test_upstream_failures.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from served import (  # noqa: F401
    CHAT,
    KEYS,
    QUESTION,
    echo_servers,
    make_app,
    metric,
    named,
    pick,
    seen,
    served_router,
    sse_text,
)
from starlette.testclient import TestClient

from confroute.runtime import Router

from conftest import IMAGE

THRESHOLDS = "x-confroute-thresholds"


@pytest.fixture()
def client(served: Router, echo: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(make_app(served, echo)) as test_client:
        yield test_client


@pytest.mark.parametrize("position", [0, -1])
def test_chat_goes_to_the_chosen_model_with_its_name_and_key(
        client: TestClient, served: Router, echo: SimpleNamespace, position: int) -> None:
    model = served.models[position]
    reply = client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.3},
                        headers={THRESHOLDS: pick(served.models, model)})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == f"{model} says: {QUESTION}"
    headers = reply.headers
    assert (headers["x-confroute-decision"], headers["x-confroute-route"],
            headers["x-confroute-model"]) == (model, model, f"{model}-model")
    expected = served.decide(CHAT["messages"], thresholds=named(pick(served.models, model)))
    assert headers["x-confroute-reason"] == expected.reason
    assert named(headers["x-confroute-probabilities"]) == pytest.approx(
        expected.probabilities, abs=1e-5)
    assert named(headers["x-confroute-thresholds"]) == pytest.approx(expected.thresholds)
    if len(served.models) == 2:  # a pair's two-model headers, as before the merge
        assert float(headers["x-confroute-score"]) == pytest.approx(expected.score, abs=1e-5)
        assert float(headers["x-confroute-threshold"]) == pytest.approx(expected.threshold)
    else:
        assert "x-confroute-score" not in headers and "x-confroute-threshold" not in headers
    request = echo.apps[model].state.seen[-1]
    assert request["model"] == f"{model}-model"
    assert request["authorization"] == f"Bearer {KEYS[model]}"
    assert request["body"]["temperature"] == 0.3 and THRESHOLDS not in request["body"]


def test_a_pair_takes_its_threshold_from_a_header_or_the_body(router: Router,
                                                              echo: SimpleNamespace) -> None:
    with TestClient(make_app(router, echo)) as test_client:
        for extra in ({"headers": {"x-confroute-threshold": "0"}},
                      {"json": {**CHAT, "confroute_threshold": 0}}):
            reply = test_client.post("/v1/chat/completions", **{"json": CHAT, **extra})
            assert reply.headers["x-confroute-route"] == "cloud"
            assert reply.headers["x-confroute-reason"].startswith("score ")
            assert float(reply.headers["x-confroute-threshold"]) == 0.0
        assert "confroute_threshold" not in echo.apps["cloud"].state.seen[-1]["body"]


def test_chat_overrides_in_the_body_and_forced_model(client: TestClient, served: Router,
                                                     echo: SimpleNamespace) -> None:
    cheapest, second, top = served.models[0], served.models[1], served.models[-1]
    before = seen(echo)
    reply = client.post("/v1/chat/completions", json={
        **CHAT, "confroute_thresholds": {cheapest: 1, second: 0}})
    assert reply.headers["x-confroute-route"] == second
    assert "confroute_thresholds" not in echo.apps[second].state.seen[-1]["body"]
    reply = client.post("/v1/chat/completions", json={
        **CHAT, "confroute_force_model": top, "confroute_thresholds": {cheapest: 0}})
    assert reply.headers["x-confroute-route"] == top
    assert reply.headers["x-confroute-reason"] == "forced by the request"
    assert "confroute_force_model" not in echo.apps[top].state.seen[-1]["body"]
    # a header wins over its body field
    reply = client.post("/v1/chat/completions", json={**CHAT, "confroute_force_model": top},
                        headers={"x-confroute-force-model": cheapest})
    assert reply.headers["x-confroute-route"] == cheapest
    after = seen(echo)
    assert sum(after[m] - before[m] for m in served.models) == 3


@pytest.mark.parametrize("position", [0, -1])
def test_the_requests_model_forces_a_served_model(client: TestClient, served: Router,
                                                  position: int) -> None:
    """A `model` naming one of the artifact's models (as /v1/models lists them) forces it;
    "confroute" or a name the service does not know is routed (clients send some name)."""
    model = served.models[position]
    other = served.models[-1 - position]
    reply = client.post("/v1/chat/completions", json={**CHAT, "model": model},
                        headers={THRESHOLDS: pick(served.models, other)})
    assert reply.headers["x-confroute-route"] == model
    assert reply.headers["x-confroute-reason"] == "forced by the request"
    for name in ("confroute", "gpt-4o", f"{model}-model"):
        routed = client.post("/v1/chat/completions", json={**CHAT, "model": name},
                             headers={THRESHOLDS: pick(served.models, other)})
        assert routed.headers["x-confroute-route"] == other
    explicit = client.post("/v1/chat/completions", json={**CHAT, "model": model},
                           headers={"x-confroute-force-model": other})
    assert explicit.headers["x-confroute-route"] == other  # an explicit force wins


def test_chat_streams_from_the_chosen_model(client: TestClient, served: Router) -> None:
    model = served.models[1]
    reply = client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                        headers={THRESHOLDS: pick(served.models, model)})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-confroute-route"] == model
    text, chunks = sse_text(reply.text)
    assert text == f"{model} says: {QUESTION}" and len(chunks) > 3


def test_chat_scores_the_turn_the_artifact_records(client: TestClient, served: Router) -> None:
    messages = [{"role": "user", "content": "What is 2 plus 2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "Prove the inequality for all n > 5 using induction."}]
    reply = client.post("/v1/chat/completions", json={"messages": messages})
    scored = served.texts([messages])[0]  # the manifest's `turn` setting picks it, as in training
    assert named(reply.headers["x-confroute-probabilities"]) == pytest.approx(
        dict(zip(served.models, served.adequacy([scored])[0].tolist(), strict=True)), abs=1e-5)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_falls_back_up_the_ladder(served: Router, echo: SimpleNamespace,
                                       caplog: pytest.LogCaptureFixture, stream: bool) -> None:
    """Every model below the top fails (connection refused, then HTTP 500): the top answers."""
    caplog.set_level(logging.DEBUG)
    models = served.models
    failing = dict(zip(models[:-1], ["down", "failing"], strict=False))
    with TestClient(make_app(served, echo, failing)) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                 headers={THRESHOLDS: pick(models, models[0])})
        text = test_client.get("/metrics").text
    assert reply.status_code == 200, reply.text
    assert (reply.headers["x-confroute-decision"], reply.headers["x-confroute-route"],
            reply.headers["x-confroute-model"]) == (models[0], models[-1], f"{models[-1]}-model")
    reason = reply.headers["x-confroute-reason"]
    assert reason.startswith(f"fallback: {models[0]} upstream failed: connection failed ("), reason
    if len(models) == 3:
        assert f"; {models[1]} upstream failed: HTTP 500: failing is failing on purpose" in reason
    assert f"; chose {models[0]}: " in reason
    if stream:
        assert sse_text(reply.text)[0] == f"{models[-1]} says: {QUESTION}"
    assert metric(text, f'confroute_upstream_errors_total{{kind="connection",'
                        f'upstream="{models[0]}"}}') == 1
    assert metric(text, f'confroute_fallbacks_total{{from_upstream="{models[0]}"}}') == 1
    assert not any(key in caplog.text for key in KEYS.values())


def test_a_prompt_too_long_for_a_model_goes_up(served: Router, echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    with TestClient(make_app(served, echo, {cheapest: "length"})) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: pick(served.models, cheapest)})
    assert reply.status_code == 200 and reply.headers["x-confroute-route"] == served.models[1]
    assert "maximum context length" in reply.headers["x-confroute-reason"]


@pytest.mark.parametrize("position", [1, -1])
def test_fallback_never_goes_down_the_ladder(served: Router, echo: SimpleNamespace,
                                             position: int) -> None:
    """A model chosen above the cheapest that fails falls back only to more expensive ones:
    for a pair the cloud never falls back to the edge (a 502 says why)."""
    models = served.models
    chosen = models[position]
    servers = {m: ("failing" if i == models.index(chosen) else "limited")
               for i, m in enumerate(models) if i >= models.index(chosen)}
    before = seen(echo)
    with TestClient(make_app(served, echo, servers)) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: pick(models, chosen)})
    assert reply.status_code == 502, reply.text
    message = reply.json()["error"]["message"]
    assert message.startswith(f"no upstream answered: {chosen} upstream failed: HTTP 500")
    assert reply.headers["x-confroute-decision"] == chosen
    assert "x-confroute-route" not in reply.headers
    assert seen(echo)[models[0]] == before[models[0]]  # the cheaper model was never asked


FAILURES = {"down": "connection failed (ConnectError)", "slow": "timed out",
            "failing": "HTTP 500: failing is failing on purpose", "limited": "HTTP 429",
            "limited9": "HTTP 429", "leaky": "HTTP 503: auth failed for key ***"}


@pytest.mark.parametrize("servers, status, code", [
    (("down", "failing", "leaky"), 502, "upstream_unavailable"),
    (("limited9", "limited", "limited9"), 429, "rate_limit_exceeded"),
    (("slow", "slow", "slow"), 504, "upstream_unavailable"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_every_model_failing_is_an_error_listing_each(
        served: Router, echo: SimpleNamespace, servers: tuple[str, ...], status: int,
        code: str, stream: bool) -> None:
    models = served.models
    chosen = dict(zip(models, servers, strict=False))  # a pair: the first two
    timeout = {"read_timeout_s": 0.5} if "slow" in servers else {}  # slow: 5 s to answer
    with TestClient(make_app(served, echo, dict(chosen), **timeout)) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                 headers={THRESHOLDS: pick(models, models[0])})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    parts = [f"{model} upstream failed: {FAILURES[server]}" for model, server in chosen.items()]
    positions = [error["message"].find(part) for part in parts]  # in ladder order
    assert -1 not in positions and positions == sorted(positions), error["message"]
    if status == 429:
        assert error["message"].startswith("every upstream is rate-limited: ")
        assert reply.headers["retry-after"] == "3"  # the soonest any model takes requests
    assert reply.headers["x-confroute-decision"] == models[0]
    assert not any(key in reply.text for key in KEYS.values()) and "127.0.0.1" not in reply.text


def test_without_fallback_only_the_chosen_model_is_asked(served: Router,
                                                         echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    before = seen(echo)
    with TestClient(make_app(served, echo, {cheapest: "failing"}, fallback=False)) as client:
        reply = client.post("/v1/chat/completions", json=CHAT,
                            headers={THRESHOLDS: pick(served.models, cheapest)})
    assert reply.status_code == 502
    assert reply.json()["error"]["message"] == \
        f"no upstream answered: {cheapest} upstream failed: HTTP 500: failing is failing on purpose"
    assert seen(echo)[served.models[1]] == before[served.models[1]]


@pytest.mark.parametrize("fallback", [True, False])
def test_a_model_without_an_upstream_passes_its_requests_up(
        served: Router, echo: SimpleNamespace, fallback: bool) -> None:
    cheapest, second = served.models[0], served.models[1]
    with TestClient(make_app(served, echo, {cheapest: None}, fallback=fallback)) as client:
        assert client.get("/health").json()["upstreams"][cheapest] == \
            {"configured": False, "model": None}
        reply = client.post("/v1/chat/completions", json=CHAT,
                            headers={THRESHOLDS: pick(served.models, cheapest)})
        assert reply.status_code == 200, reply.text
        assert (reply.headers["x-confroute-decision"], reply.headers["x-confroute-route"]) == \
            (cheapest, second)
        assert reply.headers["x-confroute-reason"].startswith(
            f"fallback: {cheapest} upstream not configured; chose {cheapest}: ")
        assert client.post("/v1/route", json={"prompt": QUESTION, "thresholds": {
            cheapest: 0}}).json()["model"] == cheapest  # /v1/route still says what it chose


def test_without_upstreams_the_service_routes_only(served: Router,
                                                   echo: SimpleNamespace) -> None:
    app = make_app(served, echo, dict.fromkeys(served.models))
    with TestClient(app) as test_client:
        assert test_client.post("/v1/route", json={"prompt": QUESTION}).status_code == 200
        reply = test_client.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["code"] == "upstream_not_configured"
    assert ("add an upstreams section to the --config file, one entry (base_url, model) per "
            f"model of {', '.join(served.models)}") in error["message"]


def test_a_stream_that_breaks_off_does_not_fall_back(served: Router,
                                                     echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    before = seen(echo)
    with TestClient(make_app(served, echo, {cheapest: "broken"})) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers={THRESHOLDS: pick(served.models, cheapest)})
    assert reply.headers["x-confroute-route"] == cheapest
    events = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 3  # two chunks relayed, then the error: too late to fall back
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_stream_error"
    assert seen(echo)[served.models[1]] == before[served.models[1]]


def test_a_reason_with_any_characters_is_a_valid_header(served: Router,
                                                        echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    with TestClient(make_app(served, echo, {cheapest: "unicode"})) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={THRESHOLDS: pick(served.models, cheapest)})
    assert reply.status_code == 200, reply.text
    assert "HTTP 503: \\xfcberlastet \\u2192 sp\\xe4ter erneut versuchen" in \
        reply.headers["x-confroute-reason"]


def test_no_text_to_score_goes_to_the_top_model(client: TestClient, served: Router) -> None:
    messages = [{"role": "user", "content": [IMAGE]}]
    reply = client.post("/v1/chat/completions", json={"messages": messages},
                        headers={THRESHOLDS: pick(served.models, served.models[0])})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == served.models[-1]
    assert reply.headers["x-confroute-reason"].startswith("no text to score")
    assert "x-confroute-probabilities" not in reply.headers
    assert "x-confroute-score" not in reply.headers
    forced = client.post("/v1/chat/completions", json={"messages": messages},
                         headers={"x-confroute-force-model": served.models[0]})
    assert forced.headers["x-confroute-route"] == served.models[0]


@pytest.mark.parametrize("body, headers, code, message", [
    ({}, {THRESHOLDS: "CHEAPEST"}, "invalid_threshold",
     "x-confroute-thresholds must be model=threshold pairs separated by commas"),
    ({}, {THRESHOLDS: "CHEAPEST=2"}, "invalid_threshold",
     "x-confroute-thresholds.CHEAPEST: threshold must be a number in [0, 1]; found 2.0"),
    ({}, {THRESHOLDS: "CHEAPEST=lots"}, "invalid_threshold", "found 'lots'"),
    ({}, {THRESHOLDS: "huge=0.5"}, "unknown_model", "x-confroute-thresholds: unknown model"),
    ({"confroute_thresholds": {"CHEAPEST": -1}}, {}, "invalid_threshold",
     "confroute_thresholds.CHEAPEST: threshold must be a number in [0, 1]"),
    ({}, {"x-confroute-force-model": "huge"}, "unknown_model",
     "x-confroute-force-model: unknown model 'huge'; this service routes among MODELS"),
    ({"confroute_force_model": ["x"]}, {}, "unknown_model",
     "confroute_force_model: unknown model list"),
    ({}, {"x-confroute-lambda": "5"}, "invalid_lambda", "routes by the threshold rule"),
])
def test_bad_chat_overrides_are_a_422_before_any_upstream_call(
        client: TestClient, served: Router, echo: SimpleNamespace, body: dict, headers: dict,
        code: str, message: str) -> None:
    swap = {"CHEAPEST": served.models[0], "MODELS": ", ".join(served.models)}
    for old, new in swap.items():
        message = message.replace(old, new)
        body = json.loads(json.dumps(body).replace(old, new))
        headers = {k: v.replace(old, new) for k, v in headers.items()}
    before = seen(echo)
    reply = client.post("/v1/chat/completions", json={**CHAT, **body}, headers=headers)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and message in error["message"], error
    assert seen(echo) == before


@pytest.mark.parametrize("body, headers, name", [
    ({}, {"x-confroute-threshold": "lots"}, "x-confroute-threshold"),
    ({"confroute_threshold": -1}, {}, "confroute_threshold"),
])
def test_one_threshold_is_for_a_pair(client: TestClient, served: Router, echo: SimpleNamespace,
                                     body: dict, headers: dict, name: str) -> None:
    before = seen(echo)
    reply = client.post("/v1/chat/completions", json={**CHAT, **body}, headers=headers)
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "invalid_threshold"
    message = reply.json()["error"]["message"]
    if len(served.models) == 2:
        assert message.startswith(f"{name}: threshold must be a number in [0, 1]"), message
    else:
        assert f"one threshold ({name}) is for two models; this artifact routes among " \
            f"{', '.join(served.models)}" in message, message
    assert seen(echo) == before


@pytest.mark.parametrize("which", ["priced_pair_artifact", "utility_ladder_artifact"])
def test_a_utility_artifact_routes_by_probability_and_cost(
        which: str, tmp_path: Path, echo: SimpleNamespace, request: pytest.FixtureRequest
        ) -> None:
    router = Router.load(request.getfixturevalue(which), variant="fp32")
    if router.policy.rule != "utility":  # the priced pair starts with the threshold rule
        prompts = [f"Prove theorem {i} by induction." for i in range(30)]
        router.policy = router.calibration(prompts, rule="utility", target_cost=float(
            router.costs(prompts).mean())).policy
    cheapest = router.models[0]
    prompts = ["What is 2 plus 2?", QUESTION, "Spell the word number 9."]
    expected = [d.to_dict() for d in router.decide_batch(prompts)]
    with TestClient(make_app(router, echo)) as client:
        results = client.post("/v1/route", json={"prompts": prompts}).json()["results"]
        assert [(r["model"], r["reason"]) for r in results] == \
            [(e["model"], e["reason"]) for e in expected]
        assert all("thresholds" not in r and "threshold" not in r for r in results)
        assert all(r["lambda_per_usd"] == router.policy.lambda_per_usd for r in results)
        bad = client.post("/v1/route", json={"prompt": QUESTION, "thresholds": {cheapest: 0}})
        assert bad.status_code == 422 and "utility rule" in bad.json()["error"]["message"]
        cheap = client.post("/v1/route", json={"prompt": QUESTION, "lambda_per_usd": 1e12})
        assert cheap.json()["model"] == cheapest and "lambda 1e+12" in cheap.json()["reason"]
        for value in (-1, "x", True):
            bad = client.post("/v1/route", json={"prompt": QUESTION, "lambda_per_usd": value})
            assert bad.status_code == 422 and "lambda_per_usd must be a number >= 0" in \
                bad.json()["error"]["message"]
        forced = client.post("/v1/chat/completions", json=CHAT,
                             headers={"x-confroute-lambda": "1e12"})
        assert forced.status_code == 200, forced.text
        assert forced.headers["x-confroute-decision"] == cheapest
        assert "x-confroute-thresholds" not in forced.headers
        health = client.get("/health").json()
        assert health["rule"] == "utility" and "thresholds" not in health
        one = client.post("/v1/chat/completions", json={**CHAT, "confroute_threshold": 0.5})
        assert one.status_code == 422 and "confroute_lambda_per_usd" in \
            one.json()["error"]["message"]
