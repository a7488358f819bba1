"""The routing section of a K-model manifest, in the form export writes (format 2) and as
`ladder` (format 1, written before the merge): each violation is named with its fix, an old
manifest decides as the new one, and a policy is stored atomically and validated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_artifact import _DELETE, _edit, _set, write_old_form

from confroute.artifact import MANIFEST, read_manifest, set_policy
from confroute.errors import ArtifactError, ConfigError
from confroute.policy import Policy
from confroute.runtime import Router

from conftest import LADDER, make_ladder_rows


@pytest.fixture()
def ladder_art(tiny_ladder_artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_ladder_artifact, tmp_path / "artifact"))


def _escaped(message: str) -> str:
    return message.replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("change,message", [
    (_set("routing.thresholds", [0.5, 0.5]), "2 thresholds for 3 models"),
    (_set("routing.thresholds", [0.5, 1.5, 0.0]), "field 'routing.thresholds.1'"),
    (_set("routing.thresholds", [0.5, None, 0.0]), "field 'routing.thresholds.1'"),
    (_set("routing.models", [{"name": "a", "input_per_mtok": 1.0, "output_per_mtok": 1.0}]),
     "field 'routing.models'"),
    (_set("routing.models.1.name", "small"), "model names repeat"),
    (_set("routing.models.2.input_per_mtok", -1.0), "field 'routing.models.2.input_per_mtok'"),
    (_set("routing.models.2.output_per_mtok", _DELETE),
     "needs both input_per_mtok and output_per_mtok"),
    (_set("routing.threshold", 0.5), "threshold (a P(cloud needed) cut) needs heads"),
    (_set("routing.heads", "cloud_needed"), "heads 'cloud_needed' routes between two models"),
])
def test_routing_violations_name_the_field(ladder_art: Path, change: Any, message: str) -> None:
    _edit(ladder_art, change)
    with pytest.raises(ArtifactError, match=_escaped(message)):
        Router.load(ladder_art)


@pytest.mark.parametrize("change,message", [
    (_set("ladder.thresholds", [0.5, 0.5]), "2 thresholds for 3 models"),
    (_set("ladder.thresholds", [0.5, 1.5, 0.0]), "field 'ladder.thresholds.1'"),
    (_set("ladder.models.1.name", "small"), "model names repeat"),
    (_set("ladder.models.2.output_per_mtok", _DELETE),
     "field 'ladder.models.2.output_per_mtok': Field required"),
    (_set("ladder", _DELETE), "either 'threshold' (two models) or 'ladder'"),
    (_set("threshold", {"default": 0.5}), "not both"),
])
def test_old_ladder_violations_name_the_field(ladder_art: Path, change: Any, message: str
                                              ) -> None:
    write_old_form(ladder_art)
    _edit(ladder_art, change)
    with pytest.raises(ArtifactError, match=_escaped(message)):
        Router.load(ladder_art)


@pytest.mark.parametrize("artifact", ["tiny_ladder_artifact", "utility_ladder_artifact"])
def test_an_old_ladder_manifest_decides_as_the_new_one(artifact: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    source = request.getfixturevalue(artifact)
    old = write_old_form(Path(shutil.copytree(source, tmp_path / "old")))
    assert "ladder" in json.loads((old / MANIFEST).read_text())
    prompts = [r["prompt"] for r in make_ladder_rows(12)]
    new_router, old_router = Router.load(source, variant="fp32"), Router.load(old, variant="fp32")
    assert (old_router.models, old_router.heads) == (LADDER, "adequacy")
    assert old_router.policy.rule == new_router.policy.rule
    assert old_router.decide_batch(prompts) == new_router.decide_batch(prompts)


@pytest.mark.parametrize("form", ["new", "old"])
def test_set_policy_validates_and_keeps_the_rest(ladder_art: Path, form: str) -> None:
    if form == "old":
        write_old_form(ladder_art)
    before = read_manifest(ladder_art)
    policy = Policy(LADDER, [0.7, 0.6, 0.0])
    after = set_policy(ladder_art, policy, source="test")
    assert read_manifest(ladder_art) == after and after["routing"]["thresholds"] == [0.7, 0.6, 0.0]
    assert "ladder" not in after and after["format_version"] == 2
    models = (before.get("routing") or before["ladder"])["models"]
    assert after["routing"]["models"] == models and after["routing"]["heads"] == "adequacy"
    for bad in ([float("nan"), 0.5, 0.0], [2.0, 0.5, 0.0]):
        with pytest.raises(ConfigError, match="thresholds must be a 1-d array of finite"):
            Policy(LADDER, bad)
        changed = Policy(LADDER, [0.5, 0.5, 0.0])
        changed.thresholds = np.array(bad)  # changed after it was checked: the schema refuses
        with pytest.raises(ArtifactError, match="routing.thresholds"):
            set_policy(ladder_art, changed)
    with pytest.raises(ArtifactError, match="predicts P\\(adequate\\) per model"):
        set_policy(ladder_art, Policy(LADDER, [0.5, 0.5, 0.0], cut=0.5))
    assert read_manifest(ladder_art)["routing"]["thresholds"] == [0.7, 0.6, 0.0]
    np.testing.assert_array_equal(Router.load(ladder_art).policy.thresholds, [0.7, 0.6, 0.0])


def test_set_policy_refuses_a_pair_policy_for_k_models(ladder_art: Path, tiny_artifact: Path,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="routes among small, medium, large; the policy "
                                            "names edge, cloud"):
        set_policy(ladder_art, Policy(["edge", "cloud"], [0.5, 0.0], cut=0.5))
    pair = Path(shutil.copytree(tiny_artifact, tmp_path / "pair"))
    with pytest.raises(ArtifactError, match="routes among edge, cloud"):
        set_policy(pair, Policy(LADDER, [0.5, 0.5, 0.0]))


def test_the_ladder_manifest_is_plain_json(ladder_art: Path) -> None:
    manifest = json.loads((ladder_art / MANIFEST).read_text())
    assert manifest["onnx"]["output"] == "logit"
    assert manifest["routing"]["source"]["source"].startswith("validation shares")
    assert sum(manifest["routing"]["source"]["shares"].values()) == pytest.approx(1)
