"""Typed settings for `confroute serve`: limits, fallback, and the upstreams.

Upstreams are keyed by the artifact's model names (cheapest first): the `upstreams:` section of
the YAML file (`confroute serve --config`) has one per model, each API key coming from the
environment variable its `api_key_env` names (default CONFROUTE_<NAME>_API_KEY), never from the
file, so that no secret is written to a config file or shown on a command line (`ps` shows argv
to every user). For a pair the upstreams of its two models (edge and cloud) can come from the
environment instead, or from the `edge` / `cloud` settings:

    CONFROUTE_EDGE_BASE_URL   CONFROUTE_EDGE_MODEL   CONFROUTE_EDGE_API_KEY
    CONFROUTE_CLOUD_BASE_URL  CONFROUTE_CLOUD_MODEL  CONFROUTE_CLOUD_API_KEY
    CONFROUTE_TOKEN           (optional: clients must send `Authorization: Bearer <token>`)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from confroute import arguments as check
from confroute.config import from_dict
from confroute.errors import ConfigError
from confroute.llm_client import redact
from confroute.serve.hosts import check_hosts, check_origins

RouteName = Literal["edge", "cloud"]
ROUTES: tuple[RouteName, RouteName] = ("edge", "cloud")
TOKEN_ENV = "CONFROUTE_TOKEN"


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_FIELDS = {"api_key", "key", "token", "secret", "password", "authorization", "headers"}
"""Upstream keys people write when they mean to put a key in the file (refused, with the fix)."""


def env_name(route: str, field: str) -> str:
    """`env_name("edge", "base_url")` -> "CONFROUTE_EDGE_BASE_URL"; a ladder model's name has
    every run of characters other than letters and digits written as "_" ("gpt-4o" -> GPT_4O)."""
    return f"CONFROUTE_{re.sub(r'[^A-Za-z0-9]+', '_', route).strip('_').upper()}_{field.upper()}"


def check_base_url(url: Any, key: str = "upstream base_url") -> None:
    """ConfigError unless `url` is an http(s) URL with a host (and a port, if any, that is one).

    The URL found is shown with any user:password part and key-shaped text replaced by ***.
    """
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        ok = (parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
              and not any(c.isspace() for c in url) and (parts.port is None or parts.port > 0))
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        ok = False
    if not ok:
        raise ConfigError(f"{key} must be an http(s) URL such as http://127.0.0.1:8080/v1; "
                          f"found {shown_url(url)}")


def shown_url(url: Any) -> str:
    """`url` fit for an error message: user:password@ and key-shaped text as ***."""
    if not isinstance(url, str):
        return repr(url)
    return repr(redact(re.sub(r"(//)[^/@]*@", r"\1***@", url)))


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
        if self.base_url is not None:
            check_base_url(self.base_url)


@dataclasses.dataclass
class ServeSettings:
    """Everything `create_app` needs besides the router artifact."""

    host: str = "127.0.0.1"
    """Loopback by default: exposing the service is an explicit choice (set a token then).
    Loopback keeps other machines out, and web pages too (only loopback Host names, JSON
    bodies and no foreign Origin are served: see allowed_hosts), but not other users and
    processes on this machine: on a shared machine set CONFROUTE_TOKEN."""
    port: int = 8000
    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token clients must send (all endpoints but /health); default $CONFROUTE_TOKEN."""
    threshold: float | None = None
    """A pair: its threshold (P(cloud needed) >= it goes to the cloud); None = the artifact's."""
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
    """When the chosen upstream fails (connection error, timeout, 429, 5xx, context too long),
    try the next more expensive model's, and so on up the ladder (never down: for a pair the
    edge falls back to the cloud, the cloud to nothing)."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    """Longest wait for the upstream's response to start, and between streamed chunks."""
    cors_origins: list[str] = dataclasses.field(default_factory=list)
    """Browser origins allowed to call the service (CORS), e.g. ["http://localhost:3000"], or
    ["*"] for any. A request with another Origin header (a web page's, "null" included) gets
    403 before any work; empty (the default) = CORS off and every such request refused."""
    edge: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    """A pair: the upstream of its cheaper model (default from CONFROUTE_EDGE_*)."""
    cloud: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    """A pair: the upstream of its more expensive model (default from CONFROUTE_CLOUD_*)."""
    upstreams: dict[str, UpstreamSettings] = dataclasses.field(default_factory=dict)
    """One upstream per model, keyed by the artifact's model names (for a pair: edge, cloud),
    e.g. {small: {base_url: http://127.0.0.1:8080/v1, model: qwen2.5-1.5b}}. API keys come
    only from the environment variable each one's api_key_env names (default
    CONFROUTE_<NAME>_API_KEY), never from the file. The most expensive model must have one; a
    cheaper model without one passes its requests up the ladder. None at all: /v1/route only."""
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    """Threshold rule: thresholds (P(adequate) >= it) replacing the artifact's for some models,
    e.g. {small: 0.8} (a request may override them again); a pair may use `threshold`."""
    allowed_hosts: list[str] = dataclasses.field(default_factory=list)
    """Host names or IP addresses (no port: any port) that requests may name in their Host
    header besides the loopback ones, e.g. [confroute.example.com] behind a reverse proxy that
    passes the client's Host on. A request that arrives on a loopback address is served only
    when its Host is localhost, a loopback address (127.0.0.1, [::1]) or one of these; on
    another address, only these when set (empty: any Host). Others get 403: this stops DNS
    rebinding (a web page pointing a name of its own at 127.0.0.1 to read the answers)."""
    body_timeout_s: float = 30.0
    """Longest time to receive a request body; a stalled body (or one shorter than its
    Content-Length) gets 408."""
    first_content_timeout_s: float = 120.0
    """Longest wait for each upstream's first content: a stream's first data event (SSE
    comments and keep-alives are not content) or a whole non-streamed answer; past it the next
    upstream is tried (fallback), else the client gets 504."""
    request_timeout_s: float = 600.0
    """Longest time for a whole chat request, streamed or not, fallbacks included: past it a
    client that has been sent nothing gets 504, and a stream ends with an error event."""
    cascade: bool = False
    """A pair, after generation (opt-in): a request the router does not send to the cloud at
    once (score >= the cascade's t1) is asked of the edge with `logprobs: true` and its answer
    HELD; when the edge's uncertainty (from its mean token log-prob) is >= t2 the request goes
    to the cloud and the client gets only the cloud's answer. A stream is buffered whole until
    the edge's stream ends: the client's first byte waits for the edge's entire answer (plus
    the cloud's time to first token when escalated). See confroute.serve.cascade."""
    cascade_policy: str | None = None
    """JSON file of the cascade (t1, t2, uncertainty {measure: logprob, weights, bias}), as
    confroute.cascade.CascadePolicy.to_dict writes it; None = the artifact manifest's `cascade`
    section."""
    cascade_missing: Literal["edge", "cloud"] = "edge"
    """An edge answer whose logprobs are missing or malformed: serve it (edge) or escalate it
    (cloud); either way the x-confroute-cascade header says so and a warning is logged."""

    def __post_init__(self) -> None:
        if self.threshold is not None:
            _check_number("threshold", self.threshold, 0.0, 1.0)
        for name, value in self.thresholds.items():
            _check_number(f"thresholds.{name}", value, 0.0, 1.0)
        for name, upstream in self.upstreams.items():
            _check_ladder_upstream(name, upstream)
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
        _check_guard(self)


def _check_guard(settings: ServeSettings) -> None:
    """The request guard's settings: hosts, origins and deadlines (ConfigError naming one)."""
    check_hosts(settings.allowed_hosts)
    check_origins(settings.cors_origins)
    for name in ("body_timeout_s", "first_content_timeout_s", "request_timeout_s"):
        _check_number(name, getattr(settings, name), 0.0, math.inf, low_open=True)


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


def _check_ladder_upstream(name: Any, upstream: Any) -> None:
    key = f"upstreams.{name}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"upstreams keys must be the artifact's model names; found {name!r}")
    if not isinstance(upstream, UpstreamSettings):
        raise ConfigError(f"{key} must be an upstream (base_url, model, api_key_env); found "
                          f"{type(upstream).__name__}")
    if upstream.base_url is None:
        raise ConfigError(f"{key}.base_url is missing; set it to the upstream's API root, "
                          "e.g. http://127.0.0.1:8080/v1")
    check_base_url(upstream.base_url, f"{key}.base_url")
    if not isinstance(upstream.model, str) or not upstream.model.strip():
        raise ConfigError(f"{key}.model is missing; set it to the model name the upstream "
                          "expects in each request (e.g. the name vLLM or llama.cpp serves)")
    if upstream.api_key_env is not None and not ENV_NAME.fullmatch(upstream.api_key_env):
        # never echo the value: it may be the key itself, pasted in the wrong place
        raise ConfigError(f"{key}.api_key_env must be the NAME of an environment variable "
                          "holding the key (letters, digits and _), e.g. OPENAI_API_KEY; the key "
                          "itself never goes in the config file")


def check_upstreams_config(raw: Any) -> None:
    """Check the `upstreams` section as written in a YAML file or dict, before it is typed.

    Names the key and the fix for what the generic type check reports vaguely: an entry that is
    not a mapping, an unknown field, and above all an API key written into the file.
    """
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise ConfigError(f"upstreams must be a mapping of the artifact's model names to "
                          f"upstreams ({{small: {{base_url: ..., model: ...}}, ...}}); found "
                          f"{type(raw).__name__}")
    fields = [f.name for f in dataclasses.fields(UpstreamSettings)]
    for name, entry in raw.items():
        key = f"upstreams.{name}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key} must be a mapping with base_url, model and optionally "
                              f"api_key_env; found {type(entry).__name__}")
        for field in entry:
            if str(field).lower() in SECRET_FIELDS:
                raise ConfigError(f"{key}.{field}: API keys are never read from the config "
                                  f"file; export the key in an environment variable and name "
                                  f"that variable in {key}.api_key_env (default "
                                  f"{env_name(str(name), 'api_key')})")
            if field not in fields:
                raise ConfigError(f"unknown setting {key}.{field}; an upstream takes "
                                  f"{', '.join(fields)}")
        url = entry.get("base_url")
        if isinstance(url, str) and re.search(r"//[^/@]*@", url):
            raise ConfigError(f"{key}.base_url holds a user name or password "
                              f"({shown_url(url)}); credentials never go in the config file: "
                              f"put the key in an environment variable named by "
                              f"{key}.api_key_env")
        if url is not None:  # here, where the key is known (UpstreamSettings would not name it)
            check_base_url(url, f"{key}.base_url")


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A configured upstream, resolved from settings and environment. The key never prints."""

    name: str
    """The artifact's model it serves."""
    base_url: str
    model: str
    api_key: str = dataclasses.field(default="", repr=False)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def load_settings(values: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from a dict (e.g. parsed YAML), with upstream URLs/models filled from the env."""
    environ = os.environ if environ is None else check.mapping(environ, "environ")
    values = dict(check.mapping(values, "values", optional=True) or {})
    check_upstreams_config(values.get("upstreams"))
    for route in ROUTES:
        upstream = dict(values.get(route) or {})
        for field in ("base_url", "model"):
            if upstream.get(field) is None and environ.get(env_name(route, field)):
                upstream[field] = environ[env_name(route, field)]
        values[route] = upstream
    if values.get("token") is None and environ.get(TOKEN_ENV):
        values["token"] = environ[TOKEN_ENV]
    return from_dict(ServeSettings, values)


def resolve_upstreams(settings: ServeSettings, models: Sequence[str],
                      environ: Mapping[str, str] | None = None) -> dict[str, Upstream]:
    """The upstreams by the artifact's model names (`models`, cheapest first).

    They come from `upstreams`, and for a pair also from `edge` and `cloud` (CONFROUTE_EDGE_* /
    CONFROUTE_CLOUD_*), the upstreams of models[0] and models[-1]. Raises ConfigError naming the
    setting and the fix: an upstream for a model the artifact does not have; `edge`/`cloud` for
    K > 2 models, or beside an upstreams entry for the same model; an upstream URL without a
    model name; upstreams configured, but none for the most expensive model (the one every
    request can fall back to); an api_key_env naming a variable that is not set.
    """
    environ = os.environ if environ is None else environ
    listed = ", ".join(models)
    for name in settings.upstreams:
        if name not in models:
            raise ConfigError(f"upstreams.{name}: the artifact has no model {name!r}; its "
                              f"models are {listed} (cheapest first): use one of those names "
                              "or remove the entry")
    entries = {name: (cfg, env_name(name, "api_key")) for name, cfg in settings.upstreams.items()}
    for route, name in zip(ROUTES, (models[0], models[-1]), strict=True):
        cfg = getattr(settings, route)
        if cfg.base_url is None:
            continue
        if len(models) != 2:
            raise ConfigError(f"the {route} upstream is set ({route}.base_url, or "
                              f"{env_name(route, 'base_url')}), but this artifact routes among "
                              f"{len(models)} models ({listed}): configure upstreams.<model> "
                              f"in the --config file instead, and unset "
                              f"{env_name(route, 'base_url')}")
        if name in entries:
            raise ConfigError(f"both {route} ({env_name(route, 'base_url')}) and "
                              f"upstreams.{name} configure the upstream of {name!r}: keep one")
        if not cfg.model:
            raise ConfigError(f"the {route} upstream has a base URL but no model name; set "
                              f"{env_name(route, 'model')} (or {route}.model in the config)")
        entries[name] = (cfg, env_name(route, "api_key"))
    top = models[-1]
    if entries and top not in entries:
        pair = " (CONFROUTE_CLOUD_BASE_URL and _MODEL, or cloud.base_url)" \
            if len(models) == 2 else ""
        raise ConfigError(f"upstreams has no entry for {top!r}, the artifact's most expensive "
                          f"model: requests fall back up the ladder to it, so it needs one; add "
                          f"upstreams.{top} with base_url and model{pair}")
    return {name: _upstream(name, *entries[name], environ) for name in models if name in entries}


def _upstream(name: str, cfg: UpstreamSettings, default_key_env: str,
              environ: Mapping[str, str]) -> Upstream:
    """The upstream of model `name`, its key from the environment (never from a file)."""
    _check_ladder_upstream(name, cfg)  # again: the settings may have changed since
    assert cfg.base_url is not None and cfg.model is not None  # (for mypy: just checked)
    variable = cfg.api_key_env or default_key_env
    key = environ.get(variable, "")
    if cfg.api_key_env and not key:
        raise ConfigError(f"upstreams.{name}.api_key_env names {variable}, which is not set "
                          f"(or empty); export {variable}=<key>, or remove api_key_env for an"
                          f" upstream that needs no key")
    return Upstream(name, cfg.base_url, cfg.model, key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
