"""What a request asks of the routing, and what the service says about a decision.

The service routes with the artifact's policy (`confroute.policy`), with the serve settings'
`threshold` (a pair) or `thresholds` (some models') replacing the artifact's. A request may
override the rule's parameter for itself and force a model, for any number of models:

    /v1/route             {"prompt": P, "threshold": 0.3}              (a pair: P(cloud needed) cut)
                          {"prompt": P, "thresholds": {"small": 0.8}, "model": "large"}
                          {"prompt": P, "lambda_per_usd": 500}         (the utility rule)
    /v1/chat/completions  body fields `confroute_threshold`, `confroute_thresholds`,
                          `confroute_lambda_per_usd`, `confroute_force_model`, or the headers
                          `x-confroute-threshold: 0.3`, `x-confroute-thresholds: small=0.8,
                          medium=0.6`, `x-confroute-lambda: 500`, `x-confroute-force-model:
                          large` (a header wins over its body field); the request's own `model`
                          forces that model when it names one of the artifact's models (as
                          /v1/models lists them), else (`confroute`, or any other name) the
                          router decides, as OpenAI clients send some model name anyway

Unknown model names, thresholds outside [0, 1], a lambda that is not a number >= 0, one
threshold for K > 2 models and an override of the rule the artifact does not use are a 422
naming the value. Decisions are reported as `policy.Decision.to_dict` (JSON) and as
`x-confroute-*` response headers (`headers`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from confroute.errors import ConfigError, InputError
from confroute.policy import Decision, Policy, check_lambda, check_threshold
from confroute.serve.wire import Problem

THRESHOLD_HEADER, THRESHOLD_FIELD = "x-confroute-threshold", "confroute_threshold"
THRESHOLDS_HEADER, THRESHOLDS_FIELD = "x-confroute-thresholds", "confroute_thresholds"
FORCE_HEADER, FORCE_FIELD = "x-confroute-force-model", "confroute_force_model"
LAMBDA_HEADER, LAMBDA_FIELD = "x-confroute-lambda", "confroute_lambda_per_usd"
REQUEST_HEADERS = [THRESHOLD_HEADER, THRESHOLDS_HEADER, FORCE_HEADER, LAMBDA_HEADER]
ROUTE_KEYS = {"prompt", "prompts", "threshold", "thresholds", "model", "lambda_per_usd"}
EXPOSED_HEADERS = [f"x-confroute-{h}" for h in ("route", "model", "decision", "score",
                                                 "threshold", "reason", "probabilities",
                                                 "thresholds", "cascade-stage", "uncertainty",
                                                 "cascade")] + ["x-request-id"]


@dataclasses.dataclass(frozen=True)
class Overrides:
    """One request's overrides: a pair's threshold, some models' thresholds, a forced model,
    lambda (per USD); each already checked against the policy."""

    threshold: float | None = None
    thresholds: dict[str, float] | None = None
    model: str | None = None
    lambda_per_usd: float | None = None


def serving_policy(policy: Policy, threshold: float | None, thresholds: Mapping[str, float]
                   ) -> Policy:
    """The artifact's `policy` with the serve settings' `threshold` (a pair's cut) and
    `thresholds` (some models') in place; ConfigError naming the setting when they do not fit
    the artifact (an unknown model, one threshold for K > 2 models, the utility rule)."""
    listed = ", ".join(policy.models)
    for name in thresholds:
        if name not in policy.models:
            raise ConfigError(f"thresholds.{name}: the artifact has no model {name!r}; its "
                              f"models are {listed} (cheapest first): use one of those names "
                              "or remove the entry")
    if threshold is not None and not policy.pair:
        raise ConfigError(f"threshold is the two-model threshold; this artifact routes among "
                          f"{listed}: set per-model thresholds instead, e.g. thresholds: "
                          f"{{{policy.models[0]}: 0.8}}")
    if (threshold is not None or thresholds) and policy.rule == "utility":
        raise ConfigError("thresholds in the serve settings apply to the threshold rule; this "
                          "artifact routes by the utility rule (P - lambda x cost): remove them, "
                          "or store the threshold rule with `confroute calibrate ARTIFACT "
                          "--rule threshold --shares '[...]' --write`")
    try:
        return policy.overridden(dict(thresholds) or None, threshold)
    except InputError as exc:
        raise ConfigError(f"serve settings: {exc}") from exc


def route_overrides(policy: Policy, body: dict[str, Any]) -> Overrides:
    """The overrides of a /v1/route body; Problem 422 when one is wrong."""
    return _checked(policy, body.get("threshold"), body.get("thresholds"), body.get("model"),
                    body.get("lambda_per_usd"), ("threshold", "thresholds", "model",
                                                  "lambda_per_usd"))


def chat_overrides(policy: Policy, body: dict[str, Any], headers: Mapping[str, str]
                   ) -> Overrides:
    """The overrides of a chat request, its `confroute_*` fields popped (the upstream never
    sees them); a header wins over its field, an explicit force over the request's `model`."""
    fields = [body.pop(f, None) for f in (THRESHOLD_FIELD, THRESHOLDS_FIELD, FORCE_FIELD,
                                          LAMBDA_FIELD)]
    names = [THRESHOLD_FIELD, THRESHOLDS_FIELD, FORCE_FIELD, LAMBDA_FIELD]
    for i, header in enumerate(REQUEST_HEADERS):
        if (text := headers.get(header)) is not None:
            fields[i] = _header_value(header, text)
            names[i] = header
    if fields[2] is None and body.get("model") in policy.models:
        fields[2] = body["model"]
    threshold, thresholds, model, lam = fields
    return _checked(policy, threshold, thresholds, model, lam, tuple(names))


def _header_value(header: str, text: str) -> Any:
    """A header's text as the value its body field would hold (numbers, model=t pairs)."""
    if header == THRESHOLDS_HEADER:
        return parse_thresholds_header(text)
    if header == FORCE_HEADER:
        return text.strip()
    with contextlib.suppress(ValueError):  # text that is no number is named by the check
        return float(text)
    return text.strip()


def _checked(policy: Policy, threshold: Any, thresholds: Any, model: Any, lam: Any,
             names: tuple[str, ...]) -> Overrides:
    """The overrides checked against `policy`; `names` say where each came from (field or
    header), for the 422's message."""
    listed = ", ".join(policy.models)
    if (threshold is not None or thresholds is not None) and policy.rule == "utility":
        raise Problem(422, "this artifact routes by the utility rule (P - lambda x cost), which "
                      f"has no thresholds to override: send {names[3]} or force a model",
                      "invalid_threshold")
    if lam is not None and policy.rule == "threshold":
        raise Problem(422, "this artifact routes by the threshold rule, which has no lambda to "
                      f"override: send {names[1]} or force a model", "invalid_lambda")
    if threshold is not None and not policy.pair:
        raise Problem(422, f"one threshold ({names[0]}) is for two models; this artifact "
                      f"routes among {listed} by the {policy.rule} rule: send {names[1]} "
                      f'({{"{policy.models[0]}": 0.8}})', "invalid_threshold")
    checked = None if thresholds is None else _thresholds(policy, thresholds, names[1])
    if threshold is not None:
        threshold = _value(check_threshold, threshold, names[0], "invalid_threshold")
        if checked and policy.models[0] in checked:
            raise Problem(422, f"{names[0]} and {names[1]}.{policy.models[0]} both set the "
                          "cheapest model's threshold: send one", "invalid_threshold")
    if model is not None and model not in policy.models:
        shown = repr(model) if isinstance(model, str) else type(model).__name__
        raise Problem(422, f"{names[2]}: unknown model {shown}; this service routes among "
                      f"{listed}", "unknown_model")
    if lam is not None:
        lam = _value(check_lambda, lam, names[3], "invalid_lambda")
    return Overrides(threshold, checked, model, lam)


def _thresholds(policy: Policy, thresholds: Any, name: str) -> dict[str, float]:
    if not isinstance(thresholds, dict):
        raise Problem(422, f"{name} must map model names to thresholds, e.g. "
                      f'{{"{policy.models[0]}": 0.8}}; found {type(thresholds).__name__}',
                      "invalid_threshold")
    checked = {}
    for model, value in thresholds.items():
        if model not in policy.models:
            raise Problem(422, f"{name}: unknown model {model!r}; this service routes among "
                          f"{', '.join(policy.models)}", "unknown_model")
        checked[model] = _value(check_threshold, value, f"{name}.{model}", "invalid_threshold")
    return checked


def _value(check: Any, value: Any, name: str, code: str) -> float:
    try:
        return float(check(value))
    except InputError as exc:
        raise Problem(422, f"{name}: {exc}", code) from exc


def parse_thresholds_header(text: str) -> dict[str, Any]:
    """`small=0.8, medium=0.6` -> {"small": 0.8, "medium": 0.6}; Problem 422 when malformed.

    A value that is not a number is kept as text, for the check to name it.
    """
    found: dict[str, Any] = {}
    for pair in text.split(","):
        name, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not name or not value:
            raise Problem(422, f"{THRESHOLDS_HEADER} must be model=threshold pairs separated by "
                          f"commas, e.g. small=0.8,medium=0.6; found {text!r}",
                          "invalid_threshold")
        try:
            found[name] = float(value)
        except ValueError:
            found[name] = value
    return found


def headers(decision: Decision, answered: tuple[str, str] | None, notes: list[str]
            ) -> dict[str, str]:
    """The x-confroute-* headers of a chat answer: -decision (the chosen model), -route and
    -model (the model that answered and its upstream's model name, `answered`), -reason (why,
    with each fallback in `notes`), -probabilities and -thresholds (what the choice was made
    from, each as the rule used them) and, for a pair, -score and -threshold."""
    out = {"x-confroute-decision": decision.model}
    if decision.probabilities:
        out["x-confroute-probabilities"] = named_values(decision.probabilities)
    if decision.thresholds is not None:
        out["x-confroute-thresholds"] = named_values(decision.thresholds)
    if decision.score is not None:
        out["x-confroute-score"] = f"{decision.score:.6f}"
    if decision.threshold is not None:
        out["x-confroute-threshold"] = f"{decision.threshold:.6f}"
    reason = decision.reason
    if answered is not None:
        if answered[0] != decision.model:
            reason = f"fallback: {'; '.join(notes)}; chose {decision.model}: {reason}"
        out |= {"x-confroute-route": answered[0], "x-confroute-model": answered[1]}
    return header_safe(out | {"x-confroute-reason": reason})


def named_values(values: Mapping[str, float | None]) -> str:
    """{"small": 0.8, "large": None} -> "small=0.800000,large=inf" (a header value)."""
    return ",".join(f"{name}={math.inf if v is None else v:.6f}" for name, v in values.items())


def header_safe(values: dict[str, str]) -> dict[str, str]:
    """Header values as printable ASCII: an upstream's error message (in -reason) or a model
    name may hold any character, and HTTP headers carry Latin-1 at most (Starlette would fail
    with a 500). Other characters become \\uXXXX escapes, control characters spaces."""
    return {name: _CONTROL.sub(" ", value.encode("ascii", "backslashreplace").decode("ascii"))
            for name, value in values.items()}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
