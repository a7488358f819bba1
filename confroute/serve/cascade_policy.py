"""The serving cascade's policy, read once at start and at each reload: from the
`cascade_policy` file or the artifact manifest's `cascade` section (`confroute.cascade`); the
proxy's two stages are in serve/cascade.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from confroute.cascade import CascadePolicy
from confroute.errors import ConfigError

if TYPE_CHECKING:
    from confroute.runtime import Router
    from confroute.serve.settings import ServeSettings


def load_cascade(router: Router, settings: ServeSettings) -> CascadePolicy | None:
    """The serving cascade: None when off; else from `cascade_policy` (a JSON file), or the
    artifact manifest's `cascade` section. ConfigError when it cannot apply."""
    if not settings.cascade:
        return None
    if len(router.models) != 2:
        raise ConfigError(f"cascade is for a pair (edge, cloud); this artifact routes among "
                          f"{', '.join(router.models)}: turn cascade off")
    if settings.cascade_policy:
        path = Path(settings.cascade_policy)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cascade_policy: cannot read {path} as JSON ({exc}); write it "
                              "with CascadePolicy.to_dict") from exc
    else:
        data = router.manifest.get("cascade")
        if data is None:
            raise ConfigError("cascade is on, but the artifact's manifest has no cascade "
                              "section: set cascade_policy to a JSON file of t1, t2 and "
                              "uncertainty (CascadePolicy.to_dict), or turn cascade off")
    policy = CascadePolicy.from_dict(data)
    if policy.uncertainty.measure != "logprob":
        raise ConfigError(f"the proxy's cascade reads the edge's mean token log-prob (measure "
                          f"'logprob'); '{policy.uncertainty.measure}' needs n sampled answers "
                          "per request, which the proxy does not ask for: calibrate a "
                          "'logprob' cascade")
    return policy
