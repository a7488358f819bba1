"""The ladder file of `confroute label --ladder`: the K >= 2 models to label with, and their prices.

A YAML or JSON list (or a mapping with that list under `models`), one entry per model:

    - name: small            # the model's column in ratings.parquet, and its sample file name
      spec: smollm2          # as --edge: 'smollm2', a Hugging Face name or folder, or a URL
      input_per_mtok: 0.0    # list price, USD per million input tokens
      output_per_mtok: 0.0   # ... and per million output tokens
    - name: big
      spec: https://host/v1  # an OpenAI-compatible base URL needs `model`
      model: big-model-2025  # the model's name at that URL
      api_key_env: BIG_KEY   # environment variable with its key (default: --api_key_env)
      input_per_mtok: 2.5
      output_per_mtok: 10
    # optional for local models: gguf (a GGUF file inside the spec's folder)

Every problem is a `ConfigError` naming the file and the entry: fewer than 2 models, an unknown
key, a missing spec, a URL without `model`, a missing, non-numeric, negative or NaN price, and a
name that repeats (case-insensitively: samples_A.jsonl and samples_a.jsonl are one file on macOS
and Windows) or cannot be a file name and a table column. Names are 1-64 characters of
letters, digits and `. _ + -`, starting with a letter or digit; without `:` they cannot collide
with the evidence columns (`se:<name>`), and without `/` they stay one file in --out. Names of
the ratings table's own columns (`id`, `prompt`, `split`, ...) are refused.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from confroute.dataset.ratings import RESERVED
from confroute.errors import ConfigError
from confroute.files import read_settings_file

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok")
KEYS = ("name", "spec", "model", "gguf", "api_key_env", *PRICE_KEYS)


@dataclasses.dataclass(frozen=True)
class LadderModel:
    """One model of the ladder (see the module docstring for each field)."""

    name: str
    spec: str
    input_per_mtok: float
    output_per_mtok: float
    model: str | None = None
    gguf: str | None = None
    api_key_env: str | None = None

    @property
    def is_url(self) -> bool:
        return self.spec.startswith(("http://", "https://"))


def read_ladder(path: str | Path) -> list[LadderModel]:
    """The models of a ladder file (.yaml/.yml/.json), in the file's order.

    Raises ConfigError for a missing or unparseable file and for every problem the module
    docstring lists, naming the entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ladder file {path} does not exist; give a YAML or JSON list of "
                          "models, each with name, spec, input_per_mtok and output_per_mtok")
    data = read_settings_file(path, "ladder file", ConfigError)
    return parse_ladder(data, str(path))


def parse_ladder(data: Any, where: str = "ladder") -> list[LadderModel]:
    """The models of an already-parsed ladder (`where` names it in errors); see read_ladder."""
    if isinstance(data, Mapping):
        extra = sorted(map(str, set(data) - {"models"}))
        if extra or "models" not in data:
            raise ConfigError(f"{where}: expected a list of models (or `models: [...]`); found "
                              f"the key(s) {', '.join(extra) or 'none'}")
        data = data["models"]
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list of models, each with name, spec, "
                          f"input_per_mtok and output_per_mtok; found {type(data).__name__}")
    models = [_entry(where, i, entry) for i, entry in enumerate(data, 1)]
    if len(models) < 2:
        raise ConfigError(f"{where}: a ladder needs at least 2 models to route between; found "
                          f"{len(models)}. Add a cheaper or a stronger model")
    seen: dict[str, tuple[int, str]] = {}
    for i, m in enumerate(models, 1):
        first = seen.setdefault(m.name.casefold(), (i, m.name))
        if first[0] != i:
            same = "repeats" if first[1] == m.name else "differs only in case from"
            raise ConfigError(f"{where}: entry {i} name '{m.name}' {same} entry {first[0]} "
                              f"('{first[1]}'); each model needs its own name (it names a "
                              "column and a sample file)")
    return models


def _entry(where: str, i: int, entry: Any) -> LadderModel:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: entry {i} must be a mapping with name, spec, input_per_mtok "
                          f"and output_per_mtok; found {entry!r}")
    name = entry.get("name")
    what = f"{where}: entry {i}" + (f" ('{name}')" if isinstance(name, str) and name else "")
    unknown = sorted(map(str, set(entry) - set(KEYS)))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; an entry has "
                          f"{', '.join(KEYS)}")
    _check_name(what, name)
    spec = entry.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{what}: needs a spec: 'smollm2', a Hugging Face name or folder, or "
                          f"an http(s):// OpenAI-compatible base URL; found {spec!r}")
    for key in ("model", "gguf", "api_key_env"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{what}: {key} must be a non-empty string; found {value!r}")
    prices = [_price(what, entry, key) for key in PRICE_KEYS]
    model = LadderModel(str(name), spec, prices[0], prices[1], model=entry.get("model"),
                        gguf=entry.get("gguf"), api_key_env=entry.get("api_key_env"))
    if model.is_url and not model.model:
        raise ConfigError(f"{what}: {spec} is an OpenAI-compatible URL; name the model served "
                          "there with `model`")
    if model.is_url and model.gguf:
        raise ConfigError(f"{what}: gguf applies to a local model, not to the URL {spec}")
    if not model.is_url and model.model:
        raise ConfigError(f"{what}: `model` names a model at a URL, but spec {spec!r} is a local "
                          "model; put the local name or folder in spec")
    return model


def _check_name(what: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{what}: name must be 1-64 letters, digits or . _ + - (starting with a "
                          "letter or digit), as it names a file and a table column; found "
                          f"{name!r}. Keep the served name in `model`")
    if name in RESERVED:
        raise ConfigError(f"{what}: name '{name}' is a column of the ratings table itself "
                          f"({', '.join(RESERVED)}); choose another")


def _price(what: str, entry: Mapping[str, Any], key: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        state = "is missing" if key not in entry else f"must be a number >= 0; found {value!r}"
        raise ConfigError(f"{what}: price {key} (USD per million tokens) {state}")
    return float(value)


def prices(models: Sequence[LadderModel]) -> dict[str, dict[str, float]]:
    """The ladder's prices in the format `confroute.dataset.ratings.parse_prices` reads."""
    return {m.name: {"input_per_mtok": m.input_per_mtok, "output_per_mtok": m.output_per_mtok}
            for m in models}
