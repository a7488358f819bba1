"""Known-harmless library output, silenced where it arises; everything else is kept.

Each filter matches one message (and category) that a library prints on every run of a
confroute command whatever the user does, with the reason it says nothing to act on. A filter
never hides an error, a missing-weights report, or a warning the user's settings can cause.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

# Lightning's rank-zero INFO lines that describe the machine or advertise a product.
LIGHTNING_ADVISORIES = (
    "GPU available:", "TPU available:", "HPU available:",  # the CPU/GPU is the user's choice
    "💡 Tip:",  # an advertisement for a cloud logging product
    "`Trainer(val_check_interval=",  # confroute sets the interval itself (validation_interval)
    "Loading `train_dataloader` to estimate number of stepping batches",  # the LR schedule does
)


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


class _DropUnexpectedOnlyReport(logging.Filter):
    """transformers 5 logs a LOAD REPORT table when checkpoint and model keys differ. Keys that
    are only UNEXPECTED are the upper layers confroute chose not to load (`model.layers`) or a
    checkpoint's task head, which an encoder never uses; MISSING or MISMATCHED keys (weights
    left random) are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "LOAD REPORT" not in text:
            return True
        return any(word in text for word in ("MISSING", "MISMATCH", "ERROR"))


def lightning() -> None:
    """Once per process, for training runs (idempotent)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(LIGHTNING_ADVISORIES))
    # pytorch-lightning 2.6 calls torch's LeafSpec in its own tree helper on every batch; torch
    # 2.13 deprecates that use. Nothing for a user to change; Lightning's next release moves on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)


def transformers_loading() -> None:
    """Once per process, before encoders are loaded (idempotent)."""
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _DropUnexpectedOnlyReport) for f in logger.filters):
        logger.addFilter(_DropUnexpectedOnlyReport())
    from transformers.utils import logging as hf_logging

    # A bar over the tensors of a local checkpoint: it fills in well under a second.
    hf_logging.disable_progress_bar()


@contextlib.contextmanager
def onnx_tracing() -> Iterator[None]:
    """Around torch.onnx.export of a router (the parity check then compares the graph with
    torch on real prompts, so a trace that did not generalise would fail there, loudly)."""
    with warnings.catch_warnings():
        # transformers' mask helper branches on a tensor's shape; the branch is the same for
        # every input the exported graph sees (padding is applied before the graph).
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean",
                                module=r"transformers\.masking_utils")
        # Token ids are never negative, the case the message warns about.
        warnings.filterwarnings("ignore", category=UserWarning,
                                message="Exporting aten::index operator of advanced indexing")
        yield
