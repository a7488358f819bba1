"""The manifest schema (issue 14 item 8), its routing section in the form export writes (format
2) and the forms written before it (format 1: `threshold`, `ladder`), the one way to store a
calibrated policy, and atomic replacement of users' files (item 5)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from confroute.artifact import MANIFEST, read_manifest, set_policy, sha256_file, write_manifest
from confroute.errors import ArtifactError, ConfigError
from confroute.files import replacing, write_text
from confroute.policy import Policy
from confroute.runtime import Router


@pytest.fixture()
def art(tiny_artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))


def _edit(art: Path, change: Any) -> None:
    manifest = json.loads((art / MANIFEST).read_text())
    change(manifest)
    (art / MANIFEST).write_text(json.dumps(manifest))


def _set(path: str, value: Any) -> Any:
    *parents, last = path.split(".")

    def change(manifest: dict[str, Any]) -> None:
        node = manifest
        for key in parents:  # a number indexes a list
            node = node[int(key)] if isinstance(node, list) else node[key]
        index: Any = int(last) if isinstance(node, list) else last
        if value is _DELETE:
            del node[index]
        else:
            node[index] = value
    return change


_DELETE = object()


def old_form(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` as confroute wrote it before the routing section (format 1): a pair's
    `threshold` ({default, source, ...}) or K models' `ladder`."""
    routing = manifest.pop("routing")
    manifest["format_version"] = 1
    if routing["heads"] == "cloud_needed":
        manifest["threshold"] = {"default": routing["threshold"], **routing["source"]}
    else:
        manifest["ladder"] = {"models": routing["models"], "thresholds": routing["thresholds"],
                              "rule": routing["rule"], "output_tokens": routing["output_tokens"],
                              "threshold_source": routing["source"]}
        if routing["rule"] == "utility":
            manifest["ladder"]["lambda_per_usd"] = routing["lambda_per_usd"]
    return manifest


def write_old_form(art: Path) -> Path:
    _edit(art, old_form)
    return art


@pytest.fixture()
def old_art(art: Path) -> Path:
    """The tiny pair with a format 1 manifest (`threshold`)."""
    return write_old_form(art)


def test_export_records_the_encoder_position_limit(tiny_artifact: Path) -> None:
    manifest = read_manifest(tiny_artifact)
    assert manifest["base_encoder"]["max_positions"] == 128  # the tiny BERT's embeddings


@pytest.mark.parametrize("value", [5, -1, float("nan"), float("inf"), None, "abc", "0.5", True,
                                   _DELETE])
def test_a_bad_old_threshold_is_refused_on_load(old_art: Path, value: Any) -> None:
    _edit(old_art, _set("threshold.default", value))
    with pytest.raises(ArtifactError, match=r"field 'threshold.default'.*confroute calibrate"):
        Router.load(old_art)


@pytest.mark.parametrize("value", [5, -1, float("nan"), float("inf"), "abc", "0.5", True])
def test_a_bad_threshold_is_refused_on_load(art: Path, value: Any) -> None:
    _edit(art, _set("routing.threshold", value))
    with pytest.raises(ArtifactError, match=r"field 'routing.threshold'.*confroute calibrate"):
        Router.load(art)


@pytest.mark.parametrize("change, message", [
    (_set("routing.thresholds.0", 0.1), "thresholds.0 must be 1 - threshold"),
    (_set("routing.heads", "adequacy"), "threshold .* needs heads 'cloud_needed'"),
    (_set("routing.heads", "both"), "field 'routing.heads'"),
    (_set("routing.rule", "utility"), "the utility rule weighs each model's price"),
    (lambda m: m["routing"].update(models=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
                                   thresholds=[0.5, 0.5, 0.0]),
     "heads 'cloud_needed' routes between two models"),
    (_set("routing.models.0", {"name": "edge", "input_per_mtok": 1.0}),
     "needs both input_per_mtok and output_per_mtok"),
    (_set("routing", _DELETE), "a format 2 manifest needs 'routing'"),
    (_set("threshold", {"default": 0.5}), "a format 2 manifest needs 'routing' .and neither"),
])
def test_routing_violations_name_the_field(art: Path, change: Any, message: str) -> None:
    _edit(art, change)
    with pytest.raises(ArtifactError, match=message):
        Router.load(art)


@pytest.mark.parametrize("threshold", [{"default": None}, "abc", 0.5, [], {}])
def test_a_threshold_of_the_wrong_shape_is_refused(old_art: Path, threshold: Any) -> None:
    _edit(old_art, _set("threshold", threshold))
    with pytest.raises(ArtifactError, match=r"field 'threshold"):
        Router.load(old_art)


def test_an_old_pair_manifest_loads_and_decides_as_the_new_one(art: Path, old_art_copy: Path
                                                                ) -> None:
    prompts = ["What is 2 plus 2?", "Prove there are infinitely many primes.", "Spell cat."]
    new, old = Router.load(art, variant="fp32"), Router.load(old_art_copy, variant="fp32")
    assert json.loads((old_art_copy / MANIFEST).read_text())["format_version"] == 1
    assert (old.models, old.heads, old.threshold) == (new.models, new.heads, new.threshold)
    assert old.decide_batch(prompts) == new.decide_batch(prompts)
    assert old.decide_batch(prompts, threshold=0.0)[0].route == "cloud"


@pytest.fixture()
def old_art_copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    return write_old_form(Path(shutil.copytree(tiny_artifact, tmp_path / "old")))


@pytest.mark.parametrize("value", [-1, 0, 1, "x", 1.5, None, 10**9, 129])
def test_a_bad_max_length_is_refused_on_load(art: Path, value: Any) -> None:
    _edit(art, _set("preprocess.max_length", value))
    with pytest.raises(ArtifactError, match=r"max_length"):
        Router.load(art)


def test_max_length_is_checked_against_the_recorded_position_limit(art: Path) -> None:
    _edit(art, _set("base_encoder.max_positions", 16))  # the artifact's max_length is 32
    with pytest.raises(ArtifactError, match="max_length 32 exceeds the encoder's position "
                                            "limit 16"):
        Router.load(art)


def test_an_artifact_from_before_the_position_limit_still_loads(art: Path) -> None:
    _edit(art, _set("base_encoder.max_positions", _DELETE))
    assert Router.load(art).route("What is 2 + 2?").route in ("edge", "cloud")
    _edit(art, _set("base_encoder", _DELETE))
    _edit(art, _set("unknown_future_field", {"kept": True}))
    assert read_manifest(art)["unknown_future_field"] == {"kept": True}
    Router.load(art)


@pytest.mark.parametrize("field,name", [
    ("onnx.variants.fp32", "../model.onnx"), ("onnx.variants.fp32", "/etc/passwd"),
    ("preprocess.tokenizer", "../../tokenizer.json"), ("preprocess.tokenizer", ""),
    ("onnx.variants.int8", "sub\\..\\..\\x.onnx")])
def test_file_names_must_stay_inside_the_artifact(art: Path, field: str, name: str) -> None:
    _edit(art, _set(field, name))
    with pytest.raises(ArtifactError, match=rf"field '{field}'.*inside the artifact directory"):
        Router.load(art, variant="fp32")


def test_a_files_entry_outside_the_artifact_is_refused(art: Path) -> None:
    _edit(art, lambda m: m["files"].update({"../secret": "0" * 64}))
    with pytest.raises(ArtifactError, match=r"field 'files.*inside the artifact"):
        read_manifest(art)


def test_a_symlink_leaving_the_artifact_is_refused(art: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(art / "model.onnx", outside)
    (art / "model.onnx").unlink()
    (art / "model.onnx").symlink_to(outside)  # same bytes, same sha256: only the path is wrong
    with pytest.raises(ArtifactError, match="resolves outside the artifact directory"):
        Router.load(art, variant="fp32")


def test_a_symlink_inside_the_artifact_is_fine(art: Path) -> None:
    (art / "weights").mkdir()
    (art / "model.onnx").rename(art / "weights" / "model.onnx")
    (art / "model.onnx").symlink_to(Path("weights") / "model.onnx")
    Router.load(art, variant="fp32")


@pytest.mark.parametrize("change,message", [
    (_set("format_version", 3), "format_version 3, this confroute reads 1 and 2"),
    (_set("format_version", 1), "a format 1 manifest needs either 'threshold'"),
    (_set("onnx.default_variant", "fp16"), "default_variant 'fp16' is not one of the variants"),
    (_set("preprocess.turn", "middle"), "field 'preprocess.turn'"),
    (_set("onnx.inputs", []), "field 'onnx.inputs'"),
    (_set("files", {"model.onnx": "not-a-hash"}), "field 'files.model.onnx'"),
    (_set("preprocess", _DELETE), "field 'preprocess': Field required; missing"),
])
def test_other_schema_violations_name_the_field(art: Path, change: Any, message: str) -> None:
    _edit(art, change)
    with pytest.raises(ArtifactError, match=message):
        Router.load(art)


def test_a_manifest_that_is_not_an_object_is_refused(art: Path) -> None:
    (art / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="must hold a JSON object; found list"):
        read_manifest(art)


@pytest.mark.parametrize("form", ["new", "old"])
def test_set_policy_validates_and_keeps_the_rest(art: Path, form: str) -> None:
    if form == "old":
        write_old_form(art)
    before = read_manifest(art)
    policy = Policy(["edge", "cloud"], [0.5, 0.0], cut=0.25)
    after = set_policy(art, policy, source="test", prompts=3)
    assert read_manifest(art) == after and after["format_version"] == 2
    assert "threshold" not in after and after["routing"]["threshold"] == 0.25
    assert after["routing"]["thresholds"] == [0.75, 0.0]
    assert after["routing"]["source"] == {"source": "test", "prompts": 3}
    kept = {k: v for k, v in before.items() if k not in ("threshold", "routing",
                                                        "format_version")}
    assert {k: v for k, v in after.items() if k in kept} == kept
    assert Router.load(art).threshold == 0.25
    for bad in (float("nan"), 1.5):
        with pytest.raises(ConfigError, match=r"cut must be a number in \[0, 1\]"):
            Policy(["edge", "cloud"], [0.5, 0.0], cut=bad)
        changed = Policy(["edge", "cloud"], [0.5, 0.0], cut=0.5)
        changed.cut = bad  # changed after it was checked: the manifest's schema still refuses
        with pytest.raises(ArtifactError, match="routing.threshold"):
            set_policy(art, changed)
    with pytest.raises(ArtifactError, match="routes among edge, cloud; the policy names a, b"):
        set_policy(art, Policy(["a", "b"], [0.5, 0.0]))
    with pytest.raises(ArtifactError, match="utility rule weighs each model's price"):
        set_policy(art, Policy(["edge", "cloud"], [0.5, 0.0], "utility"))
    assert read_manifest(art)["routing"]["threshold"] == 0.25  # nothing written on refusal


def test_write_manifest_survives_an_injected_write_failure(art: Path, monkeypatch:
                                                           pytest.MonkeyPatch) -> None:
    old = (art / MANIFEST).read_bytes()

    def full_disk(self: Path, text: str, **kwargs: Any) -> int:
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])  # half of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_manifest(art, read_manifest(art))
    monkeypatch.undo()
    assert (art / MANIFEST).read_bytes() == old
    assert sorted(p.name for p in art.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_replacing_keeps_the_suffix_and_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "table.parquet"
    with replacing(target) as tmp:
        assert tmp.suffix == ".parquet" and tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(KeyboardInterrupt), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Any:
    """A 64 KiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_leaves_the_old_file(small_tmpfs: Path) -> None:
    target = small_tmpfs / "router.json"
    write_text(target, "old contents\n")
    with pytest.raises(OSError) as caught:
        write_text(target, "x" * 200_000)  # larger than the whole filesystem
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old contents\n"
    assert os.listdir(small_tmpfs) == ["router.json"]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(os.urandom(3 << 20))
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
