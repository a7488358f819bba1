"""Issue 14 against real echo upstreams on loopback: bad text and numbers, OpenAI message shapes,
/v1/models with the OpenAI SDK, and opt-in CORS (upstream failures: test_upstream_failures.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from starlette.testclient import TestClient
from upstream import echo_app, serve_in_thread

from confroute.errors import ConfigError
from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

from conftest import IMAGE, TOOL_TURN

EDGE_KEY, CLOUD_KEY = "sk-edge-SECRET-1111", "sk-cloud-SECRET-2222"
KEYS = {"CONFROUTE_EDGE_API_KEY": EDGE_KEY, "CONFROUTE_CLOUD_API_KEY": CLOUD_KEY}
USER = [{"role": "user", "content": "What is 2 plus 2?"}]
@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {
        "edge": echo_app("edge", api_key=EDGE_KEY), "cloud": echo_app("cloud", api_key=CLOUD_KEY),
    }
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) + "/v1"
                for name, app in apps.items()}
        yield SimpleNamespace(urls=urls, apps=apps)


def make_app(router: Router, upstreams: SimpleNamespace, edge: str | None = "edge",
             cloud: str | None = "cloud", **settings: Any) -> Any:
    def upstream(name: str | None, model: str) -> UpstreamSettings:
        return UpstreamSettings(upstreams.urls[name], model) if name else UpstreamSettings()

    cfg = ServeSettings(edge=upstream(edge, "edge-model"), cloud=upstream(cloud, "cloud-model"),
                        read_timeout_s=5.0, **settings)
    return create_app(router, cfg, environ=KEYS)


@pytest.fixture(scope="module")
def client(router: Router, upstreams: SimpleNamespace) -> Iterator[TestClient]:
    with TestClient(make_app(router, upstreams)) as test_client:
        yield test_client


def post_raw(client: TestClient, path: str, raw: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=raw, headers={"content-type": "application/json", **headers})


# --- item 1: text that is not clean UTF-8 or not a string --------------------------------------


@pytest.mark.parametrize("path, raw, message", [
    ("/v1/route", b'{"prompt": "great phone \\ud83d"}',
     "prompt 0 is not valid Unicode text: character 12 is a lone surrogate U+D83D"),
    ("/v1/route", b'{"prompts": ["fine", "\\udc00 half"]}', "prompt 1 is not valid Unicode"),
    ("/v1/route", b'{"prompt": [{"role": "user", "content": [{"type": "text", "text": null}]}]}',
     "message 0 part 0: a text part's 'text' must be a string; found NoneType"),
    ("/v1/route", b'{"prompt": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}',
     "found int"),
    ("/v1/route", b'{"prompt": [{"role": "user", "content": ["hi"]}]}', "must be an object"),
    ("/v1/route", b'{"prompt": [{"role": 1, "content": "hi"}]}', "'role' must be a string"),
    ("/v1/route", b'{"prompt": [{"role": "user", "content": [%s]}]}' % json.dumps(IMAGE).encode(),
     "hold no text"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "cut \\ud83d"}]}',
     "message 0 is not valid Unicode text: character 4 is a lone surrogate"),
    ("/v1/chat/completions",
     b'{"messages": [{"role": "user", "content": [{"type": "text", "text": null}]}]}',
     "a text part's 'text' must be a string"),
])
def test_bad_text_is_a_422_naming_the_position(client: TestClient, path: str, raw: bytes,
                                               message: str) -> None:
    reply = post_raw(client, path, raw)
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["error"]["message"]


def test_invalid_utf8_bytes_in_the_body_are_a_400(client: TestClient) -> None:
    reply = post_raw(client, "/v1/route", b'{"prompt": "bad \xff\xfe bytes"}')
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_json"


# --- item 4: numbers that are not numbers -----------------------------------------------------


@pytest.mark.parametrize("path, raw, headers, status, code", [
    # NaN and Infinity are not JSON (RFC 8259): the body is refused as a whole (issue 23.5)
    ("/v1/route", b'{"prompt": "hi", "threshold": NaN}', {}, 400, "invalid_number"),
    ("/v1/route", b'{"prompt": "hi", "threshold": Infinity}', {}, 400, "invalid_number"),
    ("/v1/route", b'{"prompt": "hi", "threshold": -Infinity}', {}, 400, "invalid_number"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], '
     b'"confroute_threshold": NaN}', {}, 400, "invalid_number"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}',
     {"x-confroute-threshold": "nan"}, 422, "invalid_threshold"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}',
     {"x-confroute-threshold": "inf"}, 422, "invalid_threshold"),
])
def test_nan_and_infinite_thresholds_are_refused(client: TestClient, path: str, raw: bytes,
                                                 headers: dict[str, str], status: int,
                                                 code: str) -> None:
    reply = post_raw(client, path, raw, **headers)
    assert reply.status_code == status and reply.json()["error"]["code"] == code


@pytest.mark.parametrize("field, value", [
    ("threshold", math.nan), ("threshold", math.inf), ("read_timeout_s", math.nan),
    ("connect_timeout_s", math.inf), ("read_timeout_s", 0.0), ("max_prompts", math.nan),
    ("batch_max", math.nan), ("threshold", "0.5"),
])
def test_serve_settings_refuse_nan_and_infinities(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})  # type: ignore[arg-type]


def test_serve_cli_refuses_threshold_nan_before_listening(
        tiny_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from confroute.cli import main

    logger = logging.getLogger("confroute")  # `serve` sets up its log handler first: undo it
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        _serve_nan(main, tiny_artifact, capsys)
    finally:
        logger.handlers, logger.propagate, logger.level = saved


def _serve_nan(main: Any, tiny_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--threshold", "--read_timeout_s"):
        assert main(["serve", str(tiny_artifact), flag, "nan", "--port", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("confroute serve: error: ") and "must be a number" in err
        assert "\n" not in err and "listening" not in capsys.readouterr().out


# --- item 2: OpenAI message shapes, /v1/models, CORS ------------------------------------------


def test_a_tool_calls_turn_without_content_is_accepted(client: TestClient,
                                                       router: Router) -> None:
    expected = float(router.score(["And tomorrow?"])[0])
    assert client.post("/v1/route", json={"prompt": TOOL_TURN}).json()["score"] == \
        pytest.approx(expected, abs=1e-6)
    reply = client.post("/v1/chat/completions", json={"messages": TOOL_TURN})
    assert reply.status_code == 200, reply.text
    assert float(reply.headers["x-confroute-score"]) == pytest.approx(expected, abs=1e-5)


def test_an_image_only_turn_is_routed_by_the_last_text_turn(client: TestClient, router: Router,
                                                            upstreams: SimpleNamespace) -> None:
    messages = [{"role": "user", "content": "Describe the picture I will send."},
                {"role": "user", "content": [IMAGE]}]
    reply = client.post("/v1/chat/completions", json={"messages": messages})
    assert reply.status_code == 200, reply.text
    assert float(reply.headers["x-confroute-score"]) == pytest.approx(
        float(router.score(["Describe the picture I will send."])[0]), abs=1e-5)
    seen = upstreams.apps[reply.headers["x-confroute-route"]].state.seen[-1]["body"]
    assert seen["messages"] == messages  # forwarded as sent, image included


def test_a_conversation_without_text_goes_to_the_cloud(client: TestClient,
                                                       upstreams: SimpleNamespace) -> None:
    messages = [{"role": "user", "content": [IMAGE]}]
    reply = client.post("/v1/chat/completions", json={"messages": messages},
                        headers={"x-confroute-threshold": "1"})  # would be edge if scored
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-route"] == "cloud"
    assert reply.headers["x-confroute-reason"].startswith("no text to score")
    assert "x-confroute-score" not in reply.headers
    assert upstreams.apps["cloud"].state.seen[-1]["body"]["messages"] == messages


def test_openai_sdk_lists_and_retrieves_models(router: Router,
                                               upstreams: SimpleNamespace) -> None:
    with serve_in_thread(make_app(router, upstreams)) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        # the artifact's model names, as for K models (not the upstreams' model names)
        assert [m.id for m in sdk.models.list()] == ["confroute", "edge", "cloud"]
        assert sdk.models.retrieve("cloud").owned_by == "confroute"
        for unknown in ("gpt-nothing", "cloud-model"):
            with pytest.raises(openai.NotFoundError):
                sdk.models.retrieve(unknown)
        answer = sdk.chat.completions.create(model="confroute", messages=USER)  # type: ignore
        assert answer.choices[0].message.content.endswith("What is 2 plus 2?")


PREFLIGHT = {"origin": "http://localhost:3000", "access-control-request-method": "POST",
             "access-control-request-headers": "content-type, authorization"}


def test_cors_is_off_by_default(client: TestClient) -> None:
    # issue 25: with CORS off every request that carries an Origin is refused outright
    for reply in (client.options("/v1/chat/completions", headers=PREFLIGHT),
                  client.post("/v1/route", json={"prompt": "hi"},
                              headers={"origin": PREFLIGHT["origin"]})):
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in reply.headers


def test_cors_when_enabled(router: Router, upstreams: SimpleNamespace) -> None:
    app = make_app(router, upstreams, cors_origins=["http://localhost:3000"], token="tok")
    with TestClient(app) as test_client:
        preflight = test_client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text  # no token needed for a preflight
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        reply = test_client.post("/v1/chat/completions", json={"messages": USER},
                                 headers={"origin": "http://localhost:3000",
                                          "authorization": "Bearer tok"})
        assert reply.status_code == 200
        assert "x-confroute-route" in reply.headers["access-control-expose-headers"]
        other = test_client.options("/v1/route", headers={**PREFLIGHT, "origin": "http://evil"})
        assert other.status_code == 403
    with pytest.raises(ConfigError, match="cors_origins"):
        ServeSettings(cors_origins=["localhost:3000"])
