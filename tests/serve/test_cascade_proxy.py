"""The cascade in the proxy, over real HTTP: loopback upstreams (the edge answers with chosen
token log-probs), streamed and not, kept and escalated, sent direct, and the edge answers whose
log-probs are missing or malformed."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from served import QUESTION, metric, sse_text
from starlette.testclient import TestClient
from upstream import Answer, completion, echo_app, serve_in_thread

from confroute.cascade import CascadePolicy, Uncertainty
from confroute.errors import ArtifactError, ConfigError
from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

CHAT = {"model": "confroute", "messages": [{"role": "user", "content": QUESTION}]}
SURE, UNSURE = [-0.05, -0.1, -0.02], [-3.0, -2.5, -4.0]  # u = sigmoid(-mean): 0.514, 0.96
EDGE_TEXT = "The answer is 4"
BAD = completion("edge", "edge-model", EDGE_TEXT, logprobs=False) | {}
BAD["choices"][0]["logprobs"] = {"content": [{"token": "4", "logprob": "very sure"}]}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[SimpleNamespace]:
    apps = {"sure": echo_app("edge", answer=lambda body: Answer(EDGE_TEXT, SURE)),
            "unsure": echo_app("edge", answer=lambda body: Answer(EDGE_TEXT, UNSURE)),
            "none": echo_app("edge", answer=lambda body: Answer(EDGE_TEXT, None)),
            "bad": echo_app("edge", malformed=json.dumps(BAD)),
            "broken": echo_app("edge", break_after=2,
                               answer=lambda body: Answer(EDGE_TEXT, SURE)),
            "cloud": echo_app("cloud")}
    with contextlib.ExitStack() as stack:
        urls = {n: stack.enter_context(serve_in_thread(a)) + "/v1" for n, a in apps.items()}
        yield SimpleNamespace(urls=urls, apps=apps)


def policy_file(tmp_path: Path, t1: float = 1.0, t2: float = 0.8, measure: str = "logprob"
                ) -> str:
    """t1 = 1: stage 1 sends nothing direct; t2 = 0.8: SURE is kept, UNSURE escalated."""
    policy = CascadePolicy(t1, t2, Uncertainty.unfitted("logprob"))
    data = policy.to_dict()
    data["uncertainty"]["measure"] = measure
    path = tmp_path / "cascade.json"
    path.write_text(json.dumps(data))
    return str(path)


@contextlib.contextmanager
def client(router: Router, up: SimpleNamespace, edge: str, path: str,
           **settings: Any) -> Iterator[TestClient]:
    upstreams = {"edge": UpstreamSettings(up.urls[edge], "edge-model"),
                 "cloud": UpstreamSettings(up.urls["cloud"], "cloud-model")}
    app = create_app(router, ServeSettings(upstreams=upstreams, cascade=True,
                                           cascade_policy=path, read_timeout_s=2.0,
                                           **settings), environ={})
    with TestClient(app) as test_client:
        yield test_client


def asked(up: SimpleNamespace, name: str) -> int:
    return len(up.apps[name].state.seen)


@pytest.mark.parametrize("stream", [False, True])
def test_a_sure_edge_answer_is_served_without_the_logprobs_the_client_did_not_ask_for(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path, stream: bool) -> None:
    cloud_before = asked(upstreams, "cloud")
    with client(router, upstreams, "sure", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert reply.status_code == 200, reply.text
    h = reply.headers
    assert (h["x-confroute-cascade-stage"], h["x-confroute-route"]) == ("edge", "edge")
    assert float(h["x-confroute-uncertainty"]) == pytest.approx(0.5142, abs=1e-3)
    assert "x-confroute-cascade" not in h and asked(upstreams, "cloud") == cloud_before
    assert upstreams.apps["sure"].state.seen[-1]["body"]["logprobs"] is True
    if stream:
        text, chunks = sse_text(reply.text)
        assert all(ch["choices"][0].get("logprobs") is None for ch in chunks)
    else:
        text = reply.json()["choices"][0]["message"]["content"]
        assert reply.json()["choices"][0]["logprobs"] is None
    assert text == EDGE_TEXT


@pytest.mark.parametrize("stream", [False, True])
def test_an_unsure_edge_answer_escalates_and_the_client_gets_only_the_clouds(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path, stream: bool) -> None:
    with client(router, upstreams, "unsure", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert reply.status_code == 200, reply.text
    h = reply.headers
    assert (h["x-confroute-cascade-stage"], h["x-confroute-route"]) == ("edge", "cloud")
    assert h["x-confroute-decision"] == "cloud" and float(h["x-confroute-uncertainty"]) > 0.8
    text = sse_text(reply.text)[0] if stream else reply.json()["choices"][0]["message"][
        "content"]
    assert text == f"cloud says: {QUESTION}" and EDGE_TEXT not in reply.text
    sent = upstreams.apps["cloud"].state.seen[-1]["body"]
    assert "logprobs" not in sent and sent["model"] == "cloud-model"  # as the client wrote it


def test_stage_one_sends_a_request_direct_without_asking_the_edge(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path) -> None:
    edge_before = asked(upstreams, "unsure")
    with client(router, upstreams, "unsure", policy_file(tmp_path, t1=0.0)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert reply.headers["x-confroute-cascade-stage"] == "router"
    assert reply.headers["x-confroute-route"] == "cloud"
    assert "x-confroute-uncertainty" not in reply.headers
    assert sse_text(reply.text)[0] == f"cloud says: {QUESTION}"
    assert asked(upstreams, "unsure") == edge_before


@pytest.mark.parametrize(("edge", "note", "stream"), [
    ("none", "no-logprobs", False), ("none", "no-logprobs", True),
    ("bad", "bad-logprobs", False)])  # the malformed double answers whole bodies only
@pytest.mark.parametrize("missing", ["edge", "cloud"])
def test_missing_or_malformed_logprobs_are_said_and_handled_as_configured(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path, caplog: Any, stream: bool,
        edge: str, note: str, missing: str) -> None:
    with client(router, upstreams, edge, policy_file(tmp_path), cascade_missing=missing) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-confroute-cascade"] == note
    assert reply.headers["x-confroute-route"] == missing
    assert "x-confroute-uncertainty" not in reply.headers
    text = sse_text(reply.text)[0] if stream else reply.text
    assert (EDGE_TEXT in text) == (missing == "edge")
    assert any(note in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_an_edge_stream_that_breaks_off_escalates_before_any_byte(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path) -> None:
    with client(router, upstreams, "broken", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert reply.headers["x-confroute-cascade"] == "edge-stream-broken"
    assert sse_text(reply.text)[0] == f"cloud says: {QUESTION}"


def test_the_client_asking_for_logprobs_gets_them(router: Router, upstreams: SimpleNamespace,
                                                  tmp_path: Path) -> None:
    with client(router, upstreams, "sure", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "logprobs": True})
    content = reply.json()["choices"][0]["logprobs"]["content"]
    assert [t["logprob"] for t in content] == SURE


def test_a_forced_model_bypasses_the_cascade(router: Router, upstreams: SimpleNamespace,
                                             tmp_path: Path) -> None:
    with client(router, upstreams, "unsure", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "model": "edge"})
    assert "x-confroute-cascade-stage" not in reply.headers
    assert reply.json()["choices"][0]["message"]["content"] == EDGE_TEXT


def test_settings_that_cannot_cascade_fail_at_startup(router: Router, ladder_router: Router,
                                                      tmp_path: Path) -> None:
    good = policy_file(tmp_path)
    with pytest.raises(ConfigError, match="manifest has no cascade section"):
        create_app(router, ServeSettings(cascade=True), environ={})
    (tmp_path / "junk.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ConfigError, match="cannot read"):
        create_app(router, ServeSettings(cascade=True, cascade_policy=str(tmp_path / "junk.json")),
                   environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        create_app(router, ServeSettings(cascade=True, cascade_policy=str(tmp_path / "no")),
                   environ={})
    (tmp_path / "partial.json").write_text('{"t1": 0.5}')
    with pytest.raises(ConfigError, match="t1, t2 and uncertainty"):
        create_app(router, ServeSettings(cascade=True,
                                         cascade_policy=str(tmp_path / "partial.json")),
                   environ={})
    se = tmp_path / "se"
    se.mkdir()
    with pytest.raises(ConfigError, match="n sampled answers"):
        create_app(router, ServeSettings(cascade=True, cascade_policy=policy_file(
            se, measure="se")), environ={})
    with pytest.raises(ConfigError, match="for a pair"):
        create_app(ladder_router, ServeSettings(cascade=True, cascade_policy=good), environ={})
    app = create_app(router, ServeSettings(cascade_policy=good), environ={})  # off: ignored
    assert app.state.service.cascade is None


def test_the_proxy_reads_the_cascade_the_manifest_stores(tiny_artifact: Path, tmp_path: Path
                                                        ) -> None:
    import shutil

    from confroute.cascade_calibration import write_cascade

    artifact = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, artifact)
    policy = CascadePolicy(0.9, 0.7, Uncertainty("logprob", (0.2, 1.5), -0.3))
    write_cascade(artifact, policy)
    app = create_app(Router.load(artifact, variant="fp32"), ServeSettings(cascade=True),
                     environ={})
    assert app.state.service.cascade == policy
    (artifact / "router.json").write_text("{ damaged")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        write_cascade(artifact, policy)


@pytest.mark.parametrize("stream", [False, True])
def test_a_real_language_model_as_the_edge(router: Router, tiny_backend: Any, tmp_path: Path,
                                           stream: bool) -> None:
    """The edge is a real causal LM (its own token log-probs): stage 2's uncertainty is the
    sigmoid of minus the mean log-prob of exactly the answer it generated, streamed or not."""
    from upstream import lm_answer

    edge = echo_app("edge", answer=lm_answer(tiny_backend))
    with contextlib.ExitStack() as stack:
        urls = {"lm": stack.enter_context(serve_in_thread(edge)) + "/v1",
                "cloud": stack.enter_context(serve_in_thread(echo_app("cloud"))) + "/v1"}
        up = SimpleNamespace(urls=urls, apps={"lm": edge})
        body = {**CHAT, "temperature": 0, "max_tokens": 8, "stream": stream}
        with client(router, up, "lm", policy_file(tmp_path, t2=1.0)) as c:  # t2 1: keep all
            reply = c.post("/v1/chat/completions", json=body)
        direct = TestClient(edge).post("/v1/chat/completions", json={
            **body, "stream": False, "logprobs": True}).json()["choices"][0]
    assert reply.status_code == 200, reply.text
    lps = [t["logprob"] for t in direct["logprobs"]["content"]]
    assert lps and all(lp <= 0 for lp in lps)
    expected = 1 / (1 + math.exp(sum(lps) / len(lps)))
    assert float(reply.headers["x-confroute-uncertainty"]) == pytest.approx(expected, abs=1e-5)
    text = sse_text(reply.text)[0] if stream else reply.json()["choices"][0]["message"][
        "content"]
    assert text == direct["message"]["content"] and reply.headers["x-confroute-route"] == "edge"


def logged(url: str) -> list[dict[str, Any]]:
    """The decision log's rows, read by the traffic tests' reader (tests/traffic/logged.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
    from logged import rows

    return rows(url)


PRICES = {"edge": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
          "cloud": {"input_per_mtok": 10.0, "output_per_mtok": 20.0}}


def usd(model: str, prompt: int, completion: int) -> float:
    return (prompt * PRICES[model]["input_per_mtok"]
            + completion * PRICES[model]["output_per_mtok"]) / 1e6


@pytest.mark.parametrize(("stream", "with_usage"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize(("edge", "t1", "stage", "answered"), [
    ("sure", 1.0, "edge", "edge"), ("unsure", 1.0, "edge", "cloud"),
    ("sure", 0.0, "router", "cloud"), ("down", 1.0, "fallback", "cloud")])
def test_a_cascaded_request_is_recorded_once_with_its_ids_stage_usage_and_cost(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path, stream: bool,
        with_usage: bool, edge: str, t1: float, stage: str, answered: str) -> None:
    """As chat.relay records: x-request-id (the answering upstream's), one log row with the
    answering model, usage, fallbacks and cost (an escalated request pays the edge's answer
    too), the cascade's stage under policy.cascade, and the fallback metric. A stream's usage
    is the client's to ask for (`stream_options.include_usage`), as in relay, but the edge is
    always asked (its answer is paid when escalated) and its usage chunk is not passed on
    unless asked."""
    from upstream import closed_port_url

    from confroute.traffic.log import LogSettings

    up = SimpleNamespace(urls={**upstreams.urls, "down": closed_port_url()}, apps=upstreams.apps)
    (tmp_path / "prices.json").write_text(json.dumps(PRICES))
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = LogSettings(url=url, flush_interval_s=0.01, prices=str(tmp_path / "prices.json"))
    with client(router, up, edge, policy_file(tmp_path, t1=t1), log=log) as c:
        options = {"stream_options": {"include_usage": True}} if with_usage else {}
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": stream, **options})
        assert c.app.state.service.traffic.log.flush(10)  # type: ignore[attr-defined]
        fallbacks = metric(c.get("/metrics").text,
                           'confroute_fallbacks_total{from_upstream="edge"}')
    assert reply.status_code == 200, reply.text
    h = reply.headers
    assert h["x-confroute-cascade-stage"] == stage and h["x-confroute-route"] == answered
    assert h["x-request-id"].startswith(f"req_{answered}_")  # the answering upstream's id
    if stream:
        chunks = [json.loads(line[6:]) for line in reply.text.splitlines()
                  if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                       if c["choices"])
        assert ([c for c in chunks if not c["choices"] and c["usage"]] != []) == with_usage
        assert '"usage"' in reply.text or not with_usage
    else:
        text = reply.json()["choices"][0]["message"]["content"]
    (row,) = logged(url)
    assert row["request_id"] == h["x-confroute-request-id"] and row["status"] == 200
    assert (row["answering_model"], row["upstream_model"]) == (answered, f"{answered}-model")
    assert row["chosen_model"] == ("cloud" if stage == "edge" and answered == "cloud" or
                                   stage == "router" else "edge")
    cascade = row["policy"]["cascade"]
    assert cascade["stage"] == stage and (cascade["t1"], cascade["t2"]) == (t1, 0.8)
    assert row["reason"].startswith("cascade: ") or stage == "fallback"
    words = len(text.split())
    known = not stream or with_usage or answered == "edge" or stage == "fallback"
    assert (row["prompt_tokens"], row["completion_tokens"]) == ((words, words) if known
                                                                else (None, None))
    cost = usd(answered, words, words) if known else None
    if (edge, answered) == ("unsure", "cloud"):  # escalated: the edge's answer is paid too
        edge_words = len(EDGE_TEXT.split())
        assert cascade["paid"] == [{"model": "edge", "prompt_tokens": edge_words,
                                    "completion_tokens": edge_words}]
        cost = (cost or 0.0) + usd("edge", edge_words, edge_words)
        assert float(h["x-confroute-uncertainty"]) == pytest.approx(cascade["uncertainty"],
                                                                    abs=1e-6)
    else:
        assert "paid" not in cascade
    assert row["cost_usd"] == (None if cost is None else pytest.approx(cost))
    assert row["top_cost_usd"] == (pytest.approx(usd("cloud", words, words)) if known else None)
    assert [f["model"] for f in row["fallbacks"] or []] == (["edge"] if edge == "down" else [])
    assert fallbacks == (1.0 if edge == "down" else 0.0)


def test_a_cascaded_request_no_upstream_answered_is_recorded_with_the_proxys_id(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path) -> None:
    from upstream import closed_port_url

    from confroute.traffic.log import LogSettings

    down = closed_port_url()
    up = SimpleNamespace(urls={"edge": down, "cloud": down}, apps={})
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with client(router, up, "edge", policy_file(tmp_path),
                log=LogSettings(url=url, flush_interval_s=0.01)) as c:
        reply = c.post("/v1/chat/completions", json=CHAT)
        assert c.app.state.service.traffic.log.flush(10)  # type: ignore[attr-defined]
    assert reply.status_code == 502, reply.text
    (row,) = logged(url)
    assert reply.headers["x-request-id"] == row["request_id"] == \
        reply.headers["x-confroute-request-id"]
    assert row["status"] == 502 and row["answering_model"] is None
    assert [f["model"] for f in row["fallbacks"]] == ["edge", "cloud"]
    assert row["policy"]["cascade"]["stage"] == "edge"


@pytest.mark.slow
def test_a_reload_reads_the_cascade_settings_and_policy_again(tiny_artifact: Path,
                                                               tmp_path: Path) -> None:
    """`confroute serve --config` as a process: SIGHUP after t2 changed in the policy file
    keeps the answer an escalation took before; POST /admin/reload after the config file
    turned the cascade off routes without it; a change that cannot apply (on, with a policy
    file that is not JSON) is refused with 409 and the served cascade stays as it was."""
    import signal
    import time

    import httpx
    from test_traffic_process import AUTH, serving

    edge = echo_app("edge", answer=lambda body: Answer(EDGE_TEXT, UNSURE))
    config = tmp_path / "serve.yaml"
    policy = policy_file(tmp_path)  # t2 = 0.8: UNSURE (u = 0.96) escalates
    config.write_text(f"cascade: true\ncascade_policy: {policy}\n")

    def stage(url: str) -> tuple[str | None, str]:
        reply = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, json=CHAT, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.headers.get("x-confroute-cascade-stage"), reply.headers["x-confroute-route"]

    with contextlib.ExitStack() as stack:
        urls = {"edge": stack.enter_context(serve_in_thread(edge)) + "/v1",
                "cloud": stack.enter_context(serve_in_thread(echo_app("cloud"))) + "/v1"}
        state = stack.enter_context(serving(tiny_artifact, urls, f"sqlite:///{tmp_path}/l.db",
                                            "--config", str(config)))
        assert stage(state.url) == ("edge", "cloud")
        policy_file(tmp_path, t2=0.99)  # cascade.json rewritten: u = 0.96 is kept now
        state.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while stage(state.url) != ("edge", "edge"):  # the reload runs off the request path
            assert time.monotonic() < deadline, "SIGHUP did not apply the new t2"
            time.sleep(0.1)
        config.write_text(f"cascade: false\ncascade_policy: {policy}\n")
        answer = httpx.post(f"{state.url}/admin/reload", headers=AUTH, json={}, timeout=60)
        assert answer.status_code == 200 and answer.json()["cascade"] is None, answer.text
        assert stage(state.url)[0] is None
        (tmp_path / "junk.json").write_text("{ not json")
        config.write_text(f"cascade: true\ncascade_policy: {tmp_path / 'junk.json'}\n")
        answer = httpx.post(f"{state.url}/admin/reload", headers=AUTH, json={}, timeout=60)
        assert answer.status_code == 409 and "cascade_policy" in answer.text, answer.text
        assert stage(state.url)[0] is None
    assert "cascade t1=1.0000 t2=0.9900" in state.log and "cascade off" in state.log


def test_a_responses_request_is_routed_by_the_router_alone_and_says_so(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path) -> None:
    """/v1/responses has no stage 2 (docs/cascade.md): the router's own threshold decides
    (not t1), no edge answer is held or judged, and x-confroute-cascade says the cascade is
    off here, on answers and on errors alike."""
    from upstream import closed_port_url

    body = {"model": "confroute", "input": QUESTION}
    with client(router, upstreams, "unsure", policy_file(tmp_path, t1=0.0)) as c:
        threshold = c.app.state.service.policy.threshold  # type: ignore[attr-defined]
        reply = c.post("/v1/responses", json=body)
    assert reply.status_code == 200, reply.text
    h = reply.headers
    assert h["x-confroute-cascade"] == "off-on-responses"
    assert "x-confroute-cascade-stage" not in h and "x-confroute-uncertainty" not in h
    assert float(h["x-confroute-threshold"]) == pytest.approx(threshold) != 0.0  # not t1
    assert h["x-confroute-route"] == h["x-confroute-decision"]
    sent = upstreams.apps["unsure" if h["x-confroute-route"] == "edge" else "cloud"].state.seen
    assert "include" not in sent[-1]["body"] and "logprobs" not in sent[-1]["body"]
    down = closed_port_url()
    up = SimpleNamespace(urls={"edge": down, "cloud": down}, apps={})
    with client(router, up, "edge", policy_file(tmp_path)) as c:
        reply = c.post("/v1/responses", json=body)
    assert reply.status_code == 502 and reply.headers["x-confroute-cascade"] == "off-on-responses"


@pytest.mark.parametrize("stream", [False, True])
def test_an_escalation_that_finds_no_cloud_serves_the_held_edge_answer(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path, stream: bool) -> None:
    from upstream import closed_port_url

    from confroute.traffic.log import LogSettings

    up = SimpleNamespace(urls={**upstreams.urls, "cloud": closed_port_url()}, apps={})
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with client(router, up, "unsure", policy_file(tmp_path),
                log=LogSettings(url=url, flush_interval_s=0.01)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert c.app.state.service.traffic.log.flush(10)  # type: ignore[attr-defined]
    assert reply.status_code == 200, reply.text
    h = reply.headers
    assert h["x-confroute-cascade"] == "escalation-failed"
    assert (h["x-confroute-cascade-stage"], h["x-confroute-route"]) == ("edge", "edge")
    assert float(h["x-confroute-uncertainty"]) > 0.8  # stage 2 did want the cloud
    text = sse_text(reply.text)[0] if stream else reply.json()["choices"][0]["message"][
        "content"]
    assert text == EDGE_TEXT
    (row,) = logged(url)
    assert row["status"] == 200 and row["answering_model"] == "edge"
    assert row["policy"]["cascade"]["note"] == "escalation-failed"
    assert [f["model"] for f in row["fallbacks"]] == ["cloud"]  # the escalation that failed


def test_an_edge_stream_that_broke_off_and_no_cloud_is_an_error(
        router: Router, upstreams: SimpleNamespace, tmp_path: Path) -> None:
    from upstream import closed_port_url

    up = SimpleNamespace(urls={**upstreams.urls, "cloud": closed_port_url()}, apps={})
    with client(router, up, "broken", policy_file(tmp_path)) as c:
        reply = c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert reply.status_code == 502, reply.text  # no held answer to fall back on
    assert reply.json()["error"]["code"] == "upstream_unavailable"
