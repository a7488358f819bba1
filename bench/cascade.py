"""The cascade as a benchmark: edge-failure detection and quality vs cost, before and after the
edge answers (confroute/evaluation/cascade.py has the protocol).

Scores the val split of each bundled table that carries the edge's evidence (SmolLM2-135M's
greedy log-prob, semantic entropy and correctness) with a router artifact, and prints: AUROC of
the edge's failure, pooled and within each source, for the router alone and the router plus the
edge's log-prob, SE and both (cross-fitted), against the issue's goals (0.65 before generation,
0.72 with the cascade); then quality and cost at target cloud shares for the cascade, the
router alone, the per-source prior, random and the oracle. The CPU is named because the router
scores are computed with onnxruntime here (the figures depend on it only through rounding).

    python bench/cascade.py runs/demo/smollm2/artifact [--out bench/results/cascade.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gemm import cpu_summary  # noqa: E402  (bench/ is on sys.path when this script runs)

from confroute.evaluation import cascade  # noqa: E402

TABLES = ("smollm2-uncertainty", "broad-smollm2")
PROTOCOL = ("Rows: each table's val split (the router trained on smollm2-uncertainty's train "
            "split only). Target: the edge's greedy answer is wrong. Router + X: a logistic "
            "model over [logit(router score), -mean token log-prob, semantic entropy], "
            "cross-fitted over 5 seeded folds of those rows (confroute.evaluation.cascade). "
            "Within source: mean AUROC over the sources holding both outcomes (nan: one "
            "outcome only), CI by bootstrap within sources; the per-source prior is 0.5 "
            "there by construction. The curve: (t1, t2) calibrated per fold on the other "
            "folds to each cloud share, stage 2 on router + both; no cloud outcome exists for "
            "these prompts, so the cloud is assumed right.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="router artifact directory")
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--measure", default="both", choices=["logprob", "se", "both"],
                        help="the cascade's stage-2 signals in the curve table")
    parser.add_argument("--edge-cost", type=float, default=0.1,
                        help="an edge generation's cost in cloud calls")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cascade.md")
    args = parser.parse_args(argv)

    import pandas as pd

    from confroute.dataset.builtin import builtin_path
    from confroute.runtime import Router

    router = Router.load(args.artifact)
    tables = {name: pd.read_parquet(builtin_path(name)) for name in args.tables}
    result = cascade.evaluate(router, tables, measure=args.measure, edge_cost=args.edge_cost)
    m = router.manifest
    about = (f"Router: trained on {m.get('training_data', {}).get('source', '?')} (label "
             f"{m.get('label_rule', {}).get('rule', '?')}), encoder "
             f"{m.get('base_encoder', {}).get('name', '?')}")
    text = "\n".join([f"CPU: {cpu_summary()}", about, "", PROTOCOL, "",
                      cascade.markdown(result)]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(cascade.jsonable(result), indent=1) + "\n")


if __name__ == "__main__":
    main()
