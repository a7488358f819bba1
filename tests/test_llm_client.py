"""The one OpenAI-compatible client, against a real HTTP server on loopback (the upstream
double in tests/serve/upstream.py, run by uvicorn in a thread): order and bounded concurrency,
the SDK's retries on 429 (honouring Retry-After) and 5xx, 4xx at once with the upstream's
message and the key redacted, timeouts, unreachable servers and malformed completions."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "serve"))
from upstream import closed_port_url, echo_app, serve_in_thread  # noqa: E402

from confroute.errors import ConfigError  # noqa: E402
from confroute.llm_client import (  # noqa: E402
    EndpointConfig,
    LLMClient,
    LLMError,
    message_text,
    redact,
)

HI = [{"role": "user", "content": "hi"}]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def client(url: str, **settings) -> LLMClient:
    return LLMClient(EndpointConfig(f"{url}/v1", "m", **{"api_key_env": None, **settings}))


def test_batch_keeps_order_and_bounds_requests_in_flight():
    app = echo_app("edge", delay_s=0.2)
    done = []
    with serve_in_thread(app) as url:
        answers = client(url, concurrency=3).chat_many(
            [ask(f"q{i}") for i in range(9)], per_request=[{"seed": i} for i in range(9)],
            on_done=lambda i, c: done.append(i), temperature=0.5, max_tokens=7)
    assert [message_text(a) for a in answers] == [f"edge says: q{i}" for i in range(9)]
    assert app.state.load["max_in_flight"] == 3  # nine requests, three at a time
    assert sorted(done) == list(range(9))
    bodies = {r["body"]["messages"][0]["content"]: r["body"] for r in app.state.seen}
    assert all(bodies[f"q{i}"]["seed"] == i and bodies[f"q{i}"]["temperature"] == 0.5
               and bodies[f"q{i}"]["max_tokens"] == 7 and bodies[f"q{i}"]["model"] == "m"
               for i in range(9))


def test_per_request_must_match_the_batch():
    with pytest.raises(ValueError, match="one per conversation"):
        LLMClient(EndpointConfig("http://127.0.0.1:9/v1", "m")).chat_many([HI, HI], [{}])


def test_async_batch_inside_a_running_loop():
    with serve_in_thread(echo_app("edge")) as url:
        answers = asyncio.run(client(url).achat_many([ask("a"), ask("b")]))
    assert [message_text(a) for a in answers] == ["edge says: a", "edge says: b"]


def test_sends_the_key_from_its_environment_variable(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-right")
    app = echo_app("edge", api_key="sk-right")
    with serve_in_thread(app) as url:
        assert message_text(client(url, api_key_env="TEST_LLM_KEY").chat(HI)) == "edge says: hi"
    assert app.state.seen[0]["authorization"] == "Bearer sk-right"


def test_429_is_retried_after_the_servers_retry_after():
    app = echo_app("edge", fail_status=429, fail_first=1, retry_after="1")
    with serve_in_thread(app) as url:
        assert message_text(client(url).chat(HI)) == "edge says: hi"
    first, second = (r["at"] for r in app.state.seen)
    # the SDK's own first back-off is at most 0.5 s: a longer wait is the server's Retry-After
    assert len(app.state.seen) == 2 and second - first >= 0.95


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_gives_up_after_max_retries(status):
    app = echo_app("edge", fail_status=status, retry_after="0.01")
    with serve_in_thread(app) as url, pytest.raises(LLMError) as caught:
        client(url, max_retries=2).chat(HI)
    assert len(app.state.seen) == 3 and caught.value.status == status
    assert f"answered HTTP {status} after 3 attempts" in str(caught.value)
    assert "edge is failing on purpose" in str(caught.value)


def test_4xx_fails_at_once_with_the_upstreams_message_and_the_key_redacted(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-wrong-secret")
    app = echo_app("edge", api_key="sk-right", echo_key=True)
    with serve_in_thread(app) as url, pytest.raises(LLMError) as caught:
        client(url, api_key_env="TEST_LLM_KEY").chat(HI)
    message = str(caught.value)
    assert len(app.state.seen) == 1 and caught.value.status == 401
    assert "answered HTTP 401: " in message and "Incorrect API key provided: ***" in message
    assert "sk-wrong-secret" not in message and "$TEST_LLM_KEY" in message


def test_unset_key_is_named_in_the_401_hint(monkeypatch):
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    with serve_in_thread(echo_app("edge", api_key="sk-right")) as url, \
            pytest.raises(LLMError, match=r"\$TEST_LLM_KEY \(it is not set\)"):
        client(url, api_key_env="TEST_LLM_KEY").chat(HI)


def test_unknown_model_is_a_404_with_a_hint():
    app = echo_app("edge", models={"other"})
    with serve_in_thread(app) as url, pytest.raises(LLMError) as caught:
        client(url).chat(HI)
    assert caught.value.status == 404 and len(app.state.seen) == 1
    assert "'m' does not exist" in str(caught.value) and "model name" in str(caught.value)


def test_timeout_is_retried_then_a_clear_error():
    app = echo_app("edge", delay_s=1.0)
    with serve_in_thread(app) as url, pytest.raises(LLMError) as caught:
        client(url, timeout_s=0.2, max_retries=1).chat(HI)
    assert "no answer after 2 attempts (APITimeoutError)" in str(caught.value)
    assert "raise timeout_s" in str(caught.value) and caught.value.status is None
    assert len(app.state.seen) == 2


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(LLMError, match="no answer after 2 attempts .*is the server up"):
        LLMClient(EndpointConfig(closed_port_url(), "m", max_retries=1)).chat(HI)


@pytest.mark.parametrize(("body", "match"), [
    ("not json at all", "not a chat completion"),
    ('{"object": "list", "data": []}', "without choices"),
    ('{"choices": []}', "without choices"),
    ('{"choices": [{"index": 0, "finish_reason": "stop"}]}', "without choices"),
    ('{"choices": "none"}', "without choices"),
])
def test_malformed_completion_is_a_clear_error(body, match):
    app = echo_app("edge", malformed=body)
    with serve_in_thread(app) as url, pytest.raises(LLMError, match=match):
        client(url).chat(HI)
    assert len(app.state.seen) == 1  # a 200 is not retried


def test_first_failure_fails_the_batch():
    app = echo_app("edge", fail_status=400, fail_first=1)
    with serve_in_thread(app) as url, pytest.raises(LLMError, match="HTTP 400"):
        client(url, concurrency=1).chat_many([ask("a"), ask("b"), ask("c")])


@pytest.mark.parametrize("bad", [{"base_url": "localhost:8000/v1"}, {"base_url": None},
                                 {"model": ""}, {"model": "  "}, {"concurrency": 0},
                                 {"concurrency": "8"}, {"concurrency": True},
                                 {"max_retries": -1}, {"max_retries": 1.5}, {"timeout_s": 0},
                                 {"timeout_s": "fast"}])
def test_endpoint_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        EndpointConfig(**{"base_url": "http://x/v1", "model": "m", **bad})


def test_redact():
    assert redact("key sk-1 and sk-1 again", "sk-1") == "key *** and *** again"
    assert redact("nothing to hide", "") == "nothing to hide"
    # keys the upstream names itself are caught by shape, whoever's they are
    assert redact("got Bearer abc.DEF-123_x rejected") == "got Bearer *** rejected"
    assert redact("invalid api_key=sk-live-0123456789") == "invalid api_key=***"
