"""The cascade: an optional second stage after the edge model has answered (numpy only).

Stage 1 is the pre-generation router: a request whose score (P(cloud needed)) is >= `t1` goes
to the cloud at once ("direct"). Every other request is answered by the edge model; stage 2
reads the edge's own uncertainty about that answer and escalates the request to the cloud when
it is >= `t2`, so an escalated request pays the edge's tokens and the cloud's. This is the LLM
cascade of FrugalGPT (Chen, Zaharia, Zou 2023, "FrugalGPT: How to Use Large Language Models
While Reducing Cost and Improving Performance"), whose scorer judges a generated answer, and of
AutoMix (Madaan et al. 2023), whose scorer is the small model's self-verification; here the
scorer reads the edge's own signals, with the pre-generation router in front.

The edge's signals (`EdgeEvidence`) come from its OpenAI-style response:
- the mean token log-prob of its answer (nats per token, <= 0), from
  `choices[0].logprobs.content[*].logprob` (`mean_token_logprob`);
- semantic entropy (nats, >= 0) over its n sampled answers (`choices[*]`), clustered by equal
  canonical value (`confroute.labelling.answers.extract_answer` and the `exact` equivalence of
  `confroute.labelling.equivalence`, which need no model), weighted by each sample's
  length-normalised likelihood when every sample carries log-probs, else by counts
  (`confroute.labelling.entropy.semantic_entropy`; Kuhn et al. 2023, Farquhar et al. 2024).
  The NLI and LLM equivalences need torch or an endpoint and stay in labelling.

`Uncertainty` turns the router's score and those signals into one number in [0, 1], P(the edge's
answer is wrong): a logistic model over [logit(score), -mean log-prob, semantic entropy] (the
columns its `measure` uses), fitted on prompts whose edge outcome is known (`fit_uncertainty`).
`calibrate_cascade` chooses (t1, t2) together for a target cloud share (direct + escalated).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast, get_args

import numpy as np

from confroute import arguments as check
from confroute.errors import ConfigError, InputError

Measure = Literal["logprob", "se", "both"]
"""The edge's signals stage 2 reads: mean token log-prob, semantic entropy, or both."""
Stage = Literal["router", "edge"]
"""Which stage decided: the pre-generation router, or the edge's uncertainty after it answered."""
FEATURES = ("router_logit", "neg_mean_logprob", "semantic_entropy")
_COLUMNS: dict[str, tuple[int, ...]] = {"logprob": (0, 1), "se": (0, 2), "both": (0, 1, 2)}
_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before the logit


class MissingLogprobs(InputError):
    """The edge's response carries no token log-probs (the upstream ignored `logprobs: true`)."""


def check_measure(value: Any) -> Measure:
    """`value` as a `Measure`, or ConfigError naming the choices."""
    return cast(Measure, check.choice(value, "measure", get_args(Measure)))


def token_logprobs(choice: Any) -> list[float]:
    """The token log-probs of one OpenAI-style choice, `choice["logprobs"]["content"][*]
    ["logprob"]` (floats <= 0, nats). Raises MissingLogprobs when the block is absent or null,
    InputError when it is malformed (not a list of objects with a finite number <= 0)."""
    if not isinstance(choice, Mapping):
        raise InputError(f"a choice must be a JSON object; found {type(choice).__name__}")
    block = choice.get("logprobs")
    if block is None or (isinstance(block, Mapping) and block.get("content") is None):
        raise MissingLogprobs("the edge's answer has no logprobs (choices[0].logprobs.content); "
                              "use an upstream that honours `logprobs: true`")
    content = block.get("content") if isinstance(block, Mapping) else block
    if not isinstance(content, list):
        raise InputError(f"logprobs.content must be a list of tokens; found "
                         f"{type(content).__name__}")
    return [_token(t, i) for i, t in enumerate(content)]


def _token(token: Any, index: int) -> float:
    value = token.get("logprob") if isinstance(token, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not (math.isfinite(float(value)) and float(value) <= 1e-6):
        raise InputError(f"logprobs.content[{index}].logprob must be a finite number <= 0; "
                         f"found {value!r}")
    return min(float(value), 0.0)  # servers round a certain token to +1e-7 at times


def mean_token_logprob(response: Any) -> float:
    """Mean token log-prob (nats per token, <= 0) of `choices[0]` of an OpenAI-style chat
    completion. Raises MissingLogprobs (no logprobs; an answer of no tokens counts as none)
    or InputError (malformed response)."""
    values = token_logprobs(_choices(response)[0])
    if not values:
        raise MissingLogprobs("the edge's answer has no tokens, so no mean log-prob")
    return float(np.mean(values))


def _choices(response: Any) -> list[Any]:
    choices = response.get("choices") if isinstance(response, Mapping) else None
    if not isinstance(choices, list) or not choices:
        raise InputError("an OpenAI-style response must have a non-empty `choices` list; "
                         f"found {type(choices).__name__ if choices is not None else 'none'}")
    return choices


def answer_text(choice: Any) -> str:
    """The text of one chat choice (`message.content`; `text` for a completion); InputError."""
    message = choice.get("message") if isinstance(choice, Mapping) else None
    text = message.get("content") if isinstance(message, Mapping) else (
        choice.get("text") if isinstance(choice, Mapping) else None)
    if not isinstance(text, str):
        raise InputError(f"a choice's message.content must be text; found "
                         f"{type(text).__name__}")
    return text


def semantic_entropy_of(question: str, answers: Sequence[str],
                        logprobs: Sequence[Sequence[float] | None] | None = None,
                        answer_type: str = "text", choices: str | None = None) -> float:
    """Semantic entropy (nats, >= 0) of n >= 2 sampled answers to `question`, clustered by equal
    canonical value of `answer_type` ("number", "choice", "text"). With every sample's token
    log-probs the likelihood-weighted variant, else the discrete one (see
    `confroute.labelling.entropy`). Raises InputError for fewer than two answers or non-text,
    ConfigError for an unknown answer type."""
    from confroute.labelling.answers import extract_answer
    from confroute.labelling.entropy import semantic_entropy
    from confroute.labelling.equivalence import ExactEquivalence

    if isinstance(answers, str) or len(answers) < 2:
        raise InputError("semantic entropy needs n >= 2 sampled answers (request n >= 2)")
    if not all(isinstance(a, str) for a in answers):
        raise InputError("sampled answers must be text")
    values = [extract_answer(a, answer_type, choices).value  # type: ignore[arg-type]
              for a in answers]
    result = semantic_entropy(ExactEquivalence().cluster(question, values), logprobs)
    return float(result.weighted if result.weighted is not None else result.discrete)


@dataclasses.dataclass(frozen=True)
class EdgeEvidence:
    """What the edge's answer says about itself; None where the response did not carry it."""

    mean_logprob: float | None = None
    """Mean token log-prob of the first answer, nats per token (<= 0)."""
    semantic_entropy: float | None = None
    """Semantic entropy over the sampled answers, nats (>= 0)."""

    @classmethod
    def from_response(cls, response: Any, question: str = "", measure: Measure = "logprob",
                      answer_type: str = "text") -> EdgeEvidence:
        """The signals `measure` needs from an OpenAI-style chat completion: the mean
        log-prob of `choices[0]`, semantic entropy over every choice (n >= 2). Raises
        MissingLogprobs or InputError (see `mean_token_logprob`, `semantic_entropy_of`)."""
        measure = check_measure(measure)
        mean = mean_token_logprob(response) if measure != "se" else None
        se = None
        if measure != "logprob":
            choices = _choices(response)
            texts = [answer_text(c) for c in choices]
            lps: list[Sequence[float] | None] = []
            for c in choices:
                try:
                    lps.append(token_logprobs(c))
                except MissingLogprobs:
                    lps.append(None)
            se = semantic_entropy_of(question, texts, None if None in lps else lps, answer_type)
        return cls(mean, se)


@dataclasses.dataclass(frozen=True)
class Uncertainty:
    """P(the edge's answer is wrong) = sigmoid(bias + weights . x), x the `measure`'s columns of
    [logit(router score), -mean log-prob, semantic entropy]. `unfitted` gives the raw signal
    (weight 1 on it, 0 on the router); `fit_uncertainty` fits it on labelled prompts."""

    measure: Measure
    weights: tuple[float, ...]
    bias: float = 0.0

    def __post_init__(self) -> None:
        check_measure(self.measure)
        check.array(self.weights, "weights", 1)  # frozen: checked, kept as given
        check.number(self.bias, "bias")
        width = len(_COLUMNS[self.measure])
        if len(self.weights) != width or not all(math.isfinite(w) for w in self.weights) \
                or not math.isfinite(self.bias):
            raise ConfigError(f"the '{self.measure}' uncertainty needs {width} finite weights "
                              f"({', '.join(FEATURES[i] for i in _COLUMNS[self.measure])}) and a "
                              f"finite bias; found {list(self.weights)}, {self.bias}")

    @classmethod
    def unfitted(cls, measure: Measure) -> Uncertainty:
        """The raw signal of `measure` through a sigmoid ("both": their sum)."""
        return cls(measure, (0.0, *[1.0] * (len(_COLUMNS[check_measure(measure)]) - 1)))

    def features(self, scores: Any, evidence: Sequence[EdgeEvidence]) -> np.ndarray:
        """The model's inputs [n, d] from router scores [n] and each prompt's evidence;
        MissingLogprobs / InputError when a signal the measure needs is missing."""
        s = _vector("scores", scores)
        evidence = check_evidence(evidence, len(s))
        full = np.empty((len(s), 3))
        full[:, 0] = _logit(s)
        for i, e in enumerate(evidence):
            full[i, 1] = _signal(e.mean_logprob, "mean log-prob", i, self.measure != "se",
                                 negate=True)
            full[i, 2] = _signal(e.semantic_entropy, "semantic entropy", i,
                                 self.measure != "logprob")
        return full[:, _COLUMNS[self.measure]]

    def __call__(self, scores: Any, evidence: Sequence[EdgeEvidence]) -> np.ndarray:
        """P(edge wrong) [n] in [0, 1] for router scores [n] (P(cloud needed)) and evidence."""
        return _sigmoid(self.features(scores, evidence) @ np.asarray(self.weights) + self.bias)

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "weights": list(self.weights), "bias": self.bias}


def _signal(value: float | None, name: str, row: int, needed: bool, negate: bool = False
            ) -> float:
    if not needed:
        return 0.0
    if value is None:
        raise MissingLogprobs(f"prompt {row}: the edge's {name} is missing; the measure needs it")
    if not math.isfinite(value):
        raise InputError(f"prompt {row}: the edge's {name} must be finite; found {value!r}")
    return -value if negate else value


def fit_uncertainty(measure: Measure, scores: Any, evidence: Sequence[EdgeEvidence],
                    edge_wrong: Any, l2: float = 1.0) -> Uncertainty:
    """Logistic regression of `edge_wrong` [n] (1 = the edge's answer was wrong) on the
    `measure`'s features, by Newton's method with an L2 penalty `l2` on the standardised weights
    (the bias is not penalised). A few features and a few thousand rows: numpy suffices, and the
    runtime stays free of scikit-learn. Raises InputError when both outcomes are not present."""
    l2 = check.number(l2, "l2", low=0.0, unit="the L2 penalty")
    model = Uncertainty.unfitted(measure)
    x = model.features(scores, evidence)
    y = _vector("edge_wrong", edge_wrong, len(x))
    if not ((y == 0) | (y == 1)).all() or y.min() == y.max():
        raise InputError("edge_wrong must be 0/1 outcomes with both values present")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    w = np.zeros(z.shape[1])
    penalty = np.r_[0.0, np.full(z.shape[1] - 1, float(l2))]
    for _ in range(50):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    weights = w[1:] / sd
    return Uncertainty(measure, tuple(float(v) for v in weights),
                       float(w[0] - np.dot(weights, mu)))


@dataclasses.dataclass(frozen=True)
class CascadeDecision:
    """One request's route through the cascade and the stage that decided it."""

    route: Literal["edge", "cloud"]
    stage: Stage
    score: float
    """The router's P(cloud needed)."""
    t1: float
    uncertainty: float | None = None
    """Stage 2: P(the edge's answer is wrong); None when stage 1 decided."""
    t2: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class CascadePolicy:
    """Two thresholds: direct to the cloud when score >= `t1`; after the edge answers, escalate
    when `uncertainty(score, evidence)` >= `t2` (a threshold above 1 never escalates)."""

    t1: float
    t2: float
    uncertainty: Uncertainty

    def __post_init__(self) -> None:
        for name in ("t1", "t2"):
            check.number(getattr(self, name), name, low=0.0, high=1.5, unit="above 1: never")
        check.instance(self.uncertainty, "uncertainty", Uncertainty, "a cascade.Uncertainty")

    def first(self, score: float) -> CascadeDecision | None:
        """Stage 1: a decision when the router sends the request to the cloud, else None (ask
        the edge, then call `second`). InputError for a score not in [0, 1]."""
        score = check.number(score, "score", low=0.0, high=1.0, error=InputError)
        if score >= self.t1:
            return CascadeDecision("cloud", "router", float(score), self.t1,
                                   reason=f"router score {score:.3f} >= t1 {self.t1:.3f}")
        return None

    def second(self, score: float, evidence: EdgeEvidence) -> CascadeDecision:
        """Stage 2, after the edge answered: escalate when its uncertainty is >= t2. Raises
        MissingLogprobs / InputError when the evidence lacks what the measure needs."""
        score = check.number(score, "score", low=0.0, high=1.0, error=InputError)
        check.instance(evidence, "evidence", EdgeEvidence, "an EdgeEvidence", error=InputError)
        u = float(self.uncertainty([score], [evidence])[0])
        route: Literal["edge", "cloud"] = "cloud" if u >= self.t2 else "edge"
        sign = ">=" if route == "cloud" else "<"
        return CascadeDecision(route, "edge", float(score), self.t1, u, self.t2,
                               f"edge uncertainty {u:.3f} {sign} t2 {self.t2:.3f}")

    def to_dict(self) -> dict[str, Any]:
        """The form a manifest's or the settings' `cascade` section holds."""
        return {"t1": self.t1, "t2": self.t2, "uncertainty": self.uncertainty.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> CascadePolicy:
        """Read `to_dict`'s form; ConfigError naming what is missing or wrong."""
        expected = "a cascade section needs t1, t2 and uncertainty {measure, weights, bias}"
        u = data.get("uncertainty") if isinstance(data, dict) else None
        if not isinstance(u, dict):
            raise ConfigError(f"{expected}; found {data!r:.200}")
        missing = [k for k in ("t1", "t2") if k not in data] + \
            [f"uncertainty.{k}" for k in ("measure", "weights") if k not in u]
        if missing:
            raise ConfigError(f"{expected}; {', '.join(missing)} missing in {data!r:.200}")
        try:
            weights = tuple(float(w) for w in u["weights"])
            bias = float(u.get("bias", 0.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the cascade's uncertainty weights and bias must be numbers; "
                              f"found {u.get('weights')!r:.80}, {u.get('bias')!r:.80}") from exc
        return cls(data["t1"], data["t2"], Uncertainty(u["measure"], weights, bias))


def check_evidence(evidence: Any, n: int) -> list[EdgeEvidence]:
    """`evidence` as a list of n EdgeEvidence (one per score), or InputError naming it."""
    if isinstance(evidence, str | bytes | Mapping) or not isinstance(evidence, Sequence) \
            or not all(isinstance(e, EdgeEvidence) for e in evidence):
        raise check.fail(InputError, "evidence", "a list of EdgeEvidence", evidence)
    if len(evidence) != n:
        raise InputError(f"scores and evidence must be one per prompt; found {n} scores and "
                         f"{len(evidence)} evidence")
    return list(evidence)


def _vector(name: str, values: Any, length: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numbers; found {values!r:.80}") from exc
    if v.ndim != 1 or (length is not None and len(v) != length) or not np.isfinite(v).all():
        raise InputError(f"{name} must be a finite vector"
                         f"{'' if length is None else f' of {length}'}; found shape {v.shape}")
    return v


def _logit(p: np.ndarray) -> np.ndarray:
    if ((p < 0) | (p > 1)).any():
        raise InputError("router scores must be probabilities in [0, 1]")
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))  # no overflow warning for large |x|
