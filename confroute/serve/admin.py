"""POST /v1/feedback (an outcome of a logged request) and POST /admin/reload (swap in the
artifact again). Both are authenticated like /v1/* and pass the request guard like every POST.

Feedback body: {"request_id": ID, "rating": R} or {"request_id": ID, "thumbs": "up"|"down"},
optionally "source" (who rates, default "user"). ID is the x-confroute-request-id header of a
chat or route response; R a number in [0, 1] (1 = best). One report per (request id, source):
a repeated one replaces the earlier (idempotent). Answers: 200 {"status": "accepted"}; 404 for
an id the log does not hold; 422 for a bad body; 503 when the log is off, its database cannot
be read now to check the id, or its queue is full (retry later).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from confroute.errors import ConfrouteError, InputError
from confroute.serve.service import Service
from confroute.serve.wire import Problem, read_json

FEEDBACK_KEYS = {"request_id", "rating", "thumbs", "source"}
STATUS = {"accepted": 200, "unknown": 404, "unavailable": 503, "dropped": 503}


async def feedback(service: Service, request: Request) -> Response:
    body = await read_json(request, service.settings.max_body_bytes)
    unknown = sorted(set(body) - FEEDBACK_KEYS)
    if unknown:
        raise Problem(422, f"unknown field(s) {', '.join(unknown)}; /v1/feedback takes "
                      "request_id, rating (a number in [0, 1]) or thumbs (\"up\" or \"down\"), "
                      "and optionally source", "unknown_field")
    log = service.traffic.log
    if log is None:
        raise Problem(503, "the decision log is off (log.enabled: false), so feedback cannot "
                      "be recorded; turn it on to collect outcomes", "log_disabled",
                      "server_error")
    try:
        result = await log.afeedback(body.get("request_id"), body.get("rating"),
                                     body.get("thumbs"), body.get("source", "user"))
    except InputError as error:
        raise Problem(422, str(error), "invalid_feedback") from error
    status = STATUS[result.status]
    if status != 200:
        raise Problem(status, result.message, f"feedback_{result.status}",
                      "invalid_request_error" if status == 404 else "server_error")
    service.traffic.monitor.note_feedback()
    return JSONResponse({"status": result.status, "message": result.message})


async def reload(service: Service, request: Request) -> Response:
    """POST /admin/reload (a JSON body, {}): what is served after the reload, or 409 naming
    why not."""
    if not service.settings.reload_artifact:
        raise Problem(403, "reloading is off (reload_artifact: false)", "reload_disabled")
    try:
        return JSONResponse(await service.reload())
    except ConfrouteError as error:
        raise Problem(409, f"the artifact was not reloaded (the old one is served): {error}",
                      "reload_failed", "server_error") from error
