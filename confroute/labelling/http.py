"""The HTTP generation backend: N answers per prompt from an OpenAI-compatible endpoint.

One chat completion per answer (n=1, the answer's own seed), sent through
`confroute.llm_client`, which bounds the requests in flight and owns retries, timeouts and
errors. Token log-probs are asked for (`logprobs=true`) so that semantic entropy can weight
answers by likelihood; a server that gives none leaves `Sample.logprobs` None, and the
pipeline falls back to discrete SE and says so. The endpoint cannot score option letters, so
`Generation.choice_logprobs` stays None. `SamplingConfig.top_k`, `answer_prefix` and
`stop_at_newline` are not part of the OpenAI chat API and are not sent (as before the client
was shared); `batch_size` is the number of prompts per batch of requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confroute.labelling.sampling import Finish, Generation, Sample, SamplingConfig, chat_messages
from confroute.llm_client import EndpointConfig, LLMClient, LLMError, message_text


class HttpBackend:
    """Samples from an OpenAI-compatible chat completions endpoint; implements `Backend`.

    `logprobs=False` stops asking for token log-probs (for servers that refuse them).
    `generate` raises `LLMError` when the endpoint fails after the client's retries or answers
    with something that is not a chat completion.
    """

    def __init__(self, endpoint: EndpointConfig, logprobs: bool = True) -> None:
        self.endpoint = endpoint
        self.logprobs = logprobs
        self.name = endpoint.model
        self.client = LLMClient(endpoint)
        self.generated_tokens = 0
        """Completion tokens the endpoint reported (its `usage`), for throughput figures."""

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        """`Backend.generate`: for each prompt, `cfg.n` requests at `cfg.temperature` with
        seeds `seeds[i] + k`, and a greedy one (temperature 0, seed `seeds[i]`) if asked."""
        rows = cfg.n + int(cfg.greedy)
        batch, per_request = [], []
        for prompt, seed in zip(prompts, seeds, strict=True):
            batch += [chat_messages(prompt, cfg.system)] * rows
            per_request += [{"temperature": cfg.temperature, "seed": seed + k}
                            for k in range(cfg.n)]
            if cfg.greedy:
                per_request.append({"temperature": 0.0, "seed": seed})
        params: dict[str, Any] = {"top_p": cfg.top_p, "max_tokens": cfg.max_new_tokens, "n": 1}
        if self.logprobs:
            params["logprobs"] = True
        completions = self.client.chat_many(batch, per_request, **params)
        answers = [self._sample(c) for c in completions]
        return [Generation(answers[i * rows:i * rows + cfg.n],
                           answers[i * rows + cfg.n] if cfg.greedy else None)
                for i in range(len(prompts))]

    def _sample(self, completion: Any) -> Sample:
        usage = getattr(completion, "usage", None)
        self.generated_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        return parse_sample(completion, self.logprobs, self.endpoint.base_url)


def parse_sample(completion: Any, want_logprobs: bool, url: str = "the endpoint") -> Sample:
    """A chat completion (the SDK's object, choices checked by the client) -> `Sample`.

    Log-probs come from `choices[0].logprobs.content[*].logprob` when `want_logprobs`;
    `finish` is "length" when the server says so, else "stop". Raises `LLMError` when the
    answer text is not a string or a token's log-prob is not a number.
    """
    choice = completion.choices[0]
    text = message_text(completion)
    if not isinstance(text, str):
        raise LLMError(f"{url}: choices[0].message.content is not text: {text!r:.200}")
    logprobs = None
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if want_logprobs and content:
        try:
            logprobs = [float(token.logprob) for token in content]
        except (AttributeError, TypeError, ValueError) as exc:
            raise LLMError(f"{url}: malformed token log-probs in choices[0].logprobs: "
                           f"{str(content)[:200]}") from exc
    finish: Finish = "length" if getattr(choice, "finish_reason", None) == "length" else "stop"
    return Sample(text.strip(), logprobs, finish)
