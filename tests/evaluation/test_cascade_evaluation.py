"""The cascade's evaluation on the bundled SmolLM2 table: the edge's own signals, cross-fitted,
find its failures within each source; the curves keep their invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from confroute.dataset.builtin import builtin_path
from confroute.errors import DataError
from confroute.evaluation import cascade


@pytest.fixture(scope="module")
def val() -> pd.DataFrame:
    frame = pd.read_parquet(builtin_path("smollm2-uncertainty"))
    return frame[frame["split"] == "val"].reset_index(drop=True)


def test_the_edges_log_prob_adds_to_an_uninformative_router(val):
    scores = np.random.default_rng(0).random(len(val))
    table = cascade.auroc_table(scores, val)
    assert set(table) == {*cascade.SIGNALS, *cascade.RAW}
    assert abs(table["router"]["within"] - 0.5) < 0.06
    for signal in ("router + log-prob", "router + both"):
        low, high = table[signal]["within_ci"]
        assert low <= table[signal]["within"] <= high
        assert table[signal]["within"] > table["router"]["within"] + 0.05


def test_cross_fitting_never_scores_a_row_with_a_model_that_saw_it(val):
    """Flipping one fold's outcomes changes nothing in that fold's scores."""
    rows = val.iloc[:400].reset_index(drop=True)
    scores = np.random.default_rng(1).random(len(rows))
    ev, fold = cascade.evidence(rows), cascade.folds(len(rows))
    wrong = 1.0 - rows["correct_edge"].to_numpy()
    flipped = wrong.copy()
    flipped[fold == 0] = 1 - flipped[fold == 0]
    a = cascade.cross_fitted("both", scores, ev, wrong, fold)
    b = cascade.cross_fitted("both", scores, ev, flipped, fold)
    assert np.allclose(a[fold == 0], b[fold == 0]) and not np.allclose(a, b)


def test_curves_keep_their_invariants(val):
    rows = val.iloc[:600].reset_index(drop=True)
    scores = np.random.default_rng(2).random(len(rows))
    prior = cascade.source_prior(val.iloc[600:], rows)
    curve = cascade.curve_table(scores, rows, prior, "logprob", shares=(0.2, 0.4),
                                edge_cost=0.1)
    accuracy = rows["correct_edge"].mean()
    for i, share in enumerate((0.2, 0.4)):
        oracle = curve["oracle"][i]
        assert oracle["quality"] == pytest.approx(min(1.0, accuracy + share), abs=2 / 600)
        for policy in ("cascade", "router", "prior", "random"):
            assert curve[policy][i]["quality"] <= oracle["quality"] + 1e-12
            assert curve[policy][i]["share"] == pytest.approx(share, abs=0.05)
        point = curve["cascade"][i]  # every request the router kept paid the edge
        assert point["cost"] == pytest.approx(point["share"] + 0.1 * (1 - point["direct"]))
        assert curve["random"][i]["quality"] == pytest.approx((1 - share) * accuracy + share)


def test_evaluate_refuses_a_table_without_the_evidence(val, tiny_artifact: Path):
    from confroute.runtime import Router

    router = Router.load(tiny_artifact)
    with pytest.raises(DataError, match="se_edge"):
        cascade.evaluate(router, {"t": val.drop(columns=["se_edge"])})
    with pytest.raises(DataError, match="'val' rows"):
        cascade.evaluate(router, {"t": val.iloc[:5]})
    result = cascade.evaluate(router, {"t": pd.concat([val.iloc[:120],
                                                       val.iloc[120:200].assign(split="train")])})
    text = cascade.markdown(result)
    assert "router + both" in text and ">= 0.72" in text and "oracle" in text


def test_confroute_evaluate_cascade_writes_its_tables(tiny_artifact: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    import json

    from confroute.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", "--cascade", "true", "--router", str(tiny_artifact), "--truth",
                 "broad-smollm2", "--out", str(out)]) == 0
    assert "router + log-prob" in capsys.readouterr().out
    result = json.loads((out / "cascade.json").read_text())
    assert result["tables"]["broad-smollm2"]["rows"] == 447
    assert (out / "cascade.md").read_text().startswith("### broad-smollm2")
    assert main(["evaluate", "--cascade", "true", "--router", str(tiny_artifact), "--truth",
                 "gsm8k", "--out", str(out)]) != 0
    assert "smollm2-uncertainty, broad-smollm2" in capsys.readouterr().err


def test_evaluate_cascade_reads_a_users_evidence_table_and_refuses_bad_truths(
        val, tiny_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Own table files with the evidence columns work like the bundled ones; a table without
    them, without a split column, a missing file or two different splits each get one line."""
    import json

    from confroute.cli import main

    base = ["evaluate", "--cascade", "true", "--router", str(tiny_artifact), "--out",
            str(tmp_path / "eval"), "--truth"]
    mine = tmp_path / "mine.parquet"
    pd.concat([val.iloc[:120], val.iloc[120:200].assign(split="train")]).to_parquet(mine)
    assert main([*base, str(mine)]) == 0
    capsys.readouterr()
    result = json.loads((tmp_path / "eval" / "cascade.json").read_text())
    assert result["tables"][str(mine)]["rows"] == 120
    no_split = tmp_path / "no_split.csv"
    val.iloc[:50].drop(columns=["split"]).to_csv(no_split, index=False)
    for truth, message in [(str(no_split), "found no split"),
                           (str(tmp_path / "nope.csv"), "does not exist"),
                           ("routellm-judge", "found no correct_edge, greedy_logprob_edge"),
                           ("gsm8k", "neither a bundled table"),
                           ("broad-smollm2:val,smollm2-uncertainty:train", "different splits")]:
        assert main([*base, truth]) == 2, truth
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error
        assert "('prompt'" not in error  # no Python tuple in the message
