"""The command line the sized bench scripts share (irt, ladders, quality, routers, labels).

Each has two scales, QUICK (CI) and FULL, given as {option dest: value}: `--quick` picks the
first, and a size an option was not given takes the chosen scale's value. Each reads a data
folder (a flag, an environment variable, else ../shared/data/<folder>), takes `--seed`,
`--cache` and `--out`, and quotes its own command line in the results it writes:

    parser = bench_args.parser(__doc__, QUICK)
    parser.add_argument(...)                                # the script's own options
    bench_args.add_data_dir(parser, "--mmlu-pro-dir", mmlu_pro.ROOT_ENV, "mmlu_pro")
    bench_args.add_seed_cache_out(parser)
    args = bench_args.parse(parser, argv, "irt.py", QUICK, FULL)   # args.command is set
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]


def parser(doc: str | None, quick: Mapping[str, Any]) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring, with `--quick`."""
    made = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--quick", action="store_true", help=f"CI sizes: {dict(quick)}")
    return made


def add_data_dir(parser: argparse.ArgumentParser, flag: str, env: str, folder: str) -> None:
    """`flag` (a folder): default $`env`, else ../shared/data/`folder` beside this checkout."""
    parser.add_argument(flag, type=Path,
                        default=Path(os.environ.get(env) or ROOT.parent / "shared/data" / folder),
                        help=f"the {folder} data folder (default: ${env}, else "
                             f"../shared/data/{folder})")


def add_seed_cache_out(parser: argparse.ArgumentParser, cache: str = "bench/.cache") -> None:
    """--seed (0), --cache (`cache` under the checkout) and --out (bench/results)."""
    parser.add_argument("--seed", type=seed, default=0, help="random seed in [0, 2**32 - 1]")
    parser.add_argument("--cache", type=Path, default=ROOT / cache)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")


SEED_MAX = 2**32 - 1  # numpy's legacy seeding (np.random.seed, RandomState) takes no more


def seed(text: str) -> int:
    """A --seed value: a whole number in [0, SEED_MAX]; argparse reports the refusal."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, {SEED_MAX}]; "
                                         f"found {text!r}")
    return value


def run(main: Callable[[], int | None], script: str) -> NoReturn:
    """`raise SystemExit(main())`, but a ConfrouteError (bad data folder, bad input) or an
    OSError on a named path is one line `script: error: ...` and exit status 2."""
    from confroute.errors import ConfrouteError, one_line

    try:
        raise SystemExit(main())
    except ConfrouteError as exc:
        message = one_line(str(exc))
    except OSError as exc:
        if exc.filename is None:
            raise
        message = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    print(f"{script}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None, script: str,
          quick: Mapping[str, Any], full: Mapping[str, Any]) -> argparse.Namespace:
    """Parse `argv` (None: sys.argv), fill each size left None from the chosen scale, and set
    `args.command`, the command line the results quote (`python bench/<script> ...`)."""
    args = parser.parse_args(argv)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.command = command(script, argv)
    return args


def command(script: str, argv: list[str] | None) -> str:
    """`python bench/<script>` and the arguments (None: this process's), shell-quoted."""
    return f"python bench/{script} " + shlex.join(sys.argv[1:] if argv is None else argv)
