"""Typed settings for `confroute serve`: limits, fallback, and the two upstreams.

Upstream URLs, model names and API keys come from the environment so that no secret is ever
written to a config file or shown on a command line (`ps` shows argv to every user):

    CONFROUTE_EDGE_BASE_URL   CONFROUTE_EDGE_MODEL   CONFROUTE_EDGE_API_KEY
    CONFROUTE_CLOUD_BASE_URL  CONFROUTE_CLOUD_MODEL  CONFROUTE_CLOUD_API_KEY
    CONFROUTE_TOKEN           (optional: clients must send `Authorization: Bearer <token>`)

A YAML file (`confroute serve --config`) may set everything else, and the base URLs and models.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, Literal

from confroute.config import from_dict
from confroute.errors import ConfigError

RouteName = Literal["edge", "cloud"]
ROUTES: tuple[RouteName, RouteName] = ("edge", "cloud")
TOKEN_ENV = "CONFROUTE_TOKEN"


def env_name(route: str, field: str) -> str:
    """`env_name("edge", "base_url")` -> "CONFROUTE_EDGE_BASE_URL"."""
    return f"CONFROUTE_{route.upper()}_{field.upper()}"


@dataclasses.dataclass
class UpstreamSettings:
    """One OpenAI-compatible upstream (the edge or the cloud model)."""

    base_url: str | None = None
    """API root including the version, e.g. http://127.0.0.1:8080/v1; None = not configured."""
    model: str | None = None
    """The `model` value the upstream expects; the proxy writes it into every forwarded request."""
    api_key_env: str | None = None
    """Environment variable holding this upstream's API key (default CONFROUTE_<ROUTE>_API_KEY)."""

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"upstream base_url must be an http(s) URL such as "
                              f"http://127.0.0.1:8080/v1; found {self.base_url!r}")


@dataclasses.dataclass
class ServeSettings:
    """Everything `create_app` needs besides the router artifact."""

    host: str = "127.0.0.1"
    """Loopback by default: exposing the service is an explicit choice (set a token then)."""
    port: int = 8000
    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token clients must send (all endpoints but /health); default $CONFROUTE_TOKEN."""
    threshold: float | None = None
    """Default routing threshold; None = the one recorded in the artifact."""
    variant: Literal["auto", "fp32", "int8"] = "auto"
    threads: int | None = 1
    """onnxruntime intra-op threads per scoring call; None = onnxruntime's default (all cores).
    Under concurrent load, one thread per call and `score_workers` calls at once does more work
    per CPU second than every call spreading over (and spin-waiting on) all cores."""
    max_body_bytes: int = 1_000_000
    """Larger request bodies get 413 before they are parsed."""
    max_prompt_chars: int = 100_000
    """Longer scored texts get 413 (the router reads only its first max_length tokens anyway)."""
    max_prompts: int = 256
    """Most prompts in one /v1/route request."""
    batch_max: int = 1
    """Micro-batching: requests waiting for a scoring call are scored together, up to this many
    prompts per onnxruntime call (1 = off). Off by default: measured with bench/load.py, it pays
    for tiny routers (per-call overhead) but not for MiniLM-sized ones (padding), and with int8 a
    score then depends slightly on its batch-mates."""
    score_workers: int | None = None
    """Scoring calls running at once (the rest queue); None = one per CPU core."""
    fallback: bool = True
    """When the chosen upstream fails (connection error, timeout, 429 or 5xx), try the other."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    """Longest wait for the upstream's response to start, and between streamed chunks."""
    cors_origins: list[str] = dataclasses.field(default_factory=list)
    """Browser origins allowed to call the service (CORS), e.g. ["http://localhost:3000"], or
    ["*"] for any; empty (the default) = CORS off, so no web page can call it from a browser."""
    edge: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    cloud: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)

    def __post_init__(self) -> None:
        if self.threshold is not None:
            _check_number("threshold", self.threshold, 0.0, 1.0)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in [0, 65535] (0 = any free port); found {self.port}")
        for name in ("max_body_bytes", "max_prompt_chars", "max_prompts", "batch_max",
                     "score_workers", "threads"):
            # `not x >= 1` rather than `x < 1`: a NaN passed from Python must fail too
            if getattr(self, name) is not None and not getattr(self, name) >= 1:
                raise ConfigError(f"{name} must be >= 1; found {getattr(self, name)}")
        for name in ("connect_timeout_s", "read_timeout_s"):
            _check_number(name, getattr(self, name), 0.0, math.inf, low_open=True)
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigError(f"cors_origins entries must be origins such as "
                                  f"http://localhost:3000, or '*'; found {origin!r}")


def _check_number(name: str, value: Any, low: float, high: float, low_open: bool = False
                  ) -> None:
    """ConfigError unless `value` is a finite real number in [low, high] (or (low, high)).

    Written as `low <= value <= high` (not `value < low or value > high`), so NaN fails too.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and (low < number if low_open else low <= number) \
                and number <= high:
            return
    # every other value (NaN, infinities, strings, bools, out of range) is refused
    bound = f"{'(' if low_open else '['}{low}, {high}{')' if math.isinf(high) else ']'}"
    raise ConfigError(f"{name} must be a finite number in {bound}; found {value!r}")


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A configured upstream, resolved from settings and environment. The key never prints."""

    name: RouteName
    base_url: str
    model: str
    api_key: str = dataclasses.field(default="", repr=False)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def load_settings(values: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from a dict (e.g. parsed YAML), with upstream URLs/models filled from the env."""
    environ = os.environ if environ is None else environ
    values = dict(values or {})
    for route in ROUTES:
        upstream = dict(values.get(route) or {})
        for field in ("base_url", "model"):
            if upstream.get(field) is None and environ.get(env_name(route, field)):
                upstream[field] = environ[env_name(route, field)]
        values[route] = upstream
    if values.get("token") is None and environ.get(TOKEN_ENV):
        values["token"] = environ[TOKEN_ENV]
    return from_dict(ServeSettings, values)


def resolve_upstreams(settings: ServeSettings, environ: Mapping[str, str] | None = None
                      ) -> dict[str, Upstream]:
    """The configured upstreams by route name; one with a URL but no model is an error."""
    environ = os.environ if environ is None else environ
    found: dict[str, Upstream] = {}
    for route in ROUTES:
        cfg: UpstreamSettings = getattr(settings, route)
        if cfg.base_url is None:
            continue
        if not cfg.model:
            raise ConfigError(f"the {route} upstream has a base URL but no model name; set "
                              f"{env_name(route, 'model')} (or {route}.model in the config)")
        key = environ.get(cfg.api_key_env or env_name(route, "api_key"), "")
        found[route] = Upstream(route, cfg.base_url, cfg.model, key)
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
