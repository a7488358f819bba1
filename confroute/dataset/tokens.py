"""Token counts and list prices for costs, from the routed LLM where it is known.

For a model that LiteLLM knows (a name in its model cost map, `litellm.model_cost`, read from
the copy bundled with litellm: confroute sets LITELLM_LOCAL_MODEL_COST_MAP=True, so nothing is
fetched), input tokens are counted with that model's tokenizer through `litellm.token_counter`
and list prices come from the cost map. A local tokenizer file (`tokenizers` JSON) counts
instead when given. Otherwise, or without the optional litellm package, tokens are
ceil(chars / 4) and prices must be given (a price file always overrides the cost map).

Training and evaluation use this module; the torch-free runtime does not (it keeps
ceil(chars / 4): see docs/data.md for the measured gap).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute import arguments as check
from confroute.errors import DataError

PER_MTOK = 1e6


def litellm() -> Any | None:
    """The litellm module, or None when the optional package is not installed."""
    if importlib.util.find_spec("litellm") is None:
        return None
    import litellm as module  # confroute's import set the offline cost map (confroute.privacy)

    return module


def known(model: str) -> dict[str, Any] | None:
    """LiteLLM's cost-map entry for `model` (with its input and output prices), or None."""
    module = litellm()
    entry = None if module is None else module.model_cost.get(model)
    if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), int | float) for k in ("input_cost_per_token",
                                                           "output_cost_per_token")):
        return None
    return entry


def list_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens from LiteLLM's cost map, or None if unknown."""
    entry = known(model)
    if entry is None:
        return None
    return (float(entry["input_cost_per_token"]) * PER_MTOK,
            float(entry["output_cost_per_token"]) * PER_MTOK)


def count(texts: Sequence[str], model: str | None = None,
          tokenizer: str | Path | None = None) -> tuple[np.ndarray, str]:
    """Tokens per text [n] (float) and how they were counted: with the `tokenizer` file when
    given, else with `model`'s tokenizer when LiteLLM knows the model, else ceil(chars / 4).
    DataError for texts that are not strings or a tokenizer file that is missing or bad."""
    if isinstance(texts, str | bytes) or not all(isinstance(t, str) for t in texts):
        raise check.fail(DataError, "texts", "a list of strings", texts)
    if tokenizer is not None:
        return _with_file(texts, check.path(tokenizer, "tokenizer", DataError, kind="file"))
    if model is not None and known(model) is not None:
        module = litellm()
        assert module is not None
        counts = [module.token_counter(model=model, text=t) if t else 0 for t in texts]
        return np.array(counts, dtype=float), f"{model}'s tokenizer (litellm.token_counter)"
    return (np.array([-(-len(t) // 4) for t in texts], dtype=float),
            "estimated: ceil(chars / 4)")


def _with_file(texts: Sequence[str], path: Path) -> tuple[np.ndarray, str]:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception type for a bad file
        raise DataError(f"tokenizer {path} is not a tokenizers JSON file: {exc}") from None
    tok.no_truncation()
    tok.no_padding()
    counts = [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
    return np.array(counts, dtype=float), f"the tokenizer file {path.name}"
