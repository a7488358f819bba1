"""Datasets bundled with confroute, by name. Each has a card (`<name>.md`) beside its data."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

BUILTIN: dict[str, str] = {
    # name -> file in this folder; the card is <name>.md
    "routellm-judge": "routellm_judge.parquet",
    "smollm2-uncertainty": "smollm2_uncertainty.parquet",
    "broad-smollm2": "broad_smollm2.parquet",
    "mmlu-pro-difficulty": "mmlu_pro_difficulty.parquet",
}


def builtin_path(name: str) -> Path | None:
    """The file of a bundled dataset, or None when `name` is not one."""
    file = BUILTIN.get(name)
    return HERE / file if file else None


def card(name: str) -> str:
    return (HERE / f"{name}.md").read_text()
