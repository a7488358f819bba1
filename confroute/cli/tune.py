"""confroute tune: run or resume an optuna study. Each trial is one `confroute train` run on a
setting drawn from the search space (--space.<name>, see
confroute.training.search_space.SearchSpace); bad trials are pruned after a validation. Writes
OUT/best.yaml for `confroute train --config`. The flags are TuneConfig's fields: --base takes a
RunConfig YAML to tune around (e.g. RUN_DIR/config.yaml) and --base.<key> sets one of its
settings (e.g. --base.train.max_steps 50)."""

from __future__ import annotations

import json
from typing import Any

HELP = "search training settings (optuna) and write the best config"


def add_arguments(parser: Any) -> None:
    from confroute.training.tune import TuneConfig

    parser.add_argument("--config", action="config",
                        help="YAML TuneConfig: base (a RunConfig), space, n_trials, ...")
    parser.add_argument("--out", required=True,
                        help="study directory (trials/, best.yaml, study.json, study.db)")
    parser.add_class_arguments(TuneConfig, sub_configs=True)


def run(args: Any) -> int:
    import confroute.traffic.dataset  # noqa: F401  registers --base.data.source <database URL>
    from confroute.config import build
    from confroute.training.tune import TuneConfig, tune

    result = tune(build(TuneConfig, args), args.out)
    print(json.dumps({"best_config": str(result.best_config), "best_trial": result.best_trial,
                      "best_value": result.best_value, "base_value": result.base_value,
                      "best_params": result.best_params, "trials": result.counts,
                      "summary": str(result.summary)}, indent=2))
    return 0
