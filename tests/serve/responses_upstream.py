"""The Responses API side of the echo upstream (tests/serve/upstream.py): its `response`
object and its stream of named events, in the shapes of the `openai` SDK's
openai/types/responses (Response; response.created ... response.completed, each with its
sequence_number), so that `client.responses.create` reads them as it reads OpenAI's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

CREATED = 1_700_000_000


def input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as chat messages (text parts joined), for the echo's answerer."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    messages = []
    for item in given if isinstance(given, list) else []:
        if isinstance(item, dict) and "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = "\n".join(p.get("text", "") for p in content
                                    if isinstance(p, dict) and "text" in p)
            messages.append({"role": item["role"], "content": content})
    return messages


def _message(name: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{name}", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def response_object(name: str, model: Any, text: str | None, status: str = "completed"
                    ) -> dict[str, Any]:
    """A `response` object; `text` None: no output yet (as in response.created)."""
    words = len((text or "").split())
    return {"id": f"resp_{name}", "object": "response", "created_at": CREATED,
            "status": status, "model": model, "error": None, "incomplete_details": None,
            "output": [] if text is None else [_message(name, text)],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": None if text is None else {
                "input_tokens": words, "output_tokens": words, "total_tokens": 2 * words,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}}}


def _events(name: str, model: Any, text: str) -> list[dict[str, Any]]:
    """The events of one streamed answer, one text delta per word, numbered."""
    where = {"item_id": f"msg_{name}", "output_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    words = [w + " " for w in text.split(" ")[:-1]] + text.split(" ")[-1:]
    events = [{"type": "response.created", "response": response_object(name, model, None,
                                                                        "in_progress")},
              {"type": "response.in_progress", "response": response_object(
                  name, model, None, "in_progress")},
              {"type": "response.output_item.added", "output_index": 0,
               "item": {**_message(name, "", "in_progress"), "content": []}},
              {"type": "response.content_part.added", **where, "content_index": 0,
               "part": part}]
    events += [{"type": "response.output_text.delta", **where, "content_index": 0,
                "delta": word, "logprobs": []} for word in words]
    events += [{"type": "response.output_text.done", **where, "content_index": 0,
                "text": text, "logprobs": []},
               {"type": "response.content_part.done", **where, "content_index": 0,
                "part": {**part, "text": text}},
               {"type": "response.output_item.done", "output_index": 0,
                "item": _message(name, text)},
               {"type": "response.completed", "response": response_object(name, model, text)}]
    return [{**event, "sequence_number": i} for i, event in enumerate(events)]


async def _stream(name: str, model: Any, text: str, break_after: int | None
                  ) -> AsyncIterator[bytes]:
    for i, event in enumerate(_events(name, model, text)):
        if break_after is not None and i >= break_after:
            raise RuntimeError("echo: breaking the stream off on purpose")
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
        await asyncio.sleep(0)  # a separate write per event, like a generating model


def responses_reply(name: str, body: dict[str, Any], text: str, break_after: int | None,
                    headers: dict[str, str]) -> Response:
    """The answer to a Responses request: a response object, or its event stream."""
    if body.get("stream"):
        return StreamingResponse(_stream(name, body.get("model"), text, break_after),
                                 media_type="text/event-stream", headers=headers)
    return JSONResponse(response_object(name, body.get("model"), text), headers=headers)
