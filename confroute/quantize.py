"""Static int8 quantisation of an exported router (onnxruntime's tools), as `confroute export`
writes `model.int8.onnx`: per-channel int8 weights, uint8 activations with scales calibrated on
real prompts, the head's last layers kept fp32."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from confroute.training.model import RouterModel


def quantize_int8(src: Path, dst: Path, feeds: Sequence[dict[str, np.ndarray]]) -> None:
    """Static int8 (QDQ): per-channel int8 weights, uint8 activations whose scales are fixed by
    calibration on `feeds` (encoded batches of validation prompts, MinMax).

    Fixed scales make a prompt's score independent of the prompts batched with it; dynamic
    quantisation sets activation scales per batch, so the same prompt could be routed one way
    alone (serve) and the other way in a batch (route, calibrate). Only MatMul/Gemm are
    quantised, with full-range 8-bit weights, as dynamic quantisation did. onnxruntime suggests
    `reduce_range` (7-bit weights) for CPUs without VNNI, where u8 x s8 products can saturate;
    on a MiniLM router it cost 0.008 validation AUROC (-0.0069 vs +0.0009, 150 prompts), so it
    is off, and the drift check below measures int8 on the exporting CPU.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                        reduce_range=False, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=output_layers(pre))


def output_layers(path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes nearest the graph's outputs on every path back from them
    (the head's last layers: a per-model head's one Linear; an IRT head's ability MatMul and the
    prompt layer giving its discrimination and difficulty). They stay fp32: quantising the
    logit itself to uint8 left a few hundred distinct scores (steps of 0.015 in logit), so
    prompts tied and calibrated thresholds could not fall between them; an IRT head's
    difficulty quantised to uint8 tied 27 of 400 distinct prompts the same way."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    found: list[str] = []
    seen: set[str] = set()
    pending = [output.name for output in graph.output]
    while pending:
        node = producer.get(pending.pop())
        # Shape nodes read only a tensor's dimensions: no value flows back through them
        if node is None or node.name in seen or node.op_type == "Shape":
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            found.append(node.name)
        else:
            pending.extend(node.input)
    return found


def calibration_feeds(model: RouterModel, prompts: Sequence[str], batch_size: int = 16
                      ) -> list[dict[str, np.ndarray]]:
    """Encoded batches of `prompts` (as the runtime encodes them) for int8 calibration."""
    encode = model.text_encoder()
    return [encode(list(prompts[i:i + batch_size])) for i in range(0, len(prompts), batch_size)]
