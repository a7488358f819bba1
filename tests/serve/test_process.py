"""`confroute serve` as a real process on an ephemeral loopback port, driven by the official
`openai` client, with echo upstreams on loopback standing in for the edge and cloud models."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from upstream import echo_app, serve_in_thread

pytestmark = pytest.mark.slow  # starts a server process (a few seconds)

EDGE_KEY, CLOUD_KEY, TOKEN = "sk-edge-SECRET-4444", "sk-cloud-SECRET-5555", "tok-SECRET-6666"
QUESTION = [{"role": "user", "content": "Prove that there are infinitely many primes."}]


def read_address(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """The URL from the server's 'listening on' line (it binds port 0 and prints the real one)."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if match := re.search(r"listening on (http://\S+)", line):
                return match.group(1)
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.communicate()[1][-3000:]}")


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/health did not answer within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def server(artifact: Path, edge_url: str, cloud_url: str, *flags: str) -> Iterator[SimpleNamespace]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CONFROUTE_TOKEN": TOKEN,
           "CONFROUTE_EDGE_BASE_URL": edge_url, "CONFROUTE_EDGE_MODEL": "edge-model",
           "CONFROUTE_EDGE_API_KEY": EDGE_KEY,
           "CONFROUTE_CLOUD_BASE_URL": cloud_url, "CONFROUTE_CLOUD_MODEL": "cloud-model",
           "CONFROUTE_CLOUD_API_KEY": CLOUD_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "confroute", "serve", str(artifact),
                             "--port", "0", *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state = SimpleNamespace(url="", log="")
    try:
        state.url = read_address(proc)
        wait_healthy(state.url)
        yield state
    finally:
        proc.terminate()
        try:
            state.log = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            state.log = proc.communicate()[1]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {"edge": echo_app("edge", api_key=EDGE_KEY),
            "cloud": echo_app("cloud", api_key=CLOUD_KEY),
            "failing": echo_app("failing", fail_status=503)}
    with contextlib.ExitStack() as stack:
        yield SimpleNamespace(apps=apps, urls={name: stack.enter_context(serve_in_thread(app))
                                               + "/v1" for name, app in apps.items()})


def test_openai_client_plain_and_streaming(tiny_artifact: Path,
                                           upstreams: SimpleNamespace) -> None:
    with server(tiny_artifact, upstreams.urls["edge"], upstreams.urls["cloud"]) as state:
        client = openai.OpenAI(base_url=f"{state.url}/v1", api_key=TOKEN, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION, extra_headers={"x-confroute-threshold": "1"})
        answer = raw.parse()
        assert answer.choices[0].message.content == f"edge says: {QUESTION[0]['content']}"
        assert answer.model == "edge-model"
        assert raw.headers["x-confroute-route"] == "edge"

        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION, stream=True, extra_body={"confroute_threshold": 0})
        assert raw.headers["x-confroute-route"] == "cloud"
        assert raw.headers["x-confroute-model"] == "cloud-model"
        deltas = [chunk.choices[0].delta.content for chunk in raw.parse() if chunk.choices]
        assert "".join(d or "" for d in deltas) == f"cloud says: {QUESTION[0]['content']}"
        assert len(deltas) > 3  # chunk by chunk, not one blob

        stranger = openai.OpenAI(base_url=f"{state.url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            stranger.chat.completions.create(model="auto", messages=QUESTION)
        route = httpx.post(f"{state.url}/v1/route", json={"prompts": ["a", "b"]},
                           headers={"authorization": f"Bearer {TOKEN}"})
        assert [r["route"] in ("edge", "cloud") for r in route.json()["results"]] == [True] * 2
    assert "routed=cloud answered=cloud" in state.log
    for secret in (EDGE_KEY, CLOUD_KEY, TOKEN):
        assert secret not in state.log


def test_openai_client_sees_the_fallback(tiny_artifact: Path,
                                         upstreams: SimpleNamespace) -> None:
    """The edge fails: the cloud answers (a fallback goes up the ladder)."""
    with server(tiny_artifact, upstreams.urls["failing"], upstreams.urls["cloud"],
                "--threshold", "1") as state:
        client = openai.OpenAI(base_url=f"{state.url}/v1", api_key=TOKEN, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        assert text.startswith("cloud says:")
        assert raw.headers["x-confroute-decision"] == "edge"
        assert raw.headers["x-confroute-reason"].startswith(
            "fallback: edge upstream failed: HTTP 503")
        metrics = httpx.get(f"{state.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert 'confroute_fallbacks_total{from_upstream="edge"} 1.0' in metrics.text


def test_cli_errors_are_one_line(tmp_path: Path, tiny_artifact: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "confroute", "serve", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run([sys.executable, "-m", "confroute", "serve", str(tiny_artifact),
                          "--host", "203.0.113.7", "--port", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot listen on 203.0.113.7" in out.stderr


def test_a_ladder_from_one_config_file(tiny_ladder_artifact: Path, tmp_path: Path) -> None:
    """Three models' upstreams from one YAML file, keys from the environment; the small model's
    upstream fails, so the request goes up the ladder, in a real `confroute serve` process."""
    keys = {"small": "sk-small-SECRET-7777", "medium": "sk-medium-SECRET-8888",
            "large": "sk-large-SECRET-9999"}
    apps = {"small": echo_app("small", fail_status=503),
            "medium": echo_app("medium", api_key=keys["medium"]),
            "large": echo_app("large", api_key=keys["large"])}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFROUTE_")}
    env |= {"HF_HUB_OFFLINE": "1", "CONFROUTE_SMALL_API_KEY": keys["small"],
            "CONFROUTE_MEDIUM_API_KEY": keys["medium"], "BIG_KEY": keys["large"]}
    with contextlib.ExitStack() as stack:
        urls = {m: stack.enter_context(serve_in_thread(app)) + "/v1" for m, app in apps.items()}
        config = tmp_path / "serve.yaml"
        config.write_text(
            "upstreams:\n"
            + "".join(f"  {m}: {{base_url: '{urls[m]}', model: {m}-model}}\n"
                      for m in ("small", "medium"))
            + f"  large: {{base_url: '{urls['large']}', model: large-model, "
              "api_key_env: BIG_KEY}\n")
        proc = subprocess.Popen([sys.executable, "-m", "confroute", "serve",
                                 str(tiny_ladder_artifact), "--config", str(config), "--port",
                                 "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            url = read_address(proc)
            wait_healthy(url)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=QUESTION, stream=True,
                extra_headers={"x-confroute-thresholds": "small=0"})
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            assert text == f"medium says: {QUESTION[0]['content']}"
            assert (raw.headers["x-confroute-decision"], raw.headers["x-confroute-route"]) == \
                ("small", "medium")
            assert raw.headers["x-confroute-reason"].startswith(
                "fallback: small upstream failed: HTTP 503")
            answer = client.chat.completions.create(
                model="auto", messages=QUESTION,
                extra_body={"confroute_force_model": "large"})
            assert answer.model == "large-model"
            route = httpx.post(f"{url}/v1/route", json={"prompt": "hi", "model": "medium"})
            assert route.json()["model"] == "medium"
            assert [m.id for m in client.models.list()] == ["confroute", "small", "medium",
                                                            "large"]
        finally:
            proc.terminate()
            try:
                log = proc.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:
                proc.kill()
                log = proc.communicate()[1]
    assert apps["small"].state.seen[-1]["authorization"] == f"Bearer {keys['small']}"
    assert apps["large"].state.seen[-1]["authorization"] == f"Bearer {keys['large']}"
    assert "routed=small answered=medium" in log
    for secret in keys.values():
        assert secret not in log
