"""The ladder file of `confroute label --ladder`: what it accepts and every error it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confroute.dataset.ratings import parse_prices
from confroute.errors import ConfigError
from confroute.labelling.ladder import LadderModel, parse_ladder, prices, read_ladder

SMALL = {"name": "small", "spec": "smollm2", "input_per_mtok": 0, "output_per_mtok": 0}
BIG = {"name": "big", "spec": "https://host/v1", "model": "big-2025", "api_key_env": "BIG_KEY",
       "input_per_mtok": 2.5, "output_per_mtok": 10}


def test_yaml_list_and_json_mapping_read_the_same(tmp_path):
    yaml_file = tmp_path / "ladder.yaml"
    yaml_file.write_text("""
- name: small
  spec: smollm2
  input_per_mtok: 0
  output_per_mtok: 0
- {name: big, spec: "https://host/v1", model: big-2025, api_key_env: BIG_KEY,
   input_per_mtok: 2.5, output_per_mtok: 10}
""")
    json_file = tmp_path / "ladder.json"
    json_file.write_text(json.dumps({"models": [SMALL, BIG]}))
    models = read_ladder(yaml_file)
    assert models == read_ladder(json_file)
    assert models == [LadderModel("small", "smollm2", 0.0, 0.0),
                      LadderModel("big", "https://host/v1", 2.5, 10.0, model="big-2025",
                                  api_key_env="BIG_KEY")]
    assert [m.is_url for m in models] == [False, True]
    assert {k: (v.input_per_mtok, v.output_per_mtok)
            for k, v in parse_prices(prices(models)).items()} == {"small": (0, 0),
                                                                  "big": (2.5, 10)}


def _with(entry: dict, **changes) -> dict:
    out = {**entry, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()

BAD = [
    ([SMALL], "at least 2 models to route between; found 1"),
    ([], "at least 2 models to route between; found 0"),
    ({"ladder": [SMALL, BIG]}, "expected a list of models"),
    ("small, big", "expected a list of models"),
    ([SMALL, "big"], "entry 2 must be a mapping"),
    ([SMALL, _with(BIG, name="small")], "entry 2 name 'small' repeats entry 1"),
    ([SMALL, _with(BIG, name="SMALL")], "entry 2 name 'SMALL' differs only in case from entry 1"),
    ([SMALL, _with(BIG, input_per_mtok=DROP)], r"entry 2 \('big'\): price input_per_mtok .* is "
                                               "missing"),
    ([SMALL, _with(BIG, output_per_mtok=-1)], r"entry 2 \('big'\): price output_per_mtok .* "
                                              "must be a number >= 0; found -1"),
    ([SMALL, _with(BIG, output_per_mtok=float("nan"))], "output_per_mtok .* found nan"),
    ([SMALL, _with(BIG, output_per_mtok=float("inf"))], "output_per_mtok .* found inf"),
    ([SMALL, _with(BIG, input_per_mtok="cheap")], "input_per_mtok .* found 'cheap'"),
    ([SMALL, _with(BIG, input_per_mtok=True)], "input_per_mtok .* found True"),
    ([SMALL, _with(BIG, spec=DROP)], r"entry 2 \('big'\): needs a spec"),
    ([SMALL, _with(BIG, spec="  ")], r"entry 2 \('big'\): needs a spec"),
    ([SMALL, _with(BIG, model=DROP)], "OpenAI-compatible URL; name the model"),
    ([_with(SMALL, model="x"), BIG], "spec 'smollm2' is a local model"),
    ([SMALL, _with(BIG, gguf="m.gguf")], "gguf applies to a local model"),
    ([SMALL, _with(BIG, name="org/big")], "entry 2 .*name must be .* found 'org/big'"),
    ([SMALL, _with(BIG, name="..")], "found '..'"),
    ([SMALL, _with(BIG, name="llama3:8b")], "found 'llama3:8b'. Keep the served name in `model`"),
    ([SMALL, _with(BIG, name="big model")], "found 'big model'"),
    ([SMALL, _with(BIG, name="")], "entry 2: name must be"),
    ([SMALL, _with(BIG, name=DROP)], "entry 2: name must be .* found None"),
    ([SMALL, _with(BIG, name="x" * 65)], "name must be 1-64"),
    ([SMALL, _with(BIG, name="prompt")], "name 'prompt' is a column of the ratings table"),
    ([SMALL, _with(BIG, price=3)], r"entry 2 \('big'\): unknown key\(s\) price"),
    ([SMALL, _with(BIG, api_key_env=7)], "api_key_env must be a non-empty string"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_ladders_name_the_entry_and_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_ladder(data, "l.yaml")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="ladder file .*missing.yaml does not exist"):
        read_ladder(tmp_path / "missing.yaml")
    broken = tmp_path / "l.yaml"
    broken.write_text("- name: a\n  spec: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_ladder(broken)
    broken = tmp_path / "l.json"
    broken.write_text('[{"name": "a",}]')
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_ladder(broken)
    nan = tmp_path / "nan.yaml"
    nan.write_text("- {name: a, spec: smollm2, input_per_mtok: 0, output_per_mtok: 0}\n"
                   "- {name: b, spec: smollm2, input_per_mtok: .nan, output_per_mtok: 1}\n")
    with pytest.raises(ConfigError, match=r"nan.yaml: entry 2 \('b'\): price input_per_mtok"):
        read_ladder(nan)


def test_the_labelling_page_ladder_example_is_a_valid_ladder():
    import yaml

    page = (Path(__file__).resolve().parents[2] / "docs" / "labelling.md").read_text()
    block = page.split("**K models.**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    models = parse_ladder(yaml.safe_load(block), "docs/labelling.md")
    assert [m.name for m in models] == ["smollm2", "qwen-7b", "gpt-4o"]
    assert [m.is_url for m in models] == [False, True, True]
