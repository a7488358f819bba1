"""The one OpenAI-compatible client: every call confroute makes to an LLM endpoint goes here.

Built on the official `openai` SDK, which owns retries with exponential back-off (0.5 s doubling
to at most 8 s, honouring `Retry-After` up to 2 minutes; it retries 408, 409, 429, 5xx, timeouts
and connection errors), timeouts and typed errors. confroute adds what the SDK leaves to its
callers: bounded concurrency for batches, one error type (`LLMError`) whose message names the
endpoint, the number of attempts and the next step, a check that a 200 answer is a chat
completion, and redaction of the API key from any upstream text it reports (some servers echo
the key they rejected).

Used by the HTTP sampling backend (`confroute.labelling.http`), the judge ratings of
`confroute judge` (`confroute.labelling.judge`), the evaluation's pairwise judge
(`confroute.evaluation.judge`) and the LLM entailment of semantic-entropy clustering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from confroute.errors import ConfigError, ConfrouteError, require

Messages = list[dict[str, Any]]
"""One conversation: [{"role": "system" | "user" | "assistant", "content": str}, ...]."""


class LLMError(ConfrouteError):
    """An LLM endpoint failed in a way the SDK's retries did not fix (bad request, auth,
    unknown model, no answer after every retry, or a malformed completion)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status of the upstream's answer, None when it never answered usably."""


@dataclasses.dataclass
class EndpointConfig:
    """An OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

    Raises `ConfigError` on creation for a base URL that is not http(s), an empty model name,
    or a concurrency, timeout or retry count out of range.
    """

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
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"an endpoint needs a model name (--model); found {self.model!r}")
        if not (_whole(self.concurrency) and self.concurrency >= 1 and _whole(self.max_retries)
                and self.max_retries >= 0 and _number(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError("concurrency must be an integer >= 1, max_retries an integer >= 0 "
                              f"and timeout_s a number > 0; found {self.concurrency!r}, "
                              f"{self.max_retries!r}, {self.timeout_s!r}")

    def api_key(self) -> str:
        """The key from `api_key_env`, or "" when none is configured or set."""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Things in an upstream's words that could be a credential: the caller's own key is replaced
# exactly; these catch keys the upstream names itself (bearer tokens, sk-/key- style keys).
SECRET_PATTERNS = [re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
                   re.compile(r"(?i)\b((?:sk|pk|rk|key|api[_-]?key)[-_=:]\s*)[A-Za-z0-9._-]{8,}")]


def redact(text: str, secret: str = "") -> str:
    """`text` with `secret` and anything shaped like a credential replaced by `***`.

    The one redaction for every path that reports an upstream's words: the LLM client's errors
    (sampling, judges, LLM entailment) and the serve proxy's error bodies.
    """
    if secret:
        text = text.replace(secret, "***")
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


_HINTS = {403: "the key lacks access to this model",
          404: "check base_url (it usually ends in /v1) and the model name",
          429: "the endpoint is rate-limiting; lower concurrency or raise max_retries"}


class LLMClient:
    """Chat completions against one endpoint, one at a time or a batch with bounded concurrency.

    Every method raises `LLMError` for each failure the SDK's own retries did not recover from,
    and `MissingExtraError` when the `openai` package is not installed.
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
        temperature, max_tokens, logprobs, seed). Returns the SDK's ChatCompletion, whose
        `choices` is a non-empty list with a `message` (checked)."""
        return self.chat_many([messages], **params)[0]

    def chat_many(self, batch: Sequence[Messages], per_request: Sequence[dict] | None = None,
                  on_done: Callable[[int, Any], None] | None = None, **params: Any) -> list[Any]:
        """One completion per conversation in `batch` (length B), at most `concurrency` in
        flight; returns B completions in the order of `batch`. `per_request` (B dicts)
        overrides `params` for each request, e.g. a different seed or temperature.
        `on_done(i, completion)` is called as each one arrives (to store results at once, so
        that an interrupted batch loses nothing it already paid for).

        Runs its own event loop: inside a running loop, await `achat_many` instead. The first
        failure raises `LLMError`, and the requests still in flight are cancelled.
        """
        return asyncio.run(self.achat_many(batch, per_request, on_done, **params))

    async def achat_many(self, batch: Sequence[Messages], per_request: Sequence[dict] | None = None,
                         on_done: Callable[[int, Any], None] | None = None,
                         **params: Any) -> list[Any]:
        """Async `chat_many`, for callers already inside an event loop."""
        openai = require("openai", "label")
        if per_request is not None and len(per_request) != len(batch):
            raise ValueError(f"per_request has {len(per_request)} dicts for a batch of "
                             f"{len(batch)} conversations; give one per conversation")
        limit = asyncio.Semaphore(self.cfg.concurrency)
        async with openai.AsyncOpenAI(**self._sdk_args()) as client:

            async def one(i: int, messages: Messages) -> Any:
                extra = per_request[i] if per_request is not None else {}
                async with limit:
                    done = await self._create(client, openai, messages, {**params, **extra})
                if on_done is not None:
                    on_done(i, done)
                return done

            tasks = [asyncio.ensure_future(one(i, m)) for i, m in enumerate(batch)]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:  # do not pay for answers nobody will read
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _create(self, client: Any, openai: Any, messages: Messages,
                      params: dict[str, Any]) -> Any:
        url = self.cfg.base_url
        try:
            completion = await client.chat.completions.create(
                model=self.cfg.model, messages=messages, **params)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            why = (f"each timed out after {self.cfg.timeout_s:g} s; raise timeout_s"
                   if isinstance(exc, openai.APITimeoutError) else "is the server up?")
            raise LLMError(f"{url}: no answer after {self.cfg.max_retries + 1} attempts "
                           f"({type(exc).__name__}); {why}") from exc
        except (openai.APIError, ValueError) as exc:  # e.g. a 200 whose body is not JSON
            raise LLMError(f"{url}: the answer is not a chat completion "
                           f"({type(exc).__name__}: {redact(str(exc), self._key)[:300]})"
                           ) from exc
        return _checked(completion, url, self._key)

    def _status_error(self, exc: Any) -> LLMError:
        """The message for an HTTP error status: the upstream's text (key redacted), the
        attempts made (the SDK numbers its retries in a request header) and a hint."""
        status = exc.status_code
        body = " ".join(redact(_upstream_message(exc), self._key).split())  # one line
        retries = _retries_taken(exc)
        tried = f" after {retries + 1} attempts" if retries else ""
        hint = _HINTS.get(status, "")
        if status == 401:
            hint = (f"check the API key in ${self.cfg.api_key_env}" if self.cfg.api_key_env
                    else "this endpoint needs an API key: set api_key_env (--api-key-env)")
            if self.cfg.api_key_env and not self._key:
                hint += " (it is not set)"
        return LLMError(f"{self.cfg.base_url} answered HTTP {status}{tried}: {body[:300]}"
                        + (f"; {hint}" if hint else ""), status)


def _checked(completion: Any, url: str, key: str) -> Any:
    """`completion` if its first choice has a message; otherwise `LLMError`."""
    choices = getattr(completion, "choices", None)
    if (not isinstance(choices, list) or not choices
            or getattr(choices[0], "message", None) is None):
        raise LLMError(f"{url}: chat completion without choices[0].message: "
                       f"{redact(str(completion), key)[:300]}")
    return completion


def _retries_taken(exc: Any) -> int:
    try:
        return int(exc.request.headers.get("x-stainless-retry-count", 0))
    except (AttributeError, TypeError, ValueError):  # the SDK may not have sent the header
        return 0


def _upstream_message(exc: Any) -> str:
    """The upstream's own error message: OpenAI's {"error": {"message"}} (the SDK parses it
    into `exc.body`), else the raw response text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    try:
        return exc.response.text
    except Exception:  # noqa: BLE001 - the SDK may not have read a body
        return str(exc)


def message_text(completion: Any) -> str:
    """The text of a completion's first choice ("" when the model returned no content)."""
    return completion.choices[0].message.content or ""
