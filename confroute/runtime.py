"""The deployable router: onnxruntime + tokenizers + numpy. Imports neither torch nor transformers.

    router = Router.load("runs/demo/artifact")
    router.score(["What is 2 + 2?", "Prove the Riemann hypothesis."])  # P(cloud needed)
    router.route("What is 2 + 2?")  # Decision(score=0.08, route='edge', threshold=0.31)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from confroute.artifact import MAKE_IT, read_manifest, verify_files
from confroute.errors import ArtifactError, ConfigError, InputError
from confroute.text import TextEncoder, Turn, prompt_text

Variant = Literal["auto", "fp32", "int8"]


@dataclasses.dataclass(frozen=True)
class Decision:
    score: float
    route: Literal["edge", "cloud"]
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
        self.threshold = float(manifest["threshold"]["default"])

    @classmethod
    def load(cls, directory: str | Path, variant: Variant = "auto", threads: int | None = None,
             batch_size: int = 32) -> Router:
        """Load and verify an artifact directory (manifest, files, sha256)."""
        import onnxruntime as ort

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
        return cls(directory, manifest, session, encoder, variant, batch_size)

    @property
    def turn(self) -> Turn:
        """Which user turn of a conversation is scored (as in training)."""
        return cast(Turn, str(self.manifest["preprocess"]["turn"]))

    def texts(self, prompts: Sequence[Any] | str) -> list[str]:
        """Validated scored texts; a single string is one prompt."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence):
            raise InputError(f"prompts must be a list of strings or conversations; found "
                             f"{type(prompts).__name__}")
        return [prompt_text(p, self.turn, i) for i, p in enumerate(prompts)]

    def logits(self, prompts: Sequence[Any] | str) -> np.ndarray:
        texts = self.texts(prompts)
        out = np.empty(len(texts), dtype=np.float32)
        # Sorting by length keeps padding (and wasted compute) low inside each batch.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            index = order[start:start + self.batch_size]
            feed = self._encoder([texts[i] for i in index])
            out[index] = self._session.run(["logit"], feed)[0].reshape(-1)
        return out

    def score(self, prompts: Sequence[Any] | str) -> np.ndarray:
        """P(cloud model needed) per prompt, float64 array in [0, 1]."""
        logits = self.logits(prompts).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def route(self, prompt: Any, threshold: float | None = None) -> Decision:
        return self.route_batch([prompt], threshold)[0]

    def route_batch(self, prompts: Sequence[Any], threshold: float | None = None
                    ) -> list[Decision]:
        limit = self.threshold if threshold is None else check_threshold(threshold)
        return [Decision(float(s), "cloud" if s >= limit else "edge", limit)
                for s in self.score(prompts)]

    def calibrate(self, prompts: Sequence[Any], cloud_fraction: float) -> float:
        """The threshold that sends `cloud_fraction` of these prompts to the cloud.

        It holds only for traffic like these prompts: calibrate on a sample of real traffic.
        """
        if not 0.0 <= cloud_fraction <= 1.0:
            raise ConfigError(f"cloud_fraction must be in [0, 1]; found {cloud_fraction}")
        scores = np.sort(self.score(prompts))[::-1]
        if len(scores) == 0:
            raise InputError("calibrate needs at least one prompt")
        k = int(round(cloud_fraction * len(scores)))
        return float(np.nextafter(scores[0], np.inf)) if k == 0 else float(scores[k - 1])


def check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(f"threshold must be a number in [0, 1]; found {value!r}")
    return float(value)
