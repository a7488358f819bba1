"""The router artifact's manifest (`router.json`) in one place: its schema, read, verify, write.

An artifact directory holds the ONNX model(s), `tokenizer.json` and `router.json`, which says
how to preprocess, which file is which variant, the default threshold, and the sha256 of each
file. This module is the only code that knows that format; export writes it, the runtime,
calibrate and evaluation read it. It imports neither torch nor transformers.

The manifest is validated on load against `Manifest` (pydantic 2, strict types): a wrong type,
an out-of-range or non-finite threshold, a `max_length` beyond the encoder's position limit, or
a file name that leaves the artifact directory (`..`, an absolute path, a symlink pointing out)
raise ArtifactError naming the field and the fix. Fields this version does not know are kept.
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

from confroute.errors import ArtifactError
from confroute.files import write_json

MANIFEST = "router.json"
FORMAT_VERSION = 1
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
    default: Probability


class LadderModel(_Part):
    """One routed model: its name and list price (USD per million input / output tokens)."""

    name: str = Field(min_length=1)
    input_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0.0, allow_inf_nan=False)


class Ladder(_Part):
    """A router for K models: output column k of the ONNX model is the logit of P(model k's
    answer adequate); models cheapest first; the policy (confroute.policy): its `rule`, a
    threshold per model (threshold rule) and `lambda_per_usd` (utility rule); `output_tokens`
    is the answer length assumed when pricing a prompt."""

    models: list[LadderModel] = Field(min_length=2)
    thresholds: list[Probability]
    rule: Literal["threshold", "utility"] = "threshold"
    lambda_per_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    output_tokens: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_threshold_per_model(self) -> Ladder:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names repeat in {names}; each model once")
        if len(self.thresholds) != len(names):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(names)} models; one "
                             "per model")
        return self


class Manifest(_Part):
    """The schema of `router.json` (format_version 1); unknown fields are kept as they are.

    A two-model router has `threshold`; a router for K models has `ladder` instead.
    """

    format_version: Literal[1]
    base_encoder: BaseEncoder | None = None
    preprocess: Preprocess
    onnx: Onnx
    threshold: Threshold | None = None
    ladder: Ladder | None = None
    files: dict[FileName, Sha256]

    @model_validator(mode="after")
    def _threshold_or_ladder(self) -> Manifest:
        if (self.threshold is None) == (self.ladder is None):
            raise ValueError("a manifest needs either 'threshold' (two models) or 'ladder' "
                             "(K models), not both and not neither")
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


_FIXES = {
    "threshold": "set one in [0, 1] with `confroute calibrate ARTIFACT --cloud-fraction F "
                 "--write` or `confroute export RUN_DIR --out ARTIFACT_DIR --threshold T`",
    "ladder": "re-export the run (`confroute export RUN_DIR --out ARTIFACT_DIR`); the rule, "
              "its thresholds (in [0, 1], one per model) or lambda can be reset with `confroute "
              "calibrate ARTIFACT --target_cost USD --write`",
    "files": f"the artifact was changed after export; {MAKE_IT}",
}


def validate(data: Any, path: Path) -> Manifest:
    """Check `data` (the parsed `router.json` at `path`) against `Manifest`.

    Raises:
        ArtifactError: naming the first bad field, what was found, and the fix.
    """
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} must hold a JSON object; found {type(data).__name__}. "
                            f"{MAKE_IT}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format_version {version!r}, this confroute reads "
                            f"{FORMAT_VERSION}; re-export with this version ({MAKE_IT})")
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
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"router artifact {directory} does not exist; {MAKE_IT}")
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
        ArtifactError: the manifest fails the schema (nothing is written).
    """
    path = Path(directory) / MANIFEST
    validate(manifest, path)
    return write_json(path, manifest)


def set_threshold(directory: str | Path, value: float, **provenance: Any) -> dict[str, Any]:
    """Store `value` as the artifact's default threshold (with how it was chosen); atomic.

    Returns the new manifest. Raises ArtifactError when the artifact or the value is invalid.
    """
    manifest = read_manifest(directory)
    if manifest.get("ladder"):
        raise ArtifactError(f"{directory} routes among {len(manifest['ladder']['models'])} "
                            "models, with one threshold each; calibrate it with `confroute "
                            "calibrate ARTIFACT --target_cost USD --write` (or --shares)")
    manifest["threshold"] = {"default": value, **provenance}
    write_manifest(directory, manifest)
    return manifest


def set_thresholds(directory: str | Path, values: Sequence[float], **provenance: Any
                   ) -> dict[str, Any]:
    """Store one threshold per model (ladder order) in a K-model artifact and select the
    threshold rule; atomic. Returns the new manifest. Raises ArtifactError when the artifact is
    not a K-model one or a value is invalid (nothing is written then)."""
    return set_ladder_policy(directory, "threshold", thresholds=values, **provenance)


def set_ladder_policy(directory: str | Path, rule: str, thresholds: Sequence[float] | None = None,
                      lambda_per_usd: float | None = None, **provenance: Any) -> dict[str, Any]:
    """Store a K-model artifact's routing rule with its thresholds or lambda (USD^-1); atomic.

    Values not given are kept. Returns the new manifest. Raises ArtifactError when the artifact
    is not a K-model one or a value is invalid (nothing is written then).
    """
    manifest = read_manifest(directory)
    if not manifest.get("ladder"):
        raise ArtifactError(f"{directory} routes between two models; set its threshold with "
                            "`confroute calibrate ARTIFACT --cloud_fraction F --write`")
    ladder = {**manifest["ladder"], "rule": rule, "threshold_source": provenance}
    if thresholds is not None:
        ladder["thresholds"] = [float(v) for v in thresholds]
    if lambda_per_usd is not None:
        ladder["lambda_per_usd"] = float(lambda_per_usd)
    manifest["ladder"] = ladder
    write_manifest(directory, manifest)
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any], names: Sequence[str]) -> None:
    """Check that the named files exist and match the manifest's sha256."""
    for name in names:
        expected = manifest["files"].get(name)
        path = directory / name
        if expected is None or not path.is_file():
            raise ArtifactError(f"{directory} is incomplete: {name} is missing; {MAKE_IT}")
        if sha256_file(path) != expected:
            raise ArtifactError(f"{path} is corrupt or was changed after export (sha256 does not "
                                f"match {MANIFEST}); {MAKE_IT}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
