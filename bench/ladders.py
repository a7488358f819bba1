"""Routing among model pairs and ladders on MMLU-Pro's real outcomes, and transfer to new pairs.

Data: /work/shared/data/mmlu_pro (TIGER-AI-Lab/MMLU-Pro, Apache-2.0): per-question 0/1
correctness of 23 models, 5-shot chain of thought. Questions are split by a fixed seed and their id
(confroute.dataset.mmlu_pro.split; 30% test); every router and prior is fitted on the training
questions only and scored on the test questions.

Routers, each predicting P(model correct) per question: `heads` and `irt`
(bench/ladder_router.py: scikit-learn logistic heads on frozen TF-IDF or MiniLM features), and
`confroute micro` (bench/ladder_confroute.py: the product's own router, one encoder with K heads
trained per pair or ladder with `confroute.training.fit` on the group's training questions,
exported, loaded with `Router.load` and scored with `.adequacy`; `--confroute micro,default`
adds the fine-tuned MiniLM-first-layer default). The policy (confroute.policy) sends a question to
the cheapest model whose predicted P clears a shared threshold, else to the top model; sweeping it
traces the curve (confroute.evaluation.ladder). References on the same test questions: per-category
prior
(P(model correct | MMLU-Pro category) from the training questions, smoothed toward the global
rate, through the same policy), random, oracle and each model alone.

(a) pairs: APGR, CPT(50%), the gap to the prior with a paired bootstrap CI.
(b) ladders: normalised area (0 = cheapest alone, 1 = best alone) and the cost at which 95% of the
    best model's accuracy is reached, as a share of its cost, with bootstrap CIs.
(c) transfer: a model-identity head trained on the other models' outcomes scores a held-out pair
    from its names only, or after a few hundred of its labels, vs a head trained on that pair
    (scikit-learn heads only; a confroute router trained on other models is not measured).

    python bench/ladders.py --quick   # CI size: 3,000 questions, TF-IDF, 100 resamples, 1 epoch
    python bench/ladders.py --features tfidf   # the README's run: all questions, 1000 resamples
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_args  # noqa: E402
import ladder_confroute as lc  # noqa: E402
import ladder_report  # noqa: E402
import ladder_router as lr  # noqa: E402

from confroute.dataset import mmlu_pro  # noqa: E402
from confroute.dataset.ratings import Ratings, parse_prices  # noqa: E402
from confroute.evaluation import ladder, metrics, priors  # noqa: E402

# USD per million tokens (input, output), declared once in examples/mmlu_pro_prices.yaml (its
# comment says where each price is from) and read here, as `confroute mmlu-pro --prices` reads it.
PRICES = {m: (p.input_per_mtok, p.output_per_mtok)
          for m, p in parse_prices(ROOT / "examples" / "mmlu_pro_prices.yaml").items()}
PRICE_SOURCE = ("Together AI (Llama-2 size tiers, Llama-3.1 Turbo, Mistral, Mixtral), Azure AI "
                "(Phi-3-mini), Google AI (Gemini 1.5 Pro-002): 2024 public list prices as "
                "recalled, not re-checked offline")
PAIRS = (("Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct"),
         ("Phi-3-mini-4k-instruct", "gemini-1.5-pro-002"),
         ("Mistral-7B-Instruct-v0.2", "Mixtral-8x7B-Instruct-v0.1"))
LADDERS = (("Llama-2-7b-hf", "Llama-2-13b-hf", "Llama-2-70b-hf"),
           ("Phi-3-mini-4k-instruct", "Meta-Llama-3.1-70B-Instruct", "gemini-1.5-pro-002"))
MODELS = sorted({m for group in (*PAIRS, *LADDERS) for m in group})
CURVE_POINTS = 201
QUICK = {"max_rows": 3000, "features": "tfidf", "bootstrap": 100, "random_seeds": 5,
         "confroute_epochs": 1}
FULL = {"max_rows": None, "features": "minilm", "bootstrap": 1000, "random_seeds": 20,
        "confroute_epochs": None}


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's API notices
    args = parse(argv)
    started = time.time()
    data = Universe(args)
    _log(f"{len(data.ids)} questions ({(data.split == 'train').sum()} train, "
         f"{(data.split == 'test').sum()} test), {args.features} features "
         f"({time.time() - started:.0f} s)")
    heads = {m: data.fit_head(m) for m in MODELS}
    _log(f"{len(heads)} heads fitted ({time.time() - started:.0f} s)")
    irt = data.fit_shared(list(data.outcomes))
    _log(f"IRT head fitted on {len(data.outcomes)} models ({time.time() - started:.0f} s)")
    routers: dict[str, Callable[[tuple[str, ...], np.ndarray], np.ndarray]] = {
        "heads": lambda group, ids: np.stack([lr.proba(heads[m], data.features(ids))
                                              for m in group], axis=1),
        "irt": lambda group, ids: np.stack([irt.proba(data.features(ids), m) for m in group],
                                           axis=1)}
    product = lc.ProductRouters(lc.Settings(
        args.confroute, args.confroute_encoder, args.confroute_epochs,
        seed=args.seed, cache=args.cache, keep_runs=args.keep_runs), data.table, _log)
    for preset in args.confroute:
        routers[f"confroute {preset}"] = functools.partial(product.adequacy, preset)
    results = {"pairs": [pair_result(args, data, routers, p) for p in PAIRS],
               "ladders": [ladder_result(args, data, routers, lad) for lad in LADDERS],
               "transfer": [transfer_result(args, data, heads, p) for p in PAIRS],
               "confroute": product.info}
    ladder_report.write(args, results, {m: PRICES[m] for m in MODELS}, PRICE_SOURCE,
                        data.info, time.time() - started)
    _log(f"done in {time.time() - started:.0f} s; wrote {args.out / 'ladders.md'}")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_args.parser(__doc__, QUICK)
    bench_args.add_data_dir(parser, "--mmlu-pro-dir", mmlu_pro.ROOT_ENV, "mmlu_pro")
    parser.add_argument("--features", choices=("minilm", "tfidf"))
    parser.add_argument("--max-rows", type=int, help="at most this many questions (seeded)")
    parser.add_argument("--bootstrap", type=int)
    parser.add_argument("--random-seeds", type=int)
    parser.add_argument("--few-labels", type=int, default=300,
                        help="labels of the new pair's edge model in the few-shot transfer")
    parser.add_argument("--confroute", type=_presets, default=["micro"],
                        help="confroute presets trained per pair and ladder, comma-separated, "
                             f"from {', '.join(lc.PRESETS)}; 'none' for none")
    parser.add_argument("--confroute-encoder", default="minilm",
                        help="encoder the confroute routers distil (micro) or fine-tune (default)")
    parser.add_argument("--confroute-epochs", type=int, help="max_epochs (full: the preset's)")
    parser.add_argument("--confroute-val-fraction", type=float, default=0.1,
                        help="share of the questions (training questions only, by the split's "
                             "hash) held out as the confroute routers' validation split")
    parser.add_argument("--keep-runs", type=Path,
                        help="keep the confroute runs and artifacts here (default: discarded)")
    parser.add_argument("--test-fraction", type=float, default=0.3)
    bench_args.add_seed_cache_out(parser)
    return bench_args.parse(parser, argv, "ladders.py", QUICK, FULL)


def _presets(text: str) -> list[str]:
    names = [] if text.strip() in ("", "none") else [t.strip() for t in text.split(",")]
    unknown = [n for n in names if n not in lc.PRESETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown preset(s) {unknown}; choose from {lc.PRESETS}")
    return names


class Universe:
    """Every MMLU-Pro question (or a seeded subsample): text, category, split, features, and
    each model's outcomes (NaN where missing)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import pandas as pd

        root = mmlu_pro.resolve_root(args.mmlu_pro_dir)
        questions = pd.read_parquet(root / "questions.parquet")
        outcomes = pd.read_parquet(root / "outcomes.parquet").set_index("question_id")
        texts = [mmlu_pro.format_prompt(q, o) for q, o in zip(questions["question"],
                                                             questions["options"], strict=True)]
        all_ids = np.array([f"mmlu_pro/{q}" for q in questions["question_id"]])
        split = mmlu_pro.assign_splits(all_ids, args.seed, args.test_fraction)
        # features see the whole file so the embedding cache is shared by every size
        self.features = lr.Features(args.features, all_ids, texts, all_ids[split == "train"],
                                    args.cache)
        keep = np.arange(len(all_ids))
        if args.max_rows and args.max_rows < len(keep):
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(keep))[:args.max_rows])
        self.ids, self.split = all_ids[keep], split[keep]
        self.texts = [texts[i] for i in keep]
        self.categories = questions["category"].astype(str).to_numpy()[keep]
        qid = questions["question_id"].to_numpy()[keep]
        self.outcomes = {str(m): outcomes.loc[qid, m].astype("float64").to_numpy()
                         for m in outcomes.columns}
        self.seed, self.root, self.test_fraction = args.seed, root, args.test_fraction
        self.val_fraction = args.confroute_val_fraction
        self.tables: dict[tuple[str, ...], Ratings] = {}
        self.info = {"questions": len(self.ids), "features": args.features,
                     "split": f"sha256 of seed {args.seed} and question id; test fraction "
                              f"{args.test_fraction}", "max_rows": args.max_rows}

    def table(self, models: tuple[str, ...]) -> Ratings:
        """The group's ratings table on this universe's questions (list prices, cheapest first),
        split by the same seed: its test questions are `rows("test", *models)`, and
        `val_fraction` of the questions (training ones) are its val split."""
        if models not in self.tables:
            table = mmlu_pro.split(mmlu_pro.load(models, {m: {
                "input_per_mtok": PRICES[m][0], "output_per_mtok": PRICES[m][1]}
                for m in models}, self.root), self.seed, self.test_fraction, self.val_fraction)
            table = table.subset(np.flatnonzero(np.isin(table.ids, self.ids)))
            test = table.ids[table.splits == "test"]
            if set(test) != set(self.ids[self.rows("test", *models)]):
                raise AssertionError(f"{models}: the table's test questions differ from the "
                                     "bench's")
            self.tables[models] = table
        return self.tables[models]

    def rows(self, split: str, *models: str) -> np.ndarray:
        known = np.all([np.isfinite(self.outcomes[m]) for m in models], axis=0)
        return np.flatnonzero((self.split == split) & known)

    def fit_head(self, model: str):
        rows = self.rows("train", model)
        return lr.head(self.features(self.ids[rows]), self.outcomes[model][rows], self.seed)

    def fit_shared(self, models: list[str]) -> lr.SharedHead:
        train = self.rows("train")
        return lr.SharedHead().fit(self.features(self.ids[train]),
                                   np.stack([self.outcomes[m][train] for m in models], 1), models)

    def prior(self, model: str, rows: np.ndarray) -> np.ndarray:
        train = self.rows("train", model)
        fit = priors.GroupPrior().fit(self.categories[train], self.outcomes[model][train])
        return fit.score(self.categories[rows])


def pair_result(args, data: Universe, routers: dict, pair: tuple[str, str]) -> dict[str, Any]:
    """APGR of each router and the per-category prior on one pair's test questions, under both
    policies: threshold (score = -P(edge)) and utility (score = P(cloud) - P(edge))."""
    edge, cloud = pair
    rows = data.rows("test", edge, cloud)
    qe, qc = data.outcomes[edge][rows], data.outcomes[cloud][rows]
    p = {name: list(fn(pair, data.ids[rows]).T) for name, fn in routers.items()}
    p["prior"] = [data.prior(m, rows) for m in pair]
    out = {"pair": list(pair), "test_questions": len(rows), "accuracy": [qe.mean(), qc.mean()],
           "oracle": metrics.summary(metrics.sweep(metrics.oracle_scores(qe, qc), qe, qc),
                                     (0.5,))}
    for policy in ladder.POLICIES:
        scores = {k: -v[0] if policy == "threshold" else v[1] - v[0] for k, v in p.items()}
        res: dict[str, Any] = {}
        for name, s in scores.items():
            res[name] = {**metrics.summary(metrics.sweep(s, qe, qc), (0.5,)),
                         "ci": metrics.bootstrap(s, qe, qc, args.bootstrap, args.seed, (0.5,))}
            if name != "prior":
                res[name]["minus_prior"] = priors.gap(s, scores["prior"], qe, qc,
                                                      args.bootstrap, args.seed)
        out[policy] = res
        _log(f"pair {edge} -> {cloud} ({policy}): APGR " + ", ".join(
            f"{k} {v['apgr']:.3f}" for k, v in res.items()))
    return out


def ladder_result(args, data: Universe, routers: dict, models: tuple[str, ...]
                  ) -> dict[str, Any]:
    """Quality-vs-cost curves of the routers and references on one ladder's test questions."""
    rows = data.rows("test", *models)
    quality = np.stack([data.outcomes[m][rows] for m in models], axis=1)
    costs = _costs(data.table(models), models, data.ids[rows])
    probs = {name: fn(models, data.ids[rows]) for name, fn in routers.items()}
    probs["prior"] = np.stack([data.prior(m, rows) for m in models], axis=1)
    probs["oracle"] = ladder.oracle_probs(quality)
    out: dict[str, Any] = {"ladder": list(models), "test_questions": len(rows),
                           "accuracy": quality.mean(0).tolist(),
                           "cost_share_of_best": (costs.mean(0) / costs.mean(0)[
                               int(np.argmax(quality.mean(0)))]).tolist()}
    for policy in ladder.POLICIES:
        res: dict[str, Any] = {}
        for name, p in probs.items():
            c = ladder.curve(p, quality, costs, policy=policy)
            keep = np.unique(np.linspace(0, len(c.cost) - 1, min(CURVE_POINTS, len(c.cost)))
                             .round().astype(int))  # thinned: the JSON stays small
            res[name] = {**ladder.summary(c), "curve": {"cost": c.cost[keep].tolist(),
                                                        "quality": c.quality[keep].tolist()}}
            if name in routers:
                res[name]["ci"] = ladder.bootstrap(p, quality, costs, args.bootstrap, args.seed,
                                                   reference=probs["prior"], policy=policy)
        res["random"] = ladder.random_reference(quality, costs, args.random_seeds,
                                                policy=policy)
        out[policy] = res
        _log(f"ladder {' -> '.join(models)} ({policy}): " + ", ".join(
            f"{k} area {v['area']:.3f} cost@95 {v['cost_at_95']:.3f}" for k, v in res.items()))
    return out


def transfer_result(args, data: Universe, heads: dict, pair: tuple[str, str]) -> dict[str, Any]:
    """A head over the other models' outcomes scores the held-out pair vs a pair-specific head.

    Threshold policy: score = -P(edge). Utility policy: P(cloud) - P(edge); with names only it is
    sigmoid(z + a_cloud) - sigmoid(z + a_edge), which ranks by closeness of the shared logit z to
    the two abilities, and is constant when both names map to the same training model."""
    shared = data.fit_shared(others := [m for m in data.outcomes if m not in pair])
    rows = data.rows("test", *pair)
    qe, qc = (data.outcomes[m][rows] for m in pair)
    x, cats = data.features(data.ids[rows]), data.categories[rows]
    labelled = np.random.default_rng(args.seed).permutation(data.rows("train", *pair))[
        :args.few_labels]
    xl, cl = data.features(data.ids[labelled]), data.categories[labelled]
    few = f"{len(labelled)} labels"
    probs = {"pair-specific": [lr.proba(heads[m], x) for m in pair],
             "names only": [shared.zero_shot(x, m) for m in pair],
             few: [shared.few_shot(xl, data.outcomes[m][labelled], cl, x, cats) for m in pair],
             f"pair-specific on {few}": [lr.proba(lr.head(xl, data.outcomes[m][labelled]), x)
                                         for m in pair]}
    out: dict[str, Any] = {"pair": list(pair), "trained_on": others, "test_questions": len(rows),
                           "few_labels": len(labelled)}
    for policy in ladder.POLICIES:
        scores = {k: -v[0] if policy == "threshold" else v[1] - v[0] for k, v in probs.items()}
        res: dict[str, Any] = {"apgr": {}, "minus_pair_specific": {}}
        for name, sc in scores.items():
            res["apgr"][name] = metrics.apgr(metrics.sweep(sc, qe, qc))
            if name != "pair-specific":
                res["minus_pair_specific"][name] = priors.gap(
                    sc, scores["pair-specific"], qe, qc, args.bootstrap, args.seed)
        out[policy] = res
        _log(f"transfer to {' -> '.join(pair)} ({policy}): " + ", ".join(
            f"{k} {v:.3f}" for k, v in res["apgr"].items()))
    return out


def _costs(table: Ratings, models: tuple[str, ...], ids: np.ndarray) -> np.ndarray:
    """USD per question [n, K] from the list prices and the table's token counts, columns in the
    order of `models`."""
    position = {i: r for r, i in enumerate(table.ids)}
    order = [table.models.index(m) for m in models]
    return table.costs()[[position[i] for i in ids]][:, order]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    bench_args.run(main, "ladders.py")
