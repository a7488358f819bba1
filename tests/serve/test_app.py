"""The serve app in-process for a pair and for three models (one code path), against real echo
upstreams on loopback: /health, /v1/route and its overrides, /v1/models, auth, metrics, and the
settings that set the routing (chat forwarding: test_chat.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import openai
import pytest
from served import KEYS, QUESTION, echo_servers, make_app, metric, served_router  # noqa: F401
from starlette.testclient import TestClient
from upstream import serve_in_thread

from confroute.errors import ArtifactError, ConfigError
from confroute.runtime import Router
from confroute.serve import create_app

TOKEN = "tok-SECRET-3333"


@pytest.fixture()
def client(served: Router, echo: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(make_app(served, echo)) as test_client:
        yield test_client


def close(result: dict, expected: dict) -> None:
    """`result` (JSON) is the decision `expected` (to_dict), up to float32 noise."""
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == (pytest.approx(value, abs=1e-6) if key in (
            "score", "probabilities", "threshold", "thresholds") else value), key


def test_health_says_what_is_loaded(client: TestClient, served: Router) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["turn"] == served.turn
    assert body["models"] == served.models and body["rule"] == "threshold"
    assert list(body["thresholds"].values()) == pytest.approx(served.policy.thresholds.tolist())
    assert body.get("threshold") == served.threshold  # a pair's threshold, None for K models
    assert body["upstreams"] == {m: {"configured": True, "model": f"{m}-model"}
                                 for m in served.models}
    assert not any(key in json.dumps(body) for key in KEYS.values())


def test_route_decides_as_the_runtime_does(client: TestClient, served: Router) -> None:
    conversation = [{"role": "user", "content": "What is 3 plus 4?"},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "Prove it by induction on 4."}]
    prompts = ["What is 2 plus 2?", conversation, QUESTION, "Spell the word number 9."]
    expected = [d.to_dict() for d in served.decide_batch(prompts)]
    results = client.post("/v1/route", json={"prompts": prompts}).json()["results"]
    for result, want in zip(results, expected, strict=True):
        close(result, want)
    close(client.post("/v1/route", json={"prompt": QUESTION}).json(), expected[2])
    if len(served.models) == 2:  # the two-model fields first, as before the merge
        assert list(results[0])[:3] == ["score", "route", "threshold"]


@pytest.mark.parametrize("override", [{"threshold": 0}, {"threshold": 1}, {"model": "top"},
                                      {"model": "cheapest"}, {"thresholds": {"cheapest": 0}}])
def test_route_overrides_and_forced_model(client: TestClient, served: Router,
                                          override: dict) -> None:
    models = served.models
    names = {"top": models[-1], "cheapest": models[0]}
    body = {k: names.get(v, v) if k == "model" else v for k, v in override.items()}
    if "thresholds" in body:
        body["thresholds"] = {models[0]: 0}
    reply = client.post("/v1/route", json={"prompt": QUESTION, **body})
    if "threshold" in body and len(models) > 2:
        assert reply.status_code == 422 and "one threshold (threshold) is for two models" in \
            reply.json()["error"]["message"]
        return
    close(reply.json(), served.decide(QUESTION, **body).to_dict())
    if body.get("threshold") is not None:  # 0: everything to the cloud, 1: nothing
        assert reply.json()["route"] == ("cloud" if body["threshold"] == 0 else "edge")
    if "model" in body:
        assert reply.json()["reason"] == "forced by the request"


@pytest.mark.parametrize("batch_max", [1, 16])
def test_concurrent_requests_get_their_own_decisions(served: Router, echo: SimpleNamespace,
                                                     batch_max: int) -> None:
    prompts = [f"Is {i} larger than {3 * i}? " + "word " * (i % 7) for i in range(40)]
    expected = np.array([served.adequacy([p])[0] for p in prompts])  # one prompt at a time
    app = make_app(served, echo, batch_max=batch_max, score_workers=2)

    async def ask_all() -> list[list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            replies = await asyncio.gather(*(http.post("/v1/route", json={"prompt": p})
                                             for p in prompts))
            text = (await http.get("/metrics")).text
        assert metric(text, "confroute_score_batch_prompts_sum") == len(prompts)
        return [list(r.json()["probabilities"].values()) for r in replies]

    np.testing.assert_allclose(asyncio.run(ask_all()), expected, atol=1e-6)


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"", 400, "empty_body"),
    (b"[1, 2]", 400, "invalid_json"),
    (b'"just a string"', 400, "invalid_json"),
    (b"{}", 422, "missing_prompt"),
    (b'{"prompt": "a", "prompts": ["b"]}', 422, "missing_prompt"),
    (b'{"prompts": "not a list"}', 422, "invalid_prompts"),
    (b'{"prompts": []}', 422, "invalid_prompts"),
    (b'{"prompt": "   "}', 422, "invalid_prompt"),
    (b'{"prompt": 42}', 422, "invalid_prompt"),
    (b'{"prompt": [{"role": "assistant", "content": "hi"}]}', 422, "invalid_prompt"),
    (b'{"prompt": "a", "treshold": 0.5}', 422, "unknown_field"),
    (b'{"prompt": "a", "threshold": 1.5}', 422, "invalid_threshold"),
    (b'{"prompt": "a", "threshold": "high"}', 422, "invalid_threshold"),
    (b'{"prompt": "a", "thresholds": {"huge": 0.5}}', 422, "unknown_model"),
    (b'{"prompt": "a", "thresholds": [0.5]}', 422, "invalid_threshold"),
    (b'{"prompt": "a", "model": "gpt-9"}', 422, "unknown_model"),
    (b'{"prompt": "a", "model": 3}', 422, "unknown_model"),
    (b'{"prompt": "a", "lambda_per_usd": 5}', 422, "invalid_lambda"),
    (b'{"prompts": ["a", "a", "a", "a", "a"]}', 413, "too_many_prompts"),
    (json.dumps({"prompt": "x" * 2001}).encode(), 413, "prompt_too_long"),
    (json.dumps({"prompt": "x" * 5000}).encode(), 413, "body_too_large"),
])
def test_bad_route_requests_get_json_errors(served: Router, echo: SimpleNamespace,
                                            body: bytes, status: int, code: str) -> None:
    app = make_app(served, echo, max_prompts=4, max_prompt_chars=2000, max_body_bytes=4096)
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/route", content=body,
                                 headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "unknown_field":
        assert f"this artifact routes among {', '.join(served.models)}" in error["message"]


@pytest.mark.parametrize("raw, message", [
    (b'{"prompt": "a", "thresholds": {"huge": 0.5}}',
     "thresholds: unknown model 'huge'; this service routes among MODELS"),
    (b'{"prompt": "a", "thresholds": {"CHEAPEST": 1.5}}',
     "thresholds.CHEAPEST: threshold must be a number in [0, 1]; found 1.5"),
    (b'{"prompt": "a", "thresholds": {"CHEAPEST": -0.1}}', "found -0.1"),
    (b'{"prompt": "a", "thresholds": {"CHEAPEST": "high"}}', "found 'high'"),
    (b'{"prompt": "a", "thresholds": [0.5]}',
     'thresholds must map model names to thresholds, e.g. {"CHEAPEST": 0.8}; found list'),
    (b'{"prompt": "a", "model": "gpt-9"}', "model: unknown model 'gpt-9'"),
    (b'{"prompt": "a", "model": 3}', "model: unknown model int"),
    (b'{"prompt": "a", "lambda_per_usd": 5}', "routes by the threshold rule, which has no "
                                              "lambda to override"),
])
def test_bad_route_overrides_name_the_value(client: TestClient, served: Router, raw: bytes,
                                            message: str) -> None:
    raw = raw.replace(b"CHEAPEST", served.models[0].encode())
    message = message.replace("CHEAPEST", served.models[0])
    message = message.replace("MODELS", ", ".join(served.models))
    reply = client.post("/v1/route", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and message in reply.json()["error"]["message"], reply.text


def test_server_thresholds_replace_the_artifacts(served: Router, echo: SimpleNamespace) -> None:
    cheapest = served.models[0]
    artifact = served.policy.thresholds.tolist()
    with TestClient(make_app(served, echo, thresholds={cheapest: 0.0})) as test_client:
        result = test_client.post("/v1/route", json={"prompt": QUESTION}).json()
        assert result["model"] == cheapest
        assert list(result["thresholds"].values()) == pytest.approx([0.0, *artifact[1:]])
        assert test_client.get("/health").json()["thresholds"][cheapest] == 0.0
        again = test_client.post("/v1/route", json={"prompt": QUESTION, "thresholds": {
            cheapest: 1, served.models[1]: 0}})
        assert again.json()["model"] == served.models[1]  # the request's override wins


def test_a_pair_threshold_setting_is_the_two_model_view(router: Router,
                                                        echo: SimpleNamespace) -> None:
    with TestClient(make_app(router, echo, threshold=0.0)) as test_client:
        result = test_client.post("/v1/route", json={"prompt": "What is 2 plus 2?"}).json()
        assert (result["route"], result["threshold"]) == ("cloud", 0.0)
        assert test_client.get("/health").json()["threshold"] == 0.0
    with pytest.raises(ConfigError, match="give threshold or thresholds.edge, not both"):
        make_app(router, echo, threshold=0.2, thresholds={"edge": 0.5})


def test_openai_sdk_lists_the_artifacts_models(served: Router, echo: SimpleNamespace) -> None:
    with serve_in_thread(make_app(served, echo)) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["confroute", *served.models]
        assert sdk.models.retrieve(served.models[-1]).owned_by == "confroute"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve(f"{served.models[-1]}-model")  # an upstream's name is not one


def test_oversize_body_without_content_length_is_refused(served: Router,
                                                         echo: SimpleNamespace) -> None:
    def chunks() -> Iterator[bytes]:  # a generator body is sent chunked, with no length
        yield b'{"prompt": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    with TestClient(make_app(served, echo, max_body_bytes=1000)) as test_client:
        reply = test_client.post("/v1/route", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"


def test_unknown_paths_and_methods_get_json_errors(client: TestClient) -> None:
    assert client.get("/v2/nothing").json()["error"]["code"] == "not_found"
    reply = client.get("/v1/route")
    assert reply.status_code == 405 and "error" in reply.json()


def test_bearer_token(served: Router, echo: SimpleNamespace) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    with TestClient(make_app(served, echo, token=TOKEN)) as test_client:
        assert test_client.get("/health").status_code == 200  # for load balancers
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            reply = test_client.post("/v1/route", json={"prompt": "hi"}, headers=headers)
            assert reply.status_code == 401, headers
            assert reply.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in reply.text
        assert test_client.get("/metrics").status_code == 401
        good = {"authorization": f"Bearer {TOKEN}"}
        assert test_client.post("/v1/route", json={"prompt": "hi"}, headers=good).status_code == 200
        assert test_client.post("/v1/chat/completions", json=chat).status_code == 401
        assert test_client.post("/v1/chat/completions", json=chat, headers=good).status_code == 200


def test_metrics_count_requests_decisions_and_latency(served: Router,
                                                      echo: SimpleNamespace) -> None:
    cheapest, top = served.models[0], served.models[-1]
    with TestClient(make_app(served, echo)) as test_client:
        for thresholds in ({cheapest: 0}, {cheapest: 0}):
            test_client.post("/v1/route", json={"prompt": QUESTION, "thresholds": thresholds})
        test_client.post("/v1/route", json={"prompts": [QUESTION] * 3, "model": top})
        test_client.post("/v1/route", json={"prompt": QUESTION, "treshold": 1})
        # refused by the request guard, before any endpoint: counted apart
        test_client.post("/v1/route", content=b"{", headers={"content-type": "application/json"})
        test_client.post("/v1/route", content=b"{}", headers={"content-type": "text/plain"})
        text = test_client.get("/metrics").text
    assert metric(text, 'confroute_requests_total{endpoint="route",status="200"}') == 3
    assert metric(text, 'confroute_requests_total{endpoint="route",status="422"}') == 1
    assert metric(text, 'confroute_refused_total{code="invalid_json"}') == 1
    assert metric(text, 'confroute_refused_total{code="unsupported_media_type"}') == 1
    assert metric(text, f'confroute_routes_total{{endpoint="route",route="{cheapest}"}}') == 2
    assert metric(text, f'confroute_routes_total{{endpoint="route",route="{top}"}}') == 3
    assert metric(text, 'confroute_request_seconds_count{endpoint="route"}') == 4
    assert 'confroute_request_seconds_bucket{endpoint="route",le="0.005"}' in text
    assert metric(text, "confroute_score_batch_prompts_sum") == 5


def test_each_app_has_its_own_metrics(router: Router, echo: SimpleNamespace) -> None:
    with TestClient(make_app(router, echo)) as one, TestClient(make_app(router, echo)) as two:
        one.post("/v1/route", json={"prompt": "hi"})
        assert metric(two.get("/metrics").text,
                      'confroute_requests_total{endpoint="route",status="200"}') == 0


def test_a_changed_artifact_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, copy)
    manifest = json.loads((copy / "router.json").read_text())
    model = manifest["onnx"]["variants"][manifest["onnx"]["default_variant"]]
    with open(copy / model, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match="sha256"):
        create_app(copy)
    with pytest.raises(ArtifactError, match="does not exist"):
        create_app(tmp_path / "missing")


def test_serving_imports_neither_torch_nor_transformers(tiny_artifact: Path) -> None:
    code = ("import sys\n"
            "import confroute.cli.serve\n"
            "from confroute.serve import create_app\n"
            "from starlette.testclient import TestClient\n"
            f"with TestClient(create_app({str(tiny_artifact)!r})) as c:\n"
            "    assert c.post('/v1/route', json={'prompt': 'hi'}).status_code == 200\n"
            "bad = [m for m in ('torch', 'transformers', 'pytorch_lightning')\n"
            "       if m in sys.modules]\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
