"""Nothing leaves the machine by default: the usage-reporting switches of confroute's libraries.

`import confroute` (which every entry point runs first: the CLI, `confroute.runtime`,
`confroute.serve`, export, training, labelling, evaluation) calls `apply()`, which sets each
variable of `DEFAULTS` that the environment does not already hold, whatever its value. The
libraries read these variables once, when they are first imported, so they must be set before
that; a host program that imported onnxruntime before confroute gets one warning from
`Router.load` (`warn_if_too_late`).

Opt-in: `CONFROUTE_ALLOW_TELEMETRY=1` (or true/yes/on) makes confroute set none of them, so each
library does what it does by itself. One library can be allowed alone by setting its own
variable, e.g. `ORT_DISABLE_TELEMETRY=0`; confroute never replaces a value that is set.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

ALLOW_ENV = "CONFROUTE_ALLOW_TELEMETRY"
"""Set to 1 (true, yes, on) to let confroute's libraries report usage as they do by default."""

ORT_ENV = "ORT_DISABLE_TELEMETRY"

DEFAULTS: dict[str, str] = {
    # onnxruntime 1.2x on Linux/macOS: `import onnxruntime` writes a device id and an upload
    # queue (~/.cache/Microsoft/DeveloperTools/.onnxruntime/) and sends session, model and
    # error events when online. Read at its import; "1" or "true" turn it off, "0" leaves it on.
    ORT_ENV: "1",
    # huggingface_hub: usage pings (`send_telemetry`) and a telemetry part in the user agent of
    # hub requests made by transformers, datasets and model2vec when they go online.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # litellm fetches its model cost map from GitHub when imported (three tries when offline);
    # the copy bundled with the installed version is used instead.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}

log = logging.getLogger(__name__)
_state = {"ort_imported_first": False, "warned": False}


def allowed(environ: MutableMapping[str, str] | None = None) -> bool:
    """True when the operator opted in (`CONFROUTE_ALLOW_TELEMETRY` = 1, true, yes or on)."""
    value = (os.environ if environ is None else environ).get(ALLOW_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set every `DEFAULTS` variable missing from `environ` (default os.environ), unless the
    operator opted in. Returns the variables it set (name -> value)."""
    env = os.environ if environ is None else environ
    if environ is None:
        # Too late for onnxruntime's switch when the host imported it while it was unset.
        _state["ort_imported_first"] = "onnxruntime" in sys.modules and ORT_ENV not in env
    if allowed(env):
        return {}
    missing = {name: value for name, value in DEFAULTS.items() if name not in env}
    env.update(missing)
    return missing


def warn_if_too_late() -> bool:
    """Log one warning per process (returns True when it did) when onnxruntime was imported
    before confroute with ORT_DISABLE_TELEMETRY unset, so its telemetry runs in this process."""
    if not _state["ort_imported_first"] or _state["warned"] or allowed():
        return False
    _state["warned"] = True
    log.warning("onnxruntime was imported before confroute with %s unset, so its telemetry is "
                "on in this process (a device id and an upload queue under ~/.cache/Microsoft/"
                "DeveloperTools/.onnxruntime); set %s=1 in the environment before the program "
                "starts, or import confroute before onnxruntime", ORT_ENV, ORT_ENV)
    return True
