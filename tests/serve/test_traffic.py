"""The service's decision log, in process: every routed request recorded (text only when asked,
through the redaction hook), its usage, cost and fallbacks; POST /v1/feedback; /metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from served import CHAT, QUESTION, echo_servers, make_app, pick, served_router  # noqa: F401
from starlette.testclient import TestClient

from confroute.runtime import Router
from confroute.traffic.log import LogSettings
from confroute.traffic.schema import outcomes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
from logged import rows  # noqa: E402  (the decision-log tests' reader)


def log_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def test_every_chat_and_route_decision_is_recorded_without_text(
        served: Router, echo: SimpleNamespace, tmp_path: Path) -> None:
    url = log_url(tmp_path)
    app = make_app(served, echo, log=LogSettings(url=url, flush_interval_s=0.01))
    with TestClient(app) as client:
        chat = client.post("/v1/chat/completions", json=CHAT)
        route = client.post("/v1/route", json={"prompts": ["one", "two"]})
        stream = client.post("/v1/chat/completions", json={
            **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert chat.status_code == route.status_code == stream.status_code == 200
    logged = {r["request_id"]: r for r in rows(url)}
    ids = [chat.headers["x-confroute-request-id"], stream.headers["x-confroute-request-id"],
           *route.headers["x-confroute-request-id"].split(",")]
    assert sorted(logged) == sorted(ids) and len(set(ids)) == 4
    first = logged[ids[0]]
    assert first["text"] is None and first["text_chars"] == len(QUESTION)  # text off: hash only
    assert first["artifact_sha256"] == app.state.service.traffic.identity.sha256
    assert first["chosen_model"] == chat.headers["x-confroute-decision"]
    assert first["answering_model"] == chat.headers["x-confroute-route"]
    assert first["upstream_model"] == chat.headers["x-confroute-model"]
    assert first["prompt_tokens"] == chat.json()["usage"]["prompt_tokens"] > 0
    assert set(first["probabilities"]) == set(served.models) and first["latency_s"] > 0
    assert (first["cost_usd"] is not None) == (served.prices is not None)
    assert logged[ids[1]]["completion_tokens"] == chat.json()["usage"]["completion_tokens"]
    assert {logged[i]["endpoint"] for i in ids[2:]} == {"route"}
    assert QUESTION not in (tmp_path / "log.db").read_bytes().decode("latin-1")


def test_kept_text_goes_through_the_redaction_hook(router: Router, echo: SimpleNamespace,
                                                   tmp_path: Path) -> None:
    url = log_url(tmp_path)
    secret = "sk-proj-abcdefghijklmnopqrstuv012345 and me@example.com"
    app = make_app(router, echo, log=LogSettings(
        url=url, text=True, redact="confroute.traffic.records:mask_secrets"))
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json={
            "model": "confroute", "messages": [{"role": "user", "content": f"hi {secret}"}]})
    (row,) = rows(url)
    assert row["text"].startswith("hi ") and "sk-proj" not in row["text"]
    assert "me@example.com" not in row["text"]


def test_a_fallback_is_recorded_with_its_implicit_outcomes(
        served: Router, echo: SimpleNamespace, tmp_path: Path) -> None:
    url = log_url(tmp_path)
    cheapest = served.models[0]
    app = make_app(served, echo, {cheapest: "failing"}, log=LogSettings(url=url))
    with TestClient(app) as client:
        answer = client.post("/v1/chat/completions", json=CHAT, headers={
            "x-confroute-thresholds": pick(served.models, cheapest)})
        client.post("/v1/chat/completions", json=CHAT)  # the same prompt again: a retry
    assert answer.status_code == 200
    rid = answer.headers["x-confroute-request-id"]
    row = next(r for r in rows(url) if r["request_id"] == rid)
    assert row["chosen_model"] == cheapest and row["answering_model"] == served.models[1]
    assert row["fallbacks"][0]["model"] == cheapest and "HTTP 500" in row["fallbacks"][0]["error"]
    kinds = {o["kind"] for o in rows(url, outcomes) if o["request_id"] == rid}
    assert kinds == {"error", "fallback", "retry"}


def feedback_app(router: Router, echo: SimpleNamespace, tmp_path: Path, **settings: Any) -> Any:
    return make_app(router, echo, log=LogSettings(url=log_url(tmp_path)), token="tok",
                    **settings)


AUTH = {"authorization": "Bearer tok"}


def test_feedback_is_validated_idempotent_and_404_for_unknown_ids(
        router: Router, echo: SimpleNamespace, tmp_path: Path) -> None:
    with TestClient(feedback_app(router, echo, tmp_path)) as client:
        rid = client.post("/v1/chat/completions", json=CHAT, headers=AUTH) \
            .headers["x-confroute-request-id"]
        ok = [client.post("/v1/feedback", headers=AUTH, json=body) for body in (
            {"request_id": rid, "thumbs": "down"}, {"request_id": rid, "rating": 0.75},
            {"request_id": rid, "rating": 1, "source": "qa-team"})]
        bad = {name: client.post("/v1/feedback", headers=AUTH, json=body) for name, body in {
            "rating 2": {"request_id": rid, "rating": 2}, "NaN-ish": {"request_id": rid,
                                                                     "rating": "0.5"},
            "both": {"request_id": rid, "rating": 1, "thumbs": "up"},
            "neither": {"request_id": rid}, "thumbs": {"request_id": rid, "thumbs": "meh"},
            "no id": {"rating": 1}, "long id": {"request_id": "x" * 65, "rating": 1},
            "unknown field": {"request_id": rid, "rating": 1, "comment": "x"},
            "reserved source": {"request_id": rid, "rating": 1, "source": "judge"},
        }.items()}
        unknown = client.post("/v1/feedback", headers=AUTH,
                              json={"request_id": "no-such-id", "thumbs": "up"})
        stranger = client.post("/v1/feedback", json={"request_id": rid, "thumbs": "up"})
        not_json = client.post("/v1/feedback", headers={**AUTH, "content-type": "text/plain"},
                               content=b"request_id=x")
        listed = client.post("/v1/feedback", headers=AUTH, json=[rid])
        metrics = client.get("/metrics", headers=AUTH).text
    assert [r.status_code for r in ok] == [200] * 3
    assert {name: r.status_code for name, r in bad.items()} == dict.fromkeys(bad, 422)
    assert all("\n" not in r.json()["error"]["message"] for r in bad.values())
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["error"]["message"]
    assert stranger.status_code == 401 and not_json.status_code == 415
    assert listed.status_code == 400  # read_json: the body must be a JSON object
    feedback = [o for o in rows(log_url(tmp_path), outcomes) if o["kind"] == "feedback"]
    # one row per (request id, source): the second "user" report replaced the first
    assert sorted((o["source"], o["rating"]) for o in feedback) == [("qa-team", 1.0),
                                                                   ("user", 0.75)]
    assert "confroute_drift_feedback_rate 3.0" in metrics  # 3 accepted / 1 decision


def test_feedback_with_the_log_off_says_so(router: Router, echo: SimpleNamespace,
                                           tmp_path: Path) -> None:
    app = make_app(router, echo, log=LogSettings(enabled=False), token="tok")
    with TestClient(app) as client:
        answer = client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        feedback = client.post("/v1/feedback", headers=AUTH, json={
            "request_id": answer.headers["x-confroute-request-id"], "thumbs": "up"})
    assert answer.status_code == 200
    assert feedback.status_code == 503 and "log.enabled" in feedback.json()["error"]["message"]
    assert not list(tmp_path.glob("*.db"))


def metric(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    assert values, f"{name} not in /metrics"
    return sum(values)


def test_metrics_count_the_log_the_usage_cost_and_savings(
        ladder_router: Router, echo: SimpleNamespace, tmp_path: Path) -> None:
    app = make_app(ladder_router, echo, log=LogSettings(url=log_url(tmp_path),
                                                        flush_interval_s=0.01))
    with TestClient(app) as client:
        answers = [client.post("/v1/chat/completions", json=CHAT, headers={
            "x-confroute-thresholds": pick(ladder_router.models, m)})
            for m in ladder_router.models]
        assert app.state.service.traffic.log.flush(10)
        text = client.get("/metrics").text
    tokens = sum(a.json()["usage"]["prompt_tokens"] + a.json()["usage"]["completion_tokens"]
                 for a in answers)
    assert metric(text, "confroute_tokens_total") == tokens
    # written: the 3 decisions and 2 retry outcomes (the same prompt sent again)
    assert metric(text, "confroute_log_written") == 5 and metric(text, "confroute_log_dropped") == 0
    assert metric(text, "confroute_cost_usd_total") > 0
    # two of the three answers came from cheaper models than the top one
    assert metric(text, "confroute_savings_usd_total") > 0
    assert metric(text, "confroute_drift_realised_cloud_share") == pytest.approx(2 / 3)


def prefers_the_cloud(body: dict[str, Any]) -> Any:
    """A judge that picks the cloud's answer ("cloud says: ...") in either position."""
    from upstream import Answer

    user = body["messages"][-1]["content"]
    return Answer("[[A]]" if user.find("cloud says") < user.find("edge says") else "[[B]]")


def test_shadow_judging_runs_after_the_answer_and_stores_the_verdict(
        router: Router, echo: SimpleNamespace, tmp_path: Path) -> None:
    import time

    from upstream import echo_app, serve_in_thread

    from confroute.serve import UpstreamSettings
    from confroute.traffic.shadow import ShadowSettings

    url = log_url(tmp_path)
    with serve_in_thread(echo_app("judge", answer=prefers_the_cloud)) as judge_url:
        app = make_app(router, echo, log=LogSettings(url=url, flush_interval_s=0.01),
                       shadow=ShadowSettings(fraction=1.0, seed=0),
                       judge=UpstreamSettings(judge_url + "/v1", "judge-model"))
        with TestClient(app) as client:
            answer = client.post("/v1/chat/completions", json=CHAT,
                                 headers={"x-confroute-threshold": "1"})  # the edge answers
            deadline = time.monotonic() + 30
            while metric(client.get("/metrics").text, "confroute_shadow_judged") < 1:
                assert time.monotonic() < deadline, client.get("/metrics").text
                time.sleep(0.05)
            text = client.get("/metrics").text
    assert answer.headers["x-confroute-route"] == "edge"
    (verdict,) = [o for o in rows(url, outcomes) if o["kind"] == "judge"]
    assert verdict["request_id"] == answer.headers["x-confroute-request-id"]
    assert verdict["verdict"]["winner"] == "cloud" and verdict["source"] == "judge:edge:cloud"
    assert metric(text, "confroute_shadow_calls") == 3  # the cloud's answer, two judge orders
    assert "confroute_shadow_spend_usd_total" in text


def test_the_log_settings_come_from_the_file_and_the_compose_variable(tmp_path: Path) -> None:
    from confroute.errors import ConfigError
    from confroute.serve.settings import LOG_URL_ENV, load_settings
    from confroute.traffic.log import DEFAULT_URL

    environ = {LOG_URL_ENV: "postgresql+psycopg://confroute@db/confroute"}
    assert load_settings({}, environ={}).log.url == DEFAULT_URL
    assert load_settings({"log": {"text": True}}, environ=environ).log.url == environ[LOG_URL_ENV]
    given = load_settings({"log": {"url": "sqlite:///here.db"}}, environ=environ)
    assert given.log.url == "sqlite:///here.db"  # the file wins over the environment
    shadow = load_settings({"shadow": {"fraction": 0.1}, "drift": {"band": 0.1}}, environ={})
    assert shadow.shadow.fraction == 0.1 and shadow.drift.band == 0.1
    for bad, message in (({"log": {"queue_size": 0}}, "log.queue_size"),
                         ({"shadow": {"fraction": 2}}, "shadow.fraction"),
                         ({"log": {"colour": 1}}, "colour")):
        with pytest.raises(ConfigError, match=message):
            load_settings(bad, environ={})


def test_a_responses_request_is_recorded_with_its_usage(router: Router, echo: SimpleNamespace,
                                                        tmp_path: Path) -> None:
    url = log_url(tmp_path)
    with TestClient(make_app(router, echo, log=LogSettings(url=url))) as client:
        answer = client.post("/v1/responses", json={"model": "confroute", "input": QUESTION})
    assert answer.status_code == 200, answer.text
    (row,) = rows(url)
    assert row["request_id"] == answer.headers["x-confroute-request-id"]
    assert row["endpoint"] == "responses" and row["text_chars"] == len(QUESTION)
    usage = answer.json().get("usage") or {}
    assert row["prompt_tokens"] == usage.get("input_tokens")
