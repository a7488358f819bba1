"""Judge ratings: MT-Bench template, rating parser, correctness, and a real judge over HTTP."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from confroute.errors import DataError
from confroute.labelling import judge as j
from confroute.labelling.sampling import HttpConfig, LocalBackend
from confroute.labelling.store import JsonlStore

sys.path.insert(0, str(Path(__file__).parent))
from test_sampling import LoopbackServer, make_tiny_lm, openai_app  # noqa: E402


@pytest.fixture(scope="module")
def tiny_backend(tmp_path_factory: pytest.TempPathFactory) -> LocalBackend:
    return LocalBackend(str(make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))), threads=1)


@pytest.mark.parametrize(("judgment", "rating"), [
    ("The answer is correct. Rating: [[8]]", 8.0),
    ("Format: \"[[rating]]\" ... Rating: [[6.5]]", 6.5),
    ("first [[3]] then, on reflection, [[7]]", 7.0),
    ("Rating: [[ 10 ]]", 10.0),
    ("Rating: 4/10", 4.0),
    ("Rating: [5]", 5.0),
    ("I cannot rate this.", None),
    ("", None),
    ("Rating: [[0]]", None),  # out of the 1-10 scale
    ("Rating: [[11]]", None),
    ("scores [3] and [9] for different parts", None),  # ambiguous: missing, not a guess
])
def test_parse_rating(judgment, rating):
    assert j.parse_rating(judgment) == rating


def test_templates_are_fastchat_single_answer():
    messages = j.judge_messages("What is 2+2?", "4")
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert "[Question]\nWhat is 2+2?" in messages[1]["content"]
    assert "[[rating]]" in messages[1]["content"]
    math_messages = j.judge_messages("What is 2+2?", "5", reference="4")
    assert "[The Start of Reference Answer]\n4" in math_messages[1]["content"]
    with pytest.raises(DataError, match="no judge template"):
        j.template("pair-v2")


def test_correctness_against_gold():
    assert j.correctness("The answer is 72.", "72", "number") == 1.0
    assert j.correctness("70", "72", "number") == 0.0
    assert j.correctness("no idea", "72", "number") == 0.0
    assert j.correctness("B. dolphin", "B", "choice", "ABCD") == 1.0
    assert j.correctness("4", None, "number") is None


def test_rate_table_uses_gold_where_there_is_one():
    frame = pd.DataFrame({"id": ["1", "2"], "prompt": ["2+2?", "Pick"], "answer": ["4", "C"],
                          "answer_type": ["number", "choice"], "choices": [None, "ABCD"],
                          "greedy_edge": ["4.", "A. x"]})
    out, report = j.rate_table(frame, "edge", None, None)
    assert list(out["rating_edge"]) == [1.0, 0.0]
    assert report == {"correctness": 2, "judged": 0, "missing": 0}


def test_rate_table_without_gold_needs_a_judge():
    frame = pd.DataFrame({"id": ["1"], "prompt": ["Write a poem"], "greedy_edge": ["roses"]})
    with pytest.raises(DataError, match="judge model"):
        j.rate_table(frame, "edge", None, None)
    with pytest.raises(DataError, match="confroute label"):
        j.rate_table(frame.drop(columns=["greedy_edge"]), "edge", None, None)


def test_real_judge_over_http_keeps_missing_ratings_missing(tiny_backend, tmp_path):
    """A real (tiny, random) model as judge: it never writes [[n]], so every rating must be
    missing, with the judgment text kept; a second run judges nothing again."""
    frame = pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["Write a poem", "Hi", "Explain"],
                          "greedy_edge": ["roses are red", "hello", "because"]})
    with LoopbackServer(openai_app(tiny_backend)) as server:
        cfg = j.JudgeConfig(HttpConfig(base_url=server.url, model="tiny", api_key_env=None,
                                       logprobs=False, concurrency=2), max_tokens=8)
        store = tmp_path / "judgments.jsonl"
        out, report = j.rate_table(frame, "edge", cfg, store, progress=False)
        again, report2 = j.rate_table(frame, "edge", cfg, store, progress=False)
    assert report["judged"] == 3 and report["judged_now"] == 3
    assert report2["judged_now"] == 0
    records = JsonlStore(store).records
    for record in records.values():
        assert record["rating"] == j.parse_rating(record["judgment"])
    expected = [records[f"edge:{i}"]["rating"] for i in out["id"]]
    assert [None if math.isnan(v) else v for v in out["rating_edge"]] == expected
    assert report["missing"] == sum(r is None for r in expected)
    assert list(out["rating_edge_kind"]) == ["judge"] * 3
    assert out["judgment_edge"].notna().all()


def test_judge_cli_on_a_label_table(tmp_path, capsys):
    from confroute.cli import main

    table = tmp_path / "scores.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in [
        {"id": "1", "prompt": "2+2?", "answer": "4", "answer_type": "number",
         "samples_edge": ["4", "5"], "se_edge": 0.6},
        {"id": "2", "prompt": "3+3?", "answer": "6", "answer_type": "number",
         "samples_edge": ["7"], "se_edge": 0.0}]) + "\n")
    out = tmp_path / "rated.parquet"
    assert main(["judge", str(table), "--out", str(out)]) == 0
    assert list(pd.read_parquet(out)["rating_edge"]) == [1.0, 0.0]
    assert json.loads(capsys.readouterr().out)["ratings"]["edge"]["correctness"] == 2
    assert main(["judge", str(table), "--out", str(out), "--judge_url", "http://x/v1"]) == 2
