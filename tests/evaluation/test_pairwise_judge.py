"""LLM-as-a-judge comparison against a real loopback HTTP server standing in for the paid API
(the upstream double of tests/serve/upstream.py, answering as a judge)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from upstream import Answer, echo_app, last_user_text, serve_in_thread  # noqa: E402

from confroute.errors import ConfigError, DataError  # noqa: E402
from confroute.evaluation import judge  # noqa: E402
from confroute.evaluation.groundtruth import GroundTruth  # noqa: E402
from confroute.llm_client import EndpointConfig, LLMError  # noqa: E402


def prefers_correct(body: dict) -> Answer:
    """A judge that prefers the answer saying CORRECT (a tie when both or neither do)."""
    user = last_user_text(body["messages"])
    a = user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
    b = user.split("[The Start of Assistant B's Answer]")[1].split("[The End")[0]
    verdict = "C" if ("CORRECT" in a) == ("CORRECT" in b) else ("A" if "CORRECT" in a else "B")
    return Answer(f"Reasoning... [[{verdict}]]")


@pytest.fixture()
def server():
    app = echo_app("judge", answer=prefers_correct)
    with serve_in_thread(app) as url:
        yield app, f"{url}/v1"


def pairwise(url: str, model: str = "m", **endpoint) -> judge.Ask:
    return judge.http_judge(judge.PairwiseJudgeConfig(EndpointConfig(url, model, **endpoint)))


def _truth():
    return GroundTruth("t", np.array(["p0", "p1", "p2", "p3"]), ["q0", "q1", "q2", "q3"],
                       np.array([0.0, 0.0, 1.0, 1.0]), np.ones(4),
                       answers_edge=["wrong", "wrong", "CORRECT", "CORRECT"],
                       answers_cloud=["CORRECT"] * 4)


def test_compare_by_hand(server, monkeypatch):
    app, url = server
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    ask = pairwise(url, "judge-model", api_key_env="TEST_JUDGE_KEY", concurrency=2)
    # good: CPT(50%) = 25% -> p0 to the cloud; bad: CPT(50%) = 75% -> p3, p2, p1 to the cloud
    result = judge.compare(_truth(), {"good": np.array([0.9, 0.8, 0.2, 0.1]),
                                      "bad": np.array([0.1, 0.2, 0.8, 0.9])}, 0.5, ask)
    assert result["routers"]["good"]["cpt"] == pytest.approx(0.25)
    assert result["routers"]["bad"]["cloud_fraction"] == pytest.approx(0.75)
    # every prompt is disputed; the judge says cloud on p0, p1 and tie on p2, p3
    assert result["judged"] == 4 and result["verdicts"] == {"edge": 0, "cloud": 2, "tie": 2}
    assert result["routers"]["good"]["best_pct"] == pytest.approx(75.0)
    assert result["routers"]["bad"]["best_pct"] == pytest.approx(75.0)
    assert len(app.state.seen) == 4 and app.state.load["max_in_flight"] <= 2
    assert app.state.seen[0]["authorization"] == "Bearer sk-test"
    assert {r["model"] for r in app.state.seen} == {"judge-model"}
    assert {r["body"]["temperature"] for r in app.state.seen} == {0}
    assert {r["body"]["messages"][0]["content"] for r in app.state.seen} == {judge.SYSTEM}


def test_agreeing_routers_need_no_judge_calls(server):
    app, url = server
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    result = judge.compare(_truth(), {"a": scores, "b": scores * 2}, 0.5, pairwise(url))
    assert result["judged"] == 0 and not app.state.seen
    assert result["routers"]["a"]["best_pct"] == 100.0


@pytest.mark.parametrize("cloud_first", [True, False])
def test_verdict_maps_back_whatever_the_order(cloud_first):
    def ask(prompts):
        firsts = [user.split("[The Start of Assistant A's Answer]\n")[1].split("\n")[0]
                  for _, user in prompts]
        return ["[[A]]" if first == "cloud says" else "[[B]]" for first in firsts]

    assert judge.judge_pair("q", "edge says", "cloud says", ask, cloud_first) == "cloud"


def test_judge_failures_are_clear(server):
    with pytest.raises(DataError, match="no verdict"):
        judge.judge_pair("q", "a", "b", lambda prompts: ["I cannot decide"], True)
    no_answers = GroundTruth("mmlu", np.array(["a", "b"]), ["x", "y"], np.zeros(2), np.ones(2))
    with pytest.raises(DataError, match="no model answers"):
        judge.compare(no_answers, {"r": np.zeros(2)}, 0.5, pairwise(server[1]))
    with pytest.raises(ConfigError, match="http"):
        EndpointConfig("api.openai.com", "m")


def test_judge_endpoint_is_retried_then_a_clear_error():
    """No retries before the shared client: now a 5xx is retried, then reported."""
    app = echo_app("judge", fail_status=500, fail_first=1, retry_after="0.01",
                   answer=prefers_correct)
    with serve_in_thread(app) as url:
        assert judge.judge_pair("q", "CORRECT", "no", pairwise(f"{url}/v1"), True) == "edge"
    assert len(app.state.seen) == 2
    failing = echo_app("judge", fail_status=500, retry_after="0.01")
    with serve_in_thread(failing) as url, pytest.raises(LLMError, match="HTTP 500 after 2"):
        judge.judge_pair("q", "a", "b", pairwise(f"{url}/v1", max_retries=1), True)
