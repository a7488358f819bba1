"""Loading labelled prompts: formats, splits, drops and errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from confroute.config import DataConfig, LabelConfig
from confroute.dataset import schema
from confroute.errors import DataError


def battle_rows() -> list[dict]:
    rows = []
    for i in range(10):
        edge_first = i % 2 == 0
        winner = ["a", "b", "tie"][i % 3]
        rows.append({"id": i, "model_a": "edge" if edge_first else "cloud",
                     "model_b": "cloud" if edge_first else "edge",
                     "prompt": json.dumps([f"question {i}?"]), "response_a": "", "response_b": "",
                     "winner_model_a": int(winner == "a"), "winner_model_b": int(winner == "b"),
                     "winner_tie": int(winner == "tie")})
    return rows


def write(tmp_path: Path, rows: list[dict], name: str = "d.jsonl") -> str:
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return str(path)


def test_battle_format_maps_winners_to_cloud_labels(tmp_path: Path) -> None:
    cfg = DataConfig(source=write(tmp_path, battle_rows()), edge_model="edge")
    data = schema.load(cfg)
    frame = data.frame.sort_values("id")
    # row 0: edge is a and a won -> 0; row 1: cloud is a and b (edge) won -> 0;
    # row 2: tie -> 0 (ties=edge); row 3: cloud is a, a won -> 1; row 4: edge a, b won -> 1
    assert frame["label"].tolist()[:5] == [0, 0, 0, 1, 1]
    assert frame["prompt"].iloc[0] == "question 0?"  # JSON turn list -> the scored turn
    assert data.report["format"] == "battle" and data.report["label_counts"]["ties"] == 3


def test_battle_ties_can_be_dropped_or_soft_and_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, battle_rows())
    dropped = schema.load(DataConfig(source=path, edge_model="edge",
                                     label=LabelConfig(ties="drop")))
    assert dropped.report["dropped"] == {"label_rule": 3} and len(dropped.frame) == 7
    soft = schema.load(DataConfig(source=path, edge_model="edge", label=LabelConfig(ties="soft")))
    assert sorted(set(soft.frame["label"])) == [0.0, 0.5, 1.0]


def test_battle_errors(tmp_path: Path) -> None:
    path = write(tmp_path, battle_rows())
    with pytest.raises(DataError, match="needs data.edge_model.*cloud, edge"):
        schema.load(DataConfig(source=path))
    with pytest.raises(DataError, match="'gpt' is not in the data"):
        schema.load(DataConfig(source=path, edge_model="gpt"))
    rows = battle_rows()
    rows[4]["winner_tie"] = 1
    with pytest.raises(DataError, match="one-hot.*row 4"):
        schema.load(DataConfig(source=write(tmp_path, rows, "bad.jsonl"), edge_model="edge"))
    rows = battle_rows()
    del rows[0]["winner_tie"]
    frame = pd.DataFrame(rows).drop(columns=["winner_tie"])
    frame.to_json(tmp_path / "missing.jsonl", orient="records", lines=True)
    with pytest.raises(DataError, match="needs column.*winner_tie"):
        schema.load(DataConfig(source=str(tmp_path / "missing.jsonl"), edge_model="edge"))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_scores_format_with_each_rule(tmp_path: Path, suffix: str) -> None:
    rows = [{"prompt": f"p{i}", "se_edge": i / 10, "se_cloud": 0.5, "rating_edge": i % 2,
             "rating_cloud": 1} for i in range(10)]
    path = write(tmp_path, rows, "s" + suffix)
    auto = schema.load(DataConfig(source=path))
    assert auto.report["label_rule"] == "judge"
    tau = schema.load(DataConfig(source=path, label=LabelConfig(rule="tau", tau=0.1)))
    by_prompt = dict(zip(tau.frame["prompt"], tau.frame["label"], strict=True))
    # se_edge 0.9 vs se_cloud 0.5: delta 0.8 > 0.1 and the cloud is more certain -> 1
    assert by_prompt["p9"] == 1.0 and by_prompt["p5"] == 0.0 and by_prompt["p0"] == 0.0
    combined = schema.load(DataConfig(source=path, label=LabelConfig(rule="combined")))
    assert combined.report["label_rule"] == "combined"


def test_scores_nan_names_column_and_row(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "rating_edge": 1.0, "rating_cloud": 1.0} for i in range(5)]
    rows[3]["rating_cloud"] = None
    with pytest.raises(DataError, match="rating_cloud.*row 3"):
        schema.load(DataConfig(source=write(tmp_path, rows)))


def test_labelled_format_errors_name_the_row(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "label": 0.0} for i in range(5)]
    rows[2]["label"] = 3
    with pytest.raises(DataError, match="'label'.*row 2"):
        schema.load(DataConfig(source=write(tmp_path, rows)))
    rows[2] = {"prompt": "   ", "label": 1.0}
    with pytest.raises(DataError, match="'prompt': row 2.*empty"):
        schema.load(DataConfig(source=write(tmp_path, rows, "e.jsonl")))


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the data format"):
        schema.load(DataConfig(source=write(tmp_path, [{"text": "a", "y": 1}] * 3)))
    with pytest.raises(DataError, match="does not exist"):
        schema.load(DataConfig(source=str(tmp_path / "nope.jsonl")))
    (tmp_path / "empty.csv").write_text("prompt,label\n")
    with pytest.raises(DataError, match="no rows"):
        schema.load(DataConfig(source=str(tmp_path / "empty.csv")))


def test_splits_are_fixed_and_subsets_reported(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "prompt": f"p{i}", "label": float(i % 2)} for i in range(50)]
    path = write(tmp_path, rows)
    a = schema.load(DataConfig(source=path, val_fraction=0.2, seed=3))
    b = schema.load(DataConfig(source=path, val_fraction=0.2, seed=3))
    assert a.report["rows"] == {"train": 40, "val": 10, "test": 0}
    assert a.fingerprint() == b.fingerprint()
    small = schema.load(DataConfig(source=path, max_rows=20))
    assert small.report["dropped"]["max_rows"] == 30


def test_bundled_dataset_keeps_test_rows_out_of_training() -> None:
    data = schema.load(DataConfig())
    rows = data.report["rows"]
    assert rows["test"] > 4000 and rows["val"] > 900 and rows["train"] > 9000
    assert set(data.split("test")["source"]) == {"gsm8k", "mmlu", "mt_bench"}
    assert "mt_bench" not in set(data.split("train")["source"])
    assert data.report["label_rule"] == "judge"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize("column,value", [
    ("label", "yes"), ("se_edge", "high"), ("se_cloud", "unknown"), ("rating_edge", "good"),
    ("rating_cloud", "9/10")])
def test_text_in_a_numeric_column_names_the_column_and_row(tmp_path: Path, suffix: str,
                                                           column: str, value: str) -> None:
    if column == "label":
        rows = [{"prompt": f"p{i}", "label": float(i % 2)} for i in range(6)]
        cfg = DataConfig()
    else:
        rows = [{"prompt": f"p{i}", "se_edge": 0.1 * i, "se_cloud": 0.2, "rating_edge": 3,
                 "rating_cloud": 5} for i in range(6)]
        rule = "judge" if column.startswith("rating") else "tau"
        cfg = DataConfig(label=LabelConfig(rule=rule))
    rows[4][column] = value
    cfg = DataConfig(source=write(tmp_path, rows, "d" + suffix), label=cfg.label)
    with pytest.raises(DataError, match=rf"column '{column}' must hold numbers; row 4 has "
                                        rf"'{value}' \(1 such row"):
        schema.load(cfg)


@pytest.mark.parametrize("value", ["yes", "no", "True"])
def test_battle_winners_as_words_name_the_column_and_row(tmp_path: Path, value: str) -> None:
    rows = battle_rows()
    rows[7]["winner_model_b"] = value
    with pytest.raises(DataError, match=rf"column 'winner_model_b' must hold numbers; row 7 "
                                        rf"has '{value}'"):
        schema.load(DataConfig(source=write(tmp_path, rows), edge_model="edge"))


def test_numbers_written_as_text_are_read_as_numbers(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "label": str(float(i % 2))} for i in range(6)]
    loaded = schema.load(DataConfig(source=write(tmp_path, rows)))
    assert sorted(loaded.frame["label"].unique()) == [0.0, 1.0]


def test_the_label_pipeline_names_text_in_evidence_columns(tmp_path: Path) -> None:
    from confroute.labelling.pipeline import apply_rule

    frame = pd.DataFrame({"prompt": ["a", "b"], "se_edge": [0.1, "oops"], "se_cloud": [0.2, 0.3]})
    with pytest.raises(DataError, match="column 'se_edge' must hold numbers; row 1"):
        apply_rule(frame, LabelConfig(rule="tau"))


def test_a_registered_reader_reads_its_sources_and_an_unclaimed_url_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from confroute.dataset import sources

    table = write(tmp_path, [{"prompt": f"q {i}?", "label": float(i % 2)} for i in range(20)])
    with pytest.raises(DataError, match="rows://x is a URL that no reader claims"):
        schema.load(DataConfig(source="rows://x"))
    monkeypatch.setattr(sources, "_READERS", {})
    sources.register("rows", lambda source: source.startswith("rows://"),
                     lambda cfg, load: load(dataclasses.replace(cfg, source=table)))
    data = schema.load(DataConfig(source="rows://x"))
    assert data.report["source"] == table and len(data.frame) == 20
    assert sources.reader(table) is None  # a file stays with tables.read_table
