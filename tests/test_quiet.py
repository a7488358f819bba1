"""Issue 22 item 5: a quiet main job. The filters drop only the known-harmless library lines they
name; the rest of each library's output is kept."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from confroute import quiet


def test_lightning_advisories_go_and_its_other_lines_stay(caplog: pytest.LogCaptureFixture):
    quiet.lightning()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        for line in ("GPU available: False, used: False", "💡 Tip: For seamless cloud logging",
                     "`Trainer.fit` stopped: `max_steps=200` reached.",
                     "Loading `train_dataloader` to estimate number of stepping batches."):
            logger.info(line)
    assert [r.getMessage() for r in caplog.records] == [
        "`Trainer.fit` stopped: `max_steps=200` reached."]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet.lightning()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning,
                      stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


def test_a_truncated_encoder_loads_quietly_and_missing_weights_are_still_reported(
        tiny_encoder_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModel

    from confroute.training.encoders import _hf_pretrained

    with caplog.at_level(logging.WARNING):
        _hf_pretrained(str(tiny_encoder_dir), layers=1)  # layer 2's weights are UNEXPECTED
    assert not [r for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        AutoModel.from_pretrained(tiny_encoder_dir, num_hidden_layers=3)  # layer 3: MISSING
    assert [r for r in caplog.records if "MISSING" in r.getMessage()]


def test_onnx_tracing_drops_the_two_tracer_notes_only() -> None:
    notes = [("Converting a tensor to a Python boolean might cause the trace to be incorrect",
              "transformers.masking_utils"),
             ("Exporting aten::index operator of advanced indexing in opset 17", "torch.onnx"),
             ("Converting a tensor to a Python boolean", "my_model")]  # not transformers': kept
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet.onnx_tracing():
            for message, module in notes:
                warnings.warn_explicit(message, UserWarning, "x.py", 1, module=module)
    assert [(str(w.message)) for w in seen] == ["Converting a tensor to a Python boolean"]
