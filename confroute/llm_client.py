"""The one OpenAI-compatible client: every call confroute makes to an LLM endpoint goes here.

Built on the official `openai` SDK, which owns retries with exponential back-off (honouring
`Retry-After` on 429 and retrying 408/409/5xx and connection errors), timeouts and typed errors.
confroute adds what the SDK leaves to its callers: bounded concurrency for batches, one error
type (`LLMError`) whose message names the endpoint and the next step, and redaction of the API
key from any upstream text it reports (some servers echo the key they rejected).

Used by the HTTP sampling backend, the judge ratings of `confroute label`/`judge`, the
evaluation's pairwise judge and the LLM entailment of semantic-entropy clustering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from confroute.errors import ConfigError, ConfrouteError, require

Messages = list[dict[str, Any]]


class LLMError(ConfrouteError):
    """An LLM endpoint failed in a way the SDK's retries did not fix (bad request, auth,
    unknown model, no answer after every retry, or a malformed completion)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status of the upstream's answer, None when it never answered."""


@dataclasses.dataclass
class EndpointConfig:
    """An OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, hosted APIs)."""

    base_url: str
    """Base URL ending in /v1, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1
    (Ollama)."""
    model: str
    """Model name as the endpoint knows it."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key; None or unset sends no key (local servers)."""
    concurrency: int = 8
    """Requests in flight at once for a batch."""
    timeout_s: float = 120.0
    """Seconds before one attempt is abandoned (then retried)."""
    max_retries: int = 5
    """Retries after the first attempt, with the SDK's exponential back-off."""

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
                ("http://", "https://")):
            raise ConfigError("base_url must start with http:// or https://; "
                              f"found {self.base_url!r}")
        if not self.model:
            raise ConfigError("an endpoint needs a model name (--model)")
        if not (self.concurrency >= 1 and self.max_retries >= 0 and self.timeout_s > 0):
            raise ConfigError("concurrency must be >= 1, max_retries >= 0 and timeout_s > 0; "
                              f"found {self.concurrency}, {self.max_retries}, {self.timeout_s}")

    def api_key(self) -> str:
        """The key from `api_key_env`, or "" when none is configured or set."""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced by `***` (no-op for an empty secret)."""
    return text.replace(secret, "***") if secret else text


_HINTS = {401: "check the API key environment variable",
          403: "the key lacks access to this model",
          404: "check base_url (it usually ends in /v1) and the model name"}


class LLMClient:
    """Chat completions against one endpoint, one at a time or a batch with bounded concurrency.

    Raises `LLMError` for every failure the SDK's own retries did not recover from.
    """

    def __init__(self, cfg: EndpointConfig) -> None:
        self.cfg = cfg
        self._key = cfg.api_key()

    def _sdk_args(self) -> dict[str, Any]:
        # The SDK refuses to start without a key; local servers need none, so send a dummy.
        return {"base_url": self.cfg.base_url, "api_key": self._key or "not-needed",
                "timeout": self.cfg.timeout_s, "max_retries": self.cfg.max_retries}

    def chat(self, messages: Messages, **params: Any) -> Any:
        """One chat completion (`params` as in the SDK's `chat.completions.create`, e.g.
        temperature, max_tokens, logprobs, seed). Returns the SDK's ChatCompletion."""
        return self.chat_many([messages], **params)[0]

    def chat_many(self, batch: Sequence[Messages], **params: Any) -> list[Any]:
        """One completion per conversation in `batch`, at most `concurrency` in flight; the
        results keep the order of `batch`. Per-request params may differ: pass a list of
        dicts as `per_request` (same length as `batch`) to override `params` for each."""
        return asyncio.run(self.achat_many(batch, **params))

    async def achat_many(self, batch: Sequence[Messages], per_request: Sequence[dict] | None = None,
                         **params: Any) -> list[Any]:
        """Async `chat_many`, for callers already inside an event loop."""
        openai = require("openai", "label")
        if per_request is not None and len(per_request) != len(batch):
            raise ValueError("per_request must have one dict per conversation in batch")
        limit = asyncio.Semaphore(self.cfg.concurrency)
        async with openai.AsyncOpenAI(**self._sdk_args()) as client:

            async def one(i: int, messages: Messages) -> Any:
                extra = per_request[i] if per_request is not None else {}
                async with limit:
                    return await self._create(client, openai, messages, {**params, **extra})

            return list(await asyncio.gather(*(one(i, m) for i, m in enumerate(batch))))

    async def _create(self, client: Any, openai: Any, messages: Messages,
                      params: dict[str, Any]) -> Any:
        url = self.cfg.base_url
        try:
            completion = await client.chat.completions.create(
                model=self.cfg.model, messages=messages, **params)
        except openai.APIStatusError as exc:
            status = exc.status_code
            body = redact(_body_text(exc), self._key)
            hint = f"; {_HINTS[status]}" if status in _HINTS else ""
            raise LLMError(f"{url} answered HTTP {status}: {body[:300]!r}{hint}", status) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise LLMError(f"{url}: no answer after {self.cfg.max_retries + 1} attempts "
                           f"({type(exc).__name__}); is the server up?") from exc
        except openai.APIError as exc:  # e.g. a 200 whose body is not a completion
            raise LLMError(f"{url}: {redact(str(exc), self._key)[:300]}") from exc
        if not getattr(completion, "choices", None):
            raise LLMError(f"{url}: chat completion without choices: "
                           f"{redact(str(completion), self._key)[:300]}")
        return completion


def _body_text(exc: Any) -> str:
    try:
        return exc.response.text
    except Exception:  # noqa: BLE001 - the SDK may not have read a body
        return str(exc)


def message_text(completion: Any) -> str:
    """The text of a completion's first choice ("" when the model returned no content)."""
    return completion.choices[0].message.content or ""
