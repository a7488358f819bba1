"""Router latency: torch eager vs ONNX fp32 vs ONNX int8, measured in one run.

Batch-1 p50/p99 at 64 and 256 tokens and batch-32 throughput at 64 tokens, on the default
router (ModelConfig: all-MiniLM-L6-v2 cut to its first layer + head; --layers 6 for the whole
encoder), same threads for every backend. Ratios within one run are
what to quote: this VM's absolute times vary with load.

    .venv/bin/python bench/latency.py [--threads 2] [--repeats 200]
    .venv/bin/python bench/latency.py --router ARTIFACT [--repeats 2000]

`--router ARTIFACT` instead times the per-call path of a loaded `Router` (p50 / p99 microseconds
of `score` and `decide` on one short prompt, and of the policy's own `Policy.decide` on given
probabilities, the part without tokenising and inference): the cost of the argument checks
shows as the difference between two versions of the code on the same artifact.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gemm import cpu_summary  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def inputs(batch: int, tokens: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, tokens), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}


def timings(fn: Callable[[], object], repeats: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch-repeats", type=int, default=20)
    parser.add_argument("--layers", type=int, help="encoder layers kept (default: ModelConfig's)")
    parser.add_argument("--router", type=Path, help="time Router.score/decide on this artifact")
    args = parser.parse_args()
    if args.router is not None:
        router_overhead(args.router, args.threads, args.repeats)
        return

    import onnxruntime as ort
    import torch

    from confroute.config import ModelConfig
    from confroute.export import calibration_feeds, export_onnx, quantize_int8
    from confroute.training.model import RouterModel

    torch.set_num_threads(args.threads)
    extra = {} if args.layers is None else {"layers": args.layers}
    model = RouterModel(ModelConfig(max_length=256, **extra)).eval()
    vocab = model.encoder.config.vocab_size
    tmp = Path(tempfile.mkdtemp())
    export_onnx(model, tmp / "model.onnx", 17)
    # static int8 is calibrated on real prompts, as `confroute export` does
    quantize_int8(tmp / "model.onnx", tmp / "model.int8.onnx",
                  calibration_feeds(model, calibration_prompts()))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {name: ort.InferenceSession(str(tmp / file), options,
                                           providers=["CPUExecutionProvider"])
                for name, file in (("onnx fp32", "model.onnx"), ("onnx int8", "model.int8.onnx"))}

    def runner(backend: str, feed: dict[str, np.ndarray]) -> Callable[[], object]:
        feed = {k: v for k, v in feed.items() if k in model.input_names}
        if backend == "torch eager":
            tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

            def run_torch() -> object:
                with torch.inference_mode():
                    return model(**tensors)
            return run_torch
        session = sessions[backend]
        return lambda: session.run(["logit"], feed)

    sizes = {"torch eager": sum(p.numel() * p.element_size() for p in model.parameters()),
             "onnx fp32": (tmp / "model.onnx").stat().st_size,
             "onnx int8": (tmp / "model.int8.onnx").stat().st_size}
    rows = []
    for backend in ("torch eager", "onnx fp32", "onnx int8"):
        row = {"backend": backend, "size MB": sizes[backend] / 1e6}
        for tokens in (64, 256):
            t = timings(runner(backend, inputs(1, tokens, vocab)), args.repeats) * 1e3
            row[f"b1x{tokens} p50 ms"] = np.percentile(t, 50)
            row[f"b1x{tokens} p99 ms"] = np.percentile(t, 99)
        t = timings(runner(backend, inputs(32, 64, vocab)), args.batch_repeats, warmup=2)
        row["b32x64 prompts/s"] = 32 / np.median(t)
        rows.append(row)

    base = rows[0]
    columns = list(base)
    print(f"threads={args.threads} repeats={args.repeats} (batch-32: {args.batch_repeats}); "
          f"model: the default router, the first {model.encoder.config.num_hidden_layers} "
          f"layer(s) of all-MiniLM-L6-v2 + head (--layers 6: the full encoder); {cpu_summary()}")
    print("| " + " | ".join(columns) + " | b1x64 speed-up |")
    print("|" + "---|" * (len(columns) + 1))
    for row in rows:
        cells = [row["backend"]] + [f"{row[c]:.1f}" if c != "backend" else "" for c in columns[1:]]
        speedup = base["b1x64 p50 ms"] / row["b1x64 p50 ms"]
        print("| " + " | ".join(cells) + f" | {speedup:.2f}x |")




def router_overhead(artifact: Path, threads: int, repeats: int) -> None:
    """Print p50 / p99 us per call of Router.score, Router.decide and Policy.decide."""
    from confroute.runtime import Router

    router = Router.load(artifact, threads=threads)
    prompt = "What is the capital of France?"
    probs = router.adequacy([prompt])[0]
    calls = {"Router.score([prompt])": lambda: router.score([prompt]),
             "Router.decide(prompt)": lambda: router.decide(prompt),
             "Router.decide(prompt, threshold=0.5)": lambda: router.decide(prompt, 0.5),
             "Policy.decide(probs)": lambda: router.policy.decide(probs)}
    print(f"router {artifact.name}: threads={threads} repeats={repeats}; {cpu_summary()}")
    print("| call | p50 us | p99 us |")
    print("|---|---|---|")
    for name, call in calls.items():
        t = timings(call, repeats, warmup=50) * 1e6
        print(f"| {name} | {np.percentile(t, 50):.1f} | {np.percentile(t, 99):.1f} |")


def calibration_prompts(n: int = 64) -> list[str]:
    """Real prompts (the bundled routellm-judge validation split) to calibrate static int8."""
    import pandas as pd

    frame = pd.read_parquet(ROOT / "confroute/dataset/builtin/routellm_judge.parquet",
                            columns=["prompt", "split"])
    return frame[frame["split"] == "val"]["prompt"].head(n).astype(str).tolist()


def measure_shape(settings: dict, threads: int, repeats: int, tokens: int = 64) -> dict:
    """Export a RouterModel of `settings` (ModelConfig fields) as `confroute export` does (ONNX
    + int8), then time batch-1 `tokens`-token runs of the int8 graph: p50 ms, parameters
    (millions) and artifact MB (int8 ONNX + tokenizer.json). The head is untrained: latency
    does not depend on its weights."""
    import onnxruntime as ort
    import torch

    from confroute.config import ModelConfig
    from confroute.export import calibration_feeds, export_onnx, quantize_int8
    from confroute.training.model import RouterModel

    torch.set_num_threads(threads)
    model = RouterModel(ModelConfig(**settings)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        export_onnx(model, path / "model.onnx", 17)
        quantize_int8(path / "model.onnx", path / "model.int8.onnx",
                      calibration_feeds(model, calibration_prompts()))
        model.tokenizer.save(str(path / "tokenizer.json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path / "model.int8.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        vocab = model.tokenizer.get_vocab_size()
        feed = {k: v for k, v in inputs(1, tokens, vocab).items() if k in model.input_names}
        t = timings(lambda: session.run(["logit"], feed), repeats) * 1e3
        size = sum((path / f).stat().st_size for f in ("model.int8.onnx", "tokenizer.json"))
    return {"p50 ms": float(np.percentile(t, 50)), "params M":
            sum(p.numel() for p in model.parameters()) / 1e6, "artifact MB": size / 1e6}


def tfidf_latency(pipeline: object, repeats: int) -> dict:
    """p50 ms of one prompt through a fitted scikit-learn TF-IDF pipeline (tokenisation
    included, unlike the ONNX timings, which start from token ids)."""
    prompt = [" ".join(["what is the derivative of x squared plus seven"] * 6)]  # ~60 tokens
    t = timings(lambda: pipeline.predict_proba(prompt), repeats) * 1e3  # type: ignore[attr-defined]
    return {"p50 ms": float(np.percentile(t, 50))}


if __name__ == "__main__":
    main()
