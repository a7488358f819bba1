"""Shadow judging over real HTTP: the other models' doubles answer as the real models did on
MMLU-Pro, the judge double knows the gold answer; both orders are asked, verdicts are stored as
outcomes, and the fraction, the rate and the USD budget cap what is shadowed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from doubles import data_dir, judge_answerer, mmlu_pro, model_answerer
from logged import entry, outcome_rows
from upstream import Answer, echo_app, serve_in_thread

from confroute.dataset.ratings import Price
from confroute.errors import ConfigError
from confroute.traffic.log import DecisionLog, LogSettings
from confroute.traffic.shadow import (
    Completion,
    ShadowJudge,
    ShadowRequest,
    ShadowSettings,
    spent_today,
)

LADDER = ["Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct", "gemini-1.5-pro-002"]
PRICES = {LADDER[0]: Price(0.18, 0.18), LADDER[1]: Price(0.88, 0.88),
          LADDER[2]: Price(1.25, 5.0), "judge": Price(2.5, 10.0)}


@pytest.fixture(scope="module")
def outcomes():
    if data_dir("CONFROUTE_MMLU_PRO_DIR", "mmlu_pro") is None:
        pytest.skip("MMLU-Pro outcomes not found: set CONFROUTE_MMLU_PRO_DIR")
    return mmlu_pro(LADDER)


@contextlib.contextmanager
def upstreams(outcomes: Any, judge: Any = None, failing: str | None = None
              ) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """A loopback server per model and one for the judge: ({name: base URL}, {name: app})."""
    apps = {m: echo_app(m, answer=model_answerer(outcomes, m),
                        fail_status=500 if m == failing else None) for m in LADDER}
    apps["judge"] = echo_app("judge", answer=judge or judge_answerer(outcomes))
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve_in_thread(app)) for name, app in apps.items()}
        yield urls, apps


def http_call(urls: dict[str, str], client: httpx.AsyncClient):
    """The upstream callable a service would pass: one OpenAI-compatible POST per call."""
    async def call(model: str, messages: list[dict], fields: dict) -> Completion:
        response = await client.post(f"{urls[model]}/v1/chat/completions",
                                     json={"model": model, "messages": messages, **fields})
        response.raise_for_status()
        body = response.json()
        return Completion(body["choices"][0]["message"]["content"],
                          body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
    return call


def request_for(outcomes: Any, i: int, answered_by: str, models: list[str] = LADDER[:2]
                ) -> ShadowRequest:
    prompt = outcomes.prompts[i]
    return ShadowRequest(f"req-{i}", [{"role": "user", "content": prompt}], prompt, models,
                         answered_by, outcomes.answer(answered_by, prompt))


def run(outcomes: Any, settings: ShadowSettings, requests: list[ShadowRequest],
        log: DecisionLog | None = None, **servers: Any) -> tuple[ShadowJudge, dict[str, Any]]:
    async def main(urls: dict[str, str]) -> ShadowJudge:
        async with httpx.AsyncClient(timeout=30) as client:
            store = log.add_outcome if log else (lambda row: True)
            judge = ShadowJudge(settings, http_call(urls, client), PRICES, store)
            judge.start()
            for request in requests:
                judge.offer(request)
            await judge.drain()
            await judge.aclose()
            return judge

    with upstreams(outcomes, **servers) as (urls, apps):
        return asyncio.run(main(urls)), apps


def test_verdicts_of_both_orders_are_stored_as_outcomes(outcomes: Any, sqlite_url: str) -> None:
    log = DecisionLog.open(LogSettings(url=sqlite_url, flush_interval_s=0.01))
    cheap, pricey = LADDER[:2]
    requests = [request_for(outcomes, i, cheap if i % 2 else pricey) for i in range(40)]
    for r in requests:
        log.record(entry(r.request_id.removeprefix("req-"), models=LADDER[:2],
                         chosen_model=r.answered_by, answering_model=r.answered_by))
    judge, apps = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=100,
                                               requests_per_minute=1000), requests, log)
    log.close()
    stored = {o["request_id"]: o for o in outcome_rows(sqlite_url) if o["kind"] == "judge"}
    assert len(stored) == 40 and judge.counts["judged"] == 40
    for i in range(40):
        right = outcomes.correct[cheap][i], outcomes.correct[pricey][i]
        expected = cheap if right == (True, False) else pricey if right == (False, True) else "tie"
        verdict = stored[f"req-{i}"]["verdict"]
        assert verdict["winner"] == expected and verdict["models"] == [cheap, pricey]
        assert stored[f"req-{i}"]["source"] == f"judge:{cheap}:{pricey}"
    judged = [s["body"]["messages"][1]["content"] for s in apps["judge"].state.seen]
    assert len(judged) == 80  # each comparison in both orders
    first = outcomes.prompts[0]
    shown_first = [text.index(outcomes.answer(cheap, first)) < text.index(
        outcomes.answer(pricey, first)) for text in judged if first in text]
    if outcomes.answer(cheap, first) != outcomes.answer(pricey, first):
        assert sorted(shown_first) == [False, True]  # once as assistant A, once as B
    spend = sum(o["cost_usd"] for o in stored.values())
    assert spend > 0 and abs(judge.stats()["spend_usd_total"] - spend) < 1e-12


def test_a_judge_that_always_prefers_the_first_answer_gives_ties(outcomes: Any) -> None:
    biased = lambda body: Answer("The first one. [[A]]")  # noqa: E731
    judge, _ = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=100,
                                            requests_per_minute=1000),
                   [request_for(outcomes, i, LADDER[0]) for i in range(10)], judge=biased)
    assert judge.counts["verdicts_tie"] == 10 and judge.counts["judged"] == 10


def test_fraction_rate_and_budget_cap_what_is_shadowed(outcomes: Any) -> None:
    requests = [request_for(outcomes, i, LADDER[0]) for i in range(200)]
    sampled, _ = run(outcomes, ShadowSettings(fraction=0.25, usd_per_day=100, seed=3,
                                              requests_per_minute=1000), requests)
    assert 30 <= sampled.counts["shadowed"] <= 70  # 200 x 0.25, seeded
    assert sampled.counts["skipped_sampling"] == 200 - sampled.counts["shadowed"]
    rated, _ = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=100,
                                            requests_per_minute=5), requests[:20])
    assert rated.counts["shadowed"] == 5 and rated.counts["skipped_rate"] == 15
    budget = 0.05  # each request is estimated at about 0.01 USD (mostly the judge's max_tokens)
    capped, _ = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=budget,
                                             requests_per_minute=1000), requests[:100])
    assert 0 < capped.counts["shadowed"] < 100 and capped.counts["skipped_budget"] > 0
    assert 0 < capped.stats()["spend_usd_today"] <= budget


def test_a_ladder_samples_the_other_models_and_survives_a_failing_one(outcomes: Any) -> None:
    requests = [request_for(outcomes, i, LADDER[0], LADDER) for i in range(12)]
    judge, apps = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=100, models=1, seed=0,
                                               requests_per_minute=1000), requests,
                      failing=LADDER[2])
    asked = len(apps[LADDER[1]].state.seen) + len(apps[LADDER[2]].state.seen)
    assert asked == 12 and len(apps[LADDER[0]].state.seen) == 0  # one other model each
    assert judge.counts["call_failures"] == len(apps[LADDER[2]].state.seen) > 0
    assert judge.counts["judged"] == len(apps[LADDER[1]].state.seen)


def test_the_day_spend_is_read_back_from_the_log(outcomes: Any, sqlite_url: str) -> None:
    log = DecisionLog.open(LogSettings(url=sqlite_url, flush_interval_s=0.01))
    judge, _ = run(outcomes, ShadowSettings(fraction=1.0, usd_per_day=100,
                                            requests_per_minute=1000),
                   [request_for(outcomes, i, LADDER[1]) for i in range(5)], log)
    log.flush()
    assert abs(spent_today(log.engine) - judge.stats()["spend_usd_today"]) < 1e-12
    log.close()


@pytest.mark.parametrize("values, message", [
    ({"fraction": 1.5}, "fraction must be in"), ({"usd_per_day": -1}, "usd_per_day"),
    ({"models": 0}, "shadow.models"), ({"concurrency": 0}, "concurrency"),
])
def test_bad_settings_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ShadowSettings(**values)
