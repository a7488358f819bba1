"""LLM-as-a-judge comparison against a real loopback HTTP server standing in for the paid API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from confroute.errors import ConfigError, DataError
from confroute.evaluation import judge
from confroute.evaluation.groundtruth import GroundTruth


class _Judge(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose judge prefers the answer saying CORRECT."""

    requests: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        user = body["messages"][-1]["content"]
        a = user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
        b = user.split("[The Start of Assistant B's Answer]")[1].split("[The End")[0]
        verdict = "C" if ("CORRECT" in a) == ("CORRECT" in b) else ("A" if "CORRECT" in a else "B")
        payload = {"choices": [{"message": {"role": "assistant",
                                            "content": f"Reasoning... [[{verdict}]]"}}]}
        data = json.dumps(payload).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Judge.requests, _Judge.status = [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _truth():
    return GroundTruth("t", np.array(["p0", "p1", "p2", "p3"]), ["q0", "q1", "q2", "q3"],
                       np.array([0.0, 0.0, 1.0, 1.0]), np.ones(4),
                       answers_edge=["wrong", "wrong", "CORRECT", "CORRECT"],
                       answers_cloud=["CORRECT"] * 4)


def test_compare_by_hand(server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    ask = judge.http_judge(judge.JudgeConfig(server, "judge-model", api_key_env="TEST_JUDGE_KEY"))
    # good: CPT(50%) = 25% -> p0 to the cloud; bad: CPT(50%) = 75% -> p3, p2, p1 to the cloud
    result = judge.compare(_truth(), {"good": np.array([0.9, 0.8, 0.2, 0.1]),
                                      "bad": np.array([0.1, 0.2, 0.8, 0.9])}, 0.5, ask)
    assert result["routers"]["good"]["cpt"] == pytest.approx(0.25)
    assert result["routers"]["bad"]["cloud_fraction"] == pytest.approx(0.75)
    # every prompt is disputed; the judge says cloud on p0, p1 and tie on p2, p3
    assert result["judged"] == 4 and result["verdicts"] == {"edge": 0, "cloud": 2, "tie": 2}
    assert result["routers"]["good"]["best_pct"] == pytest.approx(75.0)
    assert result["routers"]["bad"]["best_pct"] == pytest.approx(75.0)
    assert len(_Judge.requests) == 4
    assert _Judge.requests[0]["path"] == "/v1/chat/completions"
    assert _Judge.requests[0]["auth"] == "Bearer sk-test"
    assert _Judge.requests[0]["body"]["model"] == "judge-model"


def test_agreeing_routers_need_no_judge_calls(server):
    ask = judge.http_judge(judge.JudgeConfig(server, "m"))
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    result = judge.compare(_truth(), {"a": scores, "b": scores * 2}, 0.5, ask)
    assert result["judged"] == 0 and not _Judge.requests
    assert result["routers"]["a"]["best_pct"] == 100.0


@pytest.mark.parametrize("cloud_first", [True, False])
def test_verdict_maps_back_whatever_the_order(cloud_first):
    def ask(system, user):
        first = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n")[0]
        return "[[A]]" if first == "cloud says" else "[[B]]"

    assert judge.judge_pair("q", "edge says", "cloud says", ask, cloud_first) == "cloud"


def test_judge_failures_are_clear(server):
    with pytest.raises(DataError, match="no verdict"):
        judge.judge_pair("q", "a", "b", lambda s, u: "I cannot decide", True)
    _Judge.status = 500
    ask = judge.http_judge(judge.JudgeConfig(server, "m"))
    with pytest.raises(DataError, match="HTTP 500"):
        ask("s", "[The Start of Assistant A's Answer]x[The End [The Start of Assistant B's "
                 "Answer]y[The End")
    no_answers = GroundTruth("mmlu", np.array(["a", "b"]), ["x", "y"], np.zeros(2), np.ones(2))
    with pytest.raises(DataError, match="no model answers"):
        judge.compare(no_answers, {"r": np.zeros(2)}, 0.5, ask)
    with pytest.raises(ConfigError, match="http"):
        judge.JudgeConfig("api.openai.com", "m")
