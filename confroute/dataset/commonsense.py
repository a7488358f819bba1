"""The common-sense suite: hand-written prompts whose difficulty anyone would agree on, at every
length, so that a router which ranks by a benchmark's format or by length shows it.

Two sets ship in `confroute/dataset/builtin/` (card: `commonsense-suite.md`): `suite` (240
prompts) and `heldout` (115 prompts, written after the suite and never used to choose anything:
an estimate of how a router does on prompts of the same kind it was not tuned on). Each row has
`id`, `prompt`, `family` (e.g. `greeting`, `one_line_hard`), `difficulty` (`easy` / `hard`),
`length` (`length_class`) and `shape` (`bare`, `chat`, `options`, `chatty`).

`suite_table` gives the figures the suite is read by: AUROC of hard above easy overall and
between the short hard and the long easy prompts, and per family against every prompt of the
other difficulty, beside length alone and a shape prior.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import DataError
from confroute.stats import binary_auroc

SUITES = {"suite": "commonsense_suite.jsonl", "heldout": "commonsense_heldout.jsonl"}
FIELDS = ("id", "prompt", "family", "difficulty", "length", "shape")
SHORT_WORDS, MEDIUM_WORDS = 12, 40


def length_class(text: str) -> str:
    """`short` (<= 12 words), `medium` (<= 40) or `long`, by whitespace-separated words."""
    words = len(text.split())
    return "short" if words <= SHORT_WORDS else "medium" if words <= MEDIUM_WORDS else "long"


def load_suite(name: str = "suite") -> list[dict[str, Any]]:
    """The rows of a bundled set, `suite` or `heldout` (see `read_suite`).

    Raises DataError for an unknown name or a malformed row."""
    from confroute.dataset.builtin import HERE

    if name not in SUITES:
        raise DataError(f"common-sense set must be one of {', '.join(SUITES)}; found {name!r}")
    return read_suite(HERE / SUITES[name])


def read_suite(path: Path) -> list[dict[str, Any]]:
    """The rows of a suite file (JSON lines), checked: every field present and a string, a
    known difficulty, the stored length class equal to `length_class(prompt)`, unique ids.

    Raises DataError naming the file and line of the first bad row, and what to fix."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or any(not isinstance(row.get(f), str) or not row[f]
                                            for f in FIELDS):
            raise DataError(f"{path.name} line {number}: needs the string fields "
                            f"{', '.join(FIELDS)}; found {line[:200]}")
        if row["difficulty"] not in ("easy", "hard") or row["id"] in seen or \
                row["length"] != length_class(row["prompt"]):
            raise DataError(f"{path.name} line {number}: needs difficulty easy/hard, a new id "
                            f"and length = length_class(prompt) "
                            f"({length_class(row['prompt'])}); found {line[:200]}")
        seen.add(row["id"])
        rows.append(row)
    return rows


def _auroc(rows: Sequence[dict[str, Any]], scores: np.ndarray, keep: np.ndarray) -> float:
    hard = np.array([r["difficulty"] == "hard" for r in rows])
    return binary_auroc(hard[keep], scores[keep])


def shape_prior(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """Leave-one-out share of hard prompts among the other prompts of the same shape: what
    knowing only the shape (bare, chat, options, chatty) ranks. A family prior is not given:
    on this suite a family fixes the difficulty, so it would score 1.0 by construction."""
    hard = np.array([r["difficulty"] == "hard" for r in rows], dtype=float)
    shapes = np.array([r["shape"] for r in rows])
    out = np.empty(len(rows))
    for i, shape in enumerate(shapes):
        same = shapes == shape
        same[i] = False
        out[i] = hard[same].mean() if same.any() else hard.mean()
    return out


def suite_scores(rows: Sequence[dict[str, Any]], scores: Sequence[float]) -> dict[str, Any]:
    """AUROC of `scores` (higher = harder, one per row) for hard above easy: `overall`,
    `short_hard_vs_long_easy` (hard prompts of <= 12 words against easy ones of > 40), and
    `families` ({family: AUROC of that family against every prompt of the other difficulty}).
    Values are NaN where a group is empty."""
    values = np.asarray(scores, dtype=float)
    if values.shape != (len(rows),):
        raise DataError(f"need one score per suite row ({len(rows)}); found {values.shape}")
    hard = np.array([r["difficulty"] == "hard" for r in rows])
    length = np.array([r["length"] for r in rows])
    family = np.array([r["family"] for r in rows])
    every = np.ones(len(rows), dtype=bool)
    pair = (hard & (length == "short")) | (~hard & (length == "long"))
    families = {}
    for name in dict.fromkeys(family):
        own = family == name
        other = hard != hard[own][0]
        families[str(name)] = _auroc(rows, values, own | other)
    return {"overall": _auroc(rows, values, every),
            "short_hard_vs_long_easy": _auroc(rows, values, pair), "families": families}


def baselines(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Scores of the reference rankers: `length (chars)`, `shape prior`
    (`shape_prior`) and `random` (uniform, seed 0)."""
    return {"length (chars)": np.array([len(r["prompt"]) for r in rows], dtype=float),
            "shape prior": shape_prior(rows),
            "random": np.random.default_rng(0).random(len(rows))}
