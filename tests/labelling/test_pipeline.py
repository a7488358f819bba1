"""The label pipeline: resumable store (a real kill -9), evidence table, relabelling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from upstream import echo_app, lm_answer, serve_in_thread

from confroute.config import DataConfig, LabelConfig
from confroute.dataset.schema import load
from confroute.errors import DataError
from confroute.labelling import pair
from confroute.labelling import pipeline as lab
from confroute.labelling.store import JsonlStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i),
             "answer_type": "number", "source": "arith" if i % 2 else "other"}
            for i in range(12)]
    path = tmp_path / "prompts.jsonl"
    lab.write_jsonl(path, rows)
    return path


def _label_cmd(prompts: Path, out: Path, edge: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "confroute", "label", str(prompts), "--out", str(out),
            "--edge", edge, "--sampling.n", "3", "--sampling.temperature", "1.0",
            "--sampling.max_new_tokens", "6", "--sampling.batch_size", "1", "--threads", "1",
            "--quiet", *extra]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- store --------------------------------------------------------------------------------


def test_store_repairs_a_torn_last_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "s.jsonl"
    store = JsonlStore(path, {"v": 1})
    store.add([{"key": "a", "x": 1}, {"key": "b", "x": 2}])
    with path.open("a") as handle:
        handle.write('{"key": "c", "x": 3')  # a write killed midway
    reopened = JsonlStore(path, {"v": 1})
    assert reopened.torn_lines == 1 and reopened.keys == {"a", "b"}
    reopened.add([{"key": "c", "x": 3}])
    assert JsonlStore(path).records["c"]["x"] == 3
    assert all(json.loads(line) for line in _lines(path))


def test_store_skips_known_keys_and_counts_duplicates_on_disk(tmp_path):
    path = tmp_path / "s.jsonl"
    store = JsonlStore(path)
    store.add([{"key": "a", "x": 1}])
    store.add([{"key": "a", "x": 99}])  # already stored: skipped, not overwritten
    assert len(_lines(path)) == 1
    with path.open("a") as handle:
        handle.write(json.dumps({"key": "a", "x": 5}) + "\n")  # e.g. two writers
    again = JsonlStore(path)
    assert again.duplicates == 1 and again.records["a"]["x"] == 1


def test_store_refuses_other_settings_and_corrupt_lines(tmp_path):
    path = tmp_path / "s.jsonl"
    JsonlStore(path, {"temperature": 0.5}).add([{"key": "a"}])
    with pytest.raises(DataError, match="temperature"):
        JsonlStore(path, {"temperature": 1.0})
    lines = _lines(path)
    path.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        JsonlStore(path)
    with pytest.raises(DataError, match="string 'key'"):
        JsonlStore(tmp_path / "t.jsonl").add([{"x": 1}])


def test_read_only_store_ignores_a_line_being_written_and_changes_nothing(tmp_path):
    path = tmp_path / "s.jsonl"
    JsonlStore(path).add([{"key": "a"}])
    with path.open("a") as handle:
        handle.write('{"key": "b"')  # another process is mid-write
    size = path.stat().st_size
    reader = JsonlStore(path, readonly=True)
    assert reader.keys == {"a"} and path.stat().st_size == size
    with pytest.raises(DataError, match="read-only"):
        reader.add([{"key": "c"}])


# --- resume after kill -9 -------------------------------------------------------------------


@pytest.mark.slow
def test_label_resumes_after_kill_9_without_loss_or_duplicates(tmp_path, prompts, tiny_lm):
    out = tmp_path / "run"
    samples = out / "samples_edge.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(_label_cmd(prompts, out, str(tiny_lm)), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_lines(samples)) < 4 and proc.poll() is None:  # settings line + 3 prompts
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the label run wrote nothing within 240 s")
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _lines(samples)
    done_before = {json.loads(line)["key"] for line in before[1:] if line.endswith("}")}
    assert 3 <= len(done_before) < 12

    result = subprocess.run(_label_cmd(prompts, out, str(tiny_lm)), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["sampling"]["edge"]["done_before"] == len(done_before)
    assert report["sampling"]["edge"]["done_now"] == 12 - len(done_before)
    after = _lines(samples)
    keys = [json.loads(line)["key"] for line in after[1:]]
    assert sorted(keys) == sorted(f"edge:q{i}" for i in range(12))  # all, each once
    kept = [line for line in before if line.endswith("}")]
    assert after[:len(kept)] == kept  # nothing finished before the kill was lost or redone

    # the resumed run equals an uninterrupted one (per-prompt seeds)
    fresh = tmp_path / "fresh"
    subprocess.run(_label_cmd(prompts, fresh, str(tiny_lm)), cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    by_key = lambda p: {json.loads(x)["key"]: json.loads(x)["samples"]  # noqa: E731
                        for x in _lines(p)[1:]}
    assert by_key(samples) == by_key(fresh / "samples_edge.jsonl")

    # relabelling with another rule does not sample again: the samples file is untouched
    mtime = samples.stat().st_mtime_ns
    relabel = subprocess.run(
        _label_cmd(prompts, out, str(tiny_lm), "--label.rule", "edge_se",
                   "--label.edge_threshold", "0.5", "--label.edge_quantile", "0.5"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert relabel.returncode == 0, relabel.stderr[-2000:]
    assert samples.stat().st_mtime_ns == mtime
    table = pd.read_parquet(out / "scores.parquet")
    assert json.loads(table["label_params"].iloc[0])["threshold"] == 0.5
    assert (table["rule_label"] == (table["se_edge"] > 0.5).astype(float)).all()


def test_two_label_runs_on_one_out_do_not_both_sample(tmp_path, prompts, tiny_lm):
    """Issue 14 item 9: the second run refuses while the first writes; the first finishes with
    every prompt once."""
    out = tmp_path / "run"
    samples = out / "samples_edge.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    first = subprocess.Popen(_label_cmd(prompts, out, str(tiny_lm)), cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not _lines(samples) and first.poll() is None:  # the settings line: store is open
        assert time.monotonic() < deadline, "the first run wrote nothing within 240 s"
        time.sleep(0.05)
    second = subprocess.run(_label_cmd(prompts, out, str(tiny_lm)), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    out1, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1.decode()[-2000:]
    assert second.returncode != 0
    assert "being written by another process" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    keys = [json.loads(line)["key"] for line in _lines(samples)[1:]]
    assert sorted(keys) == sorted(f"edge:q{i}" for i in range(12))  # each prompt once


def test_store_lock_is_freed_when_its_writer_is_killed(tmp_path):
    path = tmp_path / "s.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom confroute.labelling.store import "
         f"JsonlStore\nJsonlStore({str(path)!r}, {{'v': 1}})\nprint('open', flush=True)\n"
         "time.sleep(600)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DataError, match="being written by another process"):
            JsonlStore(path, {"v": 1})
        JsonlStore(path, readonly=True)  # readers never wait for the writer
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    JsonlStore(path, {"v": 1}).add([{"key": "a"}])  # kill -9 leaves no stale lock
    assert JsonlStore(path).keys == {"a"}


# --- in-process pipeline --------------------------------------------------------------------


def test_label_pipeline_writes_a_scores_table_training_reads(tmp_path, prompts, tiny_backend):
    from confroute.labelling.sampling import SamplingConfig

    backend = tiny_backend
    sampling = SamplingConfig(n=3, temperature=1.0, max_new_tokens=4, batch_size=4)
    run = pair.label(str(prompts), tmp_path / "out", {"edge": ("tiny", backend)}, sampling,
                    lab.MeasureConfig(), LabelConfig(rule="edge_se", edge_quantile=0.5),
                    progress=False)
    assert run.rows == 12 and run.sampling["edge"]["done_now"] == 12
    table = pd.read_parquet(run.table)
    for column in ("id", "prompt", "source", "split", "se_edge", "se_edge_discrete",
                   "se_edge_weighted", "se_edge_paper", "samples_edge", "logprobs_edge",
                   "clusters_edge", "cluster_counts_edge", "n_invalid_edge", "correct_edge",
                   "greedy_logprob_edge", "rule_label", "label_rule", "label_params"):
        assert column in table.columns, column
    assert "label" not in table.columns  # the rule stays re-appliable
    assert all(len(x) == 3 for x in table["samples_edge"])
    loaded = load(DataConfig(source=str(run.table), label=LabelConfig(rule="edge_se",
                                                                      edge_quantile=0.5)))
    assert loaded.report["format"] == "scores"
    assert sorted(loaded.frame["label"]) == sorted(table["rule_label"])
    assert set(run.quality["edge"]) == {"all", "arith", "other"}
    assert (tmp_path / "out" / "label_report.json").exists()


def test_measure_hand_made_records():
    rows = [{"id": "1", "prompt": "What is 2 + 2?", "answer": "4", "answer_type": "number"},
            {"id": "2", "prompt": "Pick", "answer": "B", "answer_type": "choice",
             "choices": "ABCD"}]
    sample = lambda t, lp=-0.1, fin="stop": {"text": t, "logprobs": [lp], "finish": fin}  # noqa
    records = {
        "edge:1": {"samples": [sample("4."), sample("4"), sample("2 + 2 = 4"), sample("five"),
                               sample("5", fin="length")],
                   "greedy": sample("4"), "choice_logprobs": None},
        "edge:2": {"samples": [sample("B"), sample("C. x")], "greedy": sample("C"),
                   "choice_logprobs": {"A": -3.0, "B": -0.5, "C": -1.0, "D": -4.0}},
    }
    first, second = lab.measure(rows, records, "edge", lab.MeasureConfig(se="discrete"))
    assert first["answers_edge"] == ["4", "4", "4", None, "5"]
    assert first["clusters_edge"] == [0, 0, 0, -1, 1]
    assert first["n_invalid_edge"] == 1 and first["n_truncated_edge"] == 1
    # invalid dropped: counts 3 and 1 of 4
    import math
    assert first["se_edge"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert first["correct_edge"] == 1.0 and first["sample_accuracy_edge"] == 0.6
    assert second["correct_edge"] == 0.0 and second["correct_edge_letters"] == 1.0
    assert second["se_edge"] == pytest.approx(math.log(2))
    letters = lab.measure(rows, records, "edge", lab.MeasureConfig(choice_se="letters"))[1]
    assert letters["se_edge"] == letters["se_edge_letters"] < math.log(4)


def test_read_prompts_rejects_bad_tables(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi"}\n')
    with pytest.raises(DataError, match="'prompt' column"):
        lab.read_prompts(str(bad))
    bad.write_text('{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n')
    with pytest.raises(DataError, match="unique"):
        lab.read_prompts(str(bad))
    bad.write_text('{"prompt": "a"}\n{"prompt": "  "}\n')
    with pytest.raises(DataError, match="empty"):
        lab.read_prompts(str(bad))
    with pytest.raises(DataError, match="does not exist"):
        lab.read_prompts(str(tmp_path / "missing.jsonl"))


def test_label_cli_missing_file_is_one_line_error(tmp_path):
    from confroute.cli import main

    assert main(["label", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")]) == 2


def test_label_cli_samples_an_openai_compatible_endpoint(tmp_path, prompts, tiny_backend,
                                                         monkeypatch, capsys):
    """`--edge <url> --edge_model` goes through make_backend to the HTTP backend: every prompt
    answered n + 1 times over real HTTP, with the key and at most --concurrency in flight."""
    from confroute.cli import main

    monkeypatch.setenv("TEST_EDGE_KEY", "sk-edge")
    app = echo_app("edge", api_key="sk-edge", models={"tiny"}, answer=lm_answer(tiny_backend))
    with serve_in_thread(app) as url:
        assert main(["label", str(prompts), "--out", str(tmp_path / "out"), "--edge",
                     f"{url}/v1", "--edge_model", "tiny", "--api_key_env", "TEST_EDGE_KEY",
                     "--concurrency", "2", "--sampling.n", "2", "--sampling.max_new_tokens", "4",
                     "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 12 and result["sampling"]["edge"]["done_now"] == 12
    assert len(app.state.seen) == 12 * 3 and app.state.load["max_in_flight"] <= 2
    table = pd.read_parquet(result["table"])
    assert all(len(x) == 2 for x in table["samples_edge"]) and table["se_edge"].notna().all()
    meta = JsonlStore(tmp_path / "out" / "samples_edge.jsonl").meta
    assert meta["model"] == f"{url}/v1#tiny"


@pytest.mark.parametrize("form", ["pair", "ladder"])
def test_label_cli_url_without_model_is_one_line_error(tmp_path, prompts, capsys, form):
    """Both forms name their models through the same spec rules; nothing is sampled."""
    from confroute.cli import main

    models = ["--edge", "http://127.0.0.1:9/v1"]
    if form == "ladder":
        ladder = tmp_path / "ladder.json"
        ladder.write_text(json.dumps([
            {"name": n, "spec": "http://127.0.0.1:9/v1", "input_per_mtok": 0,
             "output_per_mtok": 0} for n in ("edge", "cloud")]))
        models = ["--ladder", str(ladder)]
    assert main(["label", str(prompts), "--out", str(tmp_path / "o"), *models]) == 2
    err = capsys.readouterr().err
    assert "name the model" in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "o").glob("samples_*"))
