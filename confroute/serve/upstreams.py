"""The upstreams of a service: its settings and the environment resolved into `Upstream`s keyed
by the artifact's model names, each API key read from the environment (never from a file), and
the shadow judge's upstream."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from confroute.errors import ConfigError
from confroute.serve.settings import (
    ROUTES,
    ServeSettings,
    Upstream,
    UpstreamSettings,
    check_ladder_upstream,
    env_name,
)


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


def judge_upstream(settings: ServeSettings, environ: Mapping[str, str] | None = None
                   ) -> Upstream | None:
    """The shadow judge's upstream (`judge`, or CONFROUTE_JUDGE_*); None when not set."""
    if settings.judge.base_url is None:
        return None
    return _upstream("judge", settings.judge, env_name("judge", "api_key"),
                     os.environ if environ is None else environ)


def _upstream(name: str, cfg: UpstreamSettings, default_key_env: str,
              environ: Mapping[str, str]) -> Upstream:
    """The upstream of model `name`, its key from the environment (never from a file)."""
    check_ladder_upstream(name, cfg)  # again: the settings may have changed since
    assert cfg.base_url is not None and cfg.model is not None  # (for mypy: just checked)
    variable = cfg.api_key_env or default_key_env
    key = environ.get(variable, "")
    if cfg.api_key_env and not key:
        raise ConfigError(f"upstreams.{name}.api_key_env names {variable}, which is not set "
                          f"(or empty); export {variable}=<key>, or remove api_key_env for an"
                          f" upstream that needs no key")
    return Upstream(name, cfg.base_url, cfg.model, key)
