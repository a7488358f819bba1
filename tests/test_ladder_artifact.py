"""The `ladder` section of a K-model manifest: each violation is named with its fix, and
thresholds are replaced atomically and validated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_artifact import _DELETE, _edit, _set

from confroute.artifact import MANIFEST, read_manifest, set_threshold, set_thresholds
from confroute.errors import ArtifactError
from confroute.runtime import Router


@pytest.fixture()
def ladder_art(tiny_ladder_artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_ladder_artifact, tmp_path / "artifact"))


@pytest.mark.parametrize("change,message", [
    (_set("ladder.thresholds", [0.5, 0.5]), "2 thresholds for 3 models"),
    (_set("ladder.thresholds", [0.5, 1.5, 0.0]), "field 'ladder.thresholds.1'"),
    (_set("ladder.thresholds", [0.5, None, 0.0]), "field 'ladder.thresholds.1'"),
    (_set("ladder.models", [{"name": "a", "input_per_mtok": 1.0, "output_per_mtok": 1.0}]),
     "field 'ladder.models'"),
    (_set("ladder.models.1.name", "small"), "model names repeat"),
    (_set("ladder.models.2.input_per_mtok", -1.0), "field 'ladder.models.2.input_per_mtok'"),
    (_set("ladder.models.2.output_per_mtok", _DELETE),
     "field 'ladder.models.2.output_per_mtok': Field required"),
    (_set("ladder", _DELETE), "either 'threshold' (two models) or 'ladder'"),
    (_set("threshold", {"default": 0.5}), "not both"),
])
def test_ladder_violations_name_the_field(ladder_art: Path, change: Any, message: str) -> None:
    _edit(ladder_art, change)
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Router.load(ladder_art)


def test_set_thresholds_validates_and_keeps_the_rest(ladder_art: Path, tiny_artifact: Path
                                                     ) -> None:
    before = read_manifest(ladder_art)
    after = set_thresholds(ladder_art, [0.7, 0.6, 0.0], source="test")
    assert read_manifest(ladder_art) == after and after["ladder"]["thresholds"] == [0.7, 0.6, 0.0]
    assert after["ladder"]["models"] == before["ladder"]["models"]
    for bad in ([0.7, 0.6], [float("nan"), 0.5, 0.0], [2.0, 0.5, 0.0]):
        with pytest.raises(ArtifactError, match="ladder"):
            set_thresholds(ladder_art, bad)
    assert read_manifest(ladder_art)["ladder"]["thresholds"] == [0.7, 0.6, 0.0]
    with pytest.raises(ArtifactError, match="calibrate ARTIFACT --target_cost"):
        set_threshold(ladder_art, 0.5)
    with pytest.raises(ArtifactError, match="routes between two models"):
        set_thresholds(tiny_artifact, [0.5, 0.0])


def test_the_ladder_manifest_is_plain_json(ladder_art: Path) -> None:
    manifest = json.loads((ladder_art / MANIFEST).read_text())
    assert manifest["onnx"]["output"] == "logit"
    assert manifest["ladder"]["threshold_source"]["source"].startswith("validation shares")
    assert sum(manifest["ladder"]["threshold_source"]["shares"].values()) == pytest.approx(1)
