"""What the service keeps of its traffic: each routed request in the decision log, its usage,
cost and savings in /metrics, the drift numbers, and the requests offered to shadow judging.

`Traffic` is made once per service (`Service.traffic`); each routed request gets a `Trace`
(`traffic.begin(...)`) whose `done(...)` is called once the client has its answer (a stream:
when its last event was relayed), so nothing here runs before the answer or waits for the
database: `DecisionLog.record` only queues the row (confroute.traffic.log). The request's id is
returned to the client in the `x-confroute-request-id` header; `POST /v1/feedback` takes it.

Cost is the upstream's usage (`usage.prompt_tokens`, `usage.completion_tokens`; a stream
reports it only when the client asks with `stream_options.include_usage`) at the answering
model's list price (the artifact's prices, or `log.prices`); the estimated savings are the same
usage at the top model's price minus that cost (always-top-model, the cloud for a pair).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from confroute.dataset.ratings import Price, parse_prices
from confroute.errors import ConfigError, ConfrouteError
from confroute.policy import Decision
from confroute.serve.metrics import Metrics
from confroute.serve.settings import ServeSettings, Upstream
from confroute.traffic.drift import DriftMonitor
from confroute.traffic.log import DecisionLog
from confroute.traffic.records import Entry, decision_fields, usage_cost
from confroute.traffic.served import ArtifactIdentity, identity
from confroute.traffic.shadow import ShadowJudge, ShadowRequest

log = logging.getLogger("confroute.serve")
REQUEST_ID_HEADER = "x-confroute-request-id"
Usage = tuple[int | None, int | None]
"""(prompt tokens, completion tokens) of one upstream call; None where it did not say."""
Paid = tuple[str, Usage]
"""(model, usage) of another call a request paid for: a cascade's edge answer when the cloud
answered in its place."""


def router_prices(router: Any, extra: str | None) -> dict[str, Price]:
    """List prices by model: the artifact's (if it has them), then the `log.prices` file's."""
    prices = dict(zip(router.models, router.prices, strict=True)) if router.prices else {}
    if extra:
        try:
            prices.update(parse_prices(extra))
        except ConfrouteError as error:
            raise ConfigError(f"log.prices: {error}") from error
    return prices


def artifact_identity(router: Any) -> ArtifactIdentity:
    """The logged name of the loaded artifact (its directory name and router.json sha256)."""
    return identity(router.directory)


class Traffic:
    """The decision log, drift monitor, usage counters and shadow judge of one service."""

    def __init__(self, settings: ServeSettings, router: Any, metrics: Metrics,
                 target_share: float | None) -> None:
        self.settings = settings
        self.models = list(router.models)
        self.prices = router_prices(router, settings.log.prices)
        self.identity = artifact_identity(router)
        self.log = DecisionLog.open(settings.log, self.prices) if settings.log.enabled else None
        self.monitor = DriftMonitor(settings.drift, target_share)
        self.shadow: ShadowJudge | None = None
        r = metrics.registry
        self.tokens = Counter("confroute_tokens", "Upstream usage tokens by answering model and "
                              "kind (prompt, completion)", ["model", "kind"], registry=r)
        self.cost = Counter("confroute_cost_usd", "USD of the upstreams' usage at list price, "
                            "by answering model", ["model"], registry=r)
        self.savings = Counter("confroute_savings_usd", "Estimated USD saved against sending "
                               "every request to the top model (same usage at its price)",
                               registry=r)
        r.register(_StatsCollector(self))

    def swap(self, router: Any, target_share: float | None) -> None:
        """After a reload: name the new artifact in the log; drift against its target."""
        self.identity = artifact_identity(router)
        self.prices = router_prices(router, self.settings.log.prices)
        self.monitor.target = self.settings.drift.target_share if \
            self.settings.drift.target_share is not None else target_share

    def begin(self, endpoint: str, text: str, decision: Decision,
              messages: list[Any] | None = None) -> Trace:
        return Trace(self, endpoint, text, decision, messages)

    def start_shadow(self, call: Any) -> None:
        """Start shadow judging on the running loop (when on and there is a log to store in)."""
        if self.settings.shadow.fraction > 0 and self.log is not None:
            from confroute.traffic.shadow import spent_today

            try:
                spent = spent_today(self.log.engine)
            except Exception:  # a database down at startup: today's spend counts from 0
                spent = 0.0
            self.shadow = ShadowJudge(self.settings.shadow, call, self.prices,
                                      self.log.add_outcome, spent)
            self.shadow.start()

    async def close(self) -> None:
        if self.shadow is not None:
            await self.shadow.aclose()
        if self.log is not None:
            import asyncio

            left = await asyncio.to_thread(self.log.close)
            if left:
                log.warning("decision log: %d record(s) unwritten at shutdown", left)

    def observe(self, decision: Decision, answered: str | None, usage: Usage,
                paid: Sequence[Paid] = ()) -> tuple[float | None, float | None]:
        """Count the usage, cost and savings of one answer and of the other calls the request
        `paid` for; returns (cost of them all, the answer's usage at the top model's price)."""
        cost = top = None
        if answered is not None and usage != (None, None):
            top = usage_cost(self.prices.get(self.models[-1]), *usage)
        costs = [self._count(model, tokens) for model, tokens in
                 ([(answered, usage)] if answered is not None else []) + list(paid)]
        known = [c for c in costs if c is not None]
        cost = sum(known) if known else None
        if cost is not None and top is not None:
            self.savings.inc(max(0.0, top - cost))
        self.monitor.observe(decision.score if decision.score is not None else
                             1.0 - decision.probabilities.get(self.models[0], 1.0),
                             decision.model_index > 0, cost, top)
        return cost, top

    def _count(self, model: str, usage: Usage) -> float | None:
        prompt, completion = usage
        if prompt is None and completion is None:
            return None
        self.tokens.labels(model, "prompt").inc(prompt or 0)
        self.tokens.labels(model, "completion").inc(completion or 0)
        cost = usage_cost(self.prices.get(model), prompt, completion)
        if cost is not None:
            self.cost.labels(model).inc(cost)
        return cost


@dataclasses.dataclass
class Trace:
    """One routed request, from its decision to `done` (called once)."""

    traffic: Traffic
    endpoint: str
    text: str
    decision: Decision
    messages: list[Any] | None = None
    request_id: str = dataclasses.field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    started: float = dataclasses.field(default_factory=time.perf_counter)
    cascade: dict[str, Any] | None = None
    """The cascade's stage, thresholds and uncertainty (serve/cascade.py), stored under the
    record's `policy` as "cascade" (with "paid": the usage of the edge's answer when the cloud
    answered instead); None for a request the cascade did not route."""

    @property
    def headers(self) -> dict[str, str]:
        return {REQUEST_ID_HEADER: self.request_id}

    def done(self, status: int, answered: Upstream | None = None, notes: Sequence[str] = (),
             usage: Usage = (None, None), answer: str | None = None, paid: Sequence[Paid] = ()
             ) -> None:
        """Record the request (never raises: a log problem must not fail a served request):
        `answered` the upstream whose answer the client got, `usage` its usage, `paid` the
        other calls the request paid for (their cost is counted and logged with it)."""
        try:
            self._done(status, answered, notes, usage, answer, paid)
        except Exception:
            log.exception("recording request %s failed", self.request_id)

    def _done(self, status: int, answered: Upstream | None, notes: Sequence[str],
              usage: Usage, answer: str | None, paid: Sequence[Paid]) -> None:
        traffic, name = self.traffic, answered.name if answered else None
        traffic.observe(self.decision, name, usage, paid)
        if traffic.log is not None:
            fields = decision_fields(self.decision, traffic.models)
            others = [{"model": m, "prompt_tokens": u[0], "completion_tokens": u[1]}
                      for m, u in paid]
            if self.cascade is not None:  # the paid calls' usage is kept with the stage
                cascade = {**self.cascade, "paid": others} if others else self.cascade
                fields["policy"] = {**(fields["policy"] or {}), "cascade": cascade}
            traffic.log.record(Entry(
                self.request_id, traffic.identity, self.text, traffic.models,
                endpoint=self.endpoint, answering_model=name,
                upstream_model=answered.model if answered else None,
                fallbacks=failed_upstreams(notes, traffic.models), status=status,
                latency_s=time.perf_counter() - self.started, prompt_tokens=usage[0],
                completion_tokens=usage[1], other_usage=others, **fields))
        if traffic.shadow is not None and name and answer is not None and self.messages \
                and 200 <= status < 300:
            traffic.shadow.offer(ShadowRequest(self.request_id, self.messages, self.text,
                                               traffic.models, name, answer, usage[1]))


def failed_upstreams(notes: Sequence[str], models: Sequence[str]) -> list[dict[str, str]]:
    """The `{"model", "error"}` of each "<model> upstream failed: <error>" note of `forward`
    (also within the "; "-joined notes of its Problem message)."""
    out = []
    for part in (p for note in notes for p in note.split("; ")):
        head, sep, error = part.partition(" upstream failed: ")
        name = head.rpartition(": ")[2]
        if sep and name in models:
            out.append({"model": name, "error": error})
    return out


def answer_of(content: bytes) -> tuple[Usage, str | None]:
    """The usage (prompt, completion tokens) and answer text of a chat completion body."""
    try:
        body = json.loads(content)
        choice = (body.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content")
        return usage_of(body), text if isinstance(text, str) else None
    except (ValueError, AttributeError, TypeError, IndexError):
        return (None, None), None


def usage_of(body: Any) -> Usage:
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return None, None
    tokens = [usage.get("prompt_tokens", usage.get("input_tokens")),  # chat, Responses API
              usage.get("completion_tokens", usage.get("output_tokens"))]
    return tuple(t if isinstance(t, int) and not isinstance(t, bool) and t >= 0 else None
                 for t in tokens)  # type: ignore[return-value]


async def watched(stream: AsyncIterator[bytes], trace: Trace, answered: Upstream,
                  notes: Sequence[str], keep_text: bool, paid: Sequence[Paid] = ()
                  ) -> AsyncIterator[bytes]:
    """Relay `stream` unchanged; when it ends, record the trace with the usage and (for shadow
    judging) the answer text read from its whole events, and the calls it `paid` for."""
    usage: Usage = (None, None)
    parts: list[str] = []
    status = 200
    try:
        async for event in stream:
            if b'"usage"' in event or keep_text:
                usage, text = _event(event, usage)
                if keep_text and text:
                    parts.append(text)
            yield event
    except BaseException:
        status = 499  # the client left, or the relay failed mid-stream
        raise
    finally:
        trace.done(status, answered, notes, usage, "".join(parts) if keep_text else None, paid)


def events_answer(events: Sequence[bytes]) -> tuple[Usage, str]:
    """The usage and answer text of a chat stream's events (read whole)."""
    usage: Usage = (None, None)
    parts = []
    for event in events:
        usage, text = _event(event, usage)
        parts.append(text or "")
    return usage, "".join(parts)


def _event(event: bytes, usage: Usage) -> tuple[Usage, str | None]:
    text = None
    for line in event.split(b"\n"):
        if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
            continue
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            continue
        found = usage_of(chunk)
        usage = found if found != (None, None) else usage
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if choices and isinstance(choices[0], dict):
            delta = (choices[0].get("delta") or {}).get("content")
            text = (text or "") + delta if isinstance(delta, str) else text
    return usage, text


class _StatsCollector(Collector):
    """The log's, the shadow judge's and the drift monitor's numbers, read at each scrape."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def collect(self) -> Iterator[GaugeMetricFamily]:
        t = self.traffic
        groups = [("confroute_log", "Decision log", t.log.stats() if t.log else {}),
                  ("confroute_shadow", "Shadow judging", t.shadow.stats() if t.shadow else {}),
                  ("confroute_drift", "Drift", t.monitor.stats())]
        for prefix, what, stats in groups:
            for key, value in stats.items():
                yield GaugeMetricFamily(f"{prefix}_{key}", f"{what}: {key}", value=value)
