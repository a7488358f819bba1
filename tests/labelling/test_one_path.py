"""The two-model form of `label` is a ladder of `edge` and `cloud`: one sampling and measuring
path, and stores of either layout (a pair store as it has always been written: keys
`edge:<id>`; a ladder store: keys `model:<id>`) resume under both forms without sampling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from confroute.config import LabelConfig
from confroute.labelling import kmodel, pair, pipeline
from confroute.labelling.measure import MeasureConfig
from confroute.labelling.sampling import SamplingConfig

SAMPLING = SamplingConfig(n=3, temperature=1.0, max_new_tokens=4)
ANSWERS = {"edge": ["2", "3", "2"], "cloud": ["2", "2", "2"]}
PRICES = {"edge": {"input_per_mtok": 0.0, "output_per_mtok": 0.0},
          "cloud": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}


def _sample(text: str) -> dict:
    return {"text": text, "logprobs": [-0.5], "finish": "stop"}


def _write_store(path: Path, name: str, layout: str, ids: list[str]) -> None:
    """A finished store written by hand in `layout`: `pair` (role = the model's name, as
    `label --edge/--cloud` has always written it) or `ladder` (role `model` and a `name`)."""
    role = name if layout == "pair" else "model"
    meta = {"role": role, "model": f"{name}-model", "sampling": dataclasses.asdict(SAMPLING)}
    if layout == "ladder":
        meta["name"] = name
    texts = ANSWERS[name]
    lines = [{"key": "__meta__", "meta": meta}] + [
        {"key": f"{role}:{i}", "id": i, "role": role, "model": f"{name}-model",
         "samples": [_sample(t) for t in texts], "greedy": _sample(texts[0]),
         "choice_logprobs": None} for i in ids]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _refuse() -> None:
    raise AssertionError("a finished store must not load its model")


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + 1?", "answer": "2",
             "answer_type": "number"} for i in range(4)]
    path = tmp_path / "prompts.jsonl"
    pipeline.write_jsonl(path, rows)
    return path


def _backends() -> dict:
    return {name: (f"{name}-model", _refuse) for name in ("edge", "cloud")}


@pytest.mark.parametrize("layout", ["pair", "ladder"])
@pytest.mark.parametrize("form", ["pair", "ladder"])
def test_a_finished_store_of_either_layout_resumes_under_either_form(tmp_path, prompts, layout,
                                                                     form):
    out = tmp_path / "out"
    out.mkdir()
    ids = [f"q{i}" for i in range(4)]
    for name in ("edge", "cloud"):
        _write_store(out / f"samples_{name}.jsonl", name, layout, ids)
    before = {p.name: p.read_bytes() for p in out.glob("samples_*")}
    if form == "pair":
        run = pair.label(str(prompts), out, _backends(), SAMPLING, MeasureConfig(),
                         LabelConfig(rule="tau"), progress=False)
        sampled, table = run.sampling, pd.read_parquet(run.table)
        se = {name: table[f"se_{name}_discrete"] for name in ("edge", "cloud")}
        correct = {name: table[f"correct_{name}"] for name in ("edge", "cloud")}
        assert list(table["rule_label"]) == [1.0] * 4  # cloud needed: it is surer, by > tau
    else:
        result = kmodel.label_ladder(str(prompts), out, _backends(), PRICES, SAMPLING,
                                     MeasureConfig(), progress=False)
        sampled, table = result.report["sampling"], pd.read_parquet(result.table)
        se = {name: table[f"se_discrete:{name}"] for name in ("edge", "cloud")}
        correct = {name: table[name] for name in ("edge", "cloud")}
    assert {n: s["done_now"] for n, s in sampled.items()} == {"edge": 0, "cloud": 0}
    assert {p.name: p.read_bytes() for p in out.glob("samples_*")} == before  # untouched
    assert (se["edge"] > 0).all() and (se["cloud"] == 0).all()
    assert list(correct["edge"]) == list(correct["cloud"]) == [1.0] * 4


def test_a_half_done_pair_store_of_the_old_layout_is_completed_in_that_layout(tmp_path,
                                                                               prompts):
    """Only the missing prompt is sampled, under the store's own keys (`edge:<id>`)."""
    from confroute.labelling.sampling import Generation, Sample

    class Answers:
        name = "edge-model"

        def generate(self, prompts, cfg, seeds, choices):
            return [Generation([Sample(**_sample(t)) for t in ANSWERS["edge"]],
                               Sample(**_sample("2"))) for _ in prompts]

    out = tmp_path / "out"
    out.mkdir()
    _write_store(out / "samples_edge.jsonl", "edge", "pair", ["q0", "q1", "q2"])
    run = pair.label(str(prompts), out, {"edge": ("edge-model", Answers())}, SAMPLING,
                     MeasureConfig(), LabelConfig(rule="edge_se", edge_quantile=0.5),
                     progress=False)
    assert run.sampling["edge"]["done_before"] == 3 and run.sampling["edge"]["done_now"] == 1
    keys = [json.loads(line)["key"] for line in (out / "samples_edge.jsonl").open()]
    assert keys == ["__meta__", "edge:q0", "edge:q1", "edge:q2", "edge:q3"]
    assert run.rows == 4


def test_the_two_model_form_takes_only_edge_and_cloud(tmp_path, prompts):
    from confroute.errors import DataError

    for backends in ({"cloud": ("c", _refuse)}, {"edge": ("e", _refuse), "mid": ("m", _refuse)}):
        with pytest.raises(DataError, match="--ladder"):
            pair.label(str(prompts), tmp_path / "o", backends, SAMPLING, MeasureConfig(),
                       LabelConfig(), progress=False)
