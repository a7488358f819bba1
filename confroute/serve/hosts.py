"""Which Host and Origin values a request may carry: the names a web page cannot borrow.

DNS rebinding: a page on `evil.example` points its own name at 127.0.0.1, and the browser then
treats the local service as that page's origin (it may read every answer). Its requests still
carry `Host: evil.example`, so a service on loopback serves only loopback names. A cross-site
request (a form, `fetch` with `no-cors`) carries the page's `Origin`. Starlette's
TrustedHostMiddleware is not used: it cuts the port at the first ":" (an IPv6 Host becomes
"[") and knows nothing of loopback addresses.

Pure functions, no web framework: the settings check their values with them at startup.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from confroute.errors import ConfigError

# RFC 1123 labels (and "_", which internal DNS names use); no empty label, so no trailing dot.
_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")
_PORT = re.compile(r":[0-9]{1,5}")
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_host(value: str) -> str | None:
    """The host of a Host header (or URL authority) `value`, lowercased, an IPv6 address
    without its brackets and compressed: "LocalHost:8000" -> "localhost", "[0::1]:80" -> "::1".

    None when `value` is not host[:port]: an empty or over-long port, an IPv6 address
    without brackets, a user@ part, a trailing dot, any character a DNS name cannot hold.
    """
    if value.startswith("["):
        inside, bracket, port = value[1:].partition("]")
        host = _ipv6(inside) if bracket else None
        if host is None:
            return None
    else:
        name, colon, digits = value.partition(":")
        host, port = name.lower(), colon + digits
        if not _NAME.fullmatch(host):
            return None
    if port and not (_PORT.fullmatch(port) and int(port[1:]) <= 65535):
        return None
    return host


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x.y.z).

    `host` as `parse_host` returns it (IPv6 without brackets). Other names, *.localhost
    included, are not loopback: a resolver may send those to a DNS server.
    """
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def host_allowed(value: str | None, allowed: Collection[str], on_loopback: bool) -> bool:
    """Whether a request whose Host header is `value` (None: none sent) may be served.

    On a loopback address: loopback names (`is_loopback`) and `allowed`; elsewhere: only
    `allowed` when it is not empty, else any well-formed Host. `allowed` as `check_hosts`
    returns it.
    """
    host = parse_host(value) if value is not None else None
    if host is None:
        return False
    if on_loopback and is_loopback(host):
        return True
    return host in allowed if allowed or on_loopback else True


def origin_key(value: str) -> str | None:
    """An Origin header or `cors_origins` entry as compared: "scheme://host[:port]" in lower
    case, the scheme's default port dropped; None for anything else ("null", a path, user@,
    a scheme other than http or https)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    host = parse_host(parts.netloc) if parts.netloc else None
    scheme = parts.scheme.lower()
    if host is None or scheme not in DEFAULT_PORTS or parts.path or parts.query \
            or parts.fragment or value.endswith(("?", "#")):
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port not in (None, DEFAULT_PORTS[scheme]) else "")


def origin_allowed(value: str, allowed: Collection[str]) -> bool:
    """Whether a request with `Origin: value` may be served; `allowed` as `check_origins`
    returns it ("*": any origin, "null" included)."""
    return "*" in allowed or origin_key(value) in allowed


def check_hosts(entries: Iterable[object]) -> list[str]:
    """`allowed_hosts` entries as `host_allowed` compares them (lower case, IPv6 without
    brackets); ConfigError naming the first entry that is not a host name or IP address."""
    checked = []
    for entry in entries:
        host = _host_entry(entry)
        if host is None:
            raise ConfigError(f"allowed_hosts entries must be host names or IP addresses "
                              f"without a port, e.g. confroute.example.com or [fd00::5]; "
                              f"found {entry!r}")
        checked.append(host)
    return checked


def _host_entry(entry: object) -> str | None:
    if not isinstance(entry, str):
        return None
    if ":" in entry and "[" not in entry:
        return _ipv6(entry)  # an IPv6 address written without brackets
    host = parse_host(entry)
    return None if host is None or _PORT.search(entry.rpartition("]")[2]) else host


def check_origins(entries: Iterable[object]) -> list[str]:
    """`cors_origins` entries as `origin_allowed` compares them ("*" kept; one trailing "/"
    forgiven); ConfigError naming the first entry that is not an origin."""
    checked = []
    for entry in entries:
        key = "*" if entry == "*" else origin_key(entry.removesuffix("/")) \
            if isinstance(entry, str) else None
        if key is None:
            raise ConfigError(f"cors_origins entries must be origins (scheme://host[:port], "
                              f"no path) such as http://localhost:3000, or '*'; found {entry!r}")
        checked.append(key)
    return checked


def _ipv6(text: str) -> str | None:
    """`text` as a compressed IPv6 address, None if it is not one."""
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None
