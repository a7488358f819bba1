"""Shadow judging: after the client has its answer, ask the models it did not get an answer
from, and let the pairwise LLM judge compare their answers with the one it got.

For a configurable fraction of requests (`ShadowSettings.fraction`), capped by a budget in USD
per UTC day and a number of requests per minute, the request's messages go to every other model
of the artifact (or a random sample of them); each of their answers is compared with the answer
the client got by the project's pairwise judge (`confroute.evaluation.judge`, MT-Bench's
pairwise format) in both orders, and the two verdicts combine as MT-Bench does: the same winner
twice wins, anything else (position bias) is a tie. The verdict is stored as an outcome of the
request (`judge:<cheaper>:<pricier>`), with what it cost.

The service passes its own upstream client as `call`, an async callable (model name, messages,
request fields) -> `Completion`; the judge is called through it too, under the model name
`judge_model`, so the service decides where the judge lives. Threading model: `offer` is called
on the event loop (it only decides and queues, in microseconds), and `start()` runs
`concurrency` worker tasks on that loop; nothing here blocks the loop or the client's request.
A request not shadowed is counted by why (not sampled, rate, budget, queue full).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np

from confroute.dataset.ratings import Price, estimate_tokens
from confroute.errors import ConfigError, DataError
from confroute.evaluation.judge import pair_prompts, read_verdict
from confroute.traffic.records import outcome_row

LOG = logging.getLogger("confroute.traffic")
DAY_S = 86_400.0
JUDGE_TEMPLATE_TOKENS = 150
"""The judge prompt's own words (system prompt and template), in tokens, for the estimate."""


@dataclasses.dataclass
class ShadowSettings:
    """Shadow judging: which requests are also answered by the other models, and its budget."""

    fraction: float = 0.0
    """Share of answered requests also sent to the models not chosen and judged; 0 = off."""
    models: int | None = None
    """How many of the other models each shadowed request goes to (a random sample of them);
    None = every one."""
    usd_per_day: float = 1.0
    """Most USD spent per UTC day on shadow answers and judge calls; a request whose estimated
    cost does not fit in what is left today is not shadowed."""
    requests_per_minute: float = 10.0
    """Most requests shadowed in any 60 seconds."""
    judge_model: str = "judge"
    """The model name under which the judge is called (the service maps it to its endpoint);
    its price, if known, counts toward the budget."""
    judge_max_tokens: int = 512
    queue_size: int = 100
    """Shadowed requests waiting for a worker; beyond this they are skipped (and counted)."""
    concurrency: int = 2
    """Shadowed requests processed at once."""
    seed: int | None = None
    """Seed of the sampling (None: a fresh one per process)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"shadow.fraction must be in [0, 1]; found {self.fraction!r}")
        for name in ("usd_per_day", "requests_per_minute"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ConfigError(f"shadow.{name} must be a number >= 0; found "
                                  f"{getattr(self, name)!r}")
        for name in ("judge_max_tokens", "queue_size", "concurrency"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"shadow.{name} must be >= 1; found {getattr(self, name)!r}")
        if self.models is not None and not self.models >= 1:
            raise ConfigError(f"shadow.models must be >= 1 or unset; found {self.models!r}")


@dataclasses.dataclass(frozen=True)
class Completion:
    """A model's answer: its text, the upstream's usage (tokens) and, if the caller priced it,
    its cost in USD (else it is priced from the settings' prices and the usage)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None


Call = Callable[[str, list[dict[str, Any]], dict[str, Any]], Awaitable[Completion]]
"""(model name, chat messages, extra request fields e.g. max_tokens) -> the answer; raises on
failure (the shadow request then counts a failed call)."""


@dataclasses.dataclass(frozen=True)
class ShadowRequest:
    """A request the client has its answer to: its messages (sent to the other models), the
    scored `question` the judge reads, the artifact's `models` (cheapest first), which model
    answered and what it said."""

    request_id: str
    messages: list[dict[str, Any]]
    question: str
    models: Sequence[str]
    answered_by: str
    answer: str
    completion_tokens: int | None = None


class ShadowJudge:
    """Samples, budgets, asks and judges (see the module docstring); `store` queues an outcome
    row (e.g. `DecisionLog.add_outcome`)."""

    def __init__(self, settings: ShadowSettings, call: Call, prices: Mapping[str, Price],
                 store: Callable[[dict[str, Any]], bool], spent_today: float = 0.0) -> None:
        self.settings = settings
        self.call = call
        self.prices = dict(prices)
        self.store = store
        self._rng = random.Random(settings.seed)
        self._queue: asyncio.Queue[tuple[ShadowRequest, list[str], float]] = asyncio.Queue(
            settings.queue_size)
        self._started: collections.deque[float] = collections.deque()
        self._day = _today()
        self._spent_today, self._reserved = float(spent_today), 0.0
        self._unpriced: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self.counts = collections.Counter({k: 0 for k in (
            "offered", "shadowed", "skipped_sampling", "skipped_rate", "skipped_budget",
            "skipped_queue", "calls", "call_failures", "judged", "unjudged", "verdicts_cheaper",
            "verdicts_pricier", "verdicts_tie")})
        self.spend_total = 0.0

    # --- the service's side ------------------------------------------------------------------

    def offer(self, request: ShadowRequest) -> str:
        """Decide whether to shadow `request` and queue it: returns "shadowed" or why not
        ("sampling", "no_other_model", "rate", "budget", "queue"). Call it on the event loop."""
        self.counts["offered"] += 1
        if self.settings.fraction <= 0 or self._rng.random() >= self.settings.fraction:
            return self._skip("sampling")
        others = [m for m in request.models if m != request.answered_by]
        if not others:
            return self._skip("no_other_model")
        if self.settings.models is not None and len(others) > self.settings.models:
            others = self._rng.sample(others, self.settings.models)
        now = time.monotonic()
        while self._started and now - self._started[0] > 60.0:
            self._started.popleft()
        if len(self._started) >= self.settings.requests_per_minute:
            return self._skip("rate")
        self._roll_day()
        estimate = self._estimate(request, others)
        if self._spent_today + self._reserved + estimate > self.settings.usd_per_day:
            return self._skip("budget")
        try:
            self._queue.put_nowait((request, others, estimate))
        except asyncio.QueueFull:
            return self._skip("queue")
        self._started.append(now)
        self._reserved += estimate
        self.counts["shadowed"] += 1
        return "shadowed"

    def start(self) -> None:
        """Start the worker tasks on the running event loop (e.g. in the app's startup)."""
        if not self._workers:
            self._workers = [asyncio.get_running_loop().create_task(self._work())
                             for _ in range(self.settings.concurrency)]

    async def drain(self) -> None:
        """Wait until every queued request has been shadowed."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Stop the workers; queued requests are abandoned (their budget released)."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def stats(self) -> dict[str, float]:
        """Numbers for /metrics: the counts (offered, shadowed, skipped_* by reason, calls,
        call_failures, judged, unjudged, verdicts_cheaper / pricier / tie) and the spend in USD
        (spend_usd_total since start, spend_usd_today, budget_left_usd today)."""
        self._roll_day()
        return {**{k: float(v) for k, v in self.counts.items()},
                "spend_usd_total": self.spend_total, "spend_usd_today": self._spent_today,
                "budget_left_usd": max(0.0, self.settings.usd_per_day - self._spent_today),
                "queued": float(self._queue.qsize())}

    # --- the workers -------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            request, others, estimate = await self._queue.get()
            spent = 0.0
            try:
                spent = await self._shadow(request, others)
            except Exception:  # a worker must outlive any error
                LOG.exception("shadow judging of request %s failed", request.request_id)
            finally:
                self._settle(estimate, spent)
                self._queue.task_done()

    async def _shadow(self, request: ShadowRequest, others: list[str]) -> float:
        replies = await asyncio.gather(*(self._ask(m, request.messages, {}) for m in others),
                                       return_exceptions=True)
        spent = 0.0
        for model, reply in zip(others, replies, strict=True):
            if isinstance(reply, BaseException):
                continue
            cost = self._cost(model, reply, request.messages)
            verdict, judge_cost = await self._judge(request, model, reply.text)
            spent += cost + judge_cost
            if verdict is not None:
                self.store(outcome_row(
                    request.request_id, f"judge:{verdict['models'][0]}:{verdict['models'][1]}",
                    "judge", verdict=verdict, cost_usd=cost + judge_cost,
                    detail={"answered_by": request.answered_by, "shadow_model": model}))
        return spent

    async def _judge(self, request: ShadowRequest, other: str, text: str
                     ) -> tuple[dict[str, Any] | None, float]:
        """Both orders of the pairwise judge on (the answer the client got, `other`'s)."""
        order = sorted((request.answered_by, other), key=list(request.models).index)
        answers = {request.answered_by: request.answer, other: text}
        pair = (request.question, answers[order[0]], answers[order[1]])
        prompts = pair_prompts([pair, pair], [False, True])
        fields = {"temperature": 0, "max_tokens": self.settings.judge_max_tokens}
        judge = self.settings.judge_model
        replies = await asyncio.gather(*(self._ask(judge, [
            {"role": "system", "content": system}, {"role": "user", "content": user}], fields)
            for system, user in prompts), return_exceptions=True)
        spent = sum(self._cost(judge, r, [{"content": u}]) for r, (_, u) in
                    zip(replies, prompts, strict=True) if isinstance(r, Completion))
        try:
            winners = [read_verdict(r.text, first) if isinstance(r, Completion) else None
                       for r, first in zip(replies, (False, True), strict=True)]
        except DataError:
            winners = [None]
        if None in winners:
            self.counts["unjudged"] += 1
            return None, spent
        names = {"edge": order[0], "cloud": order[1], "tie": "tie"}
        both = [names[w] for w in winners if w is not None]
        winner = both[0] if both[0] == both[1] else "tie"
        self.counts["judged"] += 1
        self.counts[{order[0]: "verdicts_cheaper", order[1]: "verdicts_pricier"}.get(
            winner, "verdicts_tie")] += 1
        return {"models": order, "winner": winner, "orders": both, "judge": judge}, spent

    async def _ask(self, model: str, messages: list[dict[str, Any]], fields: dict[str, Any]
                   ) -> Completion:
        self.counts["calls"] += 1
        try:
            return await self.call(model, messages, fields)
        except Exception:
            self.counts["call_failures"] += 1
            raise

    # --- money -------------------------------------------------------------------------------

    def _estimate(self, request: ShadowRequest, others: list[str]) -> float:
        tokens_in = _message_tokens(request.messages)
        tokens_out = request.completion_tokens or float(estimate_tokens([request.answer])[0])
        usd = sum(self._price(m, tokens_in, tokens_out) for m in others)
        judge_in = (float(estimate_tokens([request.question])[0]) + 2 * tokens_out
                    + JUDGE_TEMPLATE_TOKENS)
        return usd + 2 * len(others) * self._price(self.settings.judge_model, judge_in,
                                                   self.settings.judge_max_tokens)

    def _cost(self, model: str, reply: Completion, messages: list[dict[str, Any]]) -> float:
        if reply.cost_usd is not None:
            return float(reply.cost_usd)
        tokens_in = reply.prompt_tokens if reply.prompt_tokens is not None else \
            _message_tokens(messages)
        tokens_out = reply.completion_tokens if reply.completion_tokens is not None else \
            float(estimate_tokens([reply.text])[0])
        return self._price(model, tokens_in, tokens_out)

    def _price(self, model: str, tokens_in: float, tokens_out: float) -> float:
        price = self.prices.get(model)
        if price is None:
            if model not in self._unpriced:
                self._unpriced.add(model)
                LOG.warning("shadow judging: model %s has no price; its calls count 0 USD "
                            "toward shadow.usd_per_day (requests_per_minute still caps them)",
                            model)
            return 0.0
        return float(price.cost(np.asarray(tokens_in), np.asarray(tokens_out)))

    def _settle(self, estimate: float, spent: float) -> None:
        self._roll_day()
        self._reserved = max(0.0, self._reserved - estimate)
        self._spent_today += spent
        self.spend_total += spent

    def _roll_day(self) -> None:
        if _today() != self._day:
            self._day, self._spent_today = _today(), 0.0

    def _skip(self, reason: str) -> str:
        key = "skipped_queue" if reason == "queue" else f"skipped_{reason}"
        self.counts[key] += 1
        return reason


def _today() -> int:
    return int(time.time() // DAY_S)


def _message_tokens(messages: Sequence[Mapping[str, Any]]) -> float:
    text = " ".join(m["content"] for m in messages if isinstance(m.get("content"), str))
    return float(estimate_tokens([text])[0])


def spent_today(engine: Any) -> float:
    """USD the log's judge outcomes recorded since 00:00 UTC today, to seed `ShadowJudge`'s
    budget after a restart (`ShadowJudge(..., spent_today=spent_today(log.engine))`)."""
    from sqlalchemy import func, select

    from confroute.traffic.schema import outcomes

    since = _today() * DAY_S
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(outcomes.c.cost_usd)).where(
            outcomes.c.kind == "judge", outcomes.c.time >= since)).scalar()
    return float(total or 0.0)
