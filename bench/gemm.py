"""Is int8 faster than fp32 on this CPU? MatMul throughput at the router's own shapes.

ONNX int8 only beats ONNX fp32 where the CPU multiplies int8 faster than it fuses fp32
multiply-adds (VNNI, AMX, or a wide integer multiplier). This benchmark times, in one run, a single
ONNX MatMul for each linear-layer shape of all-MiniLM-L6-v2 at 64 tokens, as fp32 and as the
dynamic int8 (per-channel) that `confroute export` writes, plus torch's matmul, and prints GFLOP/s
with the CPU's name and the ISA features that matter. The last line turns the fastest GEMM rate
into a floor on batch-1 latency at 64 tokens (linear layers only), to compare with
`bench/latency.py`'s torch eager time.

    .venv/bin/python bench/gemm.py [--threads 2] [--repeats 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TOKENS = 64
# (K, N, count per layer) of the six linear layers in one MiniLM block: Q, K, V, O, FFN in, out.
SHAPES = ((384, 384, 4), (384, 1536, 1), (1536, 384, 1))
LAYERS = 6
ISA = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_summary() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    return f"{name}; " + " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ISA)


def matmul_model(path: Path, k: int, n: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def seconds(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from confroute.export import quantize_int8

    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    tmp = Path(tempfile.mkdtemp())
    rows, best = [], 0.0
    for k, n, _ in SHAPES:
        matmul_model(tmp / f"{k}x{n}.onnx", k, n)
        quantize_int8(tmp / f"{k}x{n}.onnx", tmp / f"{k}x{n}.int8.onnx")
        x = np.random.default_rng(1).standard_normal((TOKENS, k)).astype(np.float32)
        flops = 2 * TOKENS * k * n
        row = {"shape (MxKxN)": f"{TOKENS}x{k}x{n}"}
        for label, file in (("onnx fp32", f"{k}x{n}.onnx"), ("onnx int8", f"{k}x{n}.int8.onnx")):
            session = ort.InferenceSession(str(tmp / file), options,
                                           providers=["CPUExecutionProvider"])
            feed = {"x": x}
            row[label] = flops / seconds(lambda s=session, f=feed: s.run(None, f), args.repeats)
        xt, wt = torch.from_numpy(x), torch.randn(k, n)
        with torch.inference_mode():
            row["torch fp32"] = flops / seconds(lambda a=xt, b=wt: a @ b, args.repeats)
        best = max(best, row["onnx fp32"], row["onnx int8"])
        rows.append(row)

    print(f"threads={args.threads} repeats={args.repeats}; {cpu_summary()}")
    print("| shape (MxKxN) | onnx fp32 GFLOP/s | onnx int8 GOP/s | torch fp32 GFLOP/s "
          "| int8 / fp32 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['shape (MxKxN)']} | {row['onnx fp32'] / 1e9:.1f} | "
              f"{row['onnx int8'] / 1e9:.1f} | {row['torch fp32'] / 1e9:.1f} | "
              f"{row['onnx int8'] / row['onnx fp32']:.2f}x |")
    total = LAYERS * sum(2 * TOKENS * k * n * count for k, n, count in SHAPES)
    print(f"linear layers at batch 1 x {TOKENS} tokens: {total / 1e9:.2f} GFLOP; at the fastest "
          f"rate above ({best / 1e9:.1f} GFLOP/s) they alone take {total / best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
