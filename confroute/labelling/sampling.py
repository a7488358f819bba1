"""What every generation backend shares: the sampling settings, the answers, the interface.

A backend answers each prompt N times and returns per-token log-probs (`Backend.generate`).
Two implement it: `confroute.labelling.local.LocalBackend` (a transformers causal LM on this
machine, GGUF included) and `confroute.labelling.http.HttpBackend` (any OpenAI-compatible
endpoint, through `confroute.llm_client`). `confroute.labelling.backends.make_backend` picks
one from a model spec.

Log-probs are the model's own (temperature 1) log-probabilities of the sampled tokens where the
backend can give them, so that sequence likelihoods do not depend on the sampling temperature.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from confroute.errors import ConfigError

Finish = Literal["stop", "length"]
"""Why an answer ended: an end-of-answer token ("stop") or the token budget ("length")."""


@dataclasses.dataclass
class SamplingConfig:
    """How each prompt is answered."""

    n: int = 5
    """Sampled answers per prompt."""
    temperature: float = 0.5
    """0.5, not 1.0: a 135M model's samples at 1.0 scatter on every prompt (see the card)."""
    top_p: float = 1.0
    top_k: int = 50
    """Sample among the k most likely tokens (0 = whole vocabulary); 50 is transformers'
    default, and it spares drawing noise for a 49k vocabulary at every step."""
    max_new_tokens: int = 32
    seed: int = 0
    greedy: bool = True
    """Also decode one greedy answer (the baseline confidence is its mean token log-prob)."""
    batch_size: int = 8
    """Prompts per forward pass (local backend)."""
    system: str | None = None
    """System message; None keeps the chat template's default."""
    answer_prefix: str = ""
    """Text that starts the assistant's turn (e.g. "The answer is"): asks for a short final
    answer without chain of thought. Part of the prompt, not of the sampled answer."""
    stop_at_newline: bool = False
    """End an answer at its first line break (a short final answer needs one line)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"sampling.n must be >= 1; found {self.n}")
        if not 0.0 < self.temperature <= 5.0:
            raise ConfigError(f"sampling.temperature must be in (0, 5]; found {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"sampling.top_p must be in (0, 1]; found {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"sampling.top_k must be >= 0 (0 = no limit); found {self.top_k}")
        if not 1 <= self.max_new_tokens <= 32768:
            raise ConfigError(f"sampling.max_new_tokens must be in [1, 32768]; "
                              f"found {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"sampling.batch_size must be >= 1; found {self.batch_size}")


@dataclasses.dataclass
class Sample:
    """One answer: its text, its tokens' log-probs (natural log, one per generated token,
    the stop token included; None when the backend gives none) and why it ended."""

    text: str
    logprobs: list[float] | None
    finish: Finish

    def to_dict(self) -> dict[str, Any]:
        """The store's JSON form: {"text", "logprobs", "finish"}."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Generation:
    """All answers to one prompt: `cfg.n` samples, and the greedy answer when asked for."""

    samples: list[Sample]
    greedy: Sample | None = None
    choice_logprobs: dict[str, float] | None = None
    """Log-prob of each option letter as the first answer token (multiple-choice prompts)."""


class Backend(Protocol):
    """A generation backend; `name` identifies its model in stores and reports."""

    name: str

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        """Answer each of the P prompts `cfg.n` times (plus a greedy answer if `cfg.greedy`);
        `seeds[i]` makes prompt i's samples reproducible, `choices[i]` lists its option
        letters (backends that cannot score letters ignore it). Returns P generations in
        prompt order."""
        ...


def prompt_seed(seed: int, key: str) -> int:
    """A per-prompt seed, so a prompt's samples do not depend on batch order or resumption."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") >> 1


def chat_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """The conversation a backend sends for one prompt: the system message (if any), then it."""
    messages = [{"role": "user", "content": prompt}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages
