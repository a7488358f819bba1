"""The one preprocessing path shared by training, export and the runtime (no torch here).

A prompt is a string or an OpenAI-style list of chat messages. `prompt_text` picks the text that
is scored; `TextEncoder` tokenises it with the `tokenizers` library using the max length and
truncation side recorded in the artifact manifest, so training and serving see identical ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from confroute.errors import InputError

Turn = Literal["first", "last", "all"]
Prompt = str | Sequence[dict[str, Any]]

MAX_PROMPT_CHARS = 1_000_000
"""Prompts longer than this are refused before tokenisation (they would be truncated anyway)."""


def prompt_text(prompt: Any, turn: Turn = "last", index: int | None = None) -> str:
    """Return the text to score for one prompt, or raise InputError saying what is wrong."""
    where = "prompt" if index is None else f"prompt {index}"
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, Sequence) and not isinstance(prompt, bytes | bytearray):
        text = _user_turns(prompt, turn, where)
    else:
        raise InputError(f"{where} must be a string or a list of chat messages; "
                         f"found {type(prompt).__name__}")
    text = text.strip()
    if not text:
        raise InputError(f"{where} is empty (or only whitespace); nothing to score")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"{where} has {len(text):,} characters, more than the limit of "
                         f"{MAX_PROMPT_CHARS:,}; send the part you want scored")
    return text


def _user_turns(messages: Sequence[Any], turn: Turn, where: str) -> str:
    users = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "content" not in message:
            raise InputError(f"{where}: message {i} must be an object with 'role' and 'content'")
        if message.get("role", "user") == "user":
            users.append(_content_text(message["content"], f"{where}: message {i}"))
    if not users:
        raise InputError(f"{where} has no message with role 'user'")
    if turn == "first":
        return users[0]
    if turn == "last":
        return users[-1]
    return "\n\n".join(users)


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        parts = [p.get("text", "") for p in content
                 if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(parts)
    raise InputError(f"{where} content must be a string or a list of parts; "
                     f"found {type(content).__name__}")


class TextEncoder:
    """Tokenises prompts to the numpy arrays the encoder (torch or ONNX) takes."""

    def __init__(self, tokenizer: Any, max_length: int, truncation_side: str = "right",
                 input_names: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids")):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation_side = truncation_side
        self.input_names = tuple(input_names)
        tokenizer.enable_truncation(max_length, direction=truncation_side)
        pad_id = tokenizer.token_to_id("[PAD]")
        if pad_id is None:
            pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")

    @classmethod
    def from_file(cls, path: str | Path, max_length: int, truncation_side: str = "right",
                  input_names: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
                  ) -> TextEncoder:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), max_length, truncation_side, input_names)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.input_names}

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts after truncation, without padding (for length-sorted batching)."""
        saved = self.tokenizer.padding
        self.tokenizer.no_padding()
        try:
            return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]
        finally:
            self.tokenizer.enable_padding(**{k: v for k, v in saved.items()
                                             if k in ("pad_id", "pad_token", "pad_type_id")})
