"""Issue 22 item 6, LiteLLM both ways, with the real `litellm` package and echo upstreams on
loopback standing in for the models: (a) confroute chooses the model group inside a LiteLLM
Router, which keeps its own fallbacks and cost map; (b) `confroute serve` with a LiteLLM gateway
as its upstream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litellm_gateway import gateway_app
from upstream import echo_app, serve_in_thread

from confroute.errors import ConfigError
from confroute.runtime import Router

from conftest import make_rows

litellm = pytest.importorskip("litellm")
from confroute.integrations.litellm import use_confroute  # noqa: E402

PROMPTS = [row["prompt"] for row in make_rows(8)]
PRICED = "openai/gpt-4o"  # in LiteLLM's bundled cost map


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    apps = {name: echo_app(name) for name in ("edge", "cloud", "small", "medium", "large")}
    apps["failing"] = echo_app("failing", fail_status=503)
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serve_in_thread(app)) + "/v1"
               for name, app in apps.items()}


def llm_router(urls: dict[str, str], groups: dict[str, str], **settings: Any) -> Any:
    """A litellm.Router with one OpenAI-compatible deployment per group (group -> upstream)."""
    return litellm.Router(model_list=[
        {"model_name": group, "litellm_params": {
            "model": PRICED if group in ("cloud", "large") else f"openai/{group}-model",
            "api_base": urls[upstream], "api_key": "sk-test"}}
        for group, upstream in groups.items()], num_retries=0, **settings)


def answered_by(response: Any) -> str:
    return str(response.choices[0].message.content).split(" says: ")[0]


def test_litellm_sends_each_prompt_where_confroute_routes_it(tiny_artifact: Path,
                                                            upstreams: dict[str, str]) -> None:
    llm = llm_router(upstreams, {"edge": "edge", "cloud": "cloud"})
    use_confroute(llm, tiny_artifact)
    router = Router.load(tiny_artifact)
    expected = [router.decide(ask(p)).model for p in PROMPTS]
    assert set(expected) == {"edge", "cloud"}  # the toy prompts exercise both routes

    async def run() -> list[Any]:
        return [await llm.acompletion(model="confroute", messages=ask(p)) for p in PROMPTS]

    answers = asyncio.run(run())
    assert [answered_by(a) for a in answers] == expected
    for answer, route in zip(answers, expected, strict=True):
        cost = answer._hidden_params.get("response_cost")
        # LiteLLM's own cost map prices the cloud deployment's model; the edge model is unknown.
        assert (cost is not None and cost > 0) == (route == "cloud"), (route, cost)
    sync = llm.completion(model="confroute", messages=ask(PROMPTS[0]))
    assert answered_by(sync) == expected[0]
    direct = llm.completion(model="cloud", messages=ask(PROMPTS[0]))  # other groups as usual
    assert answered_by(direct) == "cloud"


def test_litellm_fallbacks_still_apply(tiny_artifact: Path, upstreams: dict[str, str]) -> None:
    llm = llm_router(upstreams, {"edge": "failing", "cloud": "cloud"},
                     fallbacks=[{"confroute": ["cloud"]}])
    use_confroute(llm, tiny_artifact)
    router = Router.load(tiny_artifact)
    easy = next(p for p in PROMPTS if router.decide(ask(p)).model == "edge")
    answer = llm.completion(model="confroute", messages=ask(easy))
    assert answered_by(answer) == "cloud"  # the edge upstream failed; LiteLLM fell back


def test_streaming_and_a_conversation_without_text(tiny_artifact: Path,
                                                   upstreams: dict[str, str]) -> None:
    llm = llm_router(upstreams, {"edge": "edge", "cloud": "cloud"})
    use_confroute(llm, tiny_artifact)

    async def stream(messages: list[dict[str, Any]]) -> str:
        chunks = await llm.acompletion(model="confroute", messages=messages, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in chunks])

    assert asyncio.run(stream(ask(PROMPTS[1]))) == f"cloud says: {PROMPTS[1]}"
    image_only = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    assert use_confroute(llm, tiny_artifact).group_for(image_only) == "cloud"


def test_k_models_map_to_their_groups(tiny_ladder_artifact: Path,
                                      upstreams: dict[str, str]) -> None:
    groups = {"small": "small", "mid-tier": "medium", "large": "large"}
    llm = llm_router(upstreams, groups)
    use_confroute(llm, tiny_ladder_artifact, models={"medium": "mid-tier"})
    router = Router.load(tiny_ladder_artifact)
    expected = [router.decide(ask(p)).model for p in PROMPTS]
    answers = [llm.completion(model="confroute", messages=ask(p)) for p in PROMPTS]
    assert [answered_by(a) for a in answers] == expected


def test_a_model_without_a_group_is_refused(tiny_artifact: Path,
                                            upstreams: dict[str, str]) -> None:
    llm = llm_router(upstreams, {"edge": "edge"})
    with pytest.raises(ConfigError, match="no model group \\['cloud'\\]"):
        use_confroute(llm, tiny_artifact)
    with pytest.raises(ConfigError, match="does not have"):
        use_confroute(llm, tiny_artifact, models={"gpt-4o": "edge"})


@pytest.fixture()
def gateway(upstreams: dict[str, str]) -> Iterator[str]:
    llm = llm_router(upstreams, {"small-group": "edge", "big-group": "cloud"})
    with serve_in_thread(gateway_app(llm)) as url:
        yield url + "/v1"


def test_confroute_serve_uses_a_litellm_gateway_as_upstream(tiny_artifact: Path,
                                                            gateway: str) -> None:
    from starlette.testclient import TestClient

    from confroute.serve import ServeSettings, UpstreamSettings, create_app

    # Both routes go through one LiteLLM gateway, each naming its model group.
    settings = ServeSettings(edge=UpstreamSettings(gateway, "small-group"),
                             cloud=UpstreamSettings(gateway, "big-group"))
    router = Router.load(tiny_artifact)
    with TestClient(create_app(router, settings, environ={})) as client:
        for prompt in PROMPTS[:2]:
            route = router.decide(ask(prompt)).model
            plain = client.post("/v1/chat/completions", json={"model": "auto",
                                                              "messages": ask(prompt)})
            assert plain.status_code == 200, plain.text
            assert plain.headers["x-confroute-route"] == route
            body = plain.json()
            assert body["choices"][0]["message"]["content"] == (
                f"{'edge' if route == 'edge' else 'cloud'} says: {prompt}")
            assert body["usage"]["total_tokens"] > 0  # LiteLLM's usage passed through
            streamed = client.post("/v1/chat/completions", json={
                "model": "auto", "messages": ask(prompt), "stream": True})
            events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                           for e in events[:-1] if json.loads(e).get("choices"))
            assert text == body["choices"][0]["message"]["content"]
