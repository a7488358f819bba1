"""The smollm2-uncertainty build: generated prompts carry exact gold answers, and importing the
bundled parquet back into a store re-measures its samples without resampling."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from confroute.labelling.pipeline import read_prompts

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import build_uncertainty_dataset as build  # noqa: E402
import uncertainty_prompts as sources  # noqa: E402

BUNDLED = ROOT / "confroute/dataset/builtin/smollm2_uncertainty.parquet"


def test_generated_arithmetic_and_word_problems_have_exact_answers():
    first = sources.arith(700, 0)
    grown = sources.arith(300, 1, sources.GROWTH_LEVELS, 700, {r["prompt"] for r in first})
    for row in first + grown:
        a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", row["prompt"]).groups()
        assert int(row["answer"]) == eval(f"{a} {op} {b}")  # noqa: S307 (digits and one op)
    assert [r["id"] for r in grown][:2] == ["arith/700", "arith/701"]
    assert not {r["prompt"] for r in first} & {r["prompt"] for r in grown}
    for row in sources.words(70, 0):
        numbers = [int(n) for n in re.findall(r"\d+", row["prompt"])]
        text = row["prompt"]
        expected = (numbers[0] + numbers[1] if "buys" in text or "more than" in text
                    else numbers[0] - numbers[1] if "gave away" in text
                    else 2 * numbers[0] if "double" in text
                    else numbers[0] // 2 if "half" in text
                    else numbers[0] + 1 if "after" in text else numbers[0] * numbers[1])
        assert int(row["answer"]) == expected, row


def test_yes_no_questions_are_right_and_balanced():
    rows = sources.yesno(300, 0)
    for row in rows:
        text = row["prompt"]
        n = [int(x) for x in re.findall(r"\d+", text)]
        truth = (n[0] > n[1] if "greater" in text else n[0] % 2 == 0 if "even" in text
                 else n[0] + n[1] == n[2])
        assert row["answer"] == ("yes" if truth else "no"), row
    assert 0.4 < np.mean([r["answer"] == "yes" for r in rows]) < 0.6
    assert len({r["prompt"] for r in rows}) == len(rows)


def test_the_bundled_prompts_are_regenerated_exactly():
    bundled = pd.read_parquet(BUNDLED, columns=["id", "prompt", "source"])
    arith = {r["id"]: r["prompt"] for r in sources.arith(700, 0)}
    rows = bundled[bundled["id"].isin(arith)]
    assert len(rows) == 700  # the first 700 arith prompts; later ones come from GROWTH_LEVELS
    assert all(arith[i] == p for i, p in zip(rows["id"], rows["prompt"], strict=True))


def test_import_then_finalize_re_measures_the_stored_samples(tmp_path):
    assert build.import_bundled(BUNDLED, tmp_path) == 0
    args = build.argparse.Namespace(work=tmp_path, out=tmp_path / "out.parquet", se="weighted",
                                    invalid="drop", quantile=0.7, card=tmp_path / "card.md",
                                    router=None, previous=BUNDLED)
    rows = read_prompts(str(tmp_path / "prompts.jsonl"), 200)
    assert build.finalize(rows, args) == 0
    old = pd.read_parquet(BUNDLED).set_index("id")
    new = pd.read_parquet(args.out).set_index("id")
    assert len(new) == 200
    old = old.loc[new.index]
    same = [list(a) == list(b) for a, b in zip(old["answers_edge"], new["answers_edge"],
                                                 strict=True)]
    # where the answers read the same, the stored log-probs give the same entropy
    assert np.allclose(old["se_edge_weighted"][same], new["se_edge_weighted"][same])
    assert (old["greedy_logprob_edge"] == new["greedy_logprob_edge"]).all()
    assert "Re-measured" in args.card.read_text()
