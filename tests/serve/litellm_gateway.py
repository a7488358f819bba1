"""A LiteLLM gateway on loopback: the real `litellm.Router` behind an OpenAI-compatible
/v1/chat/completions, as a LiteLLM proxy puts it (the proxy's own extra is not installable here).
Plain answers are the Router's ModelResponse as JSON, streams its chunks as SSE events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def gateway_app(llm_router: Any) -> Starlette:
    """Serve `llm_router` (a litellm.Router); the request's `model` names a model group."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        try:
            answer = await llm_router.acompletion(**body)
        except Exception as exc:  # LiteLLM's errors carry the upstream's status
            status = int(getattr(exc, "status_code", 500) or 500)
            return JSONResponse({"error": {"message": str(exc)}}, status_code=status)
        if not body.get("stream"):
            return JSONResponse(answer.model_dump(exclude_none=True))

        async def events() -> AsyncIterator[str]:
            async for chunk in answer:
                yield f"data: {json.dumps(chunk.model_dump(exclude_none=True))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
