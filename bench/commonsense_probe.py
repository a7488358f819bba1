"""A quick screen of training mixes on the common-sense suite, before any fine-tuning.

Fine-tuning the demo's router takes minutes per run on 2 shared cores, so the mixes were first
screened with its starting point frozen: the mean-pooled features of MiniLM's first layer
(`ModelConfig()` defaults, the encoder the demo fine-tunes) under a logistic head fitted to the
soft labels (each row counted as a positive with weight `label` and a negative with weight
`1 - label`), on up to `--rows` training rows of each bundled dataset (seeded). It prints the
suite's AUROC (hard above easy, overall and short hard vs long easy) of each mix, for two
strengths of the head's L2 penalty. Only the suite is read: the held-out set is for reporting
the chosen router, never for choosing.

    python bench/commonsense_probe.py [--rows 2000] [--cache runs/cache/probe] [--out FILE.md]

A screen, not the result: the fine-tuned routers are measured by bench/commonsense.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gemm import cpu_summary  # noqa: E402  (bench/ is on sys.path when this script runs)

from confroute.dataset.commonsense import load_suite, suite_scores  # noqa: E402

PAIR, MMLU_PRO, BROAD, SMOLLM2 = ("routellm-judge", "mmlu-pro-difficulty", "broad-smollm2",
                                  "smollm2-uncertainty")
MIXES = {  # name: ((dataset, weight), ...)
    "routellm-judge": ((PAIR, 1.0),),
    "+ mmlu-pro-difficulty": ((PAIR, 1.0), (MMLU_PRO, 1.0)),
    "+ mmlu-pro-difficulty x2": ((PAIR, 1.0), (MMLU_PRO, 2.0)),
    "+ broad-smollm2": ((PAIR, 1.0), (BROAD, 1.0)),
    "+ both": ((PAIR, 1.0), (MMLU_PRO, 1.0), (BROAD, 1.0)),
    "smollm2-uncertainty": ((SMOLLM2, 1.0),),
    "smollm2 + broad-smollm2": ((SMOLLM2, 1.0), (BROAD, 1.0)),
    "smollm2 + broad-smollm2 x2": ((SMOLLM2, 1.0), (BROAD, 2.0)),
    "smollm2 + mmlu-pro-difficulty": ((SMOLLM2, 1.0), (MMLU_PRO, 1.0)),
    "smollm2 + both": ((SMOLLM2, 1.0), (MMLU_PRO, 1.0), (BROAD, 1.0)),
    "mmlu-pro-difficulty": ((MMLU_PRO, 1.0),),
    "broad-smollm2": ((BROAD, 1.0),),
}


def embed(texts: list[str]) -> np.ndarray:
    """(len(texts), 384) mean-pooled features of the untrained default router's encoder."""
    import torch

    from confroute.config import ModelConfig
    from confroute.training.model import RouterModel

    model = RouterModel(ModelConfig()).eval()
    encode, order = model.text_encoder(), np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.head.in_features), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            rows = order[start:start + 64]
            batch = encode([texts[i] for i in rows])
            out[rows] = model.embed(torch.tensor(batch["input_ids"]),
                                    torch.tensor(batch["attention_mask"])).numpy()
    return out


def training_rows(name: str, rows: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels (its own `auto` label rule) of up to `rows` train rows of `name`."""
    from confroute.config import DataConfig
    from confroute.dataset.schema import load

    path = cache / f"{name}-{rows}.npz"
    if not path.exists():
        frame = load(DataConfig(source=name)).frame
        frame = frame[frame["split"] == "train"]
        frame = frame.sample(min(rows, len(frame)), random_state=0)
        np.savez(path, X=embed([str(p) for p in frame["prompt"]]),
                 y=frame["label"].to_numpy(float))
    data = np.load(path)
    return data["X"], data["y"]


def screen(mix: tuple[tuple[str, float], ...], suite_x: np.ndarray, rows: int, cache: Path,
           c: float) -> dict:
    """suite_scores of a logistic head fitted to `mix` (soft labels as weights)."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for name, weight in mix:
        x, y = training_rows(name, rows, cache)
        xs += [x, x]
        ys += [np.ones(len(y)), np.zeros(len(y))]
        ws += [weight * y, weight * (1 - y)]
    x = np.vstack(xs)
    mean, std = x.mean(0), x.std(0) + 1e-6
    head = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / std, np.concatenate(ys),
                                                      sample_weight=np.concatenate(ws))
    return suite_scores(load_suite("suite"), head.decision_function((suite_x - mean) / std))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="train rows per dataset")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache/probe"))
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    suite_x = embed([r["prompt"] for r in load_suite("suite")])
    lines = ["| mix (suite only) | L2 C | AUROC overall | AUROC short-hard vs long-easy |",
             "|---|---|---|---|"]
    for name, mix in MIXES.items():
        for c in (0.01, 1.0):
            result = screen(mix, suite_x, args.rows, args.cache, c)
            lines.append(f"| {name} | {c} | {result['overall']:.3f} | "
                         f"{result['short_hard_vs_long_easy']:.3f} |")
            print(lines[-1], flush=True)
    if args.out:
        from confroute.files import write_text

        write_text(args.out, f"CPU: {cpu_summary()}; {args.rows} train rows per dataset\n\n"
                   + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
