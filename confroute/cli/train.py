"""confroute train: fine-tune an encoder to predict P(cloud model needed) from the prompt, and
write a run directory. Defaults: the bundled routellm-judge dataset and all-MiniLM-L6-v2.

Every setting of RunConfig is a flag (--data.source, --model.encoder, --train.max_steps,
--train.trainer.devices, ...); --config reads them from YAML (e.g. RUN_DIR/config.yaml or a tune
result) and later flags override it. `--preset NAME` applies a named, measured set of settings
(confroute.training.presets) before the config file and the flags.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from confroute.config import RunConfig, build
from confroute.errors import ConfigError

HELP = "train a router and write a run directory"
RUN_ENTRIES = ("config.yaml", "metrics.json", "val.parquet", "model", "checkpoints", "logs")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--config", action="config",
                        help="YAML RunConfig (keys data, model, train), e.g. RUN_DIR/config.yaml")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the training run already in --out (its other files stay)")
    parser.add_argument("--preset", type=str | None,
                        help="named settings applied before --config and the flags: micro "
                             "(static encoder, fastest), full (all encoder layers); see "
                             "confroute.training.presets")
    parser.add_class_arguments(RunConfig, sub_configs=True)


def before_parse(parser: Any, argv: list[str]) -> None:
    """Apply `--preset NAME` as the parser's defaults, so --config and flags override it."""
    from confroute.training.presets import preset_overrides

    names = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--preset"]
    names += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--preset=")]
    for name in names:
        parser.set_defaults(preset_overrides(name))


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


def run(args: Any) -> int:
    import confroute.traffic.dataset  # noqa: F401  registers --data.source <database URL>
    from confroute.training.fit import fit

    cfg = build(RunConfig, args)
    prepare_out(Path(args.out), args.overwrite)
    result = fit(cfg, args.out)
    if result.is_global_zero:  # one result on stdout, however many processes trained
        shown = {k: v for k, v in result.metrics.items() if k != "data_report"}
        print(json.dumps({"run_dir": str(result.run_dir), **shown}, indent=2))
    return 0
