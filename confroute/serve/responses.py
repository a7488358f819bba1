"""POST /v1/responses: the OpenAI Responses API, scored, decided and forwarded as a chat
completion is (`chat.relay`): to the chosen model's upstream `/responses`, falling back up the
ladder, within the request's deadlines, its 2xx answers checked (`response_answers`) and its
streams relayed as whole events; the decision in x-confroute-* headers, and x-request-id.

What is scored: the user messages of `input`, which is a string (one user message) or a list
of input items. A message item has `role` and `content` (and may say `"type": "message"`); its
content is a string or a list of parts, of which `input_text` parts are text (`input_image`,
`input_file` and `input_audio` are not scored, as images are not in chat). Other items
(function_call, function_call_output, reasoning, item_reference, ...) are not scored, nor is
`instructions`, forwarded as it came (a chat's system message is not scored either). The
artifact's `preprocess.turn` picks among the user messages, as in chat. An input with no text
to score (its user messages hold only images or files, or it holds only items such as tool
outputs) goes to the top model, or the forced one. The request's `model` naming one of the
artifact's models forces it, and the `confroute_*` fields and `x-confroute-*` headers
override as for chat (`decisions`).

With a cascade configured (`cascade: true`), a Responses request is routed by the router alone,
by its own calibrated threshold (not by the cascade's t1, and no stage 2): the Responses API
gives token log-probs only when asked with `include: ["message.output_text.logprobs"]`, not
for reasoning models, and servers that offer /v1/responses differ in whether they send them,
so the edge's uncertainty cannot be read reliably. Such answers (and errors) carry
`x-confroute-cascade: off-on-responses` so a client can tell (docs/cascade.md).

Left as it is: `previous_response_id` names a response stored by the upstream that made it; a
follow-up is routed afresh and may reach another upstream, which then answers 404 (passed on).
To keep one conversation on one model, send the whole conversation in `input` (`store: false`)
or force the model.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from confroute.serve.answers import described as _type
from confroute.serve.chat import relay, scored_decision
from confroute.serve.decisions import chat_overrides
from confroute.serve.response_answers import RESPONSES
from confroute.serve.service import Service
from confroute.serve.wire import Problem, read_json

TEXT_PARTS = {"input_text", "output_text", "text"}
CASCADE_OFF = "off-on-responses"
"""The x-confroute-cascade header of a Responses answer while a cascade is configured."""
EXAMPLE = "'input': \"Hello\" or 'input': [{\"role\": \"user\", \"content\": \"Hello\"}]"


async def responses(service: Service, request: Request) -> Response:
    body = await read_json(request, service.settings.max_body_bytes)
    messages = scored_messages(body)
    overrides = chat_overrides(service.policy, body, request.headers)
    if messages:
        decision, text = await scored_decision(service, messages, overrides, "responses")
    else:  # only items such as tool outputs: no message, nothing to score
        decision, text = service.without_text(overrides, "responses"), ""
    trace = service.traffic.begin("responses", text, decision)  # no shadow: not chat-shaped
    extra = {"x-confroute-cascade": CASCADE_OFF} if service.cascade is not None else None
    return await relay(service, request, body, decision, RESPONSES, trace, extra)


def scored_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as chat messages, one per item (so that errors name the item's index): user
    messages with their text parts as `text` parts; other messages and items with their role
    (an item's type) only, which no turn setting scores; [] when no item is a message.
    Problem 422 when malformed."""
    if "input" not in body:
        raise _invalid(f"'input' is missing; send the prompt as {EXAMPLE}")
    given = body["input"]
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str | list):
        raise _invalid(f"'instructions' must be a string; found {_type(instructions)}")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise _invalid(f"'input' must be a string or a non-empty list of input items, e.g. "
                       f"{EXAMPLE}; found {_type(given)}")
    messages = [_message(item, f"input[{i}]") for i, item in enumerate(given)]
    return messages if any(item.get("type", "message") == "message" for item in given) else []


def _message(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _invalid(f"{where} must be an input item, an object such as {{\"role\": "
                       f"\"user\", \"content\": \"Hello\"}}; found {_type(item)}")
    kind = item.get("type", "message")
    if not isinstance(kind, str):
        raise _invalid(f"{where}.type must be a string such as 'message'; found {_type(kind)}")
    if kind != "message":
        return {"role": kind}  # a function call, tool output, reasoning, reference, ...
    role = item.get("role")
    if not isinstance(role, str):
        raise _invalid(f"{where} is a message without a 'role' string (user, assistant, "
                       f"system or developer); found {_type(role)}")
    if role != "user":
        return {"role": role}
    if "content" not in item:
        raise _invalid(f"{where} is a user message without 'content'")
    content = item["content"]
    if isinstance(content, str):
        return {"role": "user", "content": content}
    if not isinstance(content, list):
        raise _invalid(f"{where}.content must be a string or a list of parts; found "
                       f"{_type(content)}")
    return {"role": "user", "content": [_part(part, f"{where}.content[{j}]")
                                        for j, part in enumerate(content)]}


def _part(part: Any, where: str) -> dict[str, Any]:
    """A content part as a chat part: text parts as `text`, others (images, files, audio)
    by their type only (not scored)."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise _invalid(f"{where} must be a part, an object with a 'type' such as "
                       f"'input_text'; found {_type(part)}")
    if part["type"] not in TEXT_PARTS:
        return {"type": part["type"]}
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(f"{where}: an {part['type']} part's 'text' must be a string; found "
                       f"{_type(text)}")
    return {"type": "text", "text": text}


def _invalid(message: str) -> Problem:
    return Problem(422, message, "invalid_input")
