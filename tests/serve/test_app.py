"""The serve app in-process, against real echo upstreams on loopback (uvicorn in threads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient
from upstream import echo_app, serve_in_thread

from confroute.errors import ArtifactError, ConfigError
from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app, load_settings
from confroute.serve.settings import resolve_upstreams

EDGE_KEY, CLOUD_KEY, TOKEN = "sk-edge-SECRET-1111", "sk-cloud-SECRET-2222", "tok-SECRET-3333"
KEYS = {"CONFROUTE_EDGE_API_KEY": EDGE_KEY, "CONFROUTE_CLOUD_API_KEY": CLOUD_KEY}
CHAT = {"model": "whatever", "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def router(tiny_artifact: Path) -> Router:
    return Router.load(tiny_artifact)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {"edge": echo_app("edge", api_key=EDGE_KEY),
            "cloud": echo_app("cloud", api_key=CLOUD_KEY),
            "failing": echo_app("failing", fail_status=500),
            "limited": echo_app("limited", fail_status=429),
            "slow": echo_app("slow", delay_s=5.0), "broken": echo_app("broken", break_after=2)}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) + "/v1"
                for name, app in apps.items()}
        urls["down"] = closed_port_url()
        yield SimpleNamespace(urls=urls, apps=apps)


def make_app(router: Router, upstreams: SimpleNamespace, edge: str | None = "edge",
             cloud: str | None = "cloud", **settings: Any) -> Any:
    def upstream(name: str | None, model: str) -> UpstreamSettings:
        return UpstreamSettings(upstreams.urls[name], model) if name else UpstreamSettings()

    cfg = ServeSettings(edge=upstream(edge, "edge-model"), cloud=upstream(cloud, "cloud-model"),
                        read_timeout_s=0.5, **settings)
    return create_app(router, cfg, environ=KEYS)


@pytest.fixture()
def client(router: Router, upstreams: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(make_app(router, upstreams)) as test_client:
        yield test_client


def sse_text(body: str) -> tuple[str, list[dict]]:
    """The concatenated content deltas of an SSE chat stream, and its events."""
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks), chunks


def metric(text: str, name: str) -> float:
    """The value of one sample line of Prometheus text, e.g. 'x_total{a="b"}'."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# --- /v1/route ---------------------------------------------------------------------------------


def test_health_says_what_is_loaded(client: TestClient, router: Router) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["turn"] == router.turn
    assert body["threshold"] == pytest.approx(router.threshold)
    assert body["upstreams"]["edge"] == {"configured": True, "model": "edge-model"}
    assert EDGE_KEY not in json.dumps(body)


def test_route_one_prompt_matches_the_router(client: TestClient, router: Router) -> None:
    prompt = "Prove that there are infinitely many primes."
    expected = float(router.score([prompt])[0])
    body = client.post("/v1/route", json={"prompt": prompt}).json()
    assert body["score"] == pytest.approx(expected, abs=1e-6)
    assert body["threshold"] == pytest.approx(router.threshold)
    assert body["route"] == ("cloud" if expected >= router.threshold else "edge")
    assert client.post("/v1/route", json={"prompt": prompt, "threshold": 0}).json()["route"] \
        == "cloud"
    assert client.post("/v1/route", json={"prompt": prompt, "threshold": 1}).json()["route"] \
        == "edge"


def test_route_many_prompts_and_conversations(client: TestClient, router: Router) -> None:
    conversation = [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "What is 3 plus 4?"},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "Prove it by induction on 4."}]
    prompts = ["What is 2 plus 2?", conversation, "Spell the word number 9."]
    body = client.post("/v1/route", json={"prompts": prompts, "threshold": 0.5}).json()
    scores = [r["score"] for r in body["results"]]
    np.testing.assert_allclose(scores, router.score(prompts), atol=1e-6)
    assert [r["route"] for r in body["results"]] == \
        ["cloud" if s >= 0.5 else "edge" for s in scores]


@pytest.mark.parametrize("batch_max", [1, 16])
def test_concurrent_requests_get_their_own_scores(
        tiny_artifact: Path, upstreams: SimpleNamespace, batch_max: int) -> None:
    # fp32: its scores do not depend on the batch (int8's dynamic activation scales do)
    router = Router.load(tiny_artifact, variant="fp32")
    prompts = [f"Is {i} larger than {3 * i}? " + "word " * (i % 7) for i in range(40)]
    expected = [float(router.score([p])[0]) for p in prompts]
    app = make_app(router, upstreams, batch_max=batch_max, score_workers=2)

    async def ask_all() -> list[float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            replies = await asyncio.gather(*(http.post("/v1/route", json={"prompt": p})
                                             for p in prompts))
            text = (await http.get("/metrics")).text
        assert metric(text, "confroute_score_batch_prompts_sum") == len(prompts)
        return [r.json()["score"] for r in replies]

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
    (b'{"prompts": ["a", "a", "a", "a", "a"]}', 413, "too_many_prompts"),
    (json.dumps({"prompt": "x" * 2001}).encode(), 413, "prompt_too_long"),
    (json.dumps({"prompt": "x" * 5000}).encode(), 413, "body_too_large"),
])
def test_bad_route_requests_get_json_errors(router: Router, upstreams: SimpleNamespace,
                                            body: bytes, status: int, code: str) -> None:
    app = make_app(router, upstreams, max_prompts=4, max_prompt_chars=2000, max_body_bytes=4096)
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/route", content=body,
                                 headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and error["message"]


def test_oversize_body_without_content_length_is_refused(router: Router,
                                                         upstreams: SimpleNamespace) -> None:
    app = make_app(router, upstreams, max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:  # a generator body is sent chunked, with no length
        yield b'{"prompt": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    with TestClient(app) as test_client:
        reply = test_client.post("/v1/route", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"


def test_unknown_paths_and_methods_get_json_errors(client: TestClient) -> None:
    assert client.get("/v2/nothing").json()["error"]["code"] == "not_found"
    reply = client.get("/v1/route")
    assert reply.status_code == 405 and "error" in reply.json()


def test_bearer_token(router: Router, upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(router, upstreams, token=TOKEN)) as test_client:
        assert test_client.get("/health").status_code == 200  # for load balancers
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            reply = test_client.post("/v1/route", json={"prompt": "hi"}, headers=headers)
            assert reply.status_code == 401, headers
            assert reply.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in reply.text
        assert test_client.get("/metrics").status_code == 401
        good = {"authorization": f"Bearer {TOKEN}"}
        assert test_client.post("/v1/route", json={"prompt": "hi"}, headers=good).status_code == 200
        assert test_client.post("/v1/chat/completions", json=CHAT).status_code == 401
        assert test_client.post("/v1/chat/completions", json=CHAT, headers=good).status_code == 200


def test_metrics_count_requests_routes_and_latency(router: Router,
                                                   upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(router, upstreams)) as test_client:
        for threshold in (0, 0, 1):
            test_client.post("/v1/route", json={"prompt": "hi", "threshold": threshold})
        test_client.post("/v1/route", json={"prompt": "hi", "treshold": 1})
        # refused by the request guard, before any endpoint: counted apart
        test_client.post("/v1/route", content=b"{", headers={"content-type": "application/json"})
        test_client.post("/v1/route", content=b"{}", headers={"content-type": "text/plain"})
        text = test_client.get("/metrics").text
    assert metric(text, 'confroute_requests_total{endpoint="route",status="200"}') == 3
    assert metric(text, 'confroute_requests_total{endpoint="route",status="422"}') == 1
    assert metric(text, 'confroute_refused_total{code="invalid_json"}') == 1
    assert metric(text, 'confroute_refused_total{code="unsupported_media_type"}') == 1
    assert metric(text, 'confroute_routes_total{endpoint="route",route="cloud"}') == 2
    assert metric(text, 'confroute_routes_total{endpoint="route",route="edge"}') == 1
    assert metric(text, 'confroute_request_seconds_count{endpoint="route"}') == 4
    assert 'confroute_request_seconds_bucket{endpoint="route",le="0.005"}' in text
    assert metric(text, "confroute_score_seconds_count") >= 1


def test_each_app_has_its_own_metrics(router: Router, upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(router, upstreams)) as one, \
            TestClient(make_app(router, upstreams)) as two:
        one.post("/v1/route", json={"prompt": "hi"})
        assert metric(two.get("/metrics").text,
                      'confroute_requests_total{endpoint="route",status="200"}') == 0


# --- /v1/chat/completions ----------------------------------------------------------------------


def test_chat_goes_to_the_edge_with_its_model_and_key(client: TestClient, router: Router,
                                                      upstreams: SimpleNamespace) -> None:
    body = {**CHAT, "confroute_threshold": 1.0, "temperature": 0.2}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "edge says: What is 2 plus 2?"
    assert reply.headers["x-confroute-route"] == "edge"
    assert reply.headers["x-confroute-model"] == "edge-model"
    assert float(reply.headers["x-confroute-score"]) == pytest.approx(
        float(router.score([CHAT["messages"]])[0]), abs=1e-5)
    assert reply.headers["x-confroute-reason"].startswith("score ")
    seen = upstreams.apps["edge"].state.seen[-1]
    assert seen["model"] == "edge-model" and seen["authorization"] == f"Bearer {EDGE_KEY}"
    # the override is the proxy's, not the model's; other fields pass through untouched
    assert "confroute_threshold" not in seen["body"] and seen["body"]["temperature"] == 0.2


def test_chat_streams_from_the_cloud(client: TestClient, upstreams: SimpleNamespace) -> None:
    reply = client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                        headers={"x-confroute-threshold": "0"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-confroute-route"] == "cloud"
    assert reply.headers["x-confroute-model"] == "cloud-model"
    text, chunks = sse_text(reply.text)
    assert text == "cloud says: What is 2 plus 2?" and len(chunks) > 3
    assert upstreams.apps["cloud"].state.seen[-1]["authorization"] == f"Bearer {CLOUD_KEY}"


def test_chat_scores_the_turn_the_artifact_records(client: TestClient, router: Router) -> None:
    messages = [{"role": "user", "content": "What is 2 plus 2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "Prove the inequality for all n > 5 using induction."}]
    reply = client.post("/v1/chat/completions", json={"messages": messages})
    scored = router.texts([messages])[0]  # the manifest's `turn` setting picks it, as in training
    assert float(reply.headers["x-confroute-score"]) == pytest.approx(
        float(router.score([scored])[0]), abs=1e-5)
    routed = client.post("/v1/route", json={"prompt": messages}).json()
    assert routed["score"] == pytest.approx(float(reply.headers["x-confroute-score"]), abs=1e-5)


@pytest.mark.parametrize("cloud, kind", [("failing", "http_500"), ("limited", "http_429"),
                                         ("down", "connection"), ("slow", "timeout")])
def test_chat_falls_back_when_the_chosen_upstream_fails(
        router: Router, upstreams: SimpleNamespace, caplog: pytest.LogCaptureFixture,
        cloud: str, kind: str) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(make_app(router, upstreams, cloud=cloud)) as test_client:
        for stream in (False, True):
            reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                     headers={"x-confroute-threshold": "0"})
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-confroute-decision"] == "cloud"
            assert reply.headers["x-confroute-route"] == "edge"
            assert reply.headers["x-confroute-reason"].startswith("fallback: cloud upstream failed")
        assert "edge says:" in (sse_text(reply.text)[0])
        text = test_client.get("/metrics").text
    assert metric(text, f'confroute_upstream_errors_total{{kind="{kind}",upstream="cloud"}}') == 2
    assert metric(text, 'confroute_fallbacks_total{from_upstream="cloud"}') == 2
    assert EDGE_KEY not in caplog.text and CLOUD_KEY not in caplog.text


def test_chat_without_fallback_says_which_upstream_failed(router: Router,
                                                          upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(router, upstreams, cloud="failing", fallback=False)) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={"x-confroute-threshold": "0"})
    assert reply.status_code == 502
    assert reply.json()["error"]["message"] == \
        "no upstream answered: cloud upstream failed: HTTP 500: failing is failing on purpose"
    assert reply.headers["x-confroute-decision"] == "cloud"
    assert "x-confroute-route" not in reply.headers


@pytest.mark.parametrize("edge, cloud, status, code", [
    ("down", "failing", 502, "upstream_unavailable"),
    ("slow", "slow", 504, "upstream_unavailable"),
    (None, None, 503, "upstream_not_configured"),
])
def test_chat_when_no_upstream_answers(router: Router, upstreams: SimpleNamespace,
                                       edge: str | None, cloud: str | None, status: int,
                                       code: str) -> None:
    with TestClient(make_app(router, upstreams, edge=edge, cloud=cloud)) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == status and reply.json()["error"]["code"] == code
    assert EDGE_KEY not in reply.text and CLOUD_KEY not in reply.text
    assert "127.0.0.1" not in reply.text  # upstream addresses stay private too


def test_upstream_client_errors_pass_through_without_fallback(
        router: Router, upstreams: SimpleNamespace) -> None:
    app = create_app(router, ServeSettings(
        edge=UpstreamSettings(upstreams.urls["edge"], "edge-model"),
        cloud=UpstreamSettings(upstreams.urls["cloud"], "cloud-model")),
        environ={"CONFROUTE_EDGE_API_KEY": "sk-wrong"})
    with TestClient(app) as test_client:
        reply = test_client.post("/v1/chat/completions", json=CHAT,
                                 headers={"x-confroute-threshold": "1"})
    assert reply.status_code == 401 and reply.headers["x-confroute-route"] == "edge"
    assert reply.json()["error"]["message"] == "Incorrect API key provided"


def test_a_stream_that_breaks_off_ends_with_an_error_event(router: Router,
                                                           upstreams: SimpleNamespace) -> None:
    with TestClient(make_app(router, upstreams, edge="broken")) as test_client:
        reply = test_client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers={"x-confroute-threshold": "1"})
    events = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 3  # the two chunks sent before the break, then the error
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_stream_error"


@pytest.mark.parametrize("body, headers, status, code", [
    ({"model": "m"}, {}, 422, "invalid_messages"),
    ({"messages": []}, {}, 422, "invalid_messages"),
    ({"messages": "hello"}, {}, 422, "invalid_messages"),
    ({"messages": [{"role": "user"}]}, {}, 422, "invalid_prompt"),
    ({"messages": [{"role": "system", "content": "x"}]}, {}, 422, "invalid_prompt"),
    (CHAT, {"x-confroute-threshold": "lots"}, 422, "invalid_threshold"),
    ({**CHAT, "confroute_threshold": -1}, {}, 422, "invalid_threshold"),
])
def test_bad_chat_requests_get_json_errors(client: TestClient, body: dict, headers: dict,
                                           status: int, code: str) -> None:
    reply = client.post("/v1/chat/completions", json=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


# --- settings, loading, import boundary --------------------------------------------------------


def test_settings_from_environment() -> None:
    env = {"CONFROUTE_EDGE_BASE_URL": "http://127.0.0.1:1/v1", "CONFROUTE_EDGE_MODEL": "small",
           "CONFROUTE_EDGE_API_KEY": EDGE_KEY, "CONFROUTE_TOKEN": TOKEN}
    settings = load_settings({"port": 0}, environ=env)
    assert settings.edge.model == "small" and settings.token == TOKEN
    upstreams = resolve_upstreams(settings, environ=env)
    assert list(upstreams) == ["edge"] and upstreams["edge"].api_key == EDGE_KEY
    assert EDGE_KEY not in repr(upstreams) and TOKEN not in repr(settings)


@pytest.mark.parametrize("values, env, message", [
    ({"edge": {"base_url": "ftp://x"}}, {}, "http\\(s\\) URL"),
    ({"prot": 1}, {}, "unknown setting"),
    ({"max_body_bytes": 0}, {}, "max_body_bytes must be >= 1"),
    ({"threshold": 2.0}, {}, "threshold must be a finite number in"),
    ({}, {"CONFROUTE_CLOUD_BASE_URL": "http://127.0.0.1:1/v1"}, "CONFROUTE_CLOUD_MODEL"),
])
def test_bad_settings_are_refused(values: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_upstreams(load_settings(values, environ=env), environ=env)


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


def test_cli_settings_come_from_yaml_then_flags(tiny_artifact: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from jsonargparse import ArgumentError

    from confroute.cli import build_parser
    from confroute.cli.serve import settings_from_args

    parser = build_parser("serve")

    def parse(argv: list[str]) -> object:
        return parser.instantiate(parser.parse_args(argv))

    monkeypatch.setenv("CONFROUTE_CLOUD_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CONFROUTE_CLOUD_MODEL", "big")
    config = tmp_path / "serve.yaml"
    config.write_text("port: 0\nbatch_max: 8\nthreshold: 0.2\n"
                      "edge: {base_url: 'http://127.0.0.1:8/v1', model: small}\n")
    args = parse([str(tiny_artifact), "--config", str(config), "--threshold", "0.3",
                  "--fallback", "false"])
    settings = settings_from_args(args)
    assert (settings.port, settings.batch_max, settings.threshold) == (0, 8, 0.3)
    assert (settings.edge.model, settings.cloud.model, settings.fallback) == ("small", "big", False)
    config.write_text("bach_max: 8\n")
    with pytest.raises(ArgumentError, match="bach_max"):
        settings_from_args(parse([str(tiny_artifact), "--config", str(config)]))
