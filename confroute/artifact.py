"""The router artifact's manifest (`router.json`) in one place: its schema, read, verify, write.

An artifact directory holds the ONNX model(s), `tokenizer.json` and `router.json`, which says
how to preprocess, which file is which variant, how the router's output becomes a model (the
`routing` section: the models, how the heads map to them, the rule and its parameters), and
the sha256 of each file. This module is the only code that knows that format; export writes
it, the runtime, calibrate and evaluation read it. It imports neither torch nor transformers.

The manifest is validated on load against `Manifest` (pydantic 2, strict types): a wrong type,
an out-of-range or non-finite threshold, a `max_length` beyond the encoder's position limit, or
a file name that leaves the artifact directory (`..`, an absolute path, a symlink pointing out)
raise ArtifactError naming the field and the fix. Fields this version does not know are kept.
Manifests written before the routing section (format 1: `threshold` or `ladder`) still load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from confroute import arguments as check
from confroute.errors import ArtifactError
from confroute.files import write_json
from confroute.policy import Policy

MANIFEST = "router.json"
FORMAT_VERSION = 2
"""What `confroute export` writes: one `routing` section for every artifact."""
READS = (1, 2)
MAKE_IT = "make one with `confroute export RUN_DIR --out ARTIFACT_DIR`"
MAX_POSITIONS_UNKNOWN = 8192
"""The `max_length` ceiling for artifacts written before the encoder's position limit was
recorded (`base_encoder.max_positions`); the same ceiling as `model.max_length` in training."""


def _confined(name: str, info: ValidationInfo) -> str:
    """A relative POSIX file name that stays inside the artifact directory (symlinks too)."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or "\\" in name or ".." in pure.parts:
        raise ValueError(f"file name {name!r} must be a plain name inside the artifact directory "
                         "(no absolute path, no '..')")
    directory = (info.context or {}).get("directory")
    if directory is not None:
        root = Path(directory).resolve()
        if not (Path(directory) / name).resolve().is_relative_to(root):
            raise ValueError(f"file {name!r} resolves outside the artifact directory (a symlink "
                             "leaving it)")
    return name


FileName = Annotated[str, AfterValidator(_confined)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Part(BaseModel):
    # strict: "0.5" is not a number and 1 is not a name; extra: newer writers may add fields
    model_config = ConfigDict(strict=True, extra="allow")


class BaseEncoder(_Part):
    name: str
    model_type: str
    hidden_size: int = Field(ge=1)
    max_positions: int | None = Field(default=None, ge=1)
    """Longest token sequence the encoder's position embeddings hold (absent before v0.1.1)."""


class Preprocess(_Part):
    turn: Literal["first", "last", "all"]
    max_length: int = Field(ge=2)
    truncation_side: Literal["left", "right"]
    pooling: str
    tokenizer: FileName


class Onnx(_Part):
    inputs: list[str] = Field(min_length=1)
    output: str
    score: str
    variants: dict[str, FileName] = Field(min_length=1)
    default_variant: str = "fp32"

    @model_validator(mode="after")
    def _default_is_a_variant(self) -> Onnx:
        if self.default_variant not in self.variants:
            raise ValueError(f"default_variant {self.default_variant!r} is not one of the "
                             f"variants {sorted(self.variants)}")
        return self


class Threshold(_Part):
    """Format 1, a pair: the default threshold (P(cloud needed) >= it routes to the cloud)."""

    default: Probability


class LadderModel(_Part):
    """Format 1, K models: one routed model's name and list price (USD per million input /
    output tokens)."""

    name: str = Field(min_length=1)
    input_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)


class Ladder(_Part):
    """Format 1, K models: output column k of the ONNX model is the logit of P(model k's
    answer adequate); otherwise as `Routing`."""

    models: list[LadderModel] = Field(min_length=2)
    thresholds: list[Probability]
    rule: Literal["threshold", "utility"] = "threshold"
    lambda_per_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    output_tokens: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_threshold_per_model(self) -> Ladder:
        _check_models([m.name for m in self.models], self.thresholds)
        return self


class RoutedModel(_Part):
    """One routed model: its name and, when known, its list price (USD per million input /
    output tokens; both or neither)."""

    name: str = Field(min_length=1)
    input_per_mtok: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    output_per_mtok: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _both_prices(self) -> RoutedModel:
        if (self.input_per_mtok is None) != (self.output_per_mtok is None):
            raise ValueError(f"model {self.name!r} needs both input_per_mtok and "
                             "output_per_mtok, or neither")
        return self


class Routing(_Part):
    """How the router's output becomes a model (format 2; every artifact, K >= 2 models).

    `models` cheapest first. `heads`: `adequacy`, output column k of the ONNX model is the logit
    of P(model k's answer adequate); `cloud_needed` (K = 2), one logit l with sigmoid(l) =
    P(cloud needed) = P(the cheapest model is not adequate), the top model being the fallback.
    The policy (confroute.policy): its `rule`, one threshold per model (threshold rule:
    P(adequate) >= it), for `cloud_needed` the cheapest model's `threshold` as a P(cloud needed)
    cut (thresholds[0] is then 1 - threshold), and `lambda_per_usd` (utility rule, which needs
    every model's price). `output_tokens` is the answer length assumed when pricing a prompt.
    """

    models: list[RoutedModel] = Field(min_length=2)
    heads: Literal["adequacy", "cloud_needed"]
    rule: Literal["threshold", "utility"] = "threshold"
    thresholds: list[Probability]
    threshold: Probability | None = None
    lambda_per_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    output_tokens: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        names = [m.name for m in self.models]
        _check_models(names, self.thresholds)
        if self.heads == "cloud_needed" and len(names) != 2:
            raise ValueError(f"heads 'cloud_needed' routes between two models; found {names}")
        if self.threshold is not None:
            if self.heads != "cloud_needed":
                raise ValueError("threshold (a P(cloud needed) cut) needs heads 'cloud_needed'; "
                                 "with heads 'adequacy' set thresholds")
            if abs(self.thresholds[0] - (1.0 - self.threshold)) > 1e-12:
                raise ValueError(f"thresholds.0 must be 1 - threshold ({1 - self.threshold}); "
                                 f"found {self.thresholds[0]}")
        if self.rule == "utility" and any(m.input_per_mtok is None for m in self.models):
            raise ValueError("the utility rule weighs each model's price: price every model, "
                             "or use the threshold rule")
        return self


def _check_models(names: list[str], thresholds: list[float]) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat in {names}; each model once")
    if len(thresholds) != len(names):
        raise ValueError(f"{len(thresholds)} thresholds for {len(names)} models; one per model")


class Manifest(_Part):
    """The schema of `router.json`; unknown fields are kept as they are.

    Format 2 has `routing`; format 1 (written before the pair and the ladder merged) has
    `threshold` (a pair) or `ladder` (K models), which `routing_section` reads as `routing`.
    """

    format_version: Literal[1, 2]
    base_encoder: BaseEncoder | None = None
    preprocess: Preprocess
    onnx: Onnx
    threshold: Threshold | None = None
    ladder: Ladder | None = None
    routing: Routing | None = None
    files: dict[FileName, Sha256]

    @model_validator(mode="after")
    def _one_routing_form(self) -> Manifest:
        if self.format_version == 2:
            if self.routing is None or self.threshold is not None or self.ladder is not None:
                raise ValueError("a format 2 manifest needs 'routing' (and neither 'threshold' "
                                 "nor 'ladder')")
        elif (self.threshold is None) == (self.ladder is None) or self.routing is not None:
            raise ValueError("a format 1 manifest needs either 'threshold' (two models) or "
                             "'ladder' (K models), not both and not neither")
        return self

    @model_validator(mode="after")
    def _max_length_fits(self) -> Manifest:
        known = self.base_encoder.max_positions if self.base_encoder else None
        limit = known or MAX_POSITIONS_UNKNOWN
        if self.preprocess.max_length > limit:
            raise ValueError(f"preprocess.max_length {self.preprocess.max_length} exceeds the "
                             f"encoder's position limit {limit}"
                             f"{'' if known else ' (none recorded; the largest supported)'}")
        return self


_CALIBRATE = ("re-export the run (`confroute export RUN_DIR --out ARTIFACT_DIR`); the rule, "
              "its thresholds (in [0, 1], one per model) or lambda can be reset with `confroute "
              "calibrate ARTIFACT --shares '[...]' --write` (or --target_cost USD, or "
              "--cloud_fraction F for a pair)")
_FIXES = {
    "threshold": "set one in [0, 1] with `confroute calibrate ARTIFACT --cloud_fraction F "
                 "--write` or `confroute export RUN_DIR --out ARTIFACT_DIR --threshold T`",
    "routing": _CALIBRATE,
    "ladder": _CALIBRATE,
    "files": f"the artifact was changed after export; {MAKE_IT}",
}


def validate(data: Any, path: Path) -> Manifest:
    """Check `data` (the parsed `router.json` at `path`) against `Manifest`.

    Raises:
        ArtifactError: naming the first bad field, what was found, and the fix.
    """
    path = check.path(path, "path", ArtifactError)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} must hold a JSON object; found {type(data).__name__}. "
                            f"{MAKE_IT}")
    version = data.get("format_version")
    if version not in READS or isinstance(version, bool):
        raise ArtifactError(f"{path} has format_version {version!r}, this confroute reads "
                            f"{' and '.join(map(str, READS))}; re-export with this version "
                            f"({MAKE_IT})")
    try:
        return Manifest.model_validate(data, context={"directory": path.parent})
    except ValidationError as exc:
        raise ArtifactError(_describe(exc, path, len(exc.errors()))) from exc


def _describe(exc: ValidationError, path: Path, count: int) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "(manifest)"
    found = "missing" if error["type"] == "missing" else f"found {error['input']!r}"
    if error["type"] == "value_error" or not error["loc"]:
        found = ""  # the message already names the value
    fix = _FIXES.get(str(error["loc"][0]) if error["loc"] else "", MAKE_IT)
    more = f" ({count - 1} more problem(s))" if count > 1 else ""
    detail = f"{error['msg']}{'; ' + found if found else ''}"
    return f"{path}: field '{field}': {detail}{more}; {fix}"


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The validated manifest of the artifact in `directory`, as a dict (unknown keys kept).

    Raises:
        ArtifactError: the directory or `router.json` is missing, not JSON, or fails the schema.
    """
    directory = check.path(directory, "directory", ArtifactError, kind="folder", fix=MAKE_IT)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} has no {MANIFEST}, so it is not a router artifact; "
                            f"{MAKE_IT}")
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); {MAKE_IT}") from exc
    validate(manifest, path)
    return manifest


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Validate `manifest` and replace `directory/router.json` with it atomically.

    Raises:
        ArtifactError: `directory` is not a folder, or the manifest fails the schema; nothing
            is written then.
    """
    path = check.path(directory, "directory", ArtifactError, kind="folder") / MANIFEST
    try:
        validate(manifest, path)
    except ArtifactError as exc:
        raise ArtifactError(f"manifest: {exc}") from None
    return write_json(path, manifest)


def routing_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's routing in the format 2 form (`Routing`), also for a format 1 manifest:
    its `threshold` is a pair (edge, cloud) whose head gives P(cloud needed), its `ladder`
    K models with one head each. `source` says how the policy was set. ArtifactError when
    `manifest` is not a manifest (see `read_manifest`)."""
    if not isinstance(manifest, dict) or not {"routing", "ladder", "threshold"} & set(manifest):
        raise check.fail(ArtifactError, "manifest", "a manifest as read_manifest returns it "
                         "(with 'routing', or 'threshold' / 'ladder' in format 1)", manifest)
    if "routing" in manifest:
        return dict(manifest["routing"])
    if "ladder" in manifest:
        ladder = manifest["ladder"]
        return {"models": ladder["models"], "heads": "adequacy",
                "rule": ladder.get("rule", "threshold"), "thresholds": ladder["thresholds"],
                "lambda_per_usd": ladder.get("lambda_per_usd", 0.0),
                "output_tokens": ladder.get("output_tokens", 0.0),
                "source": ladder.get("threshold_source", {})}
    threshold = dict(manifest["threshold"])
    cut = threshold.pop("default")
    return {"models": [{"name": "edge"}, {"name": "cloud"}], "heads": "cloud_needed",
            "rule": "threshold", "threshold": cut, "thresholds": [1.0 - cut, 0.0],
            "source": threshold}


def set_policy(directory: str | Path, policy: Policy, **provenance: Any) -> dict[str, Any]:
    """Store `policy` (its rule, thresholds, cut and lambda) as the artifact's routing, with how
    it was chosen (`provenance`), atomically; a format 1 manifest is rewritten as format 2.

    Returns the new manifest. Raises ArtifactError when the artifact is invalid, the policy's
    models are not the artifact's, or a value is out of range (nothing is written then);
    ConfigError when `policy` is not a Policy.
    """
    check.instance(policy, "policy", Policy, "a confroute.policy.Policy")
    manifest = read_manifest(directory)
    routing = routing_section(manifest)
    names = [m["name"] for m in routing["models"]]
    if list(policy.models) != names:
        raise ArtifactError(f"{directory} routes among {', '.join(names)}; the policy names "
                            f"{', '.join(policy.models)}")
    if policy.cut is not None and routing["heads"] != "cloud_needed":
        raise ArtifactError(f"{directory} predicts P(adequate) per model: store thresholds, "
                            "not a P(cloud needed) threshold")
    routing.pop("threshold", None)
    routing |= {"rule": policy.rule, "thresholds": [float(t) for t in policy.thresholds],
                "lambda_per_usd": float(policy.lambda_per_usd), "source": provenance}
    if policy.cut is not None:
        routing["threshold"] = policy.cut
    manifest = {k: v for k, v in manifest.items() if k not in ("threshold", "ladder")}
    manifest |= {"format_version": FORMAT_VERSION, "routing": routing}
    write_manifest(directory, manifest)
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any], names: Sequence[str]) -> None:
    """Check that the named files exist and match the manifest's sha256; ArtifactError names
    the first that does not (or a bad argument)."""
    directory = check.path(directory, "directory", ArtifactError, kind="folder", fix=MAKE_IT)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise check.fail(ArtifactError, "manifest", "a manifest with a 'files' mapping",
                         manifest)
    for name in check.names(names, "names", error=ArtifactError):
        expected = manifest["files"].get(name)
        path = directory / name
        if expected is None or not path.is_file():
            raise ArtifactError(f"{directory} is incomplete: {name} is missing; {MAKE_IT}")
        if sha256_file(path) != expected:
            raise ArtifactError(f"{path} is corrupt or was changed after export (sha256 does not "
                                f"match {MANIFEST}); {MAKE_IT}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; ArtifactError when `path` is no file."""
    path = check.path(path, "path", ArtifactError, kind="file")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
