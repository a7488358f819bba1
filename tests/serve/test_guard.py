"""Issue 25 items 1-3: no web page may spend through, or read from, the local proxy. The real
app on loopback (uvicorn), a real echo upstream that counts its calls: a request refused for its
Content-Type, Host or Origin is refused before any scoring or upstream call."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from upstream import echo_app, serve_in_thread

from confroute.errors import ConfigError
from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

CHAT = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}]}
BODY = json.dumps(CHAT).encode()
POSTS = ["/v1/chat/completions", "/v1/route", "/v1/completions", "/v1/embeddings"]


@contextlib.contextmanager
def served(router: Router, host: str = "127.0.0.1", **settings: Any
           ) -> Iterator[SimpleNamespace]:
    """The proxy under uvicorn on `host`, in front of one echo upstream (both routes)."""
    echo = echo_app("echo")
    with serve_in_thread(echo) as echo_url:
        up = UpstreamSettings(echo_url + "/v1", "echo-model")
        app = create_app(router, ServeSettings(edge=up, cloud=up, **settings))
        with serve_in_thread(app, host) as url:
            yield SimpleNamespace(url=url, port=int(url.rpartition(":")[2]), echo=echo, app=app)


@pytest.fixture(scope="module")
def proxy(router: Router) -> Iterator[SimpleNamespace]:
    with served(router) as running:
        yield running


def work_done(proxy: SimpleNamespace) -> tuple[int, float]:
    """(upstream calls, scoring calls) so far: what a refused request must not change."""
    text = httpx.get(proxy.url + "/metrics").text
    scored = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith("confroute_score_seconds_count")]
    return len(proxy.echo.state.seen), scored[0] if scored else 0.0


def refused(proxy: SimpleNamespace, status: int, code: str, method: str = "POST",
            path: str = "/v1/chat/completions", **headers: str) -> None:
    before = work_done(proxy)
    reply = httpx.request(method, proxy.url + path, content=BODY if method == "POST" else None,
                          headers=headers)
    assert reply.status_code == status, (headers, reply.text)
    error = reply.json()["error"]
    assert error["code"] == code and error["message"] and error["type"], error
    assert work_done(proxy) == before, "a refused request reached the scorer or the upstream"


# --- item 1: JSON content types only ----------------------------------------------------------

SIMPLE_TYPES = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=----x"]  # what pages send without a preflight
OTHER_TYPES = ["", "text/json", "application/jsonx", "application/javascript",
               "application/json, text/plain", "application/json; charset=latin-1",
               "application/+json", "json", "application/x-json-stream"]


@pytest.mark.parametrize("content_type", SIMPLE_TYPES + OTHER_TYPES)
@pytest.mark.parametrize("path", POSTS)
def test_a_body_that_is_not_declared_json_is_a_415(proxy: SimpleNamespace, path: str,
                                                   content_type: str) -> None:
    refused(proxy, 415, "unsupported_media_type", path=path, **{"content-type": content_type})


@pytest.mark.parametrize("path", POSTS)
def test_a_body_without_content_type_is_a_415_naming_the_header(proxy: SimpleNamespace,
                                                                path: str) -> None:
    before = work_done(proxy)
    reply = httpx.post(proxy.url + path, content=BODY)  # httpx sends no Content-Type here
    assert reply.status_code == 415
    assert "Content-Type: application/json" in reply.json()["error"]["message"]
    assert work_done(proxy) == before


def test_two_content_type_headers_must_both_be_json(proxy: SimpleNamespace) -> None:
    status, _ = raw_request(proxy, b"POST /v1/route HTTP/1.1\r\nHost: localhost\r\n"
                            b"Content-Type: application/json\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: 15\r\n\r\n{\"prompt\": \"a\"}")
    assert status == 415


@pytest.mark.parametrize("content_type", [
    "application/json", "Application/JSON", "application/json; charset=utf-8",
    'application/json;charset="UTF-8"', "application/vnd.api+json",
    "application/merge-patch+json; charset=utf-8", "application/json; version=1"])
def test_json_content_types_are_served(proxy: SimpleNamespace, content_type: str) -> None:
    reply = httpx.post(proxy.url + "/v1/chat/completions", content=BODY,
                       headers={"content-type": content_type})
    assert reply.status_code == 200, reply.text


# --- item 2: the Host on a loopback address ---------------------------------------------------

GOOD_HOSTS = ["localhost", "localhost:{port}", "LOCALHOST:{port}", "LocalHost", "127.0.0.1",
              "127.0.0.1:{port}", "127.0.0.2", "127.255.0.1:80", "[::1]", "[::1]:{port}",
              "[0:0:0:0:0:0:0:1]:{port}", "[::ffff:127.0.0.1]:{port}"]
BAD_HOSTS = ["evil.example", "evil.example:{port}", "localhost.evil.example",
             "localhost.evil.example:{port}", "evil-localhost", "evillocalhost", "localhostevil",
             "localhost-evil.example", "127.0.0.1.nip.io", "127.0.0.1.evil.example",
             "evil.example.127.0.0.1", "localhost.", "localhost.:{port}", "127.0.0.1.",
             "foo.localhost", "localhost:", "localhost:abc", "localhost:99999",
             "localhost:{port}@evil.example", "user@localhost", "::1", "[::1", "[::2]",
             "[::ffff:8.8.8.8]", "0.0.0.0", "127.1", "2130706433", "0x7f000001",
             "0177.0.0.1", "", "local host", "localhost:{port}:{port}", "[::1]:{port}x"]


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_loopback_names_are_served(proxy: SimpleNamespace, host: str) -> None:
    reply = httpx.get(proxy.url + "/v1/models", headers={"host": host.format(port=proxy.port)})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_other_hosts_are_refused_before_any_work(proxy: SimpleNamespace, host: str) -> None:
    host = host.format(port=proxy.port)
    for path in ("/v1/models", "/metrics", "/health"):
        reply = httpx.get(proxy.url + path, headers={"host": host})
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "host_not_allowed"
    refused(proxy, 403, "host_not_allowed", host=host, **{"content-type": "application/json"})


def raw_request(proxy: SimpleNamespace, raw: bytes) -> tuple[int, bytes]:
    """Send `raw` bytes as the request (forms no client library writes); (status, body)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _whole(data):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _whole(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
              if line.lower().startswith(b"content-length:")]
    return bool(length) and len(body) >= length[0]


@pytest.mark.parametrize("request_head, status", [
    (b"GET /v1/models HTTP/1.0\r\n\r\n", 403),  # HTTP/1.0 may omit Host: refused
    (b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n", None),
    (b"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nHost: localhost\r\n\r\n", None),
    (b"GET http://evil.example/v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", 403),
    (b"GET http://localhost/v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),
    (b"GET HTTP://LOCALHOST.EVIL.EXAMPLE/v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", 403),
    (b"GET http://localhost:1/v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", 200),
    (b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", 200),
])
def test_host_forms_no_client_library_sends(proxy: SimpleNamespace, request_head: bytes,
                                            status: int | None) -> None:
    got, body = raw_request(proxy, request_head)
    if status is None:  # two Host headers: refused by the HTTP parser or by the guard
        assert got in (400, 403), body
    else:
        assert got == status, body
    if got == 200:
        assert json.loads(body)["object"] == "list"  # the absolute-form target was served


def test_allowed_hosts_add_names_on_loopback(router: Router) -> None:
    with served(router, allowed_hosts=["confroute.example.com", "fd00::5"]) as running:
        for host, status in [("confroute.example.com", 200), ("CONFROUTE.EXAMPLE.COM:8443", 200),
                             ("[fd00::5]:80", 200), ("localhost", 200),
                             ("x.confroute.example.com", 403), ("confroute.example.com.evil", 403),
                             ("confroute.example.co", 403)]:
            reply = httpx.get(running.url + "/v1/models", headers={"host": host})
            assert reply.status_code == status, host


def test_bound_to_all_addresses_a_loopback_connection_still_checks_the_host(
        router: Router) -> None:
    with served(router, host="0.0.0.0") as running:  # reached here through 127.0.0.1
        url = f"http://127.0.0.1:{running.port}/v1/models"
        assert httpx.get(url).status_code == 200
        assert httpx.get(url, headers={"host": "evil.example"}).status_code == 403


def test_on_ipv6_loopback(router: Router) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        context = served(router, host="::1")
        running = context.__enter__()
    except (OSError, RuntimeError):
        pytest.skip("cannot listen on [::1] here")
    try:
        url = f"http://[::1]:{running.port}/v1/models"
        assert httpx.get(url).status_code == 200
        assert httpx.get(url, headers={"host": "evil.example"}).status_code == 403
    finally:
        context.__exit__(None, None, None)


def test_off_loopback_allowed_hosts_apply_when_set(router: Router) -> None:
    """A connection that arrived on a non-loopback address (as the ASGI scope says)."""
    async def get(app: Any, host: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3") as http:
            return (await http.get("/v1/models", headers={"host": host})).status_code

    import asyncio

    open_app = create_app(router, ServeSettings(host="0.0.0.0"))
    assert asyncio.run(get(open_app, "anything.example")) == 200
    closed = create_app(router, ServeSettings(host="0.0.0.0", allowed_hosts=["api.example"]))
    assert asyncio.run(get(closed, "api.example:443")) == 200
    assert asyncio.run(get(closed, "other.example")) == 403
    assert asyncio.run(get(closed, "localhost")) == 403  # not on loopback: no loopback names


@pytest.mark.parametrize("entry", ["x.example:80", "http://x.example", "x.example.", "",
                                   "a b", "[::1]:80", "*"])
def test_allowed_hosts_entries_are_checked_at_startup(entry: str) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts entries must be host names"):
        ServeSettings(allowed_hosts=[entry])


# --- item 3: Origin ---------------------------------------------------------------------------

BAD_ORIGINS = ["http://evil.example", "null", "http://localhost:3000", "http://127.0.0.1:8000",
               "https://localhost", "file://", "http://localhost:3000.evil.example",
               "http://localhost:3000/", "chrome-extension://abcdef", "", "http://[::1]:3000"]


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_with_cors_off_any_origin_is_refused(proxy: SimpleNamespace, origin: str) -> None:
    refused(proxy, 403, "origin_not_allowed", origin=origin,
            **{"content-type": "application/json"})
    refused(proxy, 403, "origin_not_allowed", "GET", "/v1/models", origin=origin)


@pytest.mark.parametrize("site, status", [("cross-site", 403), ("same-site", 403),
                                          ("same-origin", 200), ("none", 200)])
def test_a_request_the_browser_marks_cross_site_is_refused(proxy: SimpleNamespace, site: str,
                                                           status: int) -> None:
    # e.g. <img src="http://127.0.0.1:8000/metrics">: a GET that carries no Origin
    reply = httpx.get(proxy.url + "/metrics", headers={"sec-fetch-site": site})
    assert reply.status_code == status


def test_a_cross_site_form_post_is_refused_and_costs_nothing(proxy: SimpleNamespace) -> None:
    """What a page's <form enctype="text/plain" method="post"> makes a browser send."""
    refused(proxy, 403, "origin_not_allowed", origin="https://evil.example",
            **{"content-type": "text/plain", "sec-fetch-site": "cross-site",
               "sec-fetch-mode": "navigate"})


def test_configured_origins_only(router: Router) -> None:
    origins = ["http://localhost:3000", "https://app.example/"]
    with served(router, cors_origins=origins) as running:
        for origin, status in [("http://localhost:3000", 200), ("https://app.example", 200),
                               ("https://app.example:443", 200), ("HTTP://LOCALHOST:3000", 200),
                               ("http://localhost:3001", 403), ("http://app.example", 403),
                               ("null", 403), ("https://app.example.evil", 403)]:
            reply = httpx.get(running.url + "/v1/models", headers={"origin": origin})
            assert reply.status_code == status, origin
        reply = httpx.get(running.url + "/v1/models", headers={"origin": "http://localhost:3000"})
        assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    with served(router, cors_origins=["*"]) as running:
        assert httpx.get(running.url + "/v1/models", headers={"origin": "null"}).status_code == 200


@pytest.mark.parametrize("entry", ["http://localhost:3000/app", "localhost:3000", "null", ""])
def test_cors_origins_entries_are_checked_at_startup(entry: str) -> None:
    with pytest.raises(ConfigError, match="cors_origins"):
        ServeSettings(cors_origins=[entry])
