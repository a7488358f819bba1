"""An upstream that writes exactly the bytes it is told to: the misbehaving servers a proxy must
survive (a 200 that is no chat completion, a stream cut mid-event, only keep-alives, a stall, a
Content-Length that lies). A real TCP server on loopback, in a thread; HTTP/1.1 written by hand
so that nothing (no framework) tidies the bytes up.

    with raw_upstream(lambda request: Script(json_head(200, 50), [(0, b'{"id": 1')])) as up:
        up.url     # http://127.0.0.1:PORT/v1 ; up.calls: the requests it was sent (bodies)

`scripted_proxy` puts such an upstream behind the proxy as its edge, with the `cloud` fixture
(`echo_cloud`, which test modules import) as the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest


@dataclasses.dataclass
class Script:
    """What the upstream writes after reading a request: `head` (status line and headers),
    then each (seconds to wait, bytes) part; then it closes the connection or hangs until the
    caller hangs up."""

    head: bytes
    parts: list[tuple[float, bytes]] = dataclasses.field(default_factory=list)
    end: Literal["close", "hang"] = "close"


def json_head(status: int = 200, length: int | None = None,
              content_type: str = "application/json") -> bytes:
    """A response head; without `length`, the body runs until the connection closes."""
    lines = [f"HTTP/1.1 {status} X", f"content-type: {content_type}", "connection: close"]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_answer(body: Any, status: int = 200) -> Script:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Script(json_head(status, len(raw)), [(0.0, raw)])


def sse_answer(*parts: bytes | tuple[float, bytes], end: Literal["close", "hang"] = "close"
               ) -> Script:
    """A text/event-stream answer whose body is `parts`, each written (and flushed) apart."""
    timed = [p if isinstance(p, tuple) else (0.0, p) for p in parts]
    return Script(json_head(200, None, "text/event-stream"), timed, end)


def chunk(content: str, role: bool = False) -> bytes:
    """One chat.completion.chunk event's JSON (no `data: ` prefix, no line ends)."""
    delta = {"role": "assistant", "content": content} if role else {"content": content}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                      ).encode()


class RawUpstream:
    def __init__(self, script: Callable[[dict[str, Any]], Script]):
        self.script = script
        self.calls: list[dict[str, Any]] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            self.calls.append(body)
            script = self.script(body)
            writer.write(script.head)
            for delay, data in script.parts:
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
            if script.end == "hang":
                await reader.read()  # until the caller hangs up
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the caller hung up, or the server is stopping
        finally:
            writer.close()


@contextlib.contextmanager
def raw_upstream(script: Callable[[dict[str, Any]], Script]) -> Iterator[RawUpstream]:
    upstream = RawUpstream(script)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: list[asyncio.Server] = []

    async def start() -> None:
        server.append(await asyncio.start_server(upstream._serve, "127.0.0.1", 0))
        upstream.url = f"http://127.0.0.1:{server[0].sockets[0].getsockname()[1]}/v1"
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    started.wait(10)
    async def stop() -> None:
        server[0].close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    try:
        yield upstream
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# The proxy's deadlines in the scripted-upstream tests. After the scripted edge used up its
# FIRST_CONTENT_S, the healthy echo cloud must answer within the same deadline: at 1 s it
# missed it on a loaded CI machine (a 504 for a healthy fallback). The read timeout stays
# above REQUEST_S, so that a stall is cut by the request deadline the tests name.
FIRST_CONTENT_S, REQUEST_S, READ_S = 2.5, 6.0, 10.0


@contextlib.contextmanager
def scripted_proxy(router: Any, script: Script, cloud: Any, **settings: Any) -> Iterator[str]:
    """The proxy's base URL (`.../v1`) with the scripted upstream as its edge and `cloud` (an
    echo app with `state.url`) as its cloud; with `cloud` None the scripted upstream is the cloud
    (the top model: nothing to fall back to) and an echo upstream the edge."""
    from upstream import echo_app, serve_in_thread

    from confroute.serve import ServeSettings, UpstreamSettings, create_app

    with raw_upstream(lambda body: script) as scripted, serve_in_thread(echo_app("edge")) as echo:
        limits = {"first_content_timeout_s": FIRST_CONTENT_S, "request_timeout_s": REQUEST_S,
                  "read_timeout_s": READ_S, **settings}
        edge, top = (scripted.url, cloud.state.url) if cloud is not None \
            else (echo + "/v1", scripted.url)
        cfg = ServeSettings(edge=UpstreamSettings(edge, "edge-m"),
                            cloud=UpstreamSettings(top, "cloud-m"), **limits)
        with serve_in_thread(create_app(router, cfg)) as url:
            yield url + "/v1"


@pytest.fixture(scope="module", name="cloud")
def echo_cloud() -> Iterator[Any]:
    """A real echo server as the cloud upstream: the app, its base URL (.../v1) in state.url,
    as `scripted_proxy` reads it."""
    from upstream import echo_app, serve_in_thread

    app = echo_app("cloud")
    with serve_in_thread(app) as url:
        app.state.url = url + "/v1"
        yield app
