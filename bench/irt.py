"""Every model's outcomes as supervision, and what a pair's score should estimate (MMLU-Pro).

Data: MMLU-Pro's per-question 0/1 correctness of 23 models (5-shot chain of thought), the three
pairs and the Llama-2 ladder of bench/ladders.py, on the same test questions: split by
`mmlu_pro.split` with seed 0 and test fraction 0.3 (sha256 of seed and question id), 10% of the
questions held out as the routers' validation split (training questions only), and no
MMLU-derived exclusion, as bench/ladders.py. Every router is confroute's own (the `micro`
preset, trained by `confroute.training.fit`, bench/irt_runs.py) and is scored on the test
questions only:

- `pair only`: one head per routed model, trained on the group's outcomes alone (bench/ladders.py's
  `confroute micro`);
- `aux heads`: the same with every other model of the file as an auxiliary head (21 for a pair);
- `irt`: routed and auxiliary models through an IRT head (`model.head_form irt`): a shared
  prompt discrimination and difficulty, an ability per model;
- `knn (tuned)`: not confroute's router but the baseline issue 26 asks for beside the prior: a
  kNN over the frozen MiniLM sentence embeddings the project's baselines use, its k, distance
  and weighting chosen on the validation questions (bench/irt_knn.py).

(a) Pairs, three pair scores from P(edge) and P(cloud): `edge failure` 1 - P(edge) (what the
    threshold rule ranks by); `gain` (P(cloud) - P(edge) + 1) / 2, what the cloud adds;
    `joint` P(cloud adequate and edge not) = P(cloud) (1 - P(edge)), the joint under the IRT
    assumption that outcomes are independent given the prompt. APGR, the gap to the
    per-category prior under the same score, within-category APGR and cost at 95% of the cloud's
    accuracy, each with a paired bootstrap CI; which questions each score sends up first.
(b) The Llama-2 ladder (7B -> 13B -> 70B): normalised area and cost at 95% of the 70B's
    accuracy under both rules (threshold, utility) with CIs against the prior.
(c) A new pair training never saw: a router trained on another pair and the remaining models
    (none of the new pair's), adapted to the new pair on a few hundred of its labelled training
    questions (`confroute.training.adapt.adapt`), against a pair router trained from scratch on
    the same questions and the prior fitted on them.

    python bench/irt.py --quick   # 3,000 questions, 100 resamples, 2 epochs
    python bench/irt.py           # every question, 1000 resamples (the results file's run)
    python bench/irt.py --no-transfer   # (a) and (b) only
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_args  # noqa: E402
import irt_knn  # noqa: E402
import irt_report  # noqa: E402
import irt_runs  # noqa: E402
import irt_stats as st  # noqa: E402
from ladders import LADDERS, PAIRS, PRICES  # noqa: E402

from confroute.dataset import mmlu_pro  # noqa: E402
from confroute.dataset.ratings import Ratings  # noqa: E402
from confroute.evaluation import ladder, priors  # noqa: E402

LADDER = LADDERS[0]  # Llama-2 7B -> 13B -> 70B
KNN = "knn (tuned)"
QUICK = {"max_rows": 3000, "bootstrap": 100, "epochs": 2}
FULL = {"max_rows": None, "bootstrap": 1000, "epochs": None}


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = parse(argv)
    started = time.time()
    data = Groups(args)
    runs = irt_runs.Runs(irt_runs.Settings(args.epochs, args.seed, cache=args.cache), _log)
    results: dict[str, Any] = {"pairs": [], "transfer": []}
    for pair in PAIRS:
        results["pairs"].append(pair_result(args, data, runs, pair))
    results["ladder"] = ladder_result(args, data, runs, LADDER)
    for i, pair in enumerate(PAIRS if args.transfer else ()):
        results["transfer"].append(transfer_result(args, data, runs, pair,
                                                   PAIRS[(i + 1) % len(PAIRS)]))
    results["runs"] = runs.info
    results["knn_choices"] = data.knn_choices
    irt_report.write(args, results, data.info, time.time() - started)
    _log(f"done in {time.time() - started:.0f} s; wrote {args.out / 'irt.md'}")
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_args.parser(__doc__, QUICK)
    bench_args.add_data_dir(parser, "--mmlu-pro-dir", mmlu_pro.ROOT_ENV, "mmlu_pro")
    parser.add_argument("--max-rows", type=int, help="at most this many questions (seeded)")
    parser.add_argument("--bootstrap", type=int)
    parser.add_argument("--epochs", type=int, help="max_epochs (full: the micro preset's)")
    parser.add_argument("--irt-dims", type=int, default=8, help="model.irt_dims of `irt`")
    parser.add_argument("--few-labels", type=int, default=300,
                        help="labelled questions of a new pair (transfer)")
    parser.add_argument("--no-transfer", dest="transfer", action="store_false",
                        help="skip (c), the new pairs (9 more routers to train)")
    parser.add_argument("--random-seeds", type=int, default=20)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    bench_args.add_seed_cache_out(parser)
    return bench_args.parse(parser, argv, "irt.py", QUICK, FULL)


class Groups:
    """The tables of model groups on one set of questions, split as bench/ladders.py splits."""

    def __init__(self, args: argparse.Namespace) -> None:
        import pandas as pd

        self.root = mmlu_pro.resolve_root(args.mmlu_pro_dir)
        self.models = mmlu_pro.available_models(self.root)
        qids = pd.read_parquet(self.root / "questions.parquet")["question_id"].to_numpy()
        ids = np.array([f"mmlu_pro/{q}" for q in qids])
        if args.max_rows and args.max_rows < len(ids):
            ids = ids[np.sort(np.random.default_rng(args.seed).permutation(len(ids))[
                :args.max_rows])]
        self.ids = set(ids)
        self.args = args
        self._embeddings: dict[str, np.ndarray] | None = None
        self.knn_choices: list[dict[str, Any]] = []
        self.info = {"questions": len(ids), "models_in_file": len(self.models),
                     "split": f"sha256 of seed {args.seed} and question id; test fraction "
                              f"{args.test_fraction}, val fraction {args.val_fraction} (the "
                              "routers' early stopping); no MMLU-derived exclusion"}

    def table(self, models: tuple[str, ...], auxiliary: bool = True) -> Ratings:
        """`models` (cheapest first) on the questions all of them answered, every other model
        of the file as auxiliary ratings (NaN where missing) when `auxiliary`."""
        others = [m for m in self.models if m not in models] if auxiliary else []
        prices = {m: {"input_per_mtok": PRICES[m][0], "output_per_mtok": PRICES[m][1]}
                  for m in models}
        table = mmlu_pro.split(mmlu_pro.load(models, prices, self.root, others), self.args.seed,
                               self.args.test_fraction, self.args.val_fraction)
        table = table.subset(np.flatnonzero(np.isin(table.ids, list(self.ids))))
        if table.models != list(models):
            raise ValueError(f"{models} are not cheapest first by list price: {table.models}")
        return table

    def embeddings(self, table: Ratings) -> np.ndarray:
        """Sentence embeddings [n, 384] of the table's questions: the run's questions embedded
        once, in file order (cached by their texts)."""
        if self._embeddings is None:
            import pandas as pd

            from confroute.evaluation.embeddings import embed

            frame = pd.read_parquet(self.root / "questions.parquet")
            ids = np.array([f"mmlu_pro/{q}" for q in frame["question_id"]])
            keep = np.flatnonzero(np.isin(ids, list(self.ids)))
            texts = [mmlu_pro.format_prompt(frame["question"].iloc[i], frame["options"].iloc[i])
                     for i in keep]
            vectors = embed(texts, cache_dir=self.args.cache / "embeddings")
            self._embeddings = dict(zip(ids[keep], vectors, strict=True))
        return np.stack([self._embeddings[i] for i in table.ids])

    def knn(self, table: Ratings) -> np.ndarray:
        """The tuned kNN's P(model correct) [test, K] on `table`'s splits, its choice logged."""
        probs, choice = irt_knn.tuned_knn(self.embeddings(table), table.ratings,
                                          np.asarray(table.splits))
        self.knn_choices.append({"models": list(table.models), "train_val_questions": int(
            (np.asarray(table.splits) != "test").sum()), **choice})
        _log(f"knn (tuned) on {' -> '.join(table.models)}: {choice}")
        return probs

    def prior(self, table: Ratings, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-category prior P(model correct) [test, K], fitted on `rows` (default: every
        non-test question of the table)."""
        fit_rows = np.flatnonzero(table.splits != "test") if rows is None else rows
        test = table.splits == "test"
        return np.stack([priors.GroupPrior().fit(table.categories[fit_rows],
                                                 table.ratings[fit_rows, k])
                         .score(table.categories[test]) for k in range(len(table.models))], 1)


def specs(models: tuple[str, ...], table: Ratings, dims: int) -> list[irt_runs.Spec]:
    aux = tuple(table.auxiliary)
    return [irt_runs.Spec("pair only" if len(models) == 2 else "ladder only", models),
            irt_runs.Spec("aux heads", models, aux),
            irt_runs.Spec("irt", models, aux, "irt", dims)]


def test_probs(runs: irt_runs.Runs, spec: irt_runs.Spec, table: Ratings) -> np.ndarray:
    model = runs.model(spec, table if spec.auxiliary else table_without_aux(table))
    test = np.flatnonzero(table.splits == "test")
    return irt_runs.adequacy(model, [table.prompts[i] for i in test])


def table_without_aux(table: Ratings) -> Ratings:
    return dataclasses.replace(table, auxiliary=[], auxiliary_ratings=None)


def test_outcomes(table: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test questions' outcomes [n, K], costs [n, K] (USD) and categories [n]."""
    test = table.splits == "test"
    return table.ratings[test], table.costs()[test], table.categories[test]


def router_probs(args, data: Groups, runs: irt_runs.Runs, models: tuple[str, ...],
                 table: Ratings) -> dict[str, np.ndarray]:
    """Each router's P(model adequate) [test, K] on `table`: the three specs and the tuned kNN."""
    probs = {s.name: test_probs(runs, s, table) for s in specs(models, table, args.irt_dims)}
    probs[KNN] = data.knn(table)
    return probs


def pair_result(args, data: Groups, runs: irt_runs.Runs, pair: tuple[str, str]) -> dict:
    table = data.table(pair)
    q, costs, cats = test_outcomes(table)
    probs, prior = router_probs(args, data, runs, pair, table), data.prior(table)
    out: dict[str, Any] = {"pair": list(pair), "test_questions": len(q),
                           "accuracy": q.mean(0).tolist(), "scores": {}}
    for choice, score in st.CHOICES.items():
        references = {"prior": score(prior)}
        rows = {name: st.pair_stats(score(p), references, q, costs, cats, args.bootstrap,
                                    args.seed) for name, p in probs.items()}
        rows["prior"] = st.pair_stats(references["prior"], {}, q, costs, cats, args.bootstrap,
                                      args.seed)
        out["scores"][choice] = rows
        _log(f"{' -> '.join(pair)} [{choice}]: " + ", ".join(
            f"{k} {v['apgr']:.3f}" for k, v in rows.items()))
    out["oracle"] = st.pair_stats(q[:, 1] - q[:, 0], {}, q, costs, cats, 0, args.seed)
    out["random"] = st.random_pair(q, costs, cats, args.random_seeds)
    return out


def ladder_result(args, data: Groups, runs: irt_runs.Runs, models: tuple[str, ...]) -> dict:
    table = data.table(models)
    q, costs, cats = test_outcomes(table)
    probs, prior = router_probs(args, data, runs, models, table), data.prior(table)
    out: dict[str, Any] = {"ladder": list(models), "test_questions": len(q),
                           "accuracy": q.mean(0).tolist(),
                           "cost_share_of_best": (costs.mean(0) / costs.mean(0)[-1]).tolist()}
    for policy in ladder.POLICIES:
        res = {name: st.ladder_stats(p, prior, q, costs, cats, policy, args.bootstrap,
                                     args.seed) for name, p in probs.items()}
        res["prior"] = st.ladder_stats(prior, None, q, costs, cats, policy, 0, args.seed)
        res["oracle"] = st.ladder_stats(ladder.oracle_probs(q), None, q, costs, cats, policy, 0,
                                        args.seed)
        res["random"] = ladder.random_reference(q, costs, args.random_seeds, policy=policy)
        out[policy] = res
        _log(f"{' -> '.join(models)} [{policy}]: " + ", ".join(
            f"{k} area {v['area']:.3f} cost@95 {v['cost_at_95']:.3f}" for k, v in res.items()))
    return out


def transfer_result(args, data: Groups, runs: irt_runs.Runs, pair: tuple[str, str],
                    base_pair: tuple[str, str]) -> dict:
    """Adapt routers trained on `base_pair` and the other models (none of `pair`) to `pair`."""
    from confroute.training.adapt import adapt

    base_table = data.table(base_pair)
    base_table = table_without_models(base_table, pair)
    table = data.table(pair)
    q, costs, cats = test_outcomes(table)
    few = np.sort(np.random.default_rng(args.seed).permutation(
        np.flatnonzero(table.splits == "train"))[:args.few_labels])
    prompts, targets = [table.prompts[i] for i in few], table.ratings[few]
    test_prompts = [table.prompts[i] for i in np.flatnonzero(table.splits == "test")]
    label = f"{len(few)} labels"
    probs: dict[str, np.ndarray] = {}
    seconds = {}
    for spec in specs(base_pair, base_table, args.irt_dims)[1:]:
        base = runs.model(dataclasses.replace(spec, name=f"{spec.name} without "
                                                        f"{' / '.join(pair)}"), base_table)
        started = time.perf_counter()
        adapted = adapt(base, prompts, targets, pair)
        seconds[spec.name] = round(time.perf_counter() - started, 2)
        probs[f"{spec.name}, adapted on {label}"] = irt_runs.adequacy(adapted, test_prompts)
    scratch = few_table(table, few)
    probs[f"pair only, trained on {label}"] = test_probs(
        runs, irt_runs.Spec(f"pair only on {label}", pair), scratch)
    probs[f"{KNN}, on {label}"] = data.knn(scratch)
    for spec in specs(pair, table, args.irt_dims)[::2]:  # in-distribution references
        probs[f"{spec.name}, all training questions"] = test_probs(runs, spec, table)
    prior_few = data.prior(table, few)
    out: dict[str, Any] = {"pair": list(pair), "base_pair": list(base_pair),
                           "few_labels": len(few), "adapt_seconds": seconds,
                           "test_questions": len(q), "scores": {}}
    for choice, score in st.CHOICES.items():
        references = {"prior": score(data.prior(table)), f"prior on {label}": score(prior_few)}
        rows = {name: st.pair_stats(score(p), references, q, costs, cats, args.bootstrap,
                                    args.seed) for name, p in probs.items()}
        rows[f"prior on {label}"] = st.pair_stats(references[f"prior on {label}"], {}, q,
                                                  costs, cats, 0, args.seed)
        out["scores"][choice] = rows
        _log(f"new pair {' -> '.join(pair)} [{choice}]: " + ", ".join(
            f"{k} {v['apgr']:.3f}" for k, v in rows.items()))
    return out


def table_without_models(table: Ratings, models: tuple[str, ...]) -> Ratings:
    """`table` with `models` dropped from its auxiliary ratings (a router that never saw them)."""
    keep = [k for k, m in enumerate(table.auxiliary) if m not in models]
    return dataclasses.replace(table, auxiliary=[table.auxiliary[k] for k in keep],
                               auxiliary_ratings=np.asarray(table.auxiliary_ratings)[:, keep])


def few_table(table: Ratings, few: np.ndarray) -> Ratings:
    """The pair's `few` labelled questions (every tenth held out for validation), test rows
    kept (write_table leaves them out, scoring reads them), no auxiliary models."""
    out = table_without_aux(table)
    splits = np.array(out.splits, dtype=object)
    splits[splits != "test"] = "unused"
    splits[few] = np.where(np.arange(len(few)) % 10 == 9, "val", "train")
    keep = np.flatnonzero(splits != "unused")
    out = out.subset(keep)
    out.splits = splits[keep].astype(str)
    return out


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    bench_args.run(main, "irt.py")
