"""Training on several labelled datasets at once: `data.mix` adds the train and val rows of more
datasets to those of `data.source`.

Each mixed dataset is read and labelled by its own `auto` rule (its card says which), with the
main source's turn, seed and val_fraction; its test rows are left out, so the main source's test
split stays the only evaluation split. `data.mix_max_rows` caps each one's training rows (a
fixed random subset). The report lists what each dataset contributed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from confroute.errors import DataError, require

CANONICAL = ("id", "prompt", "label", "source", "split")


def add_mixed(main: Any, cfg: Any, load: Callable[[Any], Any]) -> Any:
    """`main` (LabelledPrompts of `cfg.source`) with the train/val rows of every `cfg.mix`
    dataset appended (canonical columns only); `load` reads one DataConfig (schema.load, passed
    in so that this module does not import schema back). Raises DataError when a mixed dataset
    cannot be read or labelled (naming it) or when ids repeat across datasets."""
    pd = require("pandas", "train")
    frames, report = [main.frame], dict(main.report, mix={})
    for name in cfg.mix:
        sub = dataclasses.replace(cfg, source=name, mix=[], max_rows=cfg.mix_max_rows,
                                  label=type(cfg.label)(), format="auto", mix_max_rows=None)
        try:
            part = load(sub)
        except DataError as exc:
            raise DataError(f"data.mix dataset {name!r}: {exc}") from exc
        kept = part.frame[part.frame["split"] != "test"][list(CANONICAL)]
        frames.append(kept)
        report["mix"][name] = {"label_rule": part.report.get("label_rule"),
                               "rows": {s: int((kept["split"] == s).sum()) for s in
                                        ("train", "val")},
                               "positive_rate": round(float(kept["label"].mean()), 4)}
    frame = pd.concat(frames, ignore_index=True)
    repeated = frame["id"][frame["id"].duplicated()]
    if len(repeated):
        raise DataError(f"data.mix: id {repeated.iloc[0]!r} appears in more than one dataset; "
                        "ids must be unique across data.source and data.mix")
    report["rows"] = {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")}
    return type(main)(frame, report)
