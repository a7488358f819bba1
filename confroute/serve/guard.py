"""The request guard: checks every request passes before any endpoint runs (ASGI middleware).

A local service must be safe from web pages: a page can make the browser send requests to
127.0.0.1 (forms and `no-cors` fetches need no permission) and, by DNS rebinding, read the
answers. So, in this order, each refusal an OpenAI-style JSON error sent before any scoring or
upstream call, for every endpoint present and future:

1. Host (403): on a loopback address only loopback names and `allowed_hosts`; elsewhere only
   `allowed_hosts` when set (`hosts.host_allowed`). An absolute-form request target
   (`POST http://name/v1/...`) is judged by its own authority too (RFC 9112, 3.2.2).
2. Origin (403): an `Origin` header not in `cors_origins` ("null" included), or a request the
   browser marks cross-site (`Sec-Fetch-Site`) that carries no allowed Origin.
3. Content-Type (415): a request with a body (any method but GET, HEAD, OPTIONS) must say
   `application/json` or `application/<x>+json` (charset utf-8 if any). Browsers send
   text/plain, x-www-form-urlencoded and multipart/form-data cross-site without asking first
   (FastAPI's CVE-2021-32677 was parsing those as JSON).
4. Body: read whole within `body_timeout_s` (408) and `max_body_bytes` (413), parsed as strict
   bounded JSON (400, `wire.parse_json`), and left in the scope for `wire.read_json`.

It also starts the request's Deadline (`deadlines`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confroute.serve.deadlines import SCOPE_KEY, Deadline
from confroute.serve.hosts import (
    check_hosts,
    check_origins,
    host_allowed,
    is_loopback,
    origin_allowed,
)
from confroute.serve.wire import PARSED_BODY, Problem, parse_json, read_body

BODYLESS = {"GET", "HEAD", "OPTIONS"}
_JSON_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.+-]+\+)?json")
_ABSOLUTE = re.compile(r"https?://", re.IGNORECASE)
SEND_JSON = "send the body as JSON with the header 'Content-Type: application/json'"


class RequestGuard:
    """ASGI middleware over the app, configured by ServeSettings (see the module docstring).

    `refused(code)` is called for each request refused (e.g. a metrics counter).
    """

    def __init__(self, app: ASGIApp, settings: Any, refused: Any = None):
        self.app = app
        self.settings = settings
        self.allowed_hosts = check_hosts(settings.allowed_hosts)
        self.origins = check_origins(settings.cors_origins)
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = Deadline.start(self.settings)
        try:
            scope = self._check_host(scope)
            self._check_origin(scope)
            if scope["method"] not in BODYLESS:
                receive = await self._read_body(scope, receive)
        except Problem as problem:
            if self.refused is not None:
                self.refused(problem.code)
            await problem.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_host(self, scope: Scope) -> Scope:
        """The scope to serve (an absolute-form target rewritten to its path); Problem 403."""
        server = scope.get("server")
        on_loopback = is_loopback(str(server[0]) if server else self.settings.host)
        hosts = _headers(scope, b"host")
        names = hosts[:]
        if _ABSOLUTE.match(scope["path"]):
            target = urlsplit(scope["path"])
            names.append(target.netloc)
            raw = urlsplit(scope.get("raw_path", b"").decode("latin-1")).path or "/"
            scope = {**scope, "path": target.path or "/", "raw_path": raw.encode("latin-1")}
        if len(hosts) != 1:
            raise Problem(403, f"a request must carry one Host header; found {len(hosts)}",
                          "host_not_allowed", "permission_error")
        if not all(host_allowed(n, self.allowed_hosts, on_loopback) for n in names):
            # (the allowed names are not listed: a rebinding page can read this answer)
            served = ("on a loopback address this service answers only for localhost, "
                      "127.0.0.1, [::1] and the names in allowed_hosts, so that no web page "
                      "can reach it under a name of its own (DNS rebinding)" if on_loopback
                      else "this service answers only for the names in allowed_hosts")
            raise Problem(403, f"Host {_shown(names)} is not served: {served}; if that name "
                          "is this service's, add it to allowed_hosts", "host_not_allowed",
                          "permission_error")
        return scope

    def _check_origin(self, scope: Scope) -> None:
        origins = _headers(scope, b"origin")
        if any(not origin_allowed(o, self.origins) for o in origins):
            raise Problem(403, f"requests from the web page origin {_shown(origins)} are "
                          "refused: it is not in cors_origins"
                          + ("" if self.origins else " (empty: CORS is off)"),
                          "origin_not_allowed", "permission_error")
        site = _headers(scope, b"sec-fetch-site")
        if not origins and "*" not in self.origins and {"cross-site", "same-site"} & set(site):
            raise Problem(403, "the browser marks this request as sent from another site "
                          "(Sec-Fetch-Site); web pages may call this service only from the "
                          "origins in cors_origins", "origin_not_allowed", "permission_error")

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        """Check the Content-Type, read and parse the body; a `receive` that replays it."""
        types = _headers(scope, b"content-type")
        if not types or not all(is_json_type(t) for t in types):
            found = f"found Content-Type {_shown(types)}" if types else "found no Content-Type"
            raise Problem(415, f"{scope['method']} {scope['path']}: {SEND_JSON} ({found})",
                          "unsupported_media_type")
        lengths = _headers(scope, b"content-length")
        body = await read_body(receive, lengths[0] if lengths else None,
                               self.settings.max_body_bytes, self.settings.body_timeout_s)
        scope[PARSED_BODY] = parse_json(body)
        return _replay(body, receive)


def is_json_type(value: str) -> bool:
    """Whether a Content-Type value is JSON: application/json or application/<x>+json, with
    any parameters, but a charset only if it is UTF-8 (RFC 8259: JSON is UTF-8)."""
    media, *parameters = value.split(";")
    if not _JSON_TYPE.fullmatch(media.strip().lower()):
        return False
    for parameter in parameters:
        name, _, given = parameter.partition("=")
        if name.strip().lower() == "charset" and \
                given.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


def _shown(values: list[str]) -> str:
    return ", ".join(repr(v[:100]) for v in values)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that hands the app the body already read, then the client's next messages
    (a disconnect, which the proxy watches for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
