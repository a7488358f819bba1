"""Typed settings for `confroute serve`: limits, fallback, and the upstreams.

The settings are pydantic dataclasses: every value is validated when a `ServeSettings` or an
`UpstreamSettings` is built (from Python, a YAML file or the command line), and a bad one is a
ConfigError naming its dotted key (e.g. upstreams.small.base_url) and the fix (`config_error`).

Upstreams are keyed by the artifact's model names (cheapest first): the `upstreams:` section of
the YAML file (`confroute serve --config`) has one per model, each API key coming from the
environment variable its `api_key_env` names (default CONFROUTE_<NAME>_API_KEY), never from the
file, so that no secret is written to a config file or shown on a command line (`ps` shows argv
to every user). For a pair the upstreams of its two models (edge and cloud) can come from the
environment instead, or from the `edge` / `cloud` settings. `load_settings` reads these
variables (`ServeEnvironment`, pydantic-settings) for what the file and flags leave unset:

    CONFROUTE_EDGE_BASE_URL   CONFROUTE_EDGE_MODEL   CONFROUTE_EDGE_API_KEY
    CONFROUTE_CLOUD_BASE_URL  CONFROUTE_CLOUD_MODEL  CONFROUTE_CLOUD_API_KEY
    CONFROUTE_JUDGE_BASE_URL  CONFROUTE_JUDGE_MODEL  CONFROUTE_JUDGE_API_KEY
    CONFROUTE_TOKEN           (optional: clients must send `Authorization: Bearer <token>`)
    CONFROUTE_DECISION_LOG_URL  (log.url, when the file leaves it at its default)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic.dataclasses import dataclass as validated

from confroute import arguments as check
from confroute.errors import ConfigError, require
from confroute.serve.hosts import check_hosts, check_origins
from confroute.serve.validation import (
    Count,
    Port,
    Seconds,
    Unit,
    check_base_url,
    config_errors,
    no_space,
    refuse,
    shown_url,
    url_problem,
)
from confroute.traffic.drift import DriftSettings
from confroute.traffic.log import DEFAULT_URL as DEFAULT_LOG_URL
from confroute.traffic.log import LogSettings
from confroute.traffic.shadow import ShadowSettings

require("pydantic_settings", "serve")
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict  # noqa: E402

RouteName = Literal["edge", "cloud"]
ROUTES: tuple[RouteName, RouteName] = ("edge", "cloud")
TOKEN_ENV = "CONFROUTE_TOKEN"
LOG_URL_ENV = "CONFROUTE_DECISION_LOG_URL"


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_FIELDS = {"api_key", "key", "token", "secret", "password", "authorization", "headers"}
"""Upstream keys people write when they mean to put a key in the file (refused, with the fix)."""


def env_name(route: str, field: str) -> str:
    """`env_name("edge", "base_url")` -> "CONFROUTE_EDGE_BASE_URL"; a ladder model's name has
    every run of characters other than letters and digits written as "_" ("gpt-4o" -> GPT_4O)."""
    return f"CONFROUTE_{re.sub(r'[^A-Za-z0-9]+', '_', route).strip('_').upper()}_{field.upper()}"


@config_errors
@validated(config=ConfigDict(extra="forbid"))
class UpstreamSettings:
    """One OpenAI-compatible upstream (the edge or the cloud model)."""

    base_url: str | None = None
    """API root including the version, e.g. http://127.0.0.1:8080/v1; None = not configured."""
    model: str | None = None
    """The `model` value the upstream expects; the proxy writes it into every forwarded request."""
    api_key_env: str | None = None
    """Environment variable holding this upstream's API key (default CONFROUTE_<ROUTE>_API_KEY)."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        problem = None if url is None else url_problem(url)
        if problem:
            raise refuse(problem)
        return url

    @field_validator("api_key_env")
    @classmethod
    def _key_env(cls, name: str | None) -> str | None:
        if name is not None and not ENV_NAME.fullmatch(name):
            # never echo the value: it may be the key itself, pasted in the wrong place
            raise refuse("must be the NAME of an environment variable holding the key "
                          "(letters, digits and _), e.g. OPENAI_API_KEY; the key itself never "
                          "goes in the config file")
        return name


@config_errors
@validated(config=ConfigDict(extra="forbid"))
class ServeSettings:
    """Everything `create_app` needs besides the router artifact."""

    host: str = "127.0.0.1"
    """Loopback by default: exposing the service is an explicit choice (set a token then).
    Loopback keeps other machines out, and web pages too (only loopback Host names, JSON
    bodies and no foreign Origin are served: see allowed_hosts), but not other users and
    processes on this machine: on a shared machine set CONFROUTE_TOKEN."""
    port: Port = 8000
    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token clients must send (all endpoints but /health); default $CONFROUTE_TOKEN."""
    threshold: Unit | None = None
    """A pair: its threshold (P(cloud needed) >= it goes to the cloud); None = the artifact's."""
    variant: Literal["auto", "fp32", "int8"] = "auto"
    threads: Count | None = 1
    """onnxruntime intra-op threads per scoring call; None = onnxruntime's default (all cores).
    Under concurrent load, one thread per call and `score_workers` calls at once does more work
    per CPU second than every call spreading over (and spin-waiting on) all cores."""
    max_body_bytes: Count = 1_000_000
    """Larger request bodies get 413 before they are parsed."""
    max_prompt_chars: Count = 100_000
    """Longer scored texts get 413 (the router reads only its first max_length tokens anyway)."""
    max_prompts: Count = 256
    """Most prompts in one /v1/route request."""
    batch_max: Count = 1
    """Micro-batching: requests waiting for a scoring call are scored together, up to this many
    prompts per onnxruntime call (1 = off). Off by default: measured with bench/load.py, it pays
    for tiny routers (per-call overhead) but not for MiniLM-sized ones (padding), and with int8 a
    score then depends slightly on its batch-mates."""
    score_workers: Count | None = None
    """Scoring calls running at once (the rest queue); None = one per CPU core."""
    fallback: bool = True
    """When the chosen upstream fails (connection error, timeout, 429, 5xx, context too long),
    try the next more expensive model's, and so on up the ladder (never down: for a pair the
    edge falls back to the cloud, the cloud to nothing)."""
    connect_timeout_s: Seconds = 5.0
    read_timeout_s: Seconds = 120.0
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
    thresholds: dict[str, Unit] = dataclasses.field(default_factory=dict)
    """Threshold rule: thresholds (P(adequate) >= it) replacing the artifact's for some models,
    e.g. {small: 0.8} (a request may override them again); a pair may use `threshold`."""
    allowed_hosts: list[str] = dataclasses.field(default_factory=list)
    """Host names or IP addresses (no port: any port) that requests may name in their Host
    header besides the loopback ones, e.g. [confroute.example.com] behind a reverse proxy that
    passes the client's Host on. A request that arrives on a loopback address is served only
    when its Host is localhost, a loopback address (127.0.0.1, [::1]) or one of these; on
    another address, only these when set (empty: any Host). Others get 403: this stops DNS
    rebinding (a web page pointing a name of its own at 127.0.0.1 to read the answers)."""
    body_timeout_s: Seconds = 30.0
    """Longest time to receive a request body; a stalled body (or one shorter than its
    Content-Length) gets 408."""
    first_content_timeout_s: Seconds = 120.0
    """Longest wait for each upstream's first content: a stream's first data event (SSE
    comments and keep-alives are not content) or a whole non-streamed answer; past it the next
    upstream is tried (fallback), else the client gets 504."""
    request_timeout_s: Seconds = 600.0
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
    log: LogSettings = dataclasses.field(default_factory=LogSettings)
    """The decision log: every routed request recorded off the request path (log.url, default
    $CONFROUTE_DECISION_LOG_URL, else a SQLite file in the working directory; log.text off:
    only the prompt's sha256 is kept); see confroute.traffic.log."""
    shadow: ShadowSettings = dataclasses.field(default_factory=ShadowSettings)
    """Shadow judging of answered requests by the models not chosen (off: shadow.fraction 0);
    the judge is called as the `judge` upstream."""
    drift: DriftSettings = dataclasses.field(default_factory=DriftSettings)
    """The realised cloud share against the calibrated target, and the score shift (/metrics)."""
    judge: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    """Shadow judging: the judge's upstream (default from CONFROUTE_JUDGE_*), its key from
    CONFROUTE_JUDGE_API_KEY or the variable judge.api_key_env names."""
    reload_artifact: bool = True
    """Reload the artifact (a served link is resolved again) on SIGHUP and POST /admin/reload;
    in-flight requests finish on the router they started with."""

    @field_validator("edge", "cloud", "judge", mode="before")
    @classmethod
    def _no_key_in_route(cls, entry: Any, info: Any) -> Any:
        if isinstance(entry, Mapping):
            refuse_secrets(info.field_name, entry, env_name(info.field_name, "api_key"))
        return entry

    @field_validator("upstreams", mode="before")
    @classmethod
    def _upstreams_as_written(cls, raw: Any) -> Any:
        check_upstreams_config(raw)
        return raw

    @field_validator("upstreams")
    @classmethod
    def _complete_upstreams(cls, upstreams: dict[str, UpstreamSettings]
                            ) -> dict[str, UpstreamSettings]:
        for name, upstream in upstreams.items():
            check_ladder_upstream(name, upstream)
        return upstreams

    @field_validator("host", "token")
    @classmethod
    def _no_space(cls, value: str | None, info: Any) -> str | None:
        return no_space(value, info.field_name)  # host "" would bind every interface

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        check_hosts(hosts)  # ConfigError naming allowed_hosts and the entry
        return hosts

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        check_origins(origins)  # ConfigError naming cors_origins and the entry
        return origins


def check_ladder_upstream(name: Any, upstream: Any) -> None:
    """ConfigError unless upstreams.`name` is a complete upstream: a base URL and a model."""
    key = f"upstreams.{name}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"upstreams keys must be the artifact's model names; found {name!r}")
    if not isinstance(upstream, UpstreamSettings):
        raise ConfigError(f"{key} must be an upstream (base_url, model, api_key_env); found "
                          f"{type(upstream).__name__}")
    if upstream.base_url is None:
        raise ConfigError(f"{key}.base_url is missing; set it to the upstream's API root, "
                          "e.g. http://127.0.0.1:8080/v1")
    check_base_url(upstream.base_url, f"{key}.base_url")  # again: it may have been reassigned
    if not isinstance(upstream.model, str) or not upstream.model.strip():
        raise ConfigError(f"{key}.model is missing; set it to the model name the upstream "
                          "expects in each request (e.g. the name vLLM or llama.cpp serves)")


def refuse_secrets(key: str, entry: Mapping[Any, Any], default_env: str) -> None:
    """ConfigError for an API key (or token, password...) written into upstream `key`."""
    for field in entry:
        if str(field).lower() in SECRET_FIELDS:
            raise ConfigError(f"{key}.{field}: API keys are never read from the config file; "
                              f"export the key in an environment variable and name that "
                              f"variable in {key}.api_key_env (default {default_env})")


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
        if isinstance(entry, UpstreamSettings):
            continue  # built (and validated) already
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key} must be a mapping with base_url, model and optionally "
                              f"api_key_env; found {type(entry).__name__}")
        refuse_secrets(key, entry, env_name(str(name), "api_key"))
        for field in entry:
            if field not in fields:
                raise ConfigError(f"unknown setting {key}.{field}; an upstream takes "
                                  f"{', '.join(fields)}")
        url = entry.get("base_url")
        if isinstance(url, str) and re.search(r"//[^/@]*@", url):
            raise ConfigError(f"{key}.base_url holds a user name or password "
                              f"({shown_url(url)}); credentials never go in the config file: "
                              f"put the key in an environment variable named by "
                              f"{key}.api_key_env")
        if url is not None:  # here, where the key is known (in the CLI, before jsonargparse)
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


class ServeEnvironment(BaseSettings):
    """The environment variables `load_settings` reads: CONFROUTE_ and the field's name in
    upper case (CONFROUTE_EDGE_BASE_URL, CONFROUTE_TOKEN, CONFROUTE_DECISION_LOG_URL); an empty
    one counts as unset, other CONFROUTE_ variables are left alone. Build it with `read`: no
    .env file or secrets directory is read, and no environment but the one given."""

    model_config = SettingsConfigDict(env_prefix="CONFROUTE_", env_ignore_empty=True,
                                      extra="ignore")

    token: str | None = Field(default=None, repr=False)
    decision_log_url: str | None = None
    edge_base_url: str | None = None
    edge_model: str | None = None
    cloud_base_url: str | None = None
    cloud_model: str | None = None
    judge_base_url: str | None = None
    judge_model: str | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> ServeEnvironment:
        """The variables as found in `environ` (e.g. os.environ), by pydantic-settings'
        environment source (this class's prefix, case and empty-value rules)."""
        source = EnvSettingsSource(cls)
        source.env_vars = {name if source.case_sensitive else name.lower(): value
                           for name, value in environ.items()
                           if not (source.env_ignore_empty and value == "")}
        return cls(**source())

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any,
                                   env_settings: Any, dotenv_settings: Any,
                                   file_secret_settings: Any) -> tuple[Any, ...]:
        return (init_settings,)  # the values `read` found: os.environ only when given


def load_settings(values: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServeSettings:
    """Settings from a dict (e.g. parsed YAML, or the CLI's flags), what it leaves unset filled
    from the environment (`environ`, default os.environ; see `ServeEnvironment`): a value given
    wins over the environment, the environment over the default. log.url is filled when left
    at its default. Raises ConfigError naming the key (see `config_error`)."""
    env = ServeEnvironment.read(os.environ if environ is None
                                else check.mapping(environ, "environ"))
    values = dict(check.mapping(values, "values", optional=True) or {})
    for route in (*ROUTES, "judge"):
        section = values.get(route)
        if section is None or isinstance(section, Mapping):
            section = dict(section or {})
            for field in ("base_url", "model"):
                found = getattr(env, f"{route}_{field}")
                if section.get(field) is None and found is not None:
                    section[field] = found
            values[route] = section
    if values.get("token") is None and env.token is not None:
        values["token"] = env.token
    log = values.get("log")
    if log is None or isinstance(log, Mapping):
        log = dict(log or {})
        if log.get("url") in (None, DEFAULT_LOG_URL) and env.decision_log_url is not None:
            log["url"] = env.decision_log_url
        values["log"] = log
    names = [name for name in values if not isinstance(name, str)]
    if names:
        raise ConfigError(f"unknown setting {names[0]!r}; setting names are strings")
    return ServeSettings(**values)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
