"""Is an upstream's 2xx answer a Responses API answer? The Responses form of `answers`.

The checks follow the shapes the `openai` SDK reads (openai/types/responses: `Response` and
the `ResponseStreamEvent` union). A whole answer is a `response` object whose `output` is a
list of items, each an object with a `type`; a message item's `content` is a list of parts,
an `output_text` part's `text` a string. A `failed` status or an `error` object sent with 200
is an upstream failure, and so is a `completed` response with no output (a client would show
an empty answer). A stream is named events (`event: response.output_text.delta` then a `data:`
line): each data is a JSON object whose `type` is a string, the first a `response.*` event
(OpenAI sends `response.created`) and neither `error` nor `response.failed`; a text delta's
`delta` is a string. It ends with `response.completed`, `response.incomplete`,
`response.failed` or an `error` event (some servers add `data: [DONE]`).
"""

from __future__ import annotations

import json
from typing import Any

from confroute.serve.answers import DONE, Api, described, json_object, preview, shown

ENDS = {"response.completed", "response.incomplete", "response.failed", "error"}
"""The event types after which a Responses stream has nothing more to say."""
FAILED = {"response.failed", "error"}


def response_problem(content: bytes) -> str | None:
    """Why `content` (a non-streamed 2xx body) is not a Responses `response`; None when it is."""
    body, problem = json_object(content.decode("utf-8", errors="replace"), "the body")
    if body is None:
        return problem
    if (kind := body.get("object", "response")) != "response":
        return f"the body is a {shown(kind)}, not a response"
    status = body.get("status", "completed")
    if status == "failed":
        return "the body is a response whose status is 'failed'"
    output = body.get("output")
    if not isinstance(output, list):
        return f"the body has {described(output)} for 'output' (a list of items is due)"
    if not output and status == "completed":
        return "the body is a completed response with no output"
    for i, item in enumerate(output):
        if (wrong := _item_problem(item, f"output[{i}]")) is not None:
            return wrong
    return None


def _item_problem(item: Any, where: str) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        return f"{where} is {described(item)}, not an output item (an object with a 'type')"
    if item["type"] != "message":
        return None  # function calls, reasoning, ...: read by their own clients
    content = item.get("content")
    if not isinstance(content, list):
        return f"{where}.content is {described(content)}, not a list of parts"
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            return f"{where}.content[{j}] is {described(part)}, not a part with a 'type'"
        if part["type"] == "output_text" and not isinstance(part.get("text"), str):
            return f"{where}.content[{j}].text is {described(part.get('text'))}, not a string"
    return None


def _event(data: str) -> tuple[dict[str, Any] | None, str]:
    """(the event's JSON object, its type) or (None, why it is no Responses event). A bare
    `{"error": ...}` object (the chat form some servers send) is typed "error"."""
    body, problem = json_object(data, "a stream event")
    if body is None:
        if "is an error: " in problem:
            return {}, "error"
        return None, problem
    kind = body.get("type")
    if not isinstance(kind, str):
        return None, f"a stream event has {described(kind)} for 'type' (a Responses event " \
                     "type such as 'response.output_text.delta' is due)"
    if kind == "response.output_text.delta" and not isinstance(body.get("delta"), str):
        return None, f"a text delta has {described(body.get('delta'))} for 'delta'"
    return body, kind


def first_event_problem(data: str) -> str | None:
    """Why the first data event is not the start of a Responses stream; None when it is."""
    if data == DONE:
        return "it ended with [DONE] before any event"
    body, kind = _event(data)
    if body is None:
        return kind
    if kind in FAILED:
        response = body.get("response")
        said = body.get("message") or body.get("error") or \
            (response.get("error") if isinstance(response, dict) else None) or data
        return f"its first event is {kind!r}: {preview(str(said))}"
    if not kind.startswith("response."):
        return f"its first event is of type {shown(kind)}, not a response.* event"
    return None


def event_problem(data: str) -> str | None:
    """Why a later data event is not a Responses event; None when it is (errors included)."""
    if data == DONE:
        return None
    body, kind = _event(data)
    return kind if body is None else None


def finishes(data: str) -> bool:
    """Whether the data of an event ends the stream (see ENDS; [DONE] too)."""
    if data == DONE:
        return True
    body, kind = _event(data)
    return body is not None and kind in ENDS


def error_event(message: str, code: str, last: str) -> bytes:
    """A Responses `error` event, numbered after the data `last`. Its fields are those of the
    SDK's `ResponseErrorEvent` (type, code, message, param, sequence_number) and, as the
    OpenAI service sends them and the `openai` SDK raises them as an APIError, an `error`
    object with the same."""
    try:
        previous = json.loads(last).get("sequence_number")
    except (ValueError, AttributeError, RecursionError):
        previous = None
    number = previous + 1 if isinstance(previous, int) and not isinstance(previous, bool) else 0
    error = {"type": "server_error", "code": code, "message": message, "param": None}
    event = {"type": "error", "code": code, "message": message, "param": None,
             "sequence_number": number, "error": error}
    return f"event: error\ndata: {json.dumps(event)}\n\n".encode()


RESPONSES = Api("Responses", "/responses", response_problem, first_event_problem,
                event_problem, finishes, error_event,
                "no response.completed, response.incomplete or response.failed")
"""The OpenAI Responses API (`POST /v1/responses`)."""
