"""Build the bundled `broad-smollm2` dataset: SmolLM2-135M-Instruct's answers to everyday
questions with known answers, in several shapes (see broad_prompts.py).

Resumable steps (run them in order; each can be rerun):

    python scripts/build_broad_dataset.py prompts   # prompt table with gold answers
    python scripts/build_broad_dataset.py sample    # N samples per prompt (resumable)
    python scripts/build_broad_dataset.py finalize  # clusters, SE, correctness, label -> parquet

Sampling uses the settings of the `smollm2-uncertainty` build (`sampling_config()` there), so
the two tables measure the same model the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from broad_prompts import broad_prompts  # noqa: E402
from build_uncertainty_dataset import sample  # noqa: E402  (the same model, the same way)

WORK = ROOT / "runs" / "broad"
N_PROMPTS = 2400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prompts", "sample", "finalize"])
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--n", type=int, default=N_PROMPTS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "confroute/dataset/builtin/broad_smollm2.parquet")
    parser.add_argument("--card", type=Path, help="write the dataset card here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prompts_path = args.work / "prompts.jsonl"
    from confroute.labelling.pipeline import read_prompts, write_jsonl

    if args.step == "prompts":
        rows = broad_prompts(args.n)
        write_jsonl(prompts_path, rows)
        print(f"{len(rows)} prompts -> {prompts_path}")
        return 0
    rows = read_prompts(str(prompts_path), args.limit)
    if args.step == "sample":
        return sample(rows, args)
    from broad_finalize import finalize

    return finalize(rows, args)


if __name__ == "__main__":
    raise SystemExit(main())
