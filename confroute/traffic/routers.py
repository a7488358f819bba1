"""The artifact side of the traffic loop: what the gate and the drift report need of a router,
read through the one-routing-model interface (`Router.models`, `adequacy`, `score`,
`decide_batch`), which every artifact has, a pair being the smallest ladder."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.artifact import routing_section
from confroute.traffic.served import ArtifactIdentity, identity


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
        return list(self.router.models)

    def adequacy(self, texts: Sequence[str]) -> np.ndarray:
        """P(model k's answer adequate), float64 [n, K]."""
        return np.asarray(self.router.adequacy(list(texts)), dtype=float)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(cloud needed) = P(the cheapest model is not adequate), float64 [n]."""
        return np.asarray(self.router.score(list(texts)), dtype=float)

    def chosen(self, texts: Sequence[str]) -> np.ndarray:
        """The model index each text goes to under the artifact's calibrated policy [n]."""
        return np.array([d.model_index for d in self.router.decide_batch(list(texts))],
                        dtype=int)

    def target_share(self) -> float | None:
        """The share of prompts above the cheapest model the policy was calibrated to give
        (from the manifest's record of how its policy was set; None when it does not say)."""
        source = routing_section(self.router.manifest).get("source") or {}
        value = source.get("achieved_cloud_fraction", source.get("cloud_fraction"))
        if value is not None:
            return float(value)
        shares = (source.get("achieved") or {}).get("shares") or source.get("shares")
        if isinstance(shares, dict) and self.models[0] in shares:
            return 1.0 - float(shares[self.models[0]])
        return None
