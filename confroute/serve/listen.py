"""Binding the listening socket ourselves, so `--port 0` works and the real port is known."""

from __future__ import annotations

import socket

from confroute.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn's `Server.run(sockets=[...])`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not the default 0): asyncio sets TCP_NODELAY on accepted
    # connections only when it is, and without it every response whose headers and body are
    # written separately waits ~40 ms for the client's delayed ACK (Nagle's algorithm).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                          "--port (0 = any free port) or --host") from exc
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
