"""K-model ratings tables as training targets: what is read, and each bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from confroute.config import DataConfig, LabelConfig
from confroute.dataset import schema
from confroute.errors import ConfigError, DataError

from conftest import LADDER_PRICES, make_ladder_rows


def write(folder: Path, rows: list[dict], prices: dict) -> tuple[str, str]:
    table, price_file = folder / "ratings.jsonl", folder / "prices.yaml"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    price_file.write_text(yaml.safe_dump(prices))
    return str(table), str(price_file)


def load(folder: Path, table_rows: list[dict] | None = None, price_table: dict | None = None,
         **settings: object) -> schema.LabelledPrompts:
    table, price_file = write(folder, make_ladder_rows() if table_rows is None else table_rows,
                              LADDER_PRICES if price_table is None else price_table)
    values: dict = {"source": table, "prices": price_file, "models": ["small", "large",
                                                                      "medium"]}
    values.update(settings)
    return schema.load(DataConfig(**values))


def test_targets_are_the_ratings_in_ladder_order(tmp_path: Path) -> None:
    data = load(tmp_path)
    assert data.models == ["small", "medium", "large"]
    assert data.label_columns == ["target:small", "target:medium", "target:large"]
    rows = {r["id"]: r for r in make_ladder_rows()}
    for row in data.frame.itertuples(index=False):
        source = rows[row.id]
        assert row._3 == source["small"]  # target:small
        assert row.label == 1.0 - source["small"]
    assert data.report["rows"]["val"] > 0 and data.prices["large"]["output_per_mtok"] == 8.0
    assert data.report["output_tokens"] == 100.0


def test_adequate_rating_turns_scores_into_targets(tmp_path: Path) -> None:
    rows = [{**r, "small": 3.0 + 6 * r["small"], "medium": 6.0 + 2 * r["medium"],
             "large": 2.0 + 7 * r["large"]} for r in make_ladder_rows()]
    with pytest.raises(DataError, match=r"must be in \[0, 1\].*row \d+ has \d+\.\d+\. Set "
                       r"data.adequate_rating"):
        load(tmp_path, rows)
    data = load(tmp_path, rows, adequate_rating=7.0)
    source = {r["id"]: r for r in make_ladder_rows()}
    for row in data.frame.itertuples(index=False):
        assert row._4 == source[row.id]["medium"]  # 8 >= 7 adequate, 6 not
    # a threshold no rating reaches leaves a head with nothing to learn: refused, named
    with pytest.raises(DataError, match="every training target of model 'small' is 0.0"):
        load(tmp_path, rows, adequate_rating=100.0)


@pytest.mark.parametrize("change, message", [
    (lambda rows, prices: [{k: v for k, v in r.items() if k != "medium"} for r in rows],
     "missing column(s) medium"),
    (lambda rows, prices: {k: v for k, v in prices.items() if k != "large"},
     "no price for model(s) large"),
    (lambda rows, prices: {**prices, "small": {"input_per_mtok": -1, "output_per_mtok": 1}},
     "prices: input_per_mtok of model 'small' must be a number >= 0"),
    (lambda rows, prices: {**prices, "small": {"input_per_mtok": 1}},
     "prices: output_per_mtok of model 'small' must be a number >= 0"),
    (lambda rows, prices: [{**r, "small": None} if i == 3 else r for i, r in enumerate(rows)],
     "ratings of model 'small' are missing (NaN) at 1 prompt(s), first row3"),
    (lambda rows, prices: [{**r, "small": "good"} if i == 3 else r
                           for i, r in enumerate(rows)],
     "model ratings must be numbers"),
])
def test_bad_tables_name_what_is_wrong(tmp_path: Path, change, message: str) -> None:
    rows, prices = make_ladder_rows(), dict(LADDER_PRICES)
    result = change(rows, prices)
    if isinstance(result, dict):
        prices = result
    else:
        rows = result
    with pytest.raises(DataError) as error:
        load(tmp_path, rows, prices)
    assert message in str(error.value)


@pytest.mark.parametrize("settings, message", [
    ({"models": ["small"]}, "at least 2 models"),
    ({"models": ["small", "small"]}, "names a model twice"),
    ({"prices": None}, "data.models needs data.prices"),
    ({"adequate_rating": float("nan")}, "data.adequate_rating"),
    ({"models": []}, "data.prices and data.adequate_rating apply to a K-model table"),
    ({"label": LabelConfig(rule="judge")}, "data.label settings make two-model labels"),
])
def test_bad_settings_are_named(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, **settings)


def test_a_missing_table_or_price_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        schema.load(DataConfig(source=str(tmp_path / "none.parquet"), models=["a", "b"],
                               prices=str(tmp_path / "p.yaml")))
    table, _ = write(tmp_path, make_ladder_rows(), LADDER_PRICES)
    with pytest.raises(DataError, match="prices .* does not exist"):
        schema.load(DataConfig(source=table, models=["small", "large"],
                               prices=str(tmp_path / "none.yaml")))
