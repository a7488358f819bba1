"""Is an upstream's 2xx answer what was asked for? The proxy trusts no 200 it has not read.

An answer that is not one (not JSON, cut off, no `choices`, wrong types, an `error` object
sent with 200) is an upstream failure like a 5xx: the next upstream is tried. The checks are
on the shape OpenAI clients read (the `openai` SDK's `ChatCompletion` and
`ChatCompletionChunk`): whatever a client would fail on, or silently show as an empty answer.
`Api` bundles one API's checks for the proxy: `CHAT` here, `response_answers.RESPONSES` for
the Responses API.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from confroute.serve.sse import error_event


class UpstreamFailure(Exception):
    """The upstream did not answer usably; `detail` is safe to show (no URL, no key).

    `kind` labels the metrics (timeout, connection, http_503, invalid_answer, ...);
    `retry_after` is the upstream's Retry-After header (429s); `reply` is its answer when that
    answer should reach the client if no other upstream does (a context-length refusal).
    """

    def __init__(self, kind: str, detail: str, retry_after: str | None = None,
                 reply: Any = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.reply = reply


@dataclasses.dataclass(frozen=True)
class Api:
    """One OpenAI API the proxy forwards: where, and how its answers are read.

    `body_problem(content)` says why a non-streamed 2xx body is not an answer (None: it is);
    `first_problem(data)` the same of a stream's first data event, `event_problem(data)` of a
    later one (an upstream's error event passes: it is relayed); `finishes(data)` whether an
    event ends the answer; `error_event(message, code, last)` is the event that ends a stream
    the upstream broke, after the data `last` relayed before it.
    """

    name: str
    """As the proxy's messages name it: "a stream that is not a {name} stream"."""
    path: str
    """Under the upstream's base URL, e.g. "/chat/completions"."""
    body_problem: Callable[[bytes], str | None]
    first_problem: Callable[[str], str | None]
    event_problem: Callable[[str], str | None]
    finishes: Callable[[str], bool]
    error_event: Callable[[str, str, str], bytes]
    unfinished: str
    """What a stream that ended too soon lacked, e.g. "no finish_reason, no [DONE]"."""


DONE = "[DONE]"
"""The data of the event that ends an OpenAI stream."""
_AN_ERROR = "is an error: "


def completion_problem(content: bytes) -> str | None:
    """Why `content` (a non-streamed 2xx body) is not a chat completion; None when it is."""
    body, problem = json_object(content.decode("utf-8", errors="replace"), "the body")
    if body is None:
        return problem
    if (kind := body.get("object", "chat.completion")) != "chat.completion":
        return f"the body is a {shown(kind)}, not a chat.completion"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"the body has {described(choices)} for 'choices' (a non-empty list is due)"
    for i, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return f"choices[{i}] has no 'message' object"
        if (wrong := _fields(message, f"choices[{i}].message")) is not None:
            return wrong
    return None


def finishes(data: str) -> bool:
    """Whether the data of a stream event ends the answer: [DONE], or a chunk with a
    `finish_reason` (some servers close the stream without [DONE] after it)."""
    if data == DONE:
        return True
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return False
    choices = body.get("choices") if isinstance(body, dict) else None
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


def chunk_problem(data: str, error_ok: bool = False) -> str | None:
    """Why the data of a stream event is not a chat.completion.chunk; None when it is (an
    empty `choices` list is one: usage and content-filter chunks have it), or when it is an
    `error` object and `error_ok` (an upstream ending its stream as OpenAI does)."""
    body, problem = json_object(data, "a stream event")
    if body is None:
        return None if error_ok and _AN_ERROR in problem else problem
    if (kind := body.get("object", "chat.completion.chunk")) != "chat.completion.chunk":
        return f"a stream event is a {shown(kind)}, not a chat.completion.chunk"
    choices = body.get("choices")
    if not isinstance(choices, list):
        return f"a stream event has {described(choices)} for 'choices' (a list is due)"
    for i, choice in enumerate(choices):
        delta = choice.get("delta", {}) if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            return f"a stream event's choices[{i}] has no 'delta' object"
        if (wrong := _fields(delta, f"choices[{i}].delta")) is not None:
            return wrong
    return None


def json_object(text: str, what: str) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object in `text`, "") or (None, why it is not one, or the error it holds)."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        cut = " (cut off?)" if text.strip().startswith(("{", "[")) else ""
        return None, f"{what} is not JSON{cut}: {preview(text)}"
    if not isinstance(body, dict):
        return None, f"{what} is {described(body)}, not a JSON object"
    error = body.get("error")
    if error is not None and "choices" not in body:
        message = error.get("message") if isinstance(error, dict) else error
        return None, f"{what} {_AN_ERROR}{preview(str(message))}"
    return body, ""


def _fields(message: dict[str, Any], where: str) -> str | None:
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return f"{where}.content is {described(content)}, not a string or null"
    if not isinstance(message.get("tool_calls", []), list | type(None)):
        return f"{where}.tool_calls is {described(message['tool_calls'])}, not a list"
    return None


def described(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number") if value != [] else "an empty list"


def shown(value: Any) -> str:
    return repr(value)[:40]


def preview(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))


def _first_chunk_problem(data: str) -> str | None:
    return "it ended with [DONE] before any chunk" if data == DONE else chunk_problem(data)


def _later_chunk_problem(data: str) -> str | None:
    return None if data == DONE else chunk_problem(data, error_ok=True)


CHAT = Api("chat-completion", "/chat/completions", completion_problem, _first_chunk_problem,
           _later_chunk_problem, finishes, lambda message, code, last: error_event(message, code),
           "no finish_reason, no [DONE]")
"""OpenAI chat completions (`POST /v1/chat/completions`)."""
