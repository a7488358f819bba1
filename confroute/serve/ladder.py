"""The K-model (ladder) side of the service: per-request overrides, decisions as JSON, headers.

A request may force a model and override the artifact's rule: some models' thresholds (the
threshold rule) or lambda (the utility rule):

    /v1/route             {"prompt": P, "thresholds": {"small": 0.8}, "model": "large"}
                          {"prompt": P, "lambda_per_usd": 500}
    /v1/chat/completions  body fields `confroute_thresholds` ({"small": 0.8}),
                          `confroute_lambda_per_usd` (500) and `confroute_force_model`
                          ("large"), or the headers `x-confroute-thresholds: small=0.8,medium=0.6`,
                          `x-confroute-lambda: 500` and `x-confroute-force-model: large` (a header
                          wins over its body field)

Unknown model names, thresholds outside [0, 1], a lambda that is not a number >= 0, and an
override of the rule the artifact does not use are a 422 naming the value.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from confroute.errors import InputError
from confroute.policy import Decision
from confroute.runtime import check_threshold
from confroute.serve.wire import Problem

THRESHOLDS_HEADER = "x-confroute-thresholds"
FORCE_HEADER = "x-confroute-force-model"
LAMBDA_HEADER = "x-confroute-lambda"
THRESHOLDS_FIELD = "confroute_thresholds"
FORCE_FIELD = "confroute_force_model"
LAMBDA_FIELD = "confroute_lambda_per_usd"
ROUTE_KEYS = {"prompt", "prompts", "thresholds", "model", "lambda_per_usd"}


class Overrides(NamedTuple):
    """One request's overrides: thresholds by model, a forced model, lambda (per USD)."""

    thresholds: dict[str, float]
    model: str | None
    lambda_per_usd: float | None


def check_lambda(value: Any, name: str) -> float | None:
    """A lambda override (a number >= 0, or text holding one from a header), else Problem 422."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # text that is no number is named below
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (math.isfinite(float(value)) and float(value) >= 0):
        raise Problem(422, f"{name} must be a number >= 0 (adequacy per USD); found {value!r}",
                      "invalid_lambda")
    return float(value)


def overrides(models: Sequence[str], thresholds: Any, model: Any, thresholds_name: str,
              model_name: str) -> tuple[dict[str, float], str | None]:
    """(threshold overrides, forced model) from a request, or Problem 422 naming what is wrong.

    `thresholds_name` and `model_name` say where the values came from (a field or a header).
    """
    listed = ", ".join(models)
    checked: dict[str, float] = {}
    if thresholds is not None:
        if not isinstance(thresholds, dict):
            raise Problem(422, f"{thresholds_name} must map model names to thresholds, e.g. "
                          f'{{"{models[0]}": 0.8}}; found {type(thresholds).__name__}',
                          "invalid_threshold")
        for name, value in thresholds.items():
            if name not in models:
                raise Problem(422, f"{thresholds_name}: unknown model {name!r}; this service "
                              f"routes among {listed}", "unknown_model")
            try:
                checked[name] = check_threshold(value)
            except InputError as exc:
                raise Problem(422, f"{thresholds_name}.{name}: {exc}",
                              "invalid_threshold") from exc
    if model is not None and model not in models:
        shown = repr(model) if isinstance(model, str) else type(model).__name__
        raise Problem(422, f"{model_name}: unknown model {shown}; this service routes among "
                      f"{listed}", "unknown_model")
    return checked, model


def parse_thresholds_header(text: str) -> dict[str, Any]:
    """`small=0.8, medium=0.6` -> {"small": 0.8, "medium": 0.6}; Problem 422 when malformed.

    A value that is not a number is kept as text, for `overrides` to name it.
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


def as_json(decision: Decision) -> dict[str, Any]:
    """The decision as JSON: model, model_index, reason, probabilities, thresholds (the fields
    of `policy.Decision`, as `confroute route` prints them). A threshold that is not finite (a
    model calibrated to take no prompts) is null: nothing clears it."""
    return {"model": decision.model, "model_index": decision.model_index,
            "reason": decision.reason, "probabilities": dict(decision.probabilities),
            "thresholds": {k: v if math.isfinite(v) else None
                           for k, v in decision.thresholds.items()}}


def named_values(values: dict[str, Any]) -> str:
    """{"small": 0.8, "large": None} -> "small=0.800000,large=inf" (a header value)."""
    return ",".join(f"{name}={math.inf if v is None else v:.6f}" for name, v in values.items())
