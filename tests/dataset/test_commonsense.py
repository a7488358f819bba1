"""The common-sense suite and its held-out set: what they promise (size, families, every length
for both difficulties, length near chance) and the figures they are read by."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from confroute.dataset.commonsense import (
    SUITES,
    baselines,
    length_class,
    load_suite,
    read_suite,
    shape_prior,
    suite_scores,
)
from confroute.errors import DataError
from confroute.evaluation.leaks import normalise

MINIMUM = {"suite": 200, "heldout": 100}


@pytest.mark.parametrize("name", list(SUITES))
def test_each_set_has_its_size_families_and_both_difficulties_at_every_length(name: str) -> None:
    rows = load_suite(name)
    assert len(rows) >= MINIMUM[name]
    families = {r["family"] for r in rows}
    assert len(families) >= 8
    # a family is one difficulty, so a family prior would be perfect by construction
    for family in families:
        assert len({r["difficulty"] for r in rows if r["family"] == family}) == 1
    cells = collections.Counter((r["difficulty"], r["length"]) for r in rows)
    for difficulty in ("easy", "hard"):
        for length in ("short", "medium", "long"):
            assert cells[difficulty, length] >= 3, (difficulty, length, cells)
    assert len({normalise(r["prompt"]) for r in rows}) == len(rows)


@pytest.mark.parametrize("name", list(SUITES))
def test_length_alone_ranks_near_chance_and_fails_the_short_hard_pair(name: str) -> None:
    rows = load_suite(name)
    result = suite_scores(rows, baselines(rows)["length (chars)"])
    assert 0.4 <= result["overall"] <= 0.6
    assert result["short_hard_vs_long_easy"] == 0.0  # every one-line hard prompt is shorter


def test_no_prompt_is_in_both_sets() -> None:
    suite = {normalise(r["prompt"]) for r in load_suite("suite")}
    assert not suite & {normalise(r["prompt"]) for r in load_suite("heldout")}


def rows_of(difficulties: str, lengths: str) -> list[dict]:
    return [{"id": str(i), "prompt": "x", "family": f"f{d}", "difficulty":
             {"e": "easy", "h": "hard"}[d], "length": {"s": "short", "l": "long"}[n],
             "shape": "bare"} for i, (d, n) in enumerate(zip(difficulties, lengths, strict=True))]


def test_suite_scores_reads_hard_above_easy_overall_in_the_pair_and_per_family() -> None:
    rows = rows_of("eehh", "slsl")  # easy short, easy long, hard short, hard long
    perfect = suite_scores(rows, [0.1, 0.2, 0.8, 0.9])
    assert perfect["overall"] == 1.0 and perfect["short_hard_vs_long_easy"] == 1.0
    # ranks the long easy prompt above the short hard one: the pair says so, overall less
    by_length = suite_scores(rows, [0.1, 0.85, 0.8, 0.9])
    assert by_length["short_hard_vs_long_easy"] == 0.0 and by_length["overall"] == 0.75
    assert perfect["families"] == {"fe": 1.0, "fh": 1.0}


def test_suite_scores_refuses_a_score_count_that_does_not_match() -> None:
    with pytest.raises(DataError, match="one score per suite row"):
        suite_scores(rows_of("eh", "ss"), [0.5])


def test_shape_prior_leaves_each_prompt_out_of_its_own_shape() -> None:
    rows = rows_of("eehh", "ssss")
    for row, shape in zip(rows, ["a", "a", "a", "b"], strict=True):
        row["shape"] = shape
    # prompt 0's shape-mates (1, 2) are 1 easy + 1 hard; prompt 3 is alone: the overall rate
    assert shape_prior(rows).tolist() == [0.5, 0.5, 0.0, 0.5]


@pytest.mark.parametrize("line, expected", [
    ("not json", "not JSON"),
    (json.dumps({"id": "a", "prompt": "Hi"}), "needs the string fields"),
    (json.dumps({"id": "a", "prompt": "Hi", "family": "g", "difficulty": "trivial",
                 "length": "short", "shape": "bare"}), "needs difficulty easy/hard"),
    (json.dumps({"id": "a", "prompt": "Hi", "family": "g", "difficulty": "easy",
                 "length": "long", "shape": "bare"}), r"needs .*length_class\(prompt\) \(short\)"),
    (json.dumps({"id": "a", "prompt": 3, "family": "g", "difficulty": "easy",
                 "length": "short", "shape": "bare"}), "needs the string fields"),
])
def test_a_malformed_suite_row_is_named_by_line(tmp_path: Path, line: str, expected: str) -> None:
    good = json.dumps({"id": "ok", "prompt": "Hello", "family": "g", "difficulty": "easy",
                       "length": "short", "shape": "bare"})
    path = tmp_path / "s.jsonl"
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(DataError, match=f"s.jsonl line 2: {expected}"):
        read_suite(path)


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    row = json.dumps({"id": "a", "prompt": "Hello", "family": "g", "difficulty": "easy",
                      "length": "short", "shape": "bare"})
    path = tmp_path / "s.jsonl"
    path.write_text(f"{row}\n{row}\n")
    with pytest.raises(DataError, match="line 2: .*a new id"):
        read_suite(path)


def test_unknown_set_name_lists_the_sets() -> None:
    with pytest.raises(DataError, match="suite, heldout"):
        load_suite("test")


def test_length_class_counts_words() -> None:
    assert length_class("one two") == "short"
    assert length_class(" ".join(["w"] * 13)) == "medium"
    assert length_class(" ".join(["w"] * 41)) == "long"
    assert np.isclose(suite_scores(rows_of("eh", "ss"), [0.0, 0.0])["overall"], 0.5)
