"""data.mix: more labelled datasets beside data.source, each by its own rule, test rows left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confroute.config import DataConfig
from confroute.dataset import schema
from confroute.errors import ConfigError, DataError


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def labelled(prefix: str, n: int, label: float, splits: tuple[str, ...] = ("train",)) -> list:
    return [{"id": f"{prefix}{i}", "prompt": f"{prefix} question {i}?", "label": label,
             "source": prefix, "split": splits[i % len(splits)]} for i in range(n)]


def scores(prefix: str, n: int) -> list[dict]:
    """A `scores` table: its own rule (judge) labels it, whatever the main source's rule."""
    return [{"id": f"{prefix}{i}", "prompt": f"{prefix} task {i}", "rating_edge": i % 2,
             "rating_cloud": 1, "split": "train" if i < n - 2 else "val"} for i in range(n)]


def test_mixed_rows_join_train_and_val_with_their_own_labels(tmp_path: Path) -> None:
    main = write(tmp_path / "main.jsonl", labelled("m", 12, 0.0, ("train", "val", "test")))
    other = write(tmp_path / "other.jsonl", scores("o", 10))
    data = schema.load(DataConfig(source=main, mix=[other]))
    frame = data.frame
    mixed = frame[frame["id"].str.startswith("o")]
    assert len(mixed) == 10 and set(mixed["split"]) == {"train", "val"}
    # the judge rule of the scores table: cloud better where the edge is rated 0
    assert mixed.sort_values("id", key=lambda s: s.str[1:].astype(int))["label"].tolist() == \
        [1.0, 0.0] * 5
    assert data.report["mix"][other]["label_rule"] == "judge"
    assert data.report["rows"] == {"train": 4 + 8, "val": 4 + 2, "test": 4}
    assert set(frame.columns) >= {"id", "prompt", "label", "source", "split"}


def test_mixed_test_rows_are_left_out(tmp_path: Path) -> None:
    main = write(tmp_path / "main.jsonl", labelled("m", 6, 0.0, ("train", "val")))
    other = write(tmp_path / "other.jsonl", labelled("o", 9, 1.0, ("train", "val", "test")))
    data = schema.load(DataConfig(source=main, mix=[other]))
    assert not (data.frame["id"].isin([f"o{i}" for i in (2, 5, 8)])).any()
    assert data.report["mix"][other]["rows"] == {"train": 3, "val": 3}


def test_mix_max_rows_caps_each_mixed_datasets_training_rows(tmp_path: Path) -> None:
    main = write(tmp_path / "main.jsonl", labelled("m", 6, 0.0, ("train", "val")))
    other = write(tmp_path / "other.jsonl", labelled("o", 40, 1.0, ("train", "train", "val")))
    data = schema.load(DataConfig(source=main, mix=[other], mix_max_rows=5))
    assert data.report["mix"][other]["rows"]["train"] == 5
    again = schema.load(DataConfig(source=main, mix=[other], mix_max_rows=5))
    assert data.frame["id"].tolist() == again.frame["id"].tolist()  # a fixed subset


def test_a_repeated_id_across_datasets_is_refused(tmp_path: Path) -> None:
    main = write(tmp_path / "main.jsonl", labelled("x", 6, 0.0, ("train", "val")))
    other = write(tmp_path / "other.jsonl", labelled("x", 4, 1.0, ("train", "val")))
    with pytest.raises(DataError, match="id 'x0' appears in more than one dataset"):
        schema.load(DataConfig(source=main, mix=[other]))


def test_a_mixed_dataset_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    main = write(tmp_path / "main.jsonl", labelled("m", 6, 0.0, ("train", "val")))
    missing = str(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="data.mix dataset '.*nope.parquet'"):
        schema.load(DataConfig(source=main, mix=[missing]))
    bad = write(tmp_path / "bad.jsonl", [{"id": 1, "prompt": "p", "label": 3.0}])
    with pytest.raises(DataError, match="data.mix dataset '.*bad.jsonl'"):
        schema.load(DataConfig(source=main, mix=[bad]))


def test_the_bundled_broad_sets_mix_into_the_default_source() -> None:
    data = schema.load(DataConfig(mix=["broad-smollm2", "mmlu-pro-difficulty"]))
    report = data.report["mix"]
    assert set(report) == {"broad-smollm2", "mmlu-pro-difficulty"}
    assert report["broad-smollm2"]["rows"]["train"] > 1000
    assert data.frame["id"].is_unique
    assert not (data.frame["id"].str.startswith("broad/") & (data.frame["split"] == "test")).any()


@pytest.mark.parametrize("settings, message", [
    ({"mix": ["a"], "models": ["e", "c"], "prices": {"e": {}, "c": {}}}, "cannot be combined"),
    ({"mix": ["a"], "mix_max_rows": 1}, "mix_max_rows must be at least 2"),
])
def test_mix_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(**settings)
