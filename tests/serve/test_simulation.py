"""The traffic loop's quick simulation through the service: GSM8K prompts replayed through the
app to upstream doubles that answer right exactly when Mixtral-8x7B (edge) and GPT-4 (cloud)
did in RouteLLM's outcomes, every request shadow-judged by the judge double that knows the gold
answer; the log then holds one verdict per request that matches the real outcomes, and the
table built from the log (what `confroute train --data.source URL` reads) carries them."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from served import echo_servers, make_app  # noqa: F401
from starlette.testclient import TestClient
from test_traffic import metric, rows

from confroute.runtime import Router
from confroute.serve import UpstreamSettings
from confroute.traffic.dataset import log_table
from confroute.traffic.log import LogSettings
from confroute.traffic.schema import outcomes
from confroute.traffic.shadow import ShadowSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
import doubles  # noqa: E402
from doubles import GSM8K_CLOUD, GSM8K_EDGE, data_dir  # noqa: E402
from upstream import echo_app, serve_in_thread  # noqa: E402

N = 40


@pytest.fixture(scope="module")
def gsm():
    if data_dir("CONFROUTE_ROUTELLM_DIR", "routellm") is None:
        pytest.skip("RouteLLM outcomes not found: set CONFROUTE_ROUTELLM_DIR")
    known = doubles.gsm8k()
    # a mix with every case: only one model right, both, neither
    edge, cloud = known.correct[GSM8K_EDGE], known.correct[GSM8K_CLOUD]
    cases = [np.flatnonzero(edge & ~cloud), np.flatnonzero(~edge & cloud),
             np.flatnonzero(edge & cloud), np.flatnonzero(~edge & ~cloud)]
    return known.subset(np.concatenate([c[:N // 4] for c in cases]))


@pytest.mark.slow
def test_replayed_traffic_is_logged_and_judged_as_the_real_models_did(
        router: Router, echo: SimpleNamespace, gsm, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    apps = {"edge": echo_app("edge", answer=doubles.model_answerer(gsm, GSM8K_EDGE)),
            "cloud": echo_app("cloud", answer=doubles.model_answerer(gsm, GSM8K_CLOUD)),
            "judge": echo_app("judge", answer=doubles.judge_answerer(gsm))}
    with serve_in_thread(apps["edge"]) as edge, serve_in_thread(apps["cloud"]) as cloud, \
            serve_in_thread(apps["judge"]) as judge:
        urls = SimpleNamespace(urls={**echo.urls, "edge": edge + "/v1", "cloud": cloud + "/v1"})
        app = make_app(router, urls, log=LogSettings(url=url, text=True, flush_interval_s=0.01),
                       shadow=ShadowSettings(fraction=1.0, requests_per_minute=10_000,
                                             usd_per_day=100.0, seed=0),
                       judge=UpstreamSettings(judge + "/v1", "judge-model"),
                       read_timeout_s=30.0)
        with TestClient(app) as client:
            ids = [client.post("/v1/chat/completions", json={"model": "confroute", "messages": [
                {"role": "user", "content": prompt}]}).headers["x-confroute-request-id"]
                for prompt in gsm.prompts]
            deadline = time.monotonic() + 120
            while metric(client.get("/metrics").text, "confroute_shadow_judged") < N:
                assert time.monotonic() < deadline, client.get("/metrics").text
                time.sleep(0.1)
    verdicts = {o["request_id"]: o["verdict"]["winner"] for o in rows(url, outcomes)
                if o["kind"] == "judge"}
    edge_right, cloud_right = gsm.correct[GSM8K_EDGE], gsm.correct[GSM8K_CLOUD]
    expected = ["edge" if e and not c else "cloud" if c and not e else "tie"
                for e, c in zip(edge_right, cloud_right, strict=True)]
    assert [verdicts[i] for i in ids] == expected
    table, _ = log_table(url)
    by_id = table.set_index("id")
    # the edge's answer is adequate unless it lost to the cloud (a tie rates both 1)
    assert by_id.loc[ids, "rating_edge"].tolist() == [float(e != "cloud") for e in expected]
