"""The deployable router: onnxruntime + tokenizers + numpy. Imports neither torch nor transformers.

    router = Router.load("runs/demo/artifact")
    router.score(["What is 2 + 2?", "Prove the Riemann hypothesis."])  # P(cloud needed)
    router.route("What is 2 + 2?")  # Decision(score=0.08, route='edge', threshold=0.31)

An artifact for K models loads as a `LadderRouter`:

    router = Router.load("runs/ladder/artifact")
    router.adequacy(["What is 2 + 2?"])  # [[0.93, 0.97, 0.99]]: P(model k adequate)
    router.decide("What is 2 + 2?").model  # 'small', with the reason why
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from confroute import privacy
from confroute.artifact import MAKE_IT, read_manifest, verify_files
from confroute.dataset.ratings import Price, estimate_tokens
from confroute.errors import ArtifactError, ConfigError, InputError
from confroute.policy import Decision as LadderDecision
from confroute.policy import Policy, Rule, calibrate_cost, calibrate_lambda, calibrate_shares
from confroute.text import TextEncoder, Turn, prompt_text

Variant = Literal["auto", "fp32", "int8"]
Route = Literal["edge", "cloud"]
SMALL_SAMPLE = 100
"""Calibrating on fewer prompts than this warns: each prompt moves the cloud share by > 1%."""


def decide(score: float, threshold: float) -> Route:
    """The routing decision, the one place it is made (runtime, CLI and serve all call it).

    `score` is P(cloud model needed) in [0, 1]; a score equal to the threshold goes to the cloud,
    so threshold 0 sends everything to the cloud and a threshold above every score sends nothing.
    """
    return "cloud" if score >= threshold else "edge"


@dataclasses.dataclass(frozen=True)
class Decision:
    """One prompt's routing: its score (P(cloud needed)), the route and the threshold used."""

    score: float
    route: Route
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Router:
    """Scores prompts with P(cloud model needed) and routes them by a threshold."""

    def __init__(self, directory: Path, manifest: dict[str, Any], session: Any,
                 encoder: TextEncoder, variant: str, batch_size: int = 32):
        self.directory = directory
        self.manifest = manifest
        self.variant = variant
        self.batch_size = batch_size
        self._session = session
        self._encoder = encoder
        self.outputs = 1
        if manifest.get("threshold"):
            self.threshold = float(manifest["threshold"]["default"])

    @classmethod
    def load(cls, directory: str | Path, variant: Variant = "auto", threads: int | None = None,
             batch_size: int = 32) -> Router:
        """Load and verify an artifact directory (manifest, files, sha256)."""
        import onnxruntime as ort

        privacy.warn_if_too_late()
        directory = Path(directory)
        manifest = read_manifest(directory)
        onnx = manifest["onnx"]
        if variant == "auto":
            variant = onnx.get("default_variant", "fp32")
        model_file = onnx.get("variants", {}).get(variant)
        if model_file not in manifest["files"]:
            present = [n for n, f in onnx.get("variants", {}).items() if f in manifest["files"]]
            raise ArtifactError(f"{directory} has no '{variant}' model; it has "
                                f"{', '.join(present) or 'none'}. Re-export with int8 enabled, "
                                "or load variant='fp32'")
        pre = manifest["preprocess"]
        verify_files(directory, manifest, [model_file, pre["tokenizer"]])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(directory / model_file), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactError(f"{directory / model_file} is not a loadable ONNX model: {exc}; "
                                f"{MAKE_IT}") from exc
        encoder = TextEncoder.from_file(directory / pre["tokenizer"], pre["max_length"],
                                        pre["truncation_side"], onnx["inputs"])
        kind = LadderRouter if manifest.get("ladder") else Router
        if not issubclass(kind, cls):
            raise ArtifactError(f"{directory} is a two-model artifact; load it with Router.load")
        return kind(directory, manifest, session, encoder, variant, batch_size)

    @property
    def turn(self) -> Turn:
        """Which user turn of a conversation is scored (as in training)."""
        return cast(Turn, str(self.manifest["preprocess"]["turn"]))

    def texts(self, prompts: Sequence[Any] | str) -> list[str]:
        """Validated scored texts; a single string is one prompt.

        Raises InputError naming the prompt's position (see confroute.text for the policy).
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence) or isinstance(prompts, bytes | bytearray):
            raise InputError(f"prompts must be a list of strings or conversations; found "
                             f"{type(prompts).__name__}")
        return [prompt_text(p, self.turn, i) for i, p in enumerate(prompts)]

    def logits(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """Raw head outputs, float32 array of shape (n_prompts,), or (n_prompts, K) for a
        router for K models; raises InputError."""
        return self._logits(self.texts(prompts))

    def _logits(self, texts: list[str]) -> np.ndarray:
        """`logits` of texts already validated by `texts`."""
        out = np.empty((len(texts), self.outputs), dtype=np.float32)
        # Sorting by length keeps padding (and wasted compute) low inside each batch.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            index = order[start:start + self.batch_size]
            feed = self._encoder([texts[i] for i in index])
            result = self._session.run(["logit"], feed)[0]
            if result.size != len(index) * self.outputs:
                raise ArtifactError(f"{self.directory}: the ONNX model returned shape "
                                    f"{result.shape} for {len(index)} prompts; expected "
                                    f"{self.outputs} output(s) each. {MAKE_IT}")
            out[index] = result.reshape(len(index), self.outputs)
        return out[:, 0] if self.outputs == 1 else out

    def score(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """P(cloud model needed) per prompt, float64 array in [0, 1]."""
        logits = self.logits(prompts).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def route(self, prompt: Any, threshold: float | None = None) -> Decision:
        """Route one prompt; `threshold` in [0, 1] overrides the artifact's (else InputError)."""
        return self.route_batch([prompt], threshold)[0]

    def route_batch(self, prompts: Sequence[Any], threshold: float | None = None
                    ) -> list[Decision]:
        """One Decision per prompt, in order; raises InputError as `score` and `route` do."""
        limit = self.threshold if threshold is None else check_threshold(threshold)
        return [Decision(float(s), decide(s, limit), limit) for s in self.score(prompts)]

    def calibrate(self, prompts: Sequence[Any], cloud_fraction: float) -> float:
        """The threshold whose cloud share on these prompts is nearest `cloud_fraction`.

        Issues a UserWarning for each of `calibration`'s warnings; see it for the details.
        """
        result = self.calibration(prompts, cloud_fraction)
        for message in result.warnings:
            warnings.warn(message, stacklevel=2)
        return result.threshold

    def calibration(self, prompts: Sequence[Any], cloud_fraction: float) -> Calibration:
        """Score `prompts` and calibrate a threshold on them (`calibrate_threshold`).

        It holds only for traffic like these prompts: calibrate on a sample of real traffic.
        Raises ConfigError (fraction not in [0, 1]) or InputError (no prompts, a bad prompt).
        """
        check_fraction(cloud_fraction)
        if isinstance(prompts, Sequence) and not isinstance(prompts, str) and not prompts:
            raise InputError("calibrate needs at least one prompt")
        return calibrate_threshold(self.score(prompts), cloud_fraction)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and what it achieves on the prompts it was calibrated on."""

    threshold: float
    requested: float
    """The cloud share asked for, in [0, 1]."""
    achieved: float
    """The share of the calibration prompts whose score is >= threshold."""
    prompts: int
    distinct_scores: int
    warnings: tuple[str, ...] = ()


def check_fraction(value: Any) -> float:
    """`value` as a float in [0, 1], or ConfigError (NaN, infinities, strings, bools refused)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= float(value) <= 1.0):  # written so that NaN fails too
        raise ConfigError(f"cloud_fraction must be in [0, 1] (a number, not NaN); found {value!r}")
    return float(value)


def calibrate_threshold(scores: np.ndarray, cloud_fraction: float) -> Calibration:
    """The threshold whose cloud share on `scores` (shape (n,), in [0, 1]) is nearest the request.

    Tie-aware: prompts with equal scores always take the same route, so only some shares k/n are
    achievable (cutting between two distinct scores, or everything, or nothing). Of those, the
    one nearest `cloud_fraction * n` is chosen (the smaller share when two are equally near).
    The threshold is the lowest score sent to the cloud (`decide` sends score >= threshold), or
    just above the highest score when nothing goes to the cloud (not achievable when a score is
    1.0: thresholds stay in [0, 1]). Warns when n < SMALL_SAMPLE or when ties move the share.
    """
    fraction = check_fraction(cloud_fraction)
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = len(s)
    if n == 0:
        raise InputError("calibrate needs at least one prompt")
    cuts = np.flatnonzero(s[:-1] > s[1:]) + 1  # k prompts to the cloud, cutting between ties
    ks = np.concatenate(([0] if s[0] < 1.0 else [], cuts, [n])).astype(int)
    k = int(ks[np.argmin(np.abs(ks - fraction * n))])  # argmin: first (smaller) on a tie
    threshold = float(np.nextafter(s[0], np.inf)) if k == 0 else float(s[k - 1])
    distinct = len(cuts) + 1
    notes = []
    if n < SMALL_SAMPLE:
        notes.append(f"calibrated on only {n} prompts: each moves the cloud share by "
                     f"{100 / n:.1f}%; use at least {SMALL_SAMPLE} prompts of real traffic")
    if distinct < n:
        _, counts = np.unique(s, return_counts=True)
        shared = int(counts[counts > 1].sum())
        notes.append(f"{shared} of {n} prompts share a score with another (ties, e.g. "
                     f"repeated prompts) and always take the same route; the nearest achievable "
                     f"cloud share is {k / n:.1%} (asked for {fraction:.1%})")
    return Calibration(threshold, fraction, k / n, n, distinct, tuple(notes))


def check_threshold(value: Any) -> float:
    """`value` as a float in [0, 1] (numpy scalars too), or InputError (NaN, bools, text)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= float(value) <= 1):  # written so that NaN fails too
        raise InputError(f"threshold must be a number in [0, 1]; found {value!r}")
    return float(value)


class LadderRouter(Router):
    """A router for K models (cheapest first): predicts P(model k's answer adequate) for every
    model and picks one with `confroute.policy` by the artifact's rule: `utility` (the export
    default: the highest P - lambda x cost) or `threshold` (the cheapest model whose probability
    clears its threshold, else the best predicted one). Loaded by `Router.load` for a K-model
    artifact."""

    def __init__(self, directory: Path, manifest: dict[str, Any], session: Any,
                 encoder: TextEncoder, variant: str, batch_size: int = 32):
        super().__init__(directory, manifest, session, encoder, variant, batch_size)
        ladder = manifest["ladder"]
        self.models: list[str] = [m["name"] for m in ladder["models"]]
        self.prices = [Price(float(m["input_per_mtok"]), float(m["output_per_mtok"]))
                       for m in ladder["models"]]
        self.output_tokens = float(ladder.get("output_tokens", 0.0))
        self.outputs = len(self.models)
        self.policy = Policy(list(self.models), np.asarray(ladder["thresholds"], dtype=float),
                             ladder.get("rule", "threshold"),
                             float(ladder.get("lambda_per_usd", 0.0)))

    def adequacy(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """P(model k's answer adequate), float64 array of shape (n_prompts, K); InputError for
        bad prompts."""
        return self._adequacy(self.texts(prompts))

    def _adequacy(self, texts: list[str]) -> np.ndarray:
        """`adequacy` of texts already validated by `texts`."""
        return 1.0 / (1.0 + np.exp(-self._logits(texts).astype(np.float64)))

    def score(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """P(a model above the cheapest is needed) = 1 - P(cheapest adequate), shape (n,): the
        two-model score, so two-model tooling (evaluate, calibrate) can read a ladder too."""
        return 1.0 - self.adequacy(prompts)[:, 0]

    def costs(self, texts: Sequence[str]) -> np.ndarray:
        """USD of answering each text with each model, (n, K): input tokens estimated as
        ceil(chars / 4), output tokens as the artifact's `output_tokens`."""
        tokens_in = estimate_tokens(texts)
        tokens_out = np.full(len(texts), self.output_tokens)
        return np.stack([p.cost(tokens_in, tokens_out) for p in self.prices], axis=1)

    def decide(self, prompt: Any, thresholds: dict[str, float] | None = None,
               model: str | None = None, lambda_per_usd: float | None = None) -> LadderDecision:
        """Route one prompt: the chosen model and why (see `decide_batch`)."""
        return self.decide_batch([prompt], thresholds, model, lambda_per_usd)[0]

    def decide_batch(self, prompts: Sequence[Any], thresholds: dict[str, float] | None = None,
                     model: str | None = None, lambda_per_usd: float | None = None
                     ) -> list[LadderDecision]:
        """One `policy.Decision` per prompt (model, reason, probabilities, thresholds).

        Overrides for these prompts only: `thresholds` some models' thresholds (each in [0, 1];
        threshold rule), `lambda_per_usd` the lambda (utility rule), `model` forces a model.
        Raises InputError for a bad prompt, an unknown model name, a value out of range or an
        override of the rule the artifact does not use.
        """
        if thresholds is not None and not isinstance(thresholds, dict):
            raise InputError(f"thresholds must map model names to thresholds, e.g. "
                             f"{{'{self.models[0]}': 0.8}}; found {type(thresholds).__name__}")
        overrides = {name: check_threshold(v) for name, v in (thresholds or {}).items()}
        texts = self.texts(prompts)
        probs = self._adequacy(texts)
        costs = self.costs(texts)
        return [self.policy.decide(p, overrides, model, c, lambda_per_usd)
                for p, c in zip(probs, costs, strict=True)]

    def choose(self, prompts: Sequence[Any]) -> np.ndarray:
        """The chosen model's index for each prompt [n] under the artifact's policy."""
        texts = self.texts(prompts)
        return self.policy.route(self._adequacy(texts), self.costs(texts))

    def route(self, prompt: Any, threshold: float | None = None) -> Any:
        """A ladder routes by `decide`; `threshold` (one number) does not apply to K models."""
        raise InputError("this artifact routes among several models: use decide(prompt, "
                         "thresholds={model: t}) rather than route(prompt, threshold)")

    def route_batch(self, prompts: Sequence[Any], threshold: float | None = None) -> Any:
        raise InputError("this artifact routes among several models: use decide_batch(prompts, "
                         "thresholds={model: t}) rather than route_batch")

    def calibrate_cost(self, prompts: Sequence[Any], target: float) -> np.ndarray:
        """Thresholds [K] (one shared value below the top model) whose mean cost per prompt on
        `prompts` is at most `target` USD, with the most quality (`policy.calibrate_cost`).
        Raises ConfigError when even the cheapest model costs more, InputError for no prompts."""
        texts = self._calibration_texts(prompts)
        return calibrate_cost(self._adequacy(texts), self.costs(texts), target)

    def calibrate_lambda(self, prompts: Sequence[Any], target: float) -> float:
        """The utility rule's lambda (per USD) whose mean cost per prompt on `prompts` is at most
        `target` USD, with the most quality (`policy.calibrate_lambda`). Raises ConfigError when
        even the cheapest model costs more, InputError for no prompts."""
        texts = self._calibration_texts(prompts)
        return calibrate_lambda(self._adequacy(texts), self.costs(texts), target)

    def calibrate_shares(self, prompts: Sequence[Any], shares: Sequence[float]) -> np.ndarray:
        """Thresholds [K] sending about `shares[k]` of `prompts` to model k
        (`policy.calibrate_shares`). Raises ConfigError for bad shares."""
        return calibrate_shares(self._adequacy(self._calibration_texts(prompts)), shares)

    def calibrate_policy(self, prompts: Sequence[Any], rule: Rule | None = None,
                         target_cost: float | None = None,
                         shares: Sequence[float] | None = None) -> LadderCalibration:
        """Score `prompts` once and calibrate `rule` (default: the artifact's) to a mean cost of
        `target_cost` USD per prompt (either rule) or to `shares` per model (threshold rule).

        Returns the calibrated policy (thresholds capped at 1.0, which means "never") and what
        it achieves on these prompts. Raises ConfigError for neither or both targets, shares
        with the utility rule, or an unreachable target; InputError for bad prompts.
        """
        rule = rule or self.policy.rule
        if (target_cost is None) == (shares is None):
            raise ConfigError("give exactly one of a target cost (USD per prompt) or shares")
        if rule == "utility" and shares is not None:
            raise ConfigError("shares set thresholds (the threshold rule); the utility rule is "
                              "calibrated to a cost: give a target cost, or the threshold rule")
        texts = self._calibration_texts(prompts)
        probs, costs = self._adequacy(texts), self.costs(texts)
        policy = dataclasses.replace(self.policy, rule=rule)
        if target_cost is None:
            policy.thresholds = calibrate_shares(probs, shares or ())
        elif rule == "utility":
            policy.lambda_per_usd = calibrate_lambda(probs, costs, target_cost)
        else:
            policy.thresholds = calibrate_cost(probs, costs, target_cost)
        policy.thresholds = np.minimum(policy.thresholds, 1.0)
        chosen = policy.route(probs, costs)
        return LadderCalibration(
            policy, float(costs[np.arange(len(chosen)), chosen].mean()),
            {m: float(np.mean(chosen == k)) for k, m in enumerate(self.models)}, len(texts))

    def _calibration_texts(self, prompts: Sequence[Any]) -> list[str]:
        if isinstance(prompts, Sequence) and not isinstance(prompts, str) and not prompts:
            raise InputError("calibrate needs at least one prompt")
        texts = self.texts(prompts)
        if len(texts) < SMALL_SAMPLE:
            warnings.warn(f"calibrated on only {len(texts)} prompts; use at least "
                          f"{SMALL_SAMPLE} prompts of real traffic", stacklevel=3)
        return texts


@dataclasses.dataclass(frozen=True)
class LadderCalibration:
    """A K-model policy calibrated on sample prompts, and what it achieves on them."""

    policy: Policy
    mean_cost: float
    """USD per prompt on the calibration prompts."""
    shares: dict[str, float]
    """Share of the calibration prompts each model gets."""
    prompts: int
