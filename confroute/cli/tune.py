"""confroute tune: search training settings with optuna and write the best as a train config."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from confroute.config import RunConfig, from_dict, load_yaml, override, to_dict
from confroute.errors import ConfigError

# flag -> dotted TuneConfig key; flags override --config, which overrides the defaults
FLAGS = {
    "n_trials": "n_trials", "timeout": "timeout_s", "metric": "metric", "storage": "storage",
    "study_name": "study_name", "seed": "seed",
    "data": "base.data.source", "max_rows": "base.data.max_rows",
    "encoder": "base.model.encoder", "max_steps": "base.train.max_steps",
    "accelerator": "base.train.trainer.accelerator",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="search training settings (optuna) and write the best config",
        description="Run or resume an optuna study: each trial is one `confroute train` run on a "
        "setting drawn from the search space (see confroute.training.tune.SearchSpace); bad "
        "trials are "
        "pruned after a validation. Writes OUT/best.yaml for `confroute train --config`.")
    p.add_argument("--out", required=True, help="study directory (trials/, best.yaml, study.db)")
    p.add_argument("--config", help="YAML TuneConfig: base (a RunConfig), space, n_trials, ...")
    p.add_argument("--base-config", help="YAML RunConfig to tune around (e.g. RUN_DIR/config.yaml)")
    p.add_argument("--n-trials", type=int, help="finished trials the study should hold")
    p.add_argument("--timeout", type=float, help="stop starting trials after N seconds")
    p.add_argument("--metric", choices=["val_auroc", "val_ap", "val_brier", "val_ece", "val_loss"])
    p.add_argument("--storage", help="optuna storage URL shared by workers (default: "
                   "sqlite:///OUT/study.db)")
    p.add_argument("--study-name")
    p.add_argument("--seed", type=int, help="sampler seed (give each worker its own)")
    p.add_argument("--no-pruning", action="store_true", help="run every trial to the end")
    p.add_argument("--data", help="training data of every trial (bundled name or file)")
    p.add_argument("--max-rows", type=int, help="training rows per trial")
    p.add_argument("--encoder", help="encoder name or path")
    p.add_argument("--max-steps", type=int, help="optimiser steps per trial at most")
    p.add_argument("--accelerator", help="Lightning accelerator of every trial")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TuneConfig key, e.g. --set space.pooling=[mean] or "
                   "--set base.train.val_check_interval=0.5 (repeatable)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from confroute.training.tune import TuneConfig, load_tune_config

    cfg = load_tune_config(args.config) if args.config else from_dict(TuneConfig, {})
    if args.base_config:
        base = load_yaml(RunConfig, args.base_config)
        cfg = from_dict(TuneConfig, {**to_dict(cfg), "base": to_dict(base)})
    values: dict[str, Any] = {k: getattr(args, f) for f, k in FLAGS.items()
                              if getattr(args, f, None) is not None}
    if args.no_pruning:
        values["pruning"] = False
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE (e.g. space.batch_size=[16,32]); "
                              f"found {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    return override(cfg, values)


def run(args: argparse.Namespace) -> int:
    from confroute.training.tune import tune

    result = tune(config_from_args(args), args.out)
    print(json.dumps({"best_config": str(result.best_config), "best_trial": result.best_trial,
                      "best_value": result.best_value, "base_value": result.base_value,
                      "best_params": result.best_params, "trials": result.counts,
                      "summary": str(result.summary)}, indent=2))
    return 0
