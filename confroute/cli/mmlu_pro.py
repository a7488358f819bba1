"""confroute mmlu-pro: write a pair or ladder of MMLU-Pro models (real per-question correctness)
as a ratings table with train / val / test splits and a price file, ready for `confroute train
--data.source OUT/ratings.parquet --data.models [...] --data.prices OUT/prices.yaml` and
`confroute evaluate --ratings`. Splits are fixed by the seed and each question's id; with
--routellm_mmlu every MMLU-derived question goes to test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HELP = "write an MMLU-Pro pair or ladder as a ratings table (for K-model routers)"


def add_arguments(parser: Any) -> None:
    parser.add_argument("--models", type=list[str], required=True,
                        help="two or more model columns of outcomes.parquet, e.g. "
                        "'[Llama-2-7b-hf, Llama-2-13b-hf, Llama-2-70b-hf]'")
    parser.add_argument("--prices", required=True, help="YAML/JSON file of each model's "
                        "input_per_mtok and output_per_mtok (USD per million tokens)")
    parser.add_argument("--dir", type=str | None, help="the MMLU-Pro folder (questions.parquet, "
                        "outcomes.parquet); default $CONFROUTE_MMLU_PRO_DIR")
    parser.add_argument("--out", required=True, help="folder for ratings.parquet and prices.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test_fraction", type=float, default=0.3)
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--routellm_mmlu", action="store_true", help="keep every MMLU-derived "
                        "question out of train and val (when RouteLLM's MMLU is evaluated)")


def run(args: Any) -> int:
    import numpy as np
    import pandas as pd
    import yaml

    from confroute.dataset import mmlu_pro, tables
    from confroute.errors import DataError
    from confroute.files import write_text

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for ratings.parquet and "
                        "prices.yaml")
    table = mmlu_pro.split(mmlu_pro.load(args.models, args.prices, args.dir), args.seed,
                           args.test_fraction, args.val_fraction, args.routellm_mmlu)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": table.ids, "prompt": table.prompts, "category": table.categories,
                          "src": table.src, "split": table.splits,
                          "tokens_in": table.tokens_in, "tokens_out": table.tokens_out})
    for k, model in enumerate(table.models):
        frame[model] = table.ratings[:, k]
    tables.write(frame, out / "ratings.parquet", (".parquet",))
    write_text(out / "prices.yaml", yaml.safe_dump(
        {m: {"input_per_mtok": p.input_per_mtok, "output_per_mtok": p.output_per_mtok}
         for m, p in zip(table.models, table.prices, strict=True)}, sort_keys=False))
    print(json.dumps({"table": str(out / "ratings.parquet"), "prices": str(out / "prices.yaml"),
                      "models": table.models, "rows": len(table),
                      "splits": {s: int(np.sum(table.splits == s)) for s in ("train", "val",
                                                                             "test")},
                      "accuracy": dict(zip(table.models, table.ratings.mean(0).round(4).tolist(),
                                           strict=True)),
                      "dropped_missing_outcome": table.info.get("dropped_missing_outcome")},
                     indent=2))
    return 0
