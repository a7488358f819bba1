"""Dynamic vs static int8 for one trained run: routes that flip with batch-mates, AUROC, latency.

Exports the run's fp32 graph once, then quantises it both ways (dynamic: activation scales per
batch; static QDQ: scales calibrated on the run's validation prompts, as `confroute export`
does). On N held-out prompts it counts the prompts routed differently alone (as `serve` scores
them) than in batches of 32 (as `route` and `calibrate` do), at the run's threshold, and gives
the AUROC change vs fp32 (labels: the judge rule, cloud rated higher) and the batch-1 latency.

    .venv/bin/python bench/int8.py RUN_DIR [--prompts routellm-judge:val] [--n 150]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from gemm import cpu_summary  # bench/ is on sys.path when this script runs

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prompts", default="routellm-judge:val")
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from confroute.evaluation.groundtruth import load_truth
    from confroute.export import calibration_feeds, export, quantize_int8
    from confroute.runtime import Router
    from confroute.stats import binary_auroc
    from confroute.training.model import RouterModel

    truth = load_truth(args.prompts).sample(args.n, seed=0)
    prompts, labels = truth.prompts, truth.labels() >= 0.5
    tmp = Path(tempfile.mkdtemp(prefix="confroute-int8-"))
    from confroute.config import ExportConfig

    manifest = export(args.run_dir, tmp, ExportConfig(int8=False))
    threshold = manifest["threshold"]["default"]
    model = RouterModel.load(args.run_dir / "model")
    import pandas as pd

    val = pd.read_parquet(args.run_dir / "val.parquet")["prompt"].tolist()
    pre = tmp / "pre.onnx"
    quant_pre_process(str(tmp / "model.onnx"), str(pre), skip_symbolic_shape=True)
    quantize_dynamic(str(pre), str(tmp / "dynamic.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
    quantize_int8(tmp / "model.onnx", tmp / "static.onnx", calibration_feeds(model, val))

    fp32 = Router.load(tmp, variant="fp32")
    reference = fp32.score(prompts)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    rows = [("fp32", fp32._session, reference)]
    for name in ("dynamic", "static"):
        fp32._session = ort.InferenceSession(str(tmp / f"{name}.onnx"), options,
                                             providers=["CPUExecutionProvider"])
        rows.append((name, fp32._session, fp32.score(prompts)))
    print(f"run {args.run_dir}; {len(prompts)} prompts of {args.prompts} (seeded sample); "
          f"threshold {threshold:.4f}; threads={args.threads}; {cpu_summary()}")
    print("| variant | routes flipped alone vs batch-32 | max abs score diff alone vs batch "
          "| AUROC | AUROC change vs fp32 | batch-1 ms / prompt (median) | latency vs dynamic |")
    print("|---|---|---|---|---|---|---|")
    base_auroc = binary_auroc(labels, reference)
    results = []
    for name, session, batched in rows:
        fp32._session, fp32.batch_size = session, 1
        alone, times = np.empty(len(prompts)), []
        for _ in range(args.repeats):
            for i, prompt in enumerate(prompts):
                start = time.perf_counter()
                alone[i] = fp32.score([prompt])[0]
                times.append(time.perf_counter() - start)
        fp32.batch_size = 32
        flips = int(np.sum((alone >= threshold) != (batched >= threshold)))
        results.append((name, flips, float(np.max(np.abs(alone - batched))),
                        binary_auroc(labels, batched), float(np.median(times)) * 1e3))
    dynamic_ms = results[1][4]
    for name, flips, diff, auroc, ms in results:
        print(f"| {name} | {flips} | {diff:.2e} | {auroc:.4f} | {auroc - base_auroc:+.4f} | "
              f"{ms:.2f} | {ms / dynamic_ms:.2f}x |")

if __name__ == "__main__":
    main()
