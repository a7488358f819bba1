"""Training throughput before and after the CPU speed-ups, on the same data, with quality.

Trains the same RunConfig with plain shuffled batches ("before"), with length-bucketed batches
(train.bucket_by_length), and with bucketing plus frozen lower encoder layers
(train.freeze_layers), all through
confroute.training.fit.fit. Prints, per variant: training examples/s
(validation excluded), the share of computed token positions that are padding, validation time,
and the best validation AUROC. Variants run in alternating order when --repeats > 1, so load on
a shared machine hits both sides; quote ratios from one run.

    .venv/bin/python bench/train_throughput.py [--max-rows 1000] [--max-steps -1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from gemm import cpu_summary  # noqa: E402  (bench/ is on sys.path when this script runs)


def padding_share(cfg, data) -> float:  # noqa: ANN001 - RunConfig, LabelledPrompts
    """Padding positions / all positions over one epoch of training batches, as fit builds them."""
    import pytorch_lightning as pl

    from confroute.training.datamodule import RouterDataModule
    from confroute.training.model import RouterModel

    pl.seed_everything(cfg.train.seed, verbose=False)
    encoder = RouterModel(cfg.model).text_encoder()
    dm = RouterDataModule(data.split("train"), data.split("val"), encoder, cfg.train.batch_size,
                          0, cfg.train.bucket_by_length, cfg.train.seed)
    real = total = 0
    for batch in dm.train_dataloader():
        mask = batch["attention_mask"]
        real, total = real + int(mask.sum()), total + mask.numel()
    return 1 - real / total


def subset_val(data, rows: int, seed: int):  # noqa: ANN001, ANN201 - LabelledPrompts
    """The same data with only `rows` random validation rows (test rows dropped)."""
    from confroute.dataset import schema

    frame = data.frame
    val = frame[frame["split"] == "val"]
    keep = val.sample(n=min(rows, len(val)), random_state=seed).index
    return schema.LabelledPrompts(frame[(frame["split"] == "train") | frame.index.isin(keep)]
                                  .reset_index(drop=True), data.report)


def warm_up(cfg, data, out: Path) -> None:  # noqa: ANN001 - RunConfig, LabelledPrompts
    """A few unreported steps, so the first variant does not pay for thread pools and caches."""
    import pandas as pd

    from confroute.config import override
    from confroute.dataset import schema
    from confroute.training.fit import fit

    frame = data.frame
    small = schema.LabelledPrompts(pd.concat([frame[frame["split"] == "train"],
                                              frame[frame["split"] == "val"].head(16)]),
                                   data.report)
    fit(override(cfg, {"train.max_steps": 3}), out, data=small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="routellm-judge")
    parser.add_argument("--max-rows", type=int, default=1000, help="training rows")
    parser.add_argument("--val-rows", type=int, help="validate on a fixed random subset")
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--freeze-layers", type=int, default=2)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--repeats", type=int, default=1, help="0: only the padding shares")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from confroute.config import RunConfig, override
    from confroute.dataset import schema
    from confroute.training.fit import fit

    torch.set_num_threads(args.threads)
    base = override(RunConfig(), {
        "data.source": args.data, "data.max_rows": args.max_rows, "model.encoder": args.encoder,
        "model.max_length": args.max_length, "train.batch_size": args.batch_size,
        "train.max_epochs": args.max_epochs, "train.max_steps": args.max_steps,
        "train.trainer.accelerator": "cpu", "train.trainer.enable_progress_bar": False})
    variants = {
        "before (shuffled)": {"train.bucket_by_length": False, "train.freeze_layers": 0},
        "length-bucketed": {"train.bucket_by_length": True, "train.freeze_layers": 0},
        f"bucketed + freeze {args.freeze_layers}": {"train.bucket_by_length": True,
                                                    "train.freeze_layers": args.freeze_layers},
    }
    full = schema.load(override(base, {"data.max_rows": None}).data)
    shares = [padding_share(override(base, {"train.bucket_by_length": b}), full)
              for b in (False, True)]
    print(f"padding share over all {len(full.split('train'))} training rows of {args.data}, "
          f"batch {args.batch_size}: shuffled {shares[0]:.1%}, length-bucketed {shares[1]:.1%}")
    if args.repeats < 1:
        return
    data = schema.load(base.data)  # the same rows and labels for every variant
    if args.val_rows:
        data = subset_val(data, args.val_rows, base.data.seed)
    print(f"data {args.data}: {len(data.split('train'))} train / {len(data.split('val'))} val "
          f"rows; encoder {args.encoder}, batch {args.batch_size}, max_length "
          f"{args.max_length}, epochs {args.max_epochs}, max_steps {args.max_steps}, "
          f"torch threads {args.threads}")
    results: dict[str, list[dict]] = {name: [] for name in variants}
    tmp = Path(tempfile.mkdtemp(prefix="confroute-throughput-"))
    warm_up(base, data, tmp / "warm-up")
    for repeat in range(args.repeats):
        names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in names:
            cfg = override(base, variants[name])
            started = time.perf_counter()
            metrics = fit(cfg, tmp / f"{repeat}-{len(results[name])}-{hash(name)}",
                          data=data).metrics
            metrics["wall_s"] = time.perf_counter() - started
            metrics["padding"] = padding_share(cfg, data)
            results[name].append(metrics)
            print(f"  {name}: {metrics['train_examples_per_s']:.2f} ex/s, AUROC "
                  f"{metrics['val_auroc']:.4f}", flush=True)

    before = np.median([m["train_examples_per_s"] for m in results["before (shuffled)"]])
    header = (f"{'variant':<24} {'train ex/s':>10} {'speed-up':>8} {'padding':>8} "
              f"{'val s':>7} {'wall s':>7} {'val AUROC':>9} {'val Brier':>9}")
    print(f"\nCPU: {cpu_summary()}, {os.cpu_count()} cores")
    print(header + "\n" + "-" * len(header))
    for name, runs in results.items():
        speed = float(np.median([m["train_examples_per_s"] for m in runs]))
        row = {k: float(np.median([m[k] for m in runs]))
               for k in ("padding", "validation_seconds", "wall_s", "val_auroc", "val_brier")}
        print(f"{name:<24} {speed:>10.2f} {speed / before:>7.2f}x {row['padding']:>8.1%} "
              f"{row['validation_seconds']:>7.1f} {row['wall_s']:>7.1f} "
              f"{row['val_auroc']:>9.4f} {row['val_brier']:>9.4f}")
    print(f"(medians of {args.repeats} run(s) each; speed-up against 'before'; padding = share "
          "of token positions the encoder computes that are padding)")


if __name__ == "__main__":
    main()
