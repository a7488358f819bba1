"""confroute train: fit a router on labelled prompts and write a run directory."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from confroute.config import RunConfig, from_dict, load_yaml, override
from confroute.errors import ConfigError
from confroute.training.presets import preset_overrides

RUN_ENTRIES = ("config.yaml", "metrics.json", "val.parquet", "model", "checkpoints", "logs")

# flag -> dotted config key; flags override the YAML config, which overrides the defaults
FLAGS = {
    "data": "data.source", "format": "data.format", "edge_model": "data.edge_model",
    "max_rows": "data.max_rows", "encoder": "model.encoder", "max_length": "model.max_length",
    "max_steps": "train.max_steps", "max_epochs": "train.max_epochs",
    "batch_size": "train.batch_size", "learning_rate": "train.learning_rate",
    "seed": "train.seed", "accelerator": "train.trainer.accelerator",
    "devices": "train.trainer.devices", "strategy": "train.trainer.strategy",
    "num_nodes": "train.trainer.num_nodes", "precision": "train.trainer.precision",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a router and write a run directory",
                       description="Fine-tune an encoder to predict P(cloud model needed) from "
                       "the prompt. Defaults: the bundled routellm-judge dataset and "
                       "all-MiniLM-L6-v2.")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--config", help="YAML RunConfig (e.g. RUN_DIR/config.yaml or a tune result)")
    p.add_argument("--preset", help="named overrides applied before your flags: micro (static "
                   "encoder, fastest), full (all encoder layers); see confroute.training.presets")
    p.add_argument("--data", help="bundled dataset name, local file, or Hugging Face dataset")
    p.add_argument("--format", choices=["auto", "battle", "scores", "labelled"])
    p.add_argument("--edge-model", help="battle format: the edge model's name")
    p.add_argument("--max-rows", type=int, help="use at most this many training rows")
    p.add_argument("--encoder", help="encoder name or path ('minilm' is bundled)")
    p.add_argument("--max-length", type=int, help="tokens per prompt")
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps (short runs)")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--shuffle-labels", action="store_true",
                   help="control run: permute training labels (validation AUROC should be ~0.5)")
    p.add_argument("--accelerator", help="Lightning accelerator: cpu, gpu, auto, ...")
    p.add_argument("--devices", help="Lightning devices: N, a list, or auto")
    p.add_argument("--strategy", help="Lightning strategy: auto, ddp, ...")
    p.add_argument("--num-nodes", type=int)
    p.add_argument("--precision", help="Lightning precision: 32-true, bf16-mixed, ...")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the training run already in --out (its other files are kept)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting by dotted key, e.g. --set label.tau=0.2 (repeatable)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = load_yaml(RunConfig, args.config) if args.config else from_dict(RunConfig, {})
    values: dict[str, Any] = preset_overrides(args.preset) if getattr(args, "preset", None) else {}
    for flag, key in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[key] = int(value) if flag == "devices" and str(value).isdigit() else value
    if getattr(args, "shuffle_labels", False):
        values["train.shuffle_labels"] = True
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE (e.g. train.batch_size=16); found {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    return override(cfg, values)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory; with --overwrite remove only run entries."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        return  # a DDP worker re-running this command: the first process already checked
    existing = [name for name in RUN_ENTRIES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds a training run ({', '.join(existing)}); choose "
                          "another --out, or pass --overwrite to replace it")
    for name in existing:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def run(args: argparse.Namespace) -> int:
    from confroute.training.fit import fit

    cfg = config_from_args(args)
    prepare_out(Path(args.out), args.overwrite)
    result = fit(cfg, args.out)
    if result.is_global_zero:  # one result on stdout, however many processes trained
        shown = {k: v for k, v in result.metrics.items() if k != "data_report"}
        print(json.dumps({"run_dir": str(result.run_dir), **shown}, indent=2))
    return 0
