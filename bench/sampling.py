"""Sampling throughput of the local backend (the cost of making uncertainty labels).

Answers the same prompts N times with confroute's sampler (prefill once per prompt, KV cache
shared by the N samples + a greedy answer, finished rows leave the batch) at several batch
sizes, and with a plain `model.generate(num_return_sequences=N)` per prompt for comparison.
Prints generated tokens/s and prompts/s. Ratios within one run are what to quote: this VM's
absolute speed varies with load.

    .venv/bin/python bench/sampling.py [--model smollm2] [--prompts 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from gemm import cpu_summary  # noqa: E402  (bench/ is on sys.path when this script runs)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = ["What is {a} + {b}?", "What is {a} * {b}?",
             "Tom has {a} apples and buys {b} more. How many apples does he have now?",
             "A box holds {a} pens. How many pens are in {b} boxes?"]


def prompts(count: int) -> list[str]:
    return [QUESTIONS[i % len(QUESTIONS)].format(a=7 + 13 * i, b=3 + i) +
            "\nGive the final answer only." for i in range(count)]


def ours(backend, texts: list[str], cfg) -> tuple[float, int]:
    from confroute.labelling.sampling import prompt_seed

    before = backend.generated_tokens
    start = time.perf_counter()
    backend.generate(texts, cfg, [prompt_seed(cfg.seed, t) for t in texts])
    return time.perf_counter() - start, backend.generated_tokens - before


def plain_generate(backend, texts: list[str], cfg) -> tuple[float, int]:
    """transformers' own sampler, one prompt at a time, N return sequences + a greedy call."""
    import torch

    tok, model = backend.tokenizer, backend.model
    tokens = 0
    start = time.perf_counter()
    for text in texts:
        ids = tok(backend.chat_text(text, cfg) + cfg.answer_prefix, return_tensors="pt",
                  add_special_tokens=False)
        with torch.inference_mode():
            for kwargs in ({"do_sample": True, "temperature": cfg.temperature, "top_k": cfg.top_k,
                            "num_return_sequences": cfg.n}, {"do_sample": False}):
                out = model.generate(**ids, max_new_tokens=cfg.max_new_tokens,
                                     pad_token_id=tok.pad_token_id, **kwargs)
                new = out[:, ids["input_ids"].shape[1]:]
                tokens += int((new != tok.pad_token_id).sum())
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,8,16")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    args = parser.parse_args()

    from confroute.labelling.local import LocalBackend
    from confroute.labelling.sampling import SamplingConfig

    start = time.perf_counter()
    backend = LocalBackend(args.model, cache_dir=args.cache, threads=args.threads)
    print(f"model {args.model} loaded in {time.perf_counter() - start:.1f} s; "
          f"{args.prompts} prompts, N={args.n} + greedy, max {args.max_tokens} tokens, "
          f"{args.threads} thread(s)")
    texts = prompts(args.prompts)
    rows = []
    backend.generate(texts[:1], SamplingConfig(n=1, max_new_tokens=2), [0])  # warm-up
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        cfg = SamplingConfig(n=args.n, temperature=0.5, max_new_tokens=args.max_tokens,
                             batch_size=batch, answer_prefix="The answer is",
                             stop_at_newline=True)
        seconds, tokens = ours(backend, texts, cfg)
        rows.append((f"confroute sampler, batch {batch}", seconds, tokens))
    cfg = SamplingConfig(n=args.n, temperature=0.5, max_new_tokens=args.max_tokens,
                         answer_prefix="The answer is")
    seconds, tokens = plain_generate(backend, texts, cfg)
    rows.append(("transformers generate (no newline stop)", seconds, tokens))
    print(f"CPU: {cpu_summary()}, {os.cpu_count()} cores")
    print(f"{'method':42} {'seconds':>8} {'gen tokens':>10} {'tokens/s':>9} {'prompts/s':>9}")
    for name, seconds, tokens in rows:
        print(f"{name:42} {seconds:8.1f} {tokens:10d} {tokens / seconds:9.1f} "
              f"{len(texts) / seconds:9.2f}")


if __name__ == "__main__":
    main()
