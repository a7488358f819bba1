"""The common-sense suite as a benchmark: do routers rank hard prompts above easy ones?

Scores every artifact on the suite and on the held-out set (confroute/dataset/commonsense.py)
and prints, per set, AUROC of hard above easy overall and between the short hard (<= 12 words)
and the long easy (> 40 words) prompts, beside length alone, a shape prior and random; then the
per-family AUROC (each family against every prompt of the other difficulty). The CPU is named
because the scores are computed with onnxruntime here (the figures themselves do not depend on
it beyond float rounding).

    python bench/commonsense.py runs/demo/artifact runs/demo/smollm2/artifact [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gemm import cpu_summary  # noqa: E402  (bench/ is on sys.path when this script runs)

from confroute.dataset.commonsense import SUITES, baselines, load_suite, suite_scores  # noqa: E402


def score_artifact(path: Path, prompts: list[str]) -> np.ndarray:
    from confroute.runtime import Router

    return Router.load(path).score(prompts)


def fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def tables(scored: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Markdown lines: one summary table over sets, then a per-family table per set."""
    lines = ["| set | ranker | AUROC overall | AUROC short-hard vs long-easy |",
             "|---|---|---|---|"]
    family_lines = []
    for name, rankers in scored.items():
        rows = load_suite(name)
        results = {ranker: suite_scores(rows, s) for ranker, s in rankers.items()}
        for ranker, result in results.items():
            lines.append(f"| {name} ({len(rows)}) | {ranker} | {fmt(result['overall'])} | "
                         f"{fmt(result['short_hard_vs_long_easy'])} |")
        names = list(results)
        family_lines += ["", f"Per family, {name}: AUROC of the family against every prompt of "
                         "the other difficulty", "",
                         "| family | difficulty | n | " + " | ".join(names) + " |",
                         "|---|---|---|" + "---|" * len(names)]
        for family in next(iter(results.values()))["families"]:
            members = [r for r in rows if r["family"] == family]
            family_lines.append(
                f"| {family} | {members[0]['difficulty']} | {len(members)} | " +
                " | ".join(fmt(results[n]["families"][family]) for n in names) + " |")
    return lines + family_lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="+", type=Path, help="router artifact folders")
    parser.add_argument("--names", nargs="*", help="a label per artifact (default: its path)")
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args()
    names = args.names or [str(p) for p in args.artifacts]
    if len(names) != len(args.artifacts):
        parser.error(f"--names gives {len(names)} labels for {len(args.artifacts)} artifacts")
    scored: dict[str, dict[str, np.ndarray]] = {}
    for suite in SUITES:
        prompts = [r["prompt"] for r in load_suite(suite)]
        scored[suite] = {n: score_artifact(p, prompts) for n, p in zip(names, args.artifacts,
                                                                       strict=True)}
        scored[suite].update(baselines(load_suite(suite)))
    text = "\n".join([f"CPU: {cpu_summary()}", "", *tables(scored)]) + "\n"
    print(text)
    if args.out:
        from confroute.files import write_text

        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
