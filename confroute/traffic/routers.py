"""The artifact side of the traffic loop: what the gate and the drift report need of a router,
read through the one-routing-model interface (`Router.models`, `adequacy`, `decide_batch`) and,
for artifacts loaded by a runtime from before the merge of pair and ladder, through the
two-model `Router` (`score`, `route_batch`: its models are ["edge", "cloud"])."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.traffic.served import ArtifactIdentity, identity

PAIR = ["edge", "cloud"]


@dataclasses.dataclass
class RouterView:
    """A loaded router as the gate sees it: its models (cheapest first), P(adequate) per model
    [n, K], and the model index its calibrated policy picks [n]."""

    router: Any
    identity: ArtifactIdentity

    @classmethod
    def load(cls, directory: str | Path) -> RouterView:
        """Load the artifact at `directory` (a served link is resolved); raises ArtifactError."""
        from confroute.runtime import Router

        return cls(Router.load(directory), identity(directory))

    @property
    def models(self) -> list[str]:
        return list(getattr(self.router, "models", None) or PAIR)

    def adequacy(self, texts: Sequence[str]) -> np.ndarray:
        """P(model k's answer adequate), float64 [n, K]; a one-logit pair: [1 - score, 1]."""
        if hasattr(self.router, "adequacy"):
            return np.asarray(self.router.adequacy(list(texts)), dtype=float)
        score = np.asarray(self.router.score(list(texts)), dtype=float)
        return np.stack([1.0 - score, np.ones_like(score)], axis=1)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(cloud needed) = P(the cheapest model is not adequate), float64 [n]."""
        if hasattr(self.router, "adequacy"):
            return 1.0 - self.adequacy(texts)[:, 0]
        return np.asarray(self.router.score(list(texts)), dtype=float)

    def chosen(self, texts: Sequence[str]) -> np.ndarray:
        """The model index each text goes to under the artifact's calibrated policy [n]."""
        if hasattr(self.router, "decide_batch"):
            return np.array([d.model_index for d in self.router.decide_batch(list(texts))],
                            dtype=int)
        return np.array([int(d.route == "cloud") for d in self.router.route_batch(list(texts))],
                        dtype=int)

    def target_share(self) -> float | None:
        """The share of prompts above the cheapest model the policy was calibrated to give
        (from the manifest; None when it does not say)."""
        manifest = self.router.manifest
        if "threshold" in manifest and manifest["threshold"]:
            source = manifest["threshold"]
            value = source.get("achieved_cloud_fraction", source.get("cloud_fraction"))
            return None if value is None else float(value)
        ladder = manifest.get("ladder") or {}
        provenance = ladder.get("threshold_source") or {}
        shares = (provenance.get("achieved") or {}).get("shares") or provenance.get("shares")
        if isinstance(shares, dict) and self.models[0] in shares:
            return 1.0 - float(shares[self.models[0]])
        return None
