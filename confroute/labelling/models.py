"""The models of one labelling run, K >= 1 of them: their sample stores, sampling and evidence.

One code path for both forms of `confroute label`: a ladder (`--ladder`, K >= 2 named models)
and the two-model form (`--edge`, `--cloud`), which is a ladder of the models `edge` and
`cloud` (or of `edge` alone). Each model answers into its own resumable store
`OUT/samples_<name>.jsonl` and is measured on its own (`pipeline.evidence_table`); what the
ratings (`kmodel`) and the pair's labels (`pair`) are made of is the per-model evidence
`measure_models` returns.

Two store layouts exist, and a store is always read in the one it was written in, so every
store resumes: a ladder model's records are keyed `model:<id>` and its settings line names the
model (`name`); the two-model form's are keyed `<name>:<id>` (`edge:q1`), as pair stores have
always been written. A new store takes its form's layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confroute.errors import DataError
from confroute.labelling import pipeline
from confroute.labelling.measure import MeasureConfig
from confroute.labelling.sampling import Backend, SamplingConfig
from confroute.labelling.store import JsonlStore, first_meta

ROLE = "model"
"""The role of a ladder model inside its store (keys `model:<id>`), and the column suffix of
every model's evidence frame (`se_model`, `correct_model`, ...), whatever its layout."""

Backends = Mapping[str, tuple[str, Backend | Callable[[], Backend]]]
"""model name -> (the name its answers are stored under, a backend or a factory called only
when something is left to sample)."""


def sample_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"samples_{name}.jsonl"


def store_meta(name: str, stored_as: str, sampling: SamplingConfig, role: str) -> dict[str, Any]:
    """The settings line of model `name`'s store in the layout of `role` (`model` or `name`)."""
    meta = pipeline.store_meta(role, stored_as, sampling)
    return {**meta, "name": name} if role == ROLE else meta


def open_store(out_dir: str | Path, name: str, stored_as: str, sampling: SamplingConfig,
               role: str = ROLE) -> JsonlStore:
    """Model `name`'s store, in the layout already on disk (either), else in `role`'s.

    Raises DataError when the store on disk was written with other settings (or is damaged),
    or another process is writing it."""
    path = sample_path(out_dir, name)
    on_disk = (first_meta(path) or {}).get("role")
    layout = on_disk if on_disk in (ROLE, name) else role
    return JsonlStore(path, store_meta(name, stored_as, sampling, layout))


def sample_models(rows: Sequence[dict[str, Any]], out_dir: str | Path, backends: Backends,
                  sampling: SamplingConfig, role: Callable[[str], str] = lambda name: ROLE,
                  progress: bool = True) -> tuple[dict[str, JsonlStore], dict[str, Any]]:
    """Every model answers every prompt not yet in its store (`pipeline.sample_to_store`).

    `role(name)`: a new store's layout (see the module doc). Returns (name -> its store,
    name -> sampling counts)."""
    stores, sampled = {}, {}
    for name, (stored_as, backend) in backends.items():
        store = open_store(out_dir, name, stored_as, sampling, role(name))
        stores[name] = store
        sampled[name] = pipeline.sample_to_store(rows, backend, sampling, store,
                                                 (store.meta or {})["role"], progress=progress,
                                                 desc=name)
    return stores, sampled


def measure_models(rows: Sequence[dict[str, Any]], out_dir: Path,
                   stores: Mapping[str, JsonlStore], measure_cfg: MeasureConfig) -> dict[str, Any]:
    """name -> the model's evidence frame (prompt columns + `*_model` evidence), one row per
    prompt every model answered, in the prompts' order. Raises DataError when there is none."""
    from confroute.labelling.equivalence import make_equivalence

    equivalence = make_equivalence(measure_cfg.equivalence)  # one NLI model for every store
    frames = {name: pipeline.evidence_table(rows, {ROLE: store}, measure_cfg, equivalence)
              .set_index("id", drop=False) for name, store in stores.items()}
    common = [str(r["id"]) for r in rows if all(str(r["id"]) in f.index for f in frames.values())]
    if not common:
        raise DataError(f"no prompt has samples from every model in {out_dir}; run sampling "
                        "first")
    return {name: f.loc[common].reset_index(drop=True) for name, f in frames.items()}


_ROLE_IN_COLUMN = re.compile(rf"_{ROLE}(?=_|$)")


def in_column(column: str) -> bool:
    """Whether `column` is model evidence of an evidence frame (`se_model_discrete`, ...)."""
    return _ROLE_IN_COLUMN.search(column) is not None


def rename_column(column: str, name: str) -> str:
    """An evidence column with the model's role replaced: (`se_model_discrete`, `edge`) ->
    `se_edge_discrete`; with `name` "" it is dropped (`se_discrete`)."""
    return _ROLE_IN_COLUMN.sub(f"_{name}" if name else "", column, count=1)
