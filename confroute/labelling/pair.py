"""The two-model form of `confroute label` (`--edge`, optionally `--cloud`): a ladder of the
models `edge` and `cloud` (or `edge` alone) labelled by a rule of `confroute.dataset.labels`.

The models are sampled and measured by the K-model code (`confroute.labelling.models`, stores
`OUT/samples_edge.jsonl` and `OUT/samples_cloud.jsonl`, resumable); the pair's table is that
evidence with each model's columns named `*_<name>` (`se_edge`, `se_cloud`, `correct_edge`,
...), labelled by `pipeline.apply_rule`. Rerunning resumes sampling and redoes only measuring
and labelling, so another --label.rule or --label.tau never samples again.

Writes `OUT/scores.parquet` (the `scores` format `confroute.dataset.schema` reads) and
`OUT/label_report.json` (rows, sampling counts, the rule's counts, per-model quality).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from confroute.errors import DataError, require
from confroute.files import write_json
from confroute.labelling import models, pipeline
from confroute.labelling.measure import MeasureConfig
from confroute.labelling.sampling import SamplingConfig

NAMES = ("edge", "cloud")


@dataclasses.dataclass
class LabelRun:
    """What `label` did: files written, counts, and the label rule's report."""

    table: Path
    rows: int
    sampling: dict[str, Any]
    labels: dict[str, Any]
    quality: dict[str, Any]


def label(prompts: str, out_dir: str | Path, backends: models.Backends,
          sampling: SamplingConfig, measure_cfg: MeasureConfig, label_cfg: Any,
          limit: int | None = None, progress: bool = True) -> LabelRun:
    """Sample, measure and label with `edge` (and `cloud`); rerunning resumes.

    `backends` maps `edge` (required) and `cloud` to (model name, backend or backend factory).
    Raises DataError without an edge model, for another name, for bad prompts or for a store
    written with other settings; LLMError when an endpoint fails."""
    if "edge" not in backends or not set(backends) <= set(NAMES):
        raise DataError(f"the two-model label needs an edge model and at most a cloud model; "
                        f"found {', '.join(backends) or 'none'}. Name K models with --ladder")
    out_dir = Path(out_dir)
    rows = pipeline.read_prompts(prompts, limit)
    # a pair store keeps the layout pair stores have always had (keys `edge:<id>`)
    stores, sampled = models.sample_models(rows, out_dir, backends, sampling, role=str,
                                           progress=progress)
    frame = pair_table(models.measure_models(rows, out_dir, stores, measure_cfg), rows)
    frame, labels = pipeline.apply_rule(frame, label_cfg)
    table = pipeline.write_table(frame, out_dir / "scores.parquet")
    quality = pipeline.quality_report(frame, list(stores))
    write_json(out_dir / "label_report.json",
               {"rows": len(frame), "sampling": sampled, "labels": labels,
                "quality": quality}, default=str)
    return LabelRun(table, len(frame), sampled, labels, quality)


def pair_table(frames: Mapping[str, Any], rows: Sequence[dict[str, Any]]) -> Any:
    """The models' evidence frames (`models.measure_models`) as one table: the prompt columns,
    each model's evidence named `*_<name>` (se_model -> se_edge), then the columns the
    evidence adds (source, split, se_config)."""
    pd = require("pandas", "label")
    given = set(pd.DataFrame(list(rows)).columns) | {"id"}
    first = next(iter(frames.values()))
    head = [c for c in first.columns if c in given]
    tail = [c for c in first.columns if c not in given and not models.in_column(c)]
    named = [frame[[c for c in frame.columns if c not in given and models.in_column(c)]]
             .rename(columns=lambda c, name=name: models.rename_column(c, name))
             for name, frame in frames.items()]
    return pd.concat([first[head], *named, first[tail]], axis=1)
