"""Answer equivalence: exact, and LLM-judged bidirectional entailment over an OpenAI-compatible
endpoint (batched, cached across prompts and runs, resumable).

The fast tests serve a rule-based judge on loopback: it stands in for a remote paid LLM API and
decides entailment by a fixed meaning table, so the clusters have known right values. The slow
test serves the real SmolLM2-135M-Instruct behind the same OpenAI-compatible route.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import types
from pathlib import Path

import pytest
from upstream import echo_app, lm_answer, serve_in_thread  # noqa: E402

from confroute.errors import ConfigError
from confroute.labelling import equivalence as eq
from confroute.labelling.store import JsonlStore
from confroute.llm_client import EndpointConfig, LLMError


@contextlib.contextmanager
def loopback(app):
    """`app` served on loopback; `.url` is its OpenAI base URL (ending in /v1)."""
    with serve_in_thread(app) as base:
        yield types.SimpleNamespace(url=f"{base}/v1")

MEANING = {"paris": "paris", "it is paris": "paris", "paris, france": "paris",
           "lyon": "lyon", "the city of lyon": "lyon", "rome": "rome"}
PAIR = re.compile(r"Possible Answer 1: (.*)\nPossible Answer 2: (.*)\n")


def judge_app(fail_after: int | None = None, delay_s: float = 0.01):
    """A judge that says "Entailment." iff both answers have the same meaning in MEANING.

    Records requests and the most requests it saw in flight; after `fail_after` requests it
    answers HTTP 500 (a server that goes down mid-run)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "params": []}

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        state["requests"] += 1
        state["params"].append({k: body.get(k) for k in ("temperature", "max_tokens")})
        if fail_after is not None and state["requests"] > fail_after:
            return JSONResponse({"error": {"message": "down"}}, status_code=500)
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        await asyncio.sleep(delay_s)
        state["in_flight"] -= 1
        first, second = PAIR.search(body["messages"][-1]["content"]).groups()
        same = MEANING.get(first.lower()) == MEANING.get(second.lower()) is not None
        text = "Entailment." if same else "Contradiction."
        return JSONResponse({"id": "j", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.counters = state
    return app


def llm(url: str, cache: Path, **kw) -> eq.LlmEquivalence:
    settings = {"api_key_env": None, "max_retries": 0, "concurrency": 4} | kw
    chunk = settings.pop("chunk", 256)
    return eq.LlmEquivalence(EndpointConfig(base_url=url, model="judge", **settings), cache,
                             chunk=chunk)


QUESTION = "What is the capital of France?"
ANSWERS = ["Paris", "It is Paris", "Lyon", None, "Paris", "the city of Lyon", "Rome"]
RIGHT = [0, 0, 1, eq.INVALID, 0, 1, 2]


def test_exact_equivalence_clusters_equal_values():
    assert eq.ExactEquivalence().cluster("q", ["4", "4", None, "5"]) == [0, 0, eq.INVALID, 1]


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Entailment.", "entailment"), ("contradiction", "contradiction"),
    ("  Neutral - the answers differ", "neutral"), ("The answer is entailment", "entailment"),
    ("", None), ("Yes", None), ("entailments", None),
    ("We are evaluating ... Respond with entailment, contradiction, or neutral.", None)])
def test_parse_verdict_reads_only_the_start_of_the_reply(reply, verdict):
    assert eq.parse_verdict(reply) == verdict


def test_pair_key_ignores_order_and_names_model_and_question():
    key = eq.pair_key("m", "q", "a", "b")
    assert key == eq.pair_key("m", "q", "b", "a")
    assert len({key, eq.pair_key("m2", "q", "a", "b"), eq.pair_key("m", "q2", "a", "b")}) == 3


@pytest.mark.parametrize("spec", ["llm:", "llm:model", "llm:@http://x/v1", "llm:m@ftp://x",
                                  "nli:", "fuzzy"])
def test_bad_equivalence_specs_are_clear_errors(spec):
    with pytest.raises(ConfigError, match="equivalence|spec|base_url"):
        eq.make_equivalence(spec)


def test_make_equivalence_parses_llm_spec(tmp_path):
    made = eq.make_equivalence("llm:org/model@name@http://127.0.0.1:9/v1",
                               cache=tmp_path / "c.jsonl", api_key_env=None, concurrency=3)
    assert isinstance(made, eq.LlmEquivalence)
    assert (made.endpoint.model, made.endpoint.base_url) == ("org/model@name",
                                                             "http://127.0.0.1:9/v1")
    assert made.endpoint.concurrency == 3 and made.name.startswith("llm:org/model@name@")


def test_llm_equivalence_clusters_by_bidirectional_entailment_in_one_batch(tmp_path):
    app = judge_app()
    with loopback(app) as server:
        judge = llm(server.url, tmp_path / "verdicts.jsonl")
        assert judge.cluster(QUESTION, ANSWERS) == RIGHT
    counters = app.state.counters
    # 5 distinct answers: 10 pairs, both directions; the repeated "Paris" is never asked
    assert counters["requests"] == 20 == judge.stats["requests"]
    assert counters["max_in_flight"] > 1  # batched: requests were in flight together
    assert all(p == {"temperature": 0.0, "max_tokens": 8} for p in counters["params"])
    assert judge.stats["unparsed"] == 0


def test_one_way_entailment_is_not_equivalence(tmp_path):
    judge = llm("http://127.0.0.1:9/v1", tmp_path / "v.jsonl")
    key = eq.pair_key("judge", "q", "a", "b")
    judge.store.add([{"key": key, "verdicts": ["entailment", "neutral"]}])
    assert judge.cluster("q", ["a", "b"]) == [0, 1]
    judge.store.add([{"key": eq.pair_key("judge", "q", "a", "c"),
                      "verdicts": ["entailment", "entailment"]}])
    assert judge.cluster("q", ["a", "c"]) == [0, 0]


def test_verdicts_are_cached_across_prompts_and_runs(tmp_path):
    cache = tmp_path / "verdicts.jsonl"
    app = judge_app()
    with loopback(app) as server:
        first = llm(server.url, cache)
        first.cluster(QUESTION, ["Paris", "Lyon"])
        first.prepare([(QUESTION, ["Lyon", "Paris", "Rome"]), ("Another question?", ["Paris",
                                                                                     "Lyon"])])
        assert app.state.counters["requests"] == 2 + 4 + 2  # (Paris, Lyon) asked once
        again = llm(server.url, cache)  # a new run reads the verdicts from disk
        assert again.cluster(QUESTION, ANSWERS[:3]) == [0, 0, 1]
        asked = app.state.counters["requests"]
        assert again.cluster(QUESTION, ["Lyon", "Rome", "Paris"]) == [0, 1, 2]
        assert app.state.counters["requests"] == asked  # every pair was cached
    records = [r for r in JsonlStore(cache, readonly=True).records.values()]
    assert all(r["model"] == "judge" and len(r["replies"]) == 2 for r in records)


def test_a_new_prompt_version_asks_again_in_the_same_cache_file(tmp_path, monkeypatch):
    cache = tmp_path / "verdicts.jsonl"
    app = judge_app()
    with loopback(app) as server:
        llm(server.url, cache).cluster(QUESTION, ["Paris", "Lyon"])
        monkeypatch.setattr(eq, "PROMPT_VERSION", eq.PROMPT_VERSION + 1)
        assert llm(server.url, cache).cluster(QUESTION, ["Paris", "Lyon"]) == [0, 1]
    assert app.state.counters["requests"] == 4 and len(JsonlStore(cache, readonly=True)) == 2


def test_interrupted_run_resumes_with_only_the_missing_pairs(tmp_path):
    cache = tmp_path / "verdicts.jsonl"
    with loopback(judge_app(fail_after=6)) as server:
        broken = llm(server.url, cache, chunk=1, concurrency=1)
        with pytest.raises(LLMError, match="HTTP 500"):
            broken.cluster(QUESTION, ANSWERS)
    done = len(JsonlStore(cache, readonly=True))
    assert done == 3  # three pairs (6 requests) finished and were stored before the failure
    app = judge_app()
    with loopback(app) as server:
        assert llm(server.url, cache).cluster(QUESTION, ANSWERS) == RIGHT
    assert app.state.counters["requests"] == 2 * (10 - done)


def test_a_reply_without_a_verdict_is_counted_and_not_entailment(tmp_path):
    with serve_in_thread(echo_app("echo")) as base:  # restates the prompt: no verdict
        judge = llm(f"{base}/v1", tmp_path / "v.jsonl")
        assert judge.cluster(QUESTION, ["Paris", "It is Paris"]) == [0, 1]
    assert judge.stats["unparsed"] == 2


def test_endpoint_errors_name_the_endpoint_and_the_next_step(tmp_path):
    with (serve_in_thread(echo_app("e", fail_status=404)) as base,
          pytest.raises(LLMError, match="404.*model name")):
        llm(f"{base}/v1", tmp_path / "v.jsonl").cluster("q", ["a", "b"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(LLMError, match="is the server up"):
        llm(f"http://127.0.0.1:{port}/v1", tmp_path / "w.jsonl").cluster("q", ["a", "b"])


def test_pipeline_measure_batches_llm_verdicts_for_all_prompts(tmp_path):
    from confroute.labelling import pipeline as lab

    rows = [{"id": str(i), "prompt": QUESTION, "answer_type": "text"} for i in range(3)]
    texts = [["Paris", "It is Paris", "Lyon"], ["Rome", "Paris"], ["Lyon", "Lyon"]]
    records = {f"edge:{i}": {"samples": [{"text": t, "finish": "stop", "logprobs": None}
                                         for t in ts]} for i, ts in enumerate(texts)}
    app = judge_app()
    with loopback(app) as server:
        judge = llm(server.url, tmp_path / "v.jsonl")
        out = lab.measure(rows, records, "edge", lab.MeasureConfig(), judge)
    assert [o["clusters_edge"] for o in out] == [[0, 0, 1], [0, 1], [0, 0]]
    assert [o["n_clusters_edge"] for o in out] == [2, 2, 1]
    # one batch: 3 + 1 distinct pairs (normalised text), both directions
    assert app.state.counters["requests"] == 8 and app.state.counters["max_in_flight"] > 1


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory):
    from confroute.labelling.local import LocalBackend

    return LocalBackend("smollm2", cache_dir=tmp_path_factory.mktemp("cache"), threads=2)


@pytest.mark.slow
def test_llm_equivalence_against_smollm2_served_on_loopback(smollm2, tmp_path):
    cache = tmp_path / "verdicts.jsonl"
    answers = ["Paris", "The capital of France is Paris.", "Berlin", "Paris"]
    with loopback(echo_app("smollm2", answer=lm_answer(smollm2))) as server:
        judge = eq.make_equivalence(f"llm:smollm2@{server.url}", cache=cache, api_key_env=None,
                                    concurrency=2)
        ids = judge.cluster(QUESTION, answers)
        assert judge.stats["requests"] == 6  # 3 distinct answers: 3 pairs, both directions
        assert ids[0] == ids[3] == 0 and all(i in (0, 1, 2) for i in ids)
        again = eq.make_equivalence(f"llm:smollm2@{server.url}", cache=cache, api_key_env=None)
        assert again.cluster(QUESTION, answers) == ids and again.stats["requests"] == 0
    records = list(JsonlStore(cache, readonly=True).records.values())
    assert len(records) == 3
    replies = [r for rec in records for r in rec["replies"]]
    assert all(isinstance(r, str) and r.strip() for r in replies)  # the model's own words
    verdicts = [v for rec in records for v in rec["verdicts"]]
    # what was read from the real replies is what the clusters say: "Paris" is the first
    # cluster's representative, so another answer joins it iff that pair was judged equivalent
    for rec in records:
        if "Paris" in rec["answers"]:
            other = next(a for a in rec["answers"] if a != "Paris")
            same = rec["verdicts"] == ["entailment", "entailment"]
            assert (ids[answers.index(other)] == 0) == same
    assert sum(v is None for v in verdicts) == judge.stats["unparsed"]


def test_default_entailment_cache_lives_in_confroute_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CONFROUTE_CACHE", str(tmp_path))
    assert eq.default_entailment_cache() == tmp_path / "entailment.jsonl"
