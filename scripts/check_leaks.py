"""Leak check of the bundled training sets against the common-sense suite and its held-out set.

    python scripts/check_leaks.py [--threshold 0.9] [--show 10] [--cache runs/cache/leaks]

Prints, per bundled dataset, its prompts, the exact hits (after `leaks.normalise`) and the near
hits (MiniLM cosine >= threshold) against each set, the closest pairs, and the distribution of
each probe's highest cosine to any training prompt. Exit status 1 when any exact hit or any near
hit is found. Embedding every bundled prompt takes minutes on 2 CPU cores (cached with --cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def training_prompts() -> dict[str, list[str]]:
    """Every prompt of every bundled dataset, all splits (a test row is still a row seen)."""
    from confroute.dataset import tables
    from confroute.dataset.builtin import BUILTIN, builtin_path

    out = {}
    for name in BUILTIN:
        frame = tables.read(builtin_path(name))
        out[name] = [str(p) for p in frame["prompt"]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=None, help="near-duplicate cosine")
    parser.add_argument("--show", type=int, default=10, help="closest pairs to print per set")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    args = parser.parse_args()
    from confroute.dataset.commonsense import SUITES, load_suite
    from confroute.evaluation.leaks import NEAR_THRESHOLD, exact_leaks, near_leaks, nearest

    threshold = NEAR_THRESHOLD if args.threshold is None else args.threshold
    train = training_prompts()
    print("training prompts: " + ", ".join(f"{k} {len(v):,}" for k, v in train.items()))
    found = 0
    for suite in SUITES:
        probes = [r["prompt"] for r in load_suite(suite)]
        exact = exact_leaks(train, probes)
        near = near_leaks(train, probes, threshold, cache_dir=args.cache)
        top = nearest(train, probes, cache_dir=args.cache)
        found += len(exact) + len(near)
        print(f"\n{suite} ({len(probes)} prompts): {len(exact)} exact, {len(near)} near "
              f"(cosine >= {threshold}); highest cosine per prompt: median "
              f"{np.median(top):.3f}, q90 {np.quantile(top, 0.9):.3f}, max {top.max():.3f}")
        for leak in exact + near[:args.show]:
            print(f"  {leak.kind} {leak.cosine:.3f} [{leak.train_set}] {leak.probe!r} ~ "
                  f"{leak.train[:100]!r}")
        order = np.argsort(-top)[:args.show]
        if not near:
            print("  closest (below the threshold):")
            for i in order:
                print(f"    {top[i]:.3f} {probes[i][:80]!r}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
