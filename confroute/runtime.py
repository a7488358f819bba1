"""The deployable router: onnxruntime + tokenizers + numpy. Imports neither torch nor transformers.

One class for every artifact, a pair (edge, cloud) being the smallest ladder:

    router = Router.load("runs/demo/artifact")
    router.models                               # ['edge', 'cloud'], cheapest first
    router.score(["What is 2 + 2?"])            # [0.08]: P(cloud needed)
    router.adequacy(["What is 2 + 2?"])         # [[0.92, 1.0]]: P(model k's answer adequate)
    d = router.decide("What is 2 + 2?")         # policy.Decision: the model and why
    d.model, d.route, d.score, d.threshold      # 'edge', 'edge', 0.08, 0.31

An artifact for K models reads the same way (`router.adequacy` has K columns, `d.model` names one
of them); the two-model fields of a decision are for pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from confroute import arguments as check
from confroute import privacy
from confroute.artifact import MAKE_IT, read_manifest, routing_section, verify_files
from confroute.calibration import Calibration, calibrate, check_fraction, check_shares
from confroute.dataset.ratings import Price
from confroute.errors import ArtifactError, ConfigError, InputError
from confroute.policy import Decision, Policy, Rule, check_threshold
from confroute.text import TextEncoder, Turn, prompt_text

__all__ = ["Router", "Variant", "check_fraction", "check_threshold"]

Variant = Literal["auto", "fp32", "int8"]
VARIANTS = ("auto", "fp32", "int8")
MAX_THREADS = 1024
MAX_BATCH = 65536


class Router:
    """Predicts, per prompt, P(model k's answer adequate) for K models (cheapest first) and picks
    one with `confroute.policy` by the artifact's rule. A pair trained on a "cloud needed" label
    (heads `cloud_needed`) predicts P(cloud needed) = `score` directly: its adequacy is
    [1 - score, 1.0], the top model being the fallback.

    Made by `Router.load`; the constructor takes what `load` read and checked."""

    def __init__(self, directory: Path, manifest: dict[str, Any], session: Any,
                 encoder: TextEncoder, variant: str, batch_size: int = 32):
        self.directory = directory
        self.manifest = manifest
        self.variant = variant
        self.batch_size = batch_size
        self._session = session
        self._encoder = encoder
        routing = routing_section(manifest)
        self.models: list[str] = [m["name"] for m in routing["models"]]
        self.heads: Literal["adequacy", "cloud_needed"] = routing["heads"]
        priced = all(m.get("input_per_mtok") is not None for m in routing["models"])
        self.prices: list[Price] | None = [
            Price(float(m["input_per_mtok"]), float(m["output_per_mtok"]))
            for m in routing["models"]] if priced else None
        """List prices (USD per million tokens) by model; None when the artifact has none."""
        self.output_tokens = float(routing.get("output_tokens", 0.0))
        self.outputs = 1 if self.heads == "cloud_needed" else len(self.models)
        self.policy = Policy(list(self.models), np.asarray(routing["thresholds"], dtype=float),
                             routing.get("rule", "threshold"),
                             float(routing.get("lambda_per_usd", 0.0)), routing.get("threshold"))

    @classmethod
    def load(cls, directory: str | Path, variant: Variant = "auto", threads: int | None = None,
             batch_size: int = 32) -> Router:
        """Load and verify an artifact directory (manifest, files, sha256); any format this
        version reads (see confroute.artifact). `variant`: which ONNX model ("auto": the one
        export chose); `threads`: onnxruntime's intra-op threads (None or 0: its default, one
        per core; at most MAX_THREADS); `batch_size`: prompts per inference (1 to MAX_BATCH).

        Raises ArtifactError naming what is wrong with the artifact, ConfigError for a bad
        argument (each checked before anything is read).
        """
        privacy.warn_if_too_late()
        directory = check.path(directory, "directory", ArtifactError)
        variant = check.choice(variant, "variant", VARIANTS)
        threads = check.number(threads, "threads", low=0, high=MAX_THREADS, integer=True,
                               optional=True)
        batch_size = check.number(batch_size, "batch_size", low=1, high=MAX_BATCH, integer=True)
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
        session = _session(directory / model_file, threads)
        encoder = TextEncoder.from_file(directory / pre["tokenizer"], pre["max_length"],
                                        pre["truncation_side"], onnx["inputs"])
        return cls(directory, manifest, session, encoder, variant, batch_size)

    @property
    def turn(self) -> Turn:
        """Which user turn of a conversation is scored (as in training)."""
        return cast(Turn, str(self.manifest["preprocess"]["turn"]))

    @property
    def threshold(self) -> float | None:
        """A pair under the threshold rule: the artifact's threshold (P(cloud needed) >= it
        routes to the cloud); None otherwise."""
        return self.policy.threshold

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
        """Raw head outputs, float32 array of shape (n_prompts,) for a `cloud_needed` pair, else
        (n_prompts, K); raises InputError."""
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

    def probabilities(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(adequacy [n, K], score [n]) of texts already validated by `texts`, from one
        inference: the score is P(cloud needed) = 1 - adequacy[:, 0], except for a
        `cloud_needed` pair, whose score is the sigmoid of its logit exactly."""
        logits = self._logits(texts).astype(np.float64)
        if self.heads == "cloud_needed":
            score = 1.0 / (1.0 + np.exp(-logits))
            return np.stack([1.0 - score, np.ones(len(score))], axis=1), score
        adequacy = 1.0 / (1.0 + np.exp(-logits))
        return adequacy, 1.0 - adequacy[:, 0]

    def adequacy(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """P(model k's answer adequate), float64 array of shape (n_prompts, K); InputError for
        bad prompts."""
        return self.probabilities(self.texts(prompts))[0]

    def score(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """The two-model score, P(cloud needed) = P(the cheapest model is not adequate), float64
        array of shape (n_prompts,) in [0, 1]; InputError for bad prompts."""
        return self.probabilities(self.texts(prompts))[1]

    def costs(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """USD of answering each prompt with each model, float64 (n_prompts, K): input tokens
        counted by the artifact's own tokenizer on the whole scored text (closer to the LLMs'
        counts than ceil(chars / 4): see `TextEncoder.token_counts`), output tokens as the
        artifact's `output_tokens`; zeros when the artifact has no prices. InputError for bad
        prompts."""
        return self._costs(self.texts(prompts))

    def input_tokens(self, texts: list[str]) -> np.ndarray:
        """Input tokens [n] of texts (already validated by `texts`) as `costs` counts them: the
        artifact's own tokenizer on the whole text (see `TextEncoder.token_counts`)."""
        return self._encoder.token_counts(texts)

    def _costs(self, texts: list[str]) -> np.ndarray:
        """`costs` of texts already validated by `texts`."""
        if self.prices is None:
            return np.zeros((len(texts), len(self.models)))
        tokens_in = self.input_tokens(texts)
        tokens_out = np.full(len(texts), self.output_tokens)
        return np.stack([p.cost(tokens_in, tokens_out) for p in self.prices], axis=1)

    def decide(self, prompt: Any, threshold: float | None = None,
               thresholds: dict[str, float] | None = None, model: str | None = None,
               lambda_per_usd: float | None = None) -> Decision:
        """Route one prompt: the chosen model and why (see `decide_batch`)."""
        return self.decide_batch([prompt], threshold, thresholds, model, lambda_per_usd)[0]

    def decide_batch(self, prompts: Sequence[Any], threshold: float | None = None,
                     thresholds: dict[str, float] | None = None, model: str | None = None,
                     lambda_per_usd: float | None = None) -> list[Decision]:
        """One `policy.Decision` per prompt, in order (a prompt's decision never depends on the
        others in the batch).

        Overrides for these prompts only: `threshold` a pair's threshold (a P(cloud needed) cut
        in [0, 1]) or `thresholds` some models' (each in [0, 1]; threshold rule),
        `lambda_per_usd` the lambda (utility rule), `model` forces a model. Raises InputError
        for a bad prompt, an unknown model name, a value out of range or an override of the
        rule the artifact does not use.
        """
        policy = self.policy.overridden(thresholds, threshold)
        policy.check_request(model, lambda_per_usd)
        texts = self.texts(prompts)
        if not texts:
            return []
        probs, scores = self.probabilities(texts)
        costs = self._costs(texts) if self.policy.rule == "utility" else [None] * len(texts)
        return [policy.decide(p, model=model, costs=c, lambda_per_usd=lambda_per_usd,
                              score=float(s)) for p, s, c in zip(probs, scores, costs,
                                                                 strict=True)]

    # A pair's two-model API (route by a threshold): the same decision, under its old names.
    route = decide
    route_batch = decide_batch

    def choose(self, prompts: Sequence[Any]) -> np.ndarray:
        """The chosen model's index for each prompt [n] under the artifact's policy."""
        texts = self.texts(prompts)
        if not texts:
            return np.zeros(0, dtype=int)
        probs, scores = self.probabilities(texts)
        return self.policy.route(probs, self._costs(texts), scores)

    def calibration(self, prompts: Sequence[Any], cloud_fraction: float | None = None, *,
                    shares: Sequence[float] | None = None, target_cost: float | None = None,
                    rule: Rule | None = None) -> Calibration:
        """Score `prompts` once and calibrate the policy on them (`calibration.calibrate`): to
        `shares` of the prompts per model (cheapest first; a pair's `cloud_fraction` F is
        shares [1 - F, F]) or to a mean cost of `target_cost` USD per prompt; `rule` switches
        the rule (default: the artifact's). The warnings are in the result.

        It holds only for traffic like these prompts: calibrate on a sample of real traffic.
        Raises ConfigError (a bad or missing target, a fraction for K > 2, a cost target
        without prices) or InputError (no prompts, a bad prompt).
        """
        rule = check.choice(rule, "rule", ("threshold", "utility"), optional=True)
        if target_cost is not None:
            target_cost = check.number(target_cost, "target_cost", low=0.0,
                                       unit="USD per prompt")
        if shares is not None:
            shares = check_shares(shares, len(self.models)).tolist()
        if cloud_fraction is not None:
            if len(self.models) != 2:
                raise ConfigError(f"cloud_fraction is the two-model target; this artifact "
                                  f"routes among {', '.join(self.models)}: give shares (one "
                                  "per model) or a target cost")
            if shares is not None:
                raise ConfigError("give cloud_fraction or shares, not both")
            fraction = check_fraction(cloud_fraction)
            shares = [1.0 - fraction, fraction]
        texts = self.texts(prompts)
        if not texts:
            raise InputError("calibrate needs at least one prompt")
        probs, scores = self.probabilities(texts)
        return calibrate(self.policy, probs, scores=scores if self.heads == "cloud_needed"
                         else None, costs=None if self.prices is None else self._costs(texts),
                         shares=shares, target_cost=target_cost, rule=rule)

    def calibrate(self, prompts: Sequence[Any], cloud_fraction: float | None = None, *,
                  shares: Sequence[float] | None = None, target_cost: float | None = None,
                  rule: Rule | None = None) -> Calibration:
        """`calibration`, issuing a UserWarning for each of its warnings."""
        result = self.calibration(prompts, cloud_fraction, shares=shares,
                                  target_cost=target_cost, rule=rule)
        for message in result.warnings:
            warnings.warn(message, stacklevel=2)
        return result


def _session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session for the model at `path`; ArtifactError when it will not load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:  # None or 0: onnxruntime's default
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ArtifactError(f"{path} is not a loadable ONNX model: {exc}; {MAKE_IT}") from exc
