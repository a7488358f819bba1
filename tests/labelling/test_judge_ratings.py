"""Judge ratings: MT-Bench template, rating parser, correctness, and a real judge over HTTP."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from upstream import Answer, echo_app, last_user_text, lm_answer, serve_in_thread

from confroute.errors import DataError
from confroute.labelling import judge as j
from confroute.labelling.store import JsonlStore
from confroute.llm_client import EndpointConfig, LLMError


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
    app = echo_app("judge", models={"tiny"}, answer=lm_answer(tiny_backend))
    with serve_in_thread(app) as url:
        cfg = j.RatingJudgeConfig(EndpointConfig(f"{url}/v1", "tiny", api_key_env=None,
                                                 concurrency=2), max_tokens=8)
        store = tmp_path / "judgments.jsonl"
        out, report = j.rate_table(frame, "edge", cfg, store, progress=False)
        again, report2 = j.rate_table(frame, "edge", cfg, store, progress=False)
    assert report["judged"] == 3 and report["judged_now"] == 3
    assert report2["judged_now"] == 0 and len(app.state.seen) == 3
    assert app.state.load["max_in_flight"] <= 2
    assert {r["body"]["max_tokens"] for r in app.state.seen} == {8}
    assert {r["body"]["temperature"] for r in app.state.seen} == {0.0}
    records = JsonlStore(store).records
    for record in records.values():
        assert record["rating"] == j.parse_rating(record["judgment"])
    expected = [records[f"edge:{i}"]["rating"] for i in out["id"]]
    assert [None if math.isnan(v) else v for v in out["rating_edge"]] == expected
    assert report["missing"] == sum(r is None for r in expected)
    assert list(out["rating_edge_kind"]) == ["judge"] * 3
    assert out["judgment_edge"].notna().all()


def test_judge_ratings_are_parsed_and_stored_as_they_arrive(tmp_path):
    """A judge that rates an answer by its word count fails (HTTP 500) on the third answer:
    the two judged before are already stored, and a rerun asks only for the missing one."""
    broken = {"on": True}

    def rate_by_length(body: dict) -> Answer:
        question = last_user_text(body["messages"])
        answer = question.split("[The Start of Assistant's Answer]\n")[1].split("\n[The End")[0]
        if broken["on"] and answer == "five six":
            raise RuntimeError("the judge breaks on purpose")
        return Answer(f"Judged. Rating: [[{len(answer.split())}]]")

    frame = pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["Q1", "Q2", "Q3"],
                          "greedy_edge": ["one two three", "four", "five six"]})
    store = tmp_path / "judgments.jsonl"
    app = echo_app("judge", answer=rate_by_length)
    with serve_in_thread(app) as url:
        cfg = j.RatingJudgeConfig(EndpointConfig(f"{url}/v1", "judge", api_key_env=None,
                                                 concurrency=1, max_retries=0))
        with pytest.raises(LLMError, match="HTTP 500"):
            j.rate_table(frame, "edge", cfg, store, progress=False)
        assert sorted(JsonlStore(store).records) == ["edge:a", "edge:b"]
        broken["on"] = False
        out, report = j.rate_table(frame, "edge", cfg, store, progress=False)
    assert report["judged_now"] == 1 and len(app.state.seen) == 4
    assert list(out["rating_edge"]) == [3.0, 1.0, 2.0] and report["missing"] == 0
    assert out["judgment_edge"][0] == "Judged. Rating: [[3]]"


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
