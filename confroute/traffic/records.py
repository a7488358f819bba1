"""What the log stores, as rows built on the caller's thread: one per decision, one per outcome.

The service describes each request it routed with an `Entry`; `decision_row` turns it into a
`decisions` row under the text policy (the text is kept only when text logging is on, after the
redaction hook; its sha256 and length always) and the price settings (cost of the upstream's
usage at the answering model's price, and at the top model's price: the always-cloud estimate).
`implicit_rows` derives the request's implicit outcomes (each failed upstream, a fallback);
`feedback_row` validates explicit feedback. Everything here is plain Python and fast: it runs on
the request path before the row is queued.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import numbers
import re
import time as clock
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from confroute.dataset.ratings import Price
from confroute.errors import ConfigError, InputError
from confroute.traffic.served import ArtifactIdentity

MAX_ID = 64
SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESERVED = ("judge", "implicit")
"""Outcome source prefixes confroute writes itself; feedback may not use them."""
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One routed request as the service saw it (what `DecisionLog.record` takes).

    `text` is the scored text (kept only if text logging is on); `models` the artifact's models,
    cheapest first; `score` P(cloud needed); `probabilities` P(adequate) per model; `policy` the
    rule and its thresholds or lambda as used; `fallbacks` one {"model", "error"} per upstream
    that failed, in the order tried; `prompt_tokens` / `completion_tokens` the answering
    upstream's usage; `other_usage` one {"model", "prompt_tokens", "completion_tokens"} per other
    call the request paid for (a cascade's edge answer when the cloud answered instead), whose
    cost is added to the row's `cost_usd`; `latency_s` seconds from request to response end;
    `category` the request's group if the client gave one; `time` seconds since the epoch
    (default: now).
    """

    request_id: str
    artifact: ArtifactIdentity
    text: str
    models: Sequence[str]
    chosen_model: str
    endpoint: str = "chat"
    score: float | None = None
    probabilities: Mapping[str, float] | None = None
    policy: Mapping[str, Any] | None = None
    reason: str | None = None
    answering_model: str | None = None
    upstream_model: str | None = None
    fallbacks: Sequence[Mapping[str, Any]] = ()
    status: int | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    other_usage: Sequence[Mapping[str, Any]] = ()
    category: str | None = None
    time: float | None = None


def decision_fields(decision: Any, models: Sequence[str]) -> dict[str, Any]:
    """The `Entry` fields of a routing decision: a `policy.Decision` (K models: model,
    probabilities, reason, thresholds or lambda_per_usd) or the two-model `runtime.Decision`
    (score, route, threshold; its models are ["edge", "cloud"])."""
    if hasattr(decision, "probabilities"):
        probabilities = {str(k): float(v) for k, v in decision.probabilities.items()}
        score = getattr(decision, "score", None)
        if score is None:  # before the merge a K-model decision had no two-model view
            score = 1.0 - probabilities[models[0]]
        thresholds = getattr(decision, "thresholds", None)
        lam = getattr(decision, "lambda_per_usd", None)
        policy = {"thresholds": thresholds} if thresholds else {"lambda_per_usd": lam}
        return {"chosen_model": decision.model, "score": float(score), "reason": decision.reason,
                "probabilities": probabilities, "policy": policy}
    score = float(decision.score)
    return {"chosen_model": decision.route, "score": score,
            "probabilities": {models[0]: 1.0 - score, models[-1]: 1.0},
            "policy": {"threshold": float(decision.threshold)}, "reason": None}


def check_entry(entry: Entry) -> None:
    """InputError naming the field when `entry` cannot be stored (a bug in the caller)."""
    check_request_id(entry.request_id)
    if not isinstance(entry.text, str):
        raise InputError(f"entry.text must be the scored text; found {type(entry.text).__name__}")
    models = list(entry.models)
    if len(models) < 2 or entry.chosen_model not in models:
        raise InputError(f"entry.chosen_model {entry.chosen_model!r} must be one of the "
                         f"artifact's models {models}")
    if entry.answering_model is not None and entry.answering_model not in models:
        raise InputError(f"entry.answering_model {entry.answering_model!r} is not one of {models}")
    for other in entry.other_usage:
        if not isinstance(other, Mapping) or other.get("model") not in models:
            raise InputError(f"entry.other_usage: each call must be a mapping whose model is one "
                             f"of {models}; found {other!r:.80}")


def check_request_id(request_id: Any) -> str:
    """`request_id` as given, or InputError: a non-empty string of at most 64 printable chars."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID \
            or not request_id.isprintable():
        raise InputError(f"request_id must be the id the service returned (x-request-id: a "
                         f"string of 1-{MAX_ID} printable characters); found {request_id!r:.80}")
    return request_id


def text_hash(text: str) -> str:
    """sha256 hex of the UTF-8 text (the retry key and the join key when text is not kept)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


TextPolicy = Callable[[str], str | None]


def text_policy(keep: bool, redact: str | None = None) -> TextPolicy:
    """What of a prompt is stored: None (only its hash; the default) or the text after `redact`.

    `redact` names a function `module:name` (str -> str), e.g.
    `confroute.traffic.records:mask_secrets`. Raises ConfigError when it cannot be imported.
    """
    hook = load_hook(redact) if redact else None
    if not keep:
        return lambda text: None
    return hook if hook is not None else (lambda text: text)


def load_hook(spec: str) -> Callable[[str], str]:
    """The function named by `module:name`; ConfigError when it is missing or not callable."""
    module_name, _, name = spec.partition(":")
    try:
        hook = getattr(importlib.import_module(module_name), name) if name else None
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"redaction hook {spec!r} cannot be imported ({exc}); give "
                          "module:function, e.g. confroute.traffic.records:mask_secrets") from exc
    if not callable(hook):
        raise ConfigError(f"redaction hook {spec!r} is not a function; give module:function")
    return hook


def mask_secrets(text: str) -> str:
    """A redaction hook: API keys and credential-shaped strings (the proxy's own redaction) and
    e-mail addresses replaced by ***."""
    from confroute.llm_client import redact

    return EMAIL.sub("***", redact(text))


def usage_cost(price: Price | None, prompt_tokens: int | None,
               completion_tokens: int | None) -> float | None:
    """USD of the usage at `price`; None when the price or the usage is unknown."""
    if price is None or (prompt_tokens is None and completion_tokens is None):
        return None
    return float(price.cost(np.asarray(prompt_tokens or 0), np.asarray(completion_tokens or 0)))


def decision_row(entry: Entry, keep_text: TextPolicy, prices: Mapping[str, Price]
                 ) -> dict[str, Any]:
    """The `decisions` row of `entry` (checked by `check_entry` first)."""
    models = [str(m) for m in entry.models]
    answered = entry.answering_model
    return {
        "request_id": entry.request_id, "time": entry.time or clock.time(),
        "endpoint": entry.endpoint, "artifact_id": entry.artifact.id,
        "artifact_sha256": entry.artifact.sha256, "text_sha256": text_hash(entry.text),
        "text_chars": len(entry.text), "text": keep_text(entry.text),
        "category": entry.category, "models": models, "score": _number(entry.score),
        "probabilities": dict(entry.probabilities) if entry.probabilities else None,
        "policy": _jsonable(entry.policy), "chosen_model": entry.chosen_model,
        "reason": entry.reason, "answering_model": answered,
        "upstream_model": entry.upstream_model,
        "fallbacks": [dict(f) for f in entry.fallbacks] or None, "status": entry.status,
        "latency_s": _number(entry.latency_s), "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "cost_usd": _paid(entry, prices),
        "top_cost_usd": usage_cost(prices.get(models[-1]), entry.prompt_tokens,
                                   entry.completion_tokens) if answered else None,
    }


def _paid(entry: Entry, prices: Mapping[str, Price]) -> float | None:
    """USD of the answer's usage at the answering model's price plus each `other_usage` call's
    at its model's; None when none of them is known."""
    calls = [(entry.answering_model, entry.prompt_tokens, entry.completion_tokens)] + [
        (o.get("model"), o.get("prompt_tokens"), o.get("completion_tokens"))
        for o in entry.other_usage]
    costs = [usage_cost(prices.get(model) if model else None, prompt, completion)
             for model, prompt, completion in calls]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def outcome_row(request_id: str, source: str, kind: str, *, model: str | None = None,
                rating: float | None = None, verdict: Mapping[str, Any] | None = None,
                cost_usd: float | None = None, detail: Mapping[str, Any] | None = None,
                time: float | None = None) -> dict[str, Any]:
    """An `outcomes` row (see confroute.traffic.schema)."""
    return {"request_id": request_id, "source": source, "kind": kind,
            "time": time or clock.time(), "model": model, "rating": rating,
            "verdict": _jsonable(verdict), "cost_usd": cost_usd, "detail": _jsonable(detail)}


def implicit_rows(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The implicit outcomes of a decision row: one `error` per upstream that failed, and a
    `fallback` when a model other than the chosen one answered. They carry no rating: an
    outage says nothing about the quality of the model's answers."""
    out = [outcome_row(row["request_id"], f"implicit:error:{f.get('model')}", "error",
                       model=f.get("model"), detail={"error": f.get("error")},
                       time=row["time"]) for f in row["fallbacks"] or ()]
    answered, chosen = row["answering_model"], row["chosen_model"]
    if answered is not None and answered != chosen:
        out.append(outcome_row(row["request_id"], "implicit:fallback", "fallback", model=chosen,
                               detail={"answered_by": answered}, time=row["time"]))
    return out


def retry_row(earlier: str, model: str | None, later: str, after_s: float) -> dict[str, Any]:
    """The outcome of request `earlier` when the same text came again `after_s` seconds later."""
    return outcome_row(earlier, "implicit:retry", "retry", model=model,
                       detail={"retried_by": later, "after_s": round(after_s, 3)})


def feedback_row(request_id: Any, rating: Any = None, thumbs: Any = None,
                 source: Any = "user") -> dict[str, Any]:
    """A validated feedback outcome: exactly one of `rating` (a number in [0, 1], higher is
    better) or `thumbs` ("up" = 1, "down" = 0), from `source` (1-64 letters, digits, `_.-`;
    not `judge...` or `implicit...`, which confroute writes itself). Raises InputError."""
    check_request_id(request_id)
    if not isinstance(source, str) or not SOURCE.fullmatch(source) \
            or source.lower().startswith(RESERVED):
        raise InputError(f"source must name who rates (1-64 letters, digits, '_', '.', '-'; not "
                         f"starting with judge or implicit), e.g. \"user\"; found {source!r:.80}")
    if (rating is None) == (thumbs is None):
        raise InputError("give exactly one of rating (a number in [0, 1]) or thumbs "
                         "(\"up\" or \"down\")")
    if thumbs is not None:
        if not isinstance(thumbs, str) or thumbs.lower() not in ("up", "down"):
            raise InputError(f"thumbs must be \"up\" or \"down\"; found {thumbs!r:.80}")
        value, detail = float(thumbs.lower() == "up"), {"thumbs": thumbs.lower()}
    else:
        if isinstance(rating, bool) or not isinstance(rating, numbers.Real) \
                or not 0.0 <= float(rating) <= 1.0:  # written so that NaN fails too
            raise InputError(f"rating must be a number in [0, 1] (1 = best); found "
                             f"{rating!r:.80}")
        value, detail = float(rating), None
    return outcome_row(request_id, source, "feedback", rating=value, detail=detail)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _jsonable(value: Any) -> Any:
    """Mappings and sequences of plain numbers and strings (numpy scalars and arrays become
    floats and lists; non-finite floats None), so every database stores the same JSON."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, numbers.Real):
        return _number(value)
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, Sequence):
        return [_jsonable(v) for v in value]
    return str(value)
