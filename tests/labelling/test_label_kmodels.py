"""`confroute label --ladder`: K real (tiny) models end to end, resume, judge, CLI errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from upstream import Answer, echo_app, last_user_text, lm_answer, serve_in_thread

from confroute.cli import main
from confroute.dataset.ratings import parse_prices, read_ratings
from confroute.errors import ConfigError
from confroute.labelling import pipeline as lab
from confroute.labelling.kmodel import se_confidence
from confroute.labelling.store import JsonlStore


@pytest.fixture(scope="module")
def other_lm(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real model: the tiny LM with its weights perturbed, so its answers differ."""
    import torch
    from transformers import LlamaForCausalLM

    out = tmp_path_factory.mktemp("other_lm")
    for name in tiny_lm.iterdir():
        if "token" in name.name or name.name.endswith(".jinja"):
            shutil.copy(name, out / name.name)
    model = LlamaForCausalLM.from_pretrained(tiny_lm)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    model.save_pretrained(out)
    return out


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """12 prompts; the odd ones have a gold answer (rated by correctness), the even ones not."""
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "source": "math" if i % 2 else "chat",
             **({"answer": str(2 * i), "answer_type": "number"} if i % 2 else {})}
            for i in range(12)]
    path = tmp_path / "prompts.jsonl"
    lab.write_jsonl(path, rows)
    return path


def _ladder(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def _label(prompts: Path, out: Path, ladder: Path, *extra: str) -> list[str]:
    return ["label", str(prompts), "--out", str(out), "--ladder", str(ladder),
            "--sampling.n", "3", "--sampling.temperature", "1.0", "--sampling.max_new_tokens",
            "4", "--threads", "1", "--quiet", *extra]


def _run(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("*.jsonl"))}


def test_three_models_end_to_end_then_resume_without_sampling(
        tmp_path, prompts, tiny_lm, other_lm, tiny_backend, capsys):
    """Two local models and one behind an OpenAI-compatible server: a ratings table that
    read_ratings reads (cheapest first), each rating of the kind its prompt allows; a rerun
    samples nothing, and a fourth model added later is the only one sampled."""
    out = tmp_path / "out"
    app = echo_app("big", models={"tiny"}, answer=lm_answer(tiny_backend))
    with serve_in_thread(app) as url:
        big = {"name": "big-1", "spec": f"{url}/v1", "model": "tiny", "input_per_mtok": 3,
               "output_per_mtok": 15}
        ladder = _ladder(tmp_path / "ladder.json", [  # not in price order
            big, {"name": "small", "spec": str(tiny_lm), "input_per_mtok": 0,
                  "output_per_mtok": 0},
            {"name": "mid.v2", "spec": str(other_lm), "input_per_mtok": 0.5,
             "output_per_mtok": 1.5}])
        first = _run(capsys, _label(prompts, out, ladder))
        assert len(app.state.seen) == 12 * 4  # n = 3 samples + 1 greedy answer per prompt
        _check_three_model_outputs(out, first, url, tiny_lm, other_lm)

        table, mtimes = pd.read_parquet(out / "ratings.parquet"), _mtimes(out)
        again = _run(capsys, _label(prompts, out, ladder))
        assert len(app.state.seen) == 12 * 4 and _mtimes(out) == mtimes
        assert {n: s["done_now"] for n, s in again["sampling"].items()} == {
            "big-1": 0, "small": 0, "mid.v2": 0}
        pd.testing.assert_frame_equal(pd.read_parquet(out / "ratings.parquet"), table)

        ladder4 = _ladder(tmp_path / "ladder4.json", [
            *json.loads(ladder.read_text()), {**big, "name": "big_2", "input_per_mtok": 4}])
        fourth = _run(capsys, _label(prompts, out, ladder4))
        assert len(app.state.seen) == 12 * 8
    assert {n: s["done_now"] for n, s in fourth["sampling"].items()} == {
        "big-1": 0, "small": 0, "mid.v2": 0, "big_2": 12}
    assert {n: (s.meta or {})["name"] for n, s in ((p.name, JsonlStore(p, readonly=True))
                                                   for p in sorted(out.glob("samples_*")))} == {
        "samples_big-1.jsonl": "big-1", "samples_big_2.jsonl": "big_2",
        "samples_mid.v2.jsonl": "mid.v2", "samples_small.jsonl": "small"}
    four = read_ratings(out / "ratings.parquet", out / "prices.yaml")
    assert four.models == ["small", "mid.v2", "big-1", "big_2"]
    assert np.array_equal(four.ratings[:, :3], table[["small", "mid.v2", "big-1"]].to_numpy())


def _check_three_model_outputs(out: Path, first: dict, url: str, tiny_lm: Path,
                               other_lm: Path) -> None:
    names = ["big-1", "small", "mid.v2"]
    assert first["models"] == names and first["rows"] == 12 and first["dropped"] == 0
    assert {n: s["done_now"] for n, s in first["sampling"].items()} == dict.fromkeys(names, 12)
    assert first["train"] == (f"--data.source {out / 'ratings.parquet'} --data.prices "
                              f"{out / 'prices.yaml'} --data.models '[big-1, small, mid.v2]'")
    table = pd.read_parquet(out / "ratings.parquet")
    assert list(table.columns[:7]) == ["id", "prompt", "split", "category", *names]
    assert list(table["id"]) == [f"q{i}" for i in range(12)]
    assert list(table["category"]) == ["chat", "math"] * 6
    assert set(table["split"]) <= {"train", "val"}
    gold = np.arange(12) % 2 == 1
    for name in names:
        kinds = table[f"rating_kind:{name}"]
        assert list(kinds) == ["se_confidence", "correctness"] * 6
        assert (table.loc[gold, name] == table.loc[gold, f"correct:{name}"]).all()
        expected = [min(1.0, max(0.0, 1 - se / math.log(3)))
                    for se in table.loc[~gold, f"se_discrete:{name}"]]
        assert table.loc[~gold, name].tolist() == pytest.approx(expected, abs=1e-9)
        assert table[name].between(0, 1).all()
        assert all(len(s) == 3 for s in table[f"samples:{name}"])
        assert table[f"se:{name}"].notna().all() and table[f"greedy:{name}"].notna().all()
        assert table[f"judge_rating:{name}"].isna().all()
    assert table["greedy:small"].tolist() != table["greedy:mid.v2"].tolist()  # two models

    priced = parse_prices(out / "prices.yaml")
    assert {m: (p.input_per_mtok, p.output_per_mtok) for m, p in priced.items()} == {
        "big-1": (3, 15), "small": (0, 0), "mid.v2": (0.5, 1.5)}
    ratings = read_ratings(out / "ratings.parquet", out / "prices.yaml", names)
    assert ratings.models == ["small", "mid.v2", "big-1"]  # cheapest first
    assert np.array_equal(ratings.ratings, table[ratings.models].to_numpy(dtype=float))
    assert list(ratings.categories) == list(table["category"])
    assert read_ratings(out / "ratings.parquet", out / "prices.yaml").models == [
        "small", "mid.v2", "big-1"]

    report = json.loads((out / "ratings_report.json").read_text())
    assert report["rows"] == 12 and report["category_from"] == "source"
    small = report["per_model"]["small"]
    assert small["kinds"]["correctness"]["n"] == 6 and small["kinds"]["se_confidence"]["n"] == 6
    assert small["quality"]["all"]["accuracy"] == table.loc[gold, "correct:small"].mean()
    assert small["stored_as"] == str(tiny_lm)
    assert report["per_model"]["big-1"]["stored_as"] == f"{url}/v1#tiny"
    meta = JsonlStore(out / "samples_mid.v2.jsonl", readonly=True).meta
    assert meta["name"] == "mid.v2" and meta["model"] == str(other_lm)


def test_judge_rates_each_model_where_there_is_no_gold_answer(
        tmp_path, prompts, tiny_lm, other_lm, tiny_backend, capsys):
    """A loopback judge rates each answer by its length: every model's rating of a prompt
    without gold is (r - 1) / 9 of that model's answer's rating; a prompt the judge cannot
    rate is left out and counted; a rerun asks the judge nothing again."""
    unratable = "What is 4 + 4?"

    def rate(body: dict) -> Answer:
        text = last_user_text(body["messages"])
        if f"[Question]\n{unratable}\n" in text:
            return Answer("I cannot rate this.")
        return Answer(f"Rating: [[{_length_rating(_answer_in(text))}]]")

    judge = echo_app("judge", models={"judge-1"}, answer=rate)
    model = echo_app("big", models={"tiny"}, answer=lm_answer(tiny_backend))
    out = tmp_path / "out"
    with serve_in_thread(judge) as judge_url, serve_in_thread(model) as url:
        ladder = _ladder(tmp_path / "ladder.yaml", [
            {"name": "small", "spec": str(tiny_lm), "input_per_mtok": 0, "output_per_mtok": 0},
            {"name": "mid", "spec": str(other_lm), "input_per_mtok": 1, "output_per_mtok": 2},
            {"name": "big", "spec": f"{url}/v1", "model": "tiny", "input_per_mtok": 5,
             "output_per_mtok": 9}])
        argv = _label(prompts, out, ladder, "--judge_url", f"{judge_url}/v1", "--judge_model",
                      "judge-1", "--judge_concurrency", "2")
        first = _run(capsys, argv)
        assert len(judge.state.seen) == 6 * 3  # the 6 prompts without gold, for each model
        again = _run(capsys, argv)
        assert len(judge.state.seen) == 6 * 3
    assert judge.state.load["max_in_flight"] <= 2
    assert first["rows"] == again["rows"] == 11 and first["dropped"] == 1
    table = pd.read_parquet(out / "ratings.parquet")
    assert "q4" not in set(table["id"])
    no_gold = table["id"].isin([f"q{i}" for i in range(0, 12, 2)])
    for name in ("small", "mid", "big"):
        judged = table[no_gold]
        raw = [_length_rating(str(a)) for a in judged[f"greedy:{name}"]]
        assert judged[f"judge_rating:{name}"].tolist() == raw
        assert judged[name].tolist() == pytest.approx([(r - 1) / 9 for r in raw])
        assert set(judged[f"rating_kind:{name}"]) == {"judge"}
        assert judged[f"judgment:{name}"].str.startswith("Rating: [[").all()
        assert set(table.loc[~no_gold, f"rating_kind:{name}"]) == {"correctness"}
        stored = JsonlStore(out / f"judgments_{name}.jsonl").records
        assert len(stored) == 6 and stored["model:q4"]["rating"] is None
    report = json.loads((out / "ratings_report.json").read_text())
    assert report["dropped"]["ids"] == ["q4"]
    assert report["per_model"]["mid"]["judge"] == {"judged": 6, "judged_now": 0,
                                                    "missing_rating": 1}
    assert read_ratings(out / "ratings.parquet", out / "prices.yaml").ratings.shape == (11, 3)


def _answer_in(judge_prompt: str) -> str:
    return judge_prompt.split("[The Start of Assistant's Answer]\n")[1].split(
        "\n[The End of Assistant's Answer]")[0]


def _length_rating(answer: str) -> int:
    return 1 + len(answer) % 10


def test_se_confidence_scale():
    assert se_confidence(0.0, 5) == 1.0
    assert se_confidence(math.log(5), 5) == 0.0  # every sample a meaning of its own
    assert se_confidence(math.log(2), 4) == pytest.approx(0.5)
    assert se_confidence(7.3, 5) == 0.0  # an unbounded SE variant is clipped
    with pytest.raises(ConfigError, match="N >= 2"):
        se_confidence(0.0, 1)


def _two_urls(url: str) -> list[dict]:
    return [{"name": "a", "spec": f"{url}/v1", "model": "m", "input_per_mtok": 0,
             "output_per_mtok": 0},
            {"name": "b", "spec": f"{url}/v1", "model": "m", "input_per_mtok": 1,
             "output_per_mtok": 1}]


@pytest.mark.parametrize(("extra", "message"), [
    (["--sampling.n", "1"], "needs --sampling.n >= 2 (found 1)"),
    (["--edge", "smollm2"], "--ladder names every model; drop --edge"),
    (["--cloud", "x", "--edge_gguf", "y.gguf"], "drop --edge_gguf, --cloud"),
    (["--label.rule", "tau"], "--label.* settings choose the edge/cloud label rule"),
    (["--judge_url", "http://127.0.0.1:9/v1"], "give both --judge_url and --judge_model"),
])
def test_ladder_cli_errors_are_one_line_and_sample_nothing(tmp_path, prompts, capsys, extra,
                                                            message):
    app = echo_app("m", models={"m"})
    with serve_in_thread(app) as url:
        ladder = _ladder(tmp_path / "l.json", _two_urls(url))
        assert main(["label", str(prompts), "--out", str(tmp_path / "o"), "--ladder",
                     str(ladder), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert app.state.seen == [] and not (tmp_path / "o" / "samples_a.jsonl").exists()


def test_ladder_cli_bad_file_names_the_entry(tmp_path, prompts, capsys):
    ladder = _ladder(tmp_path / "l.json", [
        {"name": "a", "spec": "smollm2", "input_per_mtok": 0, "output_per_mtok": 0},
        {"name": "b", "spec": "smollm2", "input_per_mtok": -2, "output_per_mtok": 0}])
    assert main(["label", str(prompts), "--out", str(tmp_path / "o"), "--ladder",
                 str(ladder)]) == 2
    err = capsys.readouterr().err
    assert f"{ladder}: entry 2 ('b'): price input_per_mtok" in err and "found -2" in err
    assert len(err.strip().splitlines()) == 1


def test_judge_flags_without_a_ladder_point_to_confroute_judge(tmp_path, prompts, capsys):
    assert main(["label", str(prompts), "--out", str(tmp_path / "o"), "--judge_url",
                 "http://127.0.0.1:9/v1", "--judge_model", "j"]) == 2
    assert "run `confroute judge`" in capsys.readouterr().err


def test_help_describes_the_ladder_mode(capsys):
    with pytest.raises(SystemExit) as done:
        main(["label", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--ladder", "K >= 2 models", "input_per_mtok", "OUT/ratings.parquet",
                   "OUT/prices.yaml", "(r - 1) / 9", "1 - SE / log N", "--judge_url",
                   "se:<name>", "--data.prices OUT/prices.yaml"):
        assert phrase in text, phrase


def test_rate_model_takes_gold_first_then_se_confidence():
    """Hand-made evidence: gold correctness of the greedy answer (the first sample's without
    one), else 1 - SE_discrete / log N whatever the other SE variants say."""
    from confroute.labelling.kmodel import rate_model

    rows = [{"id": "g1", "answer": "4", "answer_type": "number"},
            {"id": "g2", "answer": "4", "answer_type": "number"},
            {"id": "s1"}, {"id": "s2"}, {"id": "s3"}]
    frame = pd.DataFrame({
        "correct_model": [1.0, None, None, None, None],  # g2: no greedy answer
        "answers_model": [["4", "5"], ["5", "4"], ["a", "a"], ["a", "b", "a", "b"],
                          ["a", "b", "c"]],
        "samples_model": [["4", "5"], ["5", "4"], ["a", "a"], ["a", "b", "a", "b"],
                          ["a", "b", "c"]],
        "se_model_discrete": [0.7, 0.7, 0.0, math.log(2), math.log(3)],
        "se_model": [9.0] * 5})
    rated, report = rate_model(frame, rows, None, Path("unused.jsonl"))
    assert rated["rating"].tolist() == pytest.approx([1.0, 0.0, 1.0, 0.5, 0.0])
    assert list(rated["rating_kind"]) == ["correctness"] * 2 + ["se_confidence"] * 3
    assert np.isnan(rated["judge_rating"]).all() and report == {}
