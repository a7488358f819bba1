from __future__ import annotations

from pathlib import Path

import pytest

from confroute.config import RunConfig, dump_yaml, from_dict, load_yaml, override
from confroute.errors import ConfigError


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = override(RunConfig(), {"train.max_steps": 7, "data.label.tau": 0.3,
                                 "train.trainer.devices": 2})
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(RunConfig, tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("values, message", [
    ({"trian": {"max_steps": 1}}, "unknown setting trian.max_steps"),
    ({"trian": 1}, "unknown setting trian"),
    ({"train": {"batch_sise": 3}}, "unknown setting train.batch_sise"),
    ({"train": {"batch_size": "big"}}, "train.batch_size must be a whole number; found 'big'"),
    ({"train": {"batch_size": 0}}, "batch_size must be >= 1"),
    ({"model": {"pooling": "max"}}, "model.pooling must be one of 'mean', 'cls'; found 'max'"),
    ({"data": {"label": {"tau": -1}}}, "label.tau must be in"),
    ({"data": {"label": {"tau": float("nan")}}}, r"label.tau must be in \[0.0, inf\]; found nan"),
    ({"data": {"val_fraction": float("nan")}}, "val_fraction must be in"),
    ({"data": {"label": {"judge_weight": float("inf")}}}, "judge_weight must be in"),
    ({"data": "x"}, "data: Unable to load config 'x'"),
])
def test_bad_settings_are_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(RunConfig, values)


def test_override_keeps_ints_and_floats_apart_and_names_unknown_keys() -> None:
    # val_check_interval: an int counts batches, a float a share of an epoch.
    assert override(RunConfig(), {"train.val_check_interval": 2}).train.val_check_interval == 2
    assert isinstance(override(RunConfig(), {"train.val_check_interval": 2}
                               ).train.val_check_interval, int)
    assert override(RunConfig(), {"train.learning_rate": 1}).train.learning_rate == 1.0
    with pytest.raises(ConfigError, match="unknown setting train.lr"):
        override(RunConfig(), {"train.lr": 1e-3})
    with pytest.raises(ConfigError, match="max_epochs must be >= 1"):
        override(RunConfig(), {"train.max_epochs": 0})


def test_missing_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(RunConfig, tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(RunConfig, tmp_path / "bad.yaml")
    (tmp_path / "latin1.yaml").write_bytes("train: {seed: 1} # caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(RunConfig, tmp_path / "latin1.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_yaml(RunConfig, tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("train:\n  max_step: 3\n")
    with pytest.raises(ConfigError, match="typo.yaml: unknown setting train.max_step"):
        load_yaml(RunConfig, tmp_path / "typo.yaml")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("key", [
    "data.val_fraction", "data.label.tau", "data.label.epsilon", "data.label.judge_weight",
    "data.label.edge_quantile", "data.label.edge_threshold", "data.label.judge_margin",
    "model.dropout", "train.learning_rate", "train.warmup_ratio", "train.weight_decay",
    "train.head_learning_rate", "train.val_check_interval"])
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_nan_and_infinity_are_out_of_every_range(key: str, value: float) -> None:
    """NaN passes `value < low or value > high`; each float setting must refuse it by name."""
    with pytest.raises(ConfigError, match=rf"{key.split('.', 1)[1]} must be in .*found "
                                          rf"{value}"):
        override(RunConfig(), {key: value})


@pytest.mark.parametrize("key", ["threshold", "parity_tolerance", "int8_auroc_tolerance"])
def test_export_settings_refuse_nan(key: str) -> None:
    from confroute.config import ExportConfig

    with pytest.raises(ConfigError, match=f"export.{key} must be in"):
        ExportConfig(**{key: NAN})
